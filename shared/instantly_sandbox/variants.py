"""Where Instantly's real answers may differ from the document (or from what was seen): each
plausible behaviour, selectable per sandbox, so the flows can be tested under all of them.

    Sandbox(variants={"listed_key": "absent", "scope_error": "forbidden_403"})
    sb.set_variants(audit_fields="malformed")            # or PUT /_sandbox/variants {...}

| dimension      | values (default first)                          | breaks the document        |
|----------------|-------------------------------------------------|----------------------------|
| `listed_key`   | masked, full, absent, null                      | absent, null               |
| `scope_error`  | found, required_only, forbidden_403, unnamed    | none (all are envelopes)   |
| `audit_fields` | complete, null_user, null_system, malformed     | null_system, malformed     |
| `unknown_cursor` | lenient, error_500, error_400                 | none (error envelopes)     |
| `key_shape`    | sandbox, real                                   | none                       |

- `listed_key`: what `key` holds in `GET /api-keys` items and the `DELETE /api-keys/{id}` answer:
  the first 4 characters then `*` (seen), the key itself, no `key` at all, or null.
- `scope_error`: a missing scope as `401 Invalid scope. Required: X. Found: a, b` (seen), the same
  without `Found:` (public reports), `403 Insufficient scope. Required: X` (the documented status)
  or `401 Invalid scope` naming nothing.
- `audit_fields` (`GET /audit-logs` items): every field set; `user_*` null (allowed); also
  `ip_address` and `from_api` null, as system events may have them (the document says required);
  or about one entry in four malformed: alternately an unparseable `timestamp` or no `id`
  (`malformation(id)` says which, for tests).
- `unknown_cursor`: a `starting_after` the sandbox never answered as `next_starting_after` (a
  cursor saved before the API changed, or made up): read as a position in the listing, which
  past the end is an empty page (the sandbox's first behaviour); `500 Internal server error`
  (seen in a real report); or `400` naming the parameter. `Sandbox.forget_cursors()` makes
  every cursor issued so far unknown.
- `key_shape`: keys created from now on (through the API or `add_key`) have a UUIDv7 id and a
  43-character URL-safe key (the sandbox's first shapes), or a UUIDv4 id and a real-format key:
  the base64 of `<UUIDv4>:<12 alphanumerics>`, 68 characters ending `==` (what real keys look
  like). Keys seeded before keep their shape.

A variant that breaks the document is recorded with its *deviation* on each response it shaped
(`RecordedResponse.deviations`), and the contract check validates such responses against the
document with exactly that deviation allowed (`relax`): everything else in them is still checked.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Final, Literal, get_args

ListedKey = Literal["masked", "full", "absent", "null"]
ScopeErrorForm = Literal["found", "required_only", "forbidden_403", "unnamed"]
AuditFields = Literal["complete", "null_user", "null_system", "malformed"]
UnknownCursor = Literal["lenient", "error_500", "error_400"]
KeyShape = Literal["sandbox", "real"]

UNPARSEABLE_TIMESTAMP: Final = "not-a-timestamp"
_KEY_ANSWERS: Final = frozenset({"GET /api-keys", "DELETE /api-keys/{id}"})
_AUDIT_LIST: Final = "GET /audit-logs"
_USER_FIELDS: Final = ("user_id", "user_name", "user_agent")


@dataclass(frozen=True)
class Variants:
    """The behaviours one sandbox shows (see the module doc); the defaults are what was seen."""

    listed_key: ListedKey = "masked"
    scope_error: ScopeErrorForm = "found"
    audit_fields: AuditFields = "complete"
    unknown_cursor: UnknownCursor = "lenient"
    key_shape: KeyShape = "sandbox"

    @classmethod
    def of(cls, values: Mapping[str, Any] | Variants | None = None) -> Variants:
        """Variants from a mapping of dimension -> value; ValueError naming a bad one."""
        if isinstance(values, Variants):
            return values
        return cls().changed(**dict(values or {}))

    def changed(self, **values: Any) -> Variants:
        allowed = choices()
        for name, value in values.items():
            if name not in allowed:
                raise ValueError(f"unknown variant {name!r}; known: {sorted(allowed)}")
            if value not in allowed[name]:
                raise ValueError(f"variant {name} must be one of {list(allowed[name])}")
        return replace(self, **values)

    def to_json(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    # --- what the gateway asks ------------------------------------------------------------------

    def scope_error_reply(self, required: str, held: list[str]) -> tuple[int, str]:
        """The status and message for a key that lacks `required` (it holds `held`)."""
        if self.scope_error == "required_only":
            return 401, f"Invalid scope. Required: {required}"
        if self.scope_error == "forbidden_403":
            return 403, f"Insufficient scope. Required: {required}"
        if self.scope_error == "unnamed":
            return 401, "Invalid scope"
        return 401, f"Invalid scope. Required: {required}. Found: {', '.join(held)}"

    def unknown_cursor_reply(self) -> tuple[int, str] | None:
        """The status and message for a `starting_after` never issued (None: lenient)."""
        if self.unknown_cursor == "error_500":
            return 500, "Internal server error"
        if self.unknown_cursor == "error_400":
            return 400, "querystring/starting_after is not a valid cursor"
        return None

    def shape(
        self, operation: str, status: int, body: Any, real_key: Callable[[str], str | None]
    ) -> tuple[Any, tuple[str, ...]]:
        """`body` as this variant answers it, and the deviations from the document it makes.
        `real_key(id)` is the key string of a key id (for `listed_key="full"`)."""
        if status != 200 or not isinstance(body, dict):
            return body, ()
        if operation in _KEY_ANSWERS and self.listed_key != "masked":
            if operation == "GET /api-keys":
                body = {**body, "items": [self._key(i, real_key) for i in body.get("items", ())]}
            else:
                body = self._key(body, real_key)
            return body, _deviation(f"listed_key={self.listed_key}")
        if operation == _AUDIT_LIST and self.audit_fields != "complete":
            body = {**body, "items": [self._audit(item) for item in body.get("items", ())]}
            return body, _deviation(f"audit_fields={self.audit_fields}")
        return body, ()

    def _key(self, item: dict[str, Any], real_key: Callable[[str], str | None]) -> dict[str, Any]:
        shaped = dict(item)
        if self.listed_key == "absent":
            shaped.pop("key", None)
        elif self.listed_key == "null":
            shaped["key"] = None
        elif self.listed_key == "full":
            shaped["key"] = real_key(str(item.get("id"))) or shaped.get("key")
        return shaped

    def _audit(self, item: dict[str, Any]) -> dict[str, Any]:
        shaped = dict(item)
        if self.audit_fields in ("null_user", "null_system"):
            shaped.update(dict.fromkeys(_USER_FIELDS))
        if self.audit_fields == "null_system":
            shaped.update(ip_address=None, from_api=None)
        if self.audit_fields == "malformed":
            kind = malformation(str(item.get("id")))
            if kind == "timestamp":
                shaped["timestamp"] = UNPARSEABLE_TIMESTAMP
            elif kind == "id":
                del shaped["id"]
        return shaped


def malformation(entry_id: str) -> Literal["timestamp", "id"] | None:
    """Which way `audit_fields="malformed"` breaks the entry `entry_id`: about one in four, by a
    hash of the id (so the same entries on every page and in every listing)."""
    digest = hashlib.sha256(entry_id.encode()).digest()
    if digest[0] % 4:
        return None
    return "timestamp" if digest[1] % 2 else "id"


def choices() -> dict[str, tuple[str, ...]]:
    """Every dimension and its values, default first (what `GET /_sandbox/variants` lists)."""
    hints = {
        "listed_key": ListedKey,
        "scope_error": ScopeErrorForm,
        "audit_fields": AuditFields,
        "unknown_cursor": UnknownCursor,
        "key_shape": KeyShape,
    }
    return {name: get_args(kind) for name, kind in hints.items()}


# --- deviations from the document, and the document with one allowed ----------------------------


def _nullable(prop: dict[str, Any]) -> None:
    kind = prop.get("type")
    kinds = list(kind) if isinstance(kind, list) else [kind]
    prop["type"] = [*kinds, "null"] if "null" not in kinds else kinds


def _not_required(schema: dict[str, Any], *names: str) -> None:
    schema["required"] = [name for name in schema.get("required", ()) if name not in names]


def _allow_key_absent(schemas: dict[str, Any]) -> None:
    _not_required(schemas["APIKey"], "key")


def _allow_key_null(schemas: dict[str, Any]) -> None:
    _nullable(schemas["APIKey"]["properties"]["key"])


def _allow_null_system_fields(schemas: dict[str, Any]) -> None:
    for name in ("ip_address", "from_api"):
        _nullable(schemas["AuditLog"]["properties"][name])


def _allow_malformed_entries(schemas: dict[str, Any]) -> None:
    audit = schemas["AuditLog"]
    _not_required(audit, "id")
    audit["properties"]["timestamp"].pop("format", None)


DEVIATIONS: Final[Mapping[str, Callable[[dict[str, Any]], None]]] = {
    "listed_key=absent": _allow_key_absent,
    "listed_key=null": _allow_key_null,
    "audit_fields=null_system": _allow_null_system_fields,
    "audit_fields=malformed": _allow_malformed_entries,
}
"""Each variant that breaks the document -> how the document must be relaxed to allow exactly
that (a change to `components.schemas`)."""


def _deviation(name: str) -> tuple[str, ...]:
    return (name,) if name in DEVIATIONS else ()


def relax(document: Mapping[str, Any], deviations: tuple[str, ...]) -> dict[str, Any]:
    """A copy of the OpenAPI `document` that allows `deviations`; KeyError for an unknown one."""
    relaxed = copy.deepcopy(dict(document))
    for name in deviations:
        DEVIATIONS[name](relaxed["components"]["schemas"])
    return relaxed
