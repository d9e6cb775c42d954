"""The `Scope` value, the vocabulary of scopes a key can hold, and parsing with clear errors."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, TypeAlias

from instantly_guard.scopes import _generated
from instantly_guard.scopes.errors import ScopeParseError

ALL: Final = "all"
"""The wildcard, valid both as a resource (`all:read`) and as an action (`leads:all`)."""

RESOURCES: Final[tuple[str, ...]] = _generated.RESOURCES
"""The 36 resource names a key scope may use, `all` included, in the document's order."""

ACTIONS: Final[tuple[str, ...]] = _generated.ACTIONS
"""`all`, `create`, `read`, `update`, `delete`."""

_SEPARATORS = re.compile(r"[,\s]+")


@dataclass(frozen=True, order=True, slots=True)
class Scope:
    """One `resource:action` pair. `str(scope)` is the form Instantly uses.

    Constructing a `Scope` does not validate it (an operation may require a scope no key can
    hold, see `OPERATION_ONLY_RESOURCES`); `parse_scope` does.
    """

    resource: str
    action: str

    def __str__(self) -> str:
        return f"{self.resource}:{self.action}"

    @property
    def breadth(self) -> int:
        """0 for `R:A`, 1 for `R:all`, 2 for `all:A`, 3 for `all:all`: lower is less privilege.

        `R:all` ranks below `all:A` because it stays inside one resource, while `all:A` reaches
        every resource in the workspace (the document lists the four in this order too).
        """
        return 2 * (self.resource == ALL) + (self.action == ALL)


KEY_SCOPES: Final[frozenset[Scope]] = frozenset(
    Scope(*text.split(":", 1)) for text in _generated.KEY_SCOPES
)
"""Every scope a key can be created with (the enum of `POST /api-keys`). Not the full product
RESOURCES x ACTIONS: `email_verifications` only takes `all`, `create` and `read`."""

OPERATION_ONLY_RESOURCES: Final[frozenset[str]] = frozenset(
    scope.split(":", 1)[0] for scopes in _generated.OPERATIONS.values() for scope in scopes
) - frozenset(RESOURCES)
"""Resources that some operations require but that no key can hold (`supersearch_enrichments`
in API 2.0.0): only an `all:*` scope grants those operations."""

Scopes: TypeAlias = str | Iterable[Scope | str]
"""What the functions of this package accept as a set of held scopes: a comma- or
space-separated string, or an iterable of `Scope` values and scope strings."""


def parse_scope(text: str) -> Scope:
    """Parse one `resource:action` string into a `Scope` a key can hold.

    Surrounding whitespace is ignored; nothing else is normalised (`Leads:Read` is an error
    that suggests `leads:read`). Raises `ScopeParseError` naming the token, saying what is wrong
    with it, suggesting a close match and listing the valid resources or actions.
    """
    (scope,) = parse_scopes([text])
    return scope


def parse_scopes(scopes: Scopes) -> frozenset[Scope]:
    """Parse many scopes: a string separated by commas and/or whitespace, or an iterable of
    strings and `Scope` values (validated like strings). Empty input gives an empty set.

    Every bad token is reported at once, in one `ScopeParseError`.
    """
    items: Iterable[Scope | str] = (
        [token for token in _SEPARATORS.split(scopes) if token]
        if isinstance(scopes, str)
        else scopes
    )
    parsed: set[Scope] = set()
    problems: list[str] = []
    bad: list[str] = []
    for item in items:
        text = str(item).strip()
        problem = _problem(text)
        if problem is None:
            resource, action = text.split(":")
            parsed.add(Scope(resource, action))
        else:
            problems.append(problem)
            bad.append(text)
    if problems:
        raise ScopeParseError([*problems, *_vocabulary_hints(bad)], tokens=bad)
    return frozenset(parsed)


def format_scopes(scopes: Iterable[Scope]) -> str:
    """Sorted, comma-separated: the stable form for annotations, logs and CLI output."""
    return ",".join(sorted({str(scope) for scope in scopes}))


def _problem(text: str) -> str | None:
    """Why `text` is not a key scope, or None when it is one."""
    if text.count(":") != 1:
        return f"{text!r} is not a scope: expected RESOURCE:ACTION, for example 'leads:read'"
    resource, action = text.split(":")
    if resource not in RESOURCES:
        if resource in OPERATION_ONLY_RESOURCES:
            return (
                f"{text!r}: some operations require {resource}:* but Instantly does not let a key "
                f"hold it; only all:{action if action in ACTIONS else 'ACTION'} or all:all grant them"
            )
        return f"unknown resource {resource!r} in {text!r}{_did_you_mean(resource, RESOURCES)}"
    if action not in ACTIONS:
        return f"unknown action {action!r} in {text!r}{_did_you_mean(action, ACTIONS)}"
    if Scope(resource, action) not in KEY_SCOPES:
        offered = ", ".join(a for a in ACTIONS if Scope(resource, a) in KEY_SCOPES)
        return f"{text!r} does not exist: {resource} only takes {offered}"
    return None


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    # Case-insensitive: `Leads` should suggest `leads`; cutoff 0.6 is difflib's own default.
    lowered = {choice.lower(): choice for choice in choices}
    match = difflib.get_close_matches(word.lower(), lowered, n=1)
    return f" (did you mean {lowered[match[0]]!r}?)" if match else ""


def _vocabulary_hints(bad: Iterable[str]) -> list[str]:
    """One line listing valid resources and/or actions, once, after the per-token problems."""
    resources = actions = False
    for text in bad:
        if text.count(":") != 1:
            resources = actions = True
            continue
        resource, action = text.split(":")
        resources |= resource not in RESOURCES and resource not in OPERATION_ONLY_RESOURCES
        actions |= resource in RESOURCES and action not in ACTIONS
    hints = []
    if resources:
        hints.append("valid resources: " + ", ".join(sorted(RESOURCES)))
    if actions:
        hints.append("valid actions: " + ", ".join(ACTIONS))
    return hints
