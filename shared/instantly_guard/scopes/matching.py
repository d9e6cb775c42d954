"""The matching rule: which held scopes satisfy a required one.

An operation that needs `R:A` accepts exactly `R:A`, `R:all`, `all:A` and `all:all`. There is no
other inheritance: `leads:all` does not grant `lead_lists:read`, `leads:update` does not grant
`leads:read`, and holding every action of a resource separately does not make `R:all`.
"""

from __future__ import annotations

from instantly_guard.scopes.scope import ALL, Scope, Scopes, parse_scope, parse_scopes


def accepted_by(required: Scope | str) -> tuple[Scope, ...]:
    """The scopes that satisfy `required`, least privilege first (`R:A`, `R:all`, `all:A`,
    `all:all`, without repeats when `required` is itself a wildcard)."""
    need = _required(required)
    candidates = (
        need,
        Scope(need.resource, ALL),
        Scope(ALL, need.action),
        Scope(ALL, ALL),
    )
    return tuple(dict.fromkeys(candidates))


def grants(held: Scopes, required: Scope | str) -> bool:
    """True when any held scope satisfies `required` under the rule above.

    `held` strings are parsed strictly (`ScopeParseError` on a scope no key can hold). A
    `required` given as a `Scope` is taken as is, so an operation-only scope such as
    `supersearch_enrichments:read` can be asked about; as a string it is parsed strictly.
    """
    return not parse_scopes(held).isdisjoint(accepted_by(required))


def _required(required: Scope | str) -> Scope:
    return required if isinstance(required, Scope) else parse_scope(required)
