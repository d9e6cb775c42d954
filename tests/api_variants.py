"""The one list of Instantly behaviours the core flows run under (the variant matrix).

Where the real API may differ from its document or from what was seen, the sandbox can show each
plausible behaviour (`instantly_sandbox.variants`, docs/sandbox.md). The flow tests
(`tests/rotation/test_rotation_variants.py`, `tests/audit/test_audit_export_variants.py`,
`tests/check/test_check_variants.py`) are parametrized over `VARIANTS`: each flow must succeed
under every one. Those over `SCOPE_ERROR_VARIANTS` also run each flow with a key that lacks a
scope, and expect a scope diagnosis naming it, with no key refreshed or deleted.

To add a variant: give the sandbox the option (a `Sandbox(...)` keyword, or a dimension of
`instantly_sandbox.variants.Variants`), then add one `ApiVariant` line below; every flow test
picks it up. A variant for one flow only (say webhook headers, which only the webhook-secret
rotation reads) still goes here: flows it does not touch just run once more under it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from instantly_guard.instantly import StaticKey
from instantly_guard.secret import Secret


@dataclass(frozen=True)
class ApiVariant:
    """`name` is the pytest id; `sandbox` the keyword arguments of `Sandbox(...)`."""

    name: str
    sandbox: Mapping[str, Any] = field(default_factory=dict)

    @property
    def variants(self) -> Mapping[str, str]:
        """The `instantly_sandbox.variants` dimensions this one sets."""
        value: Mapping[str, str] = self.sandbox.get("variants", {})
        return value


def _v(**variants: str) -> dict[str, Any]:
    return {"variants": variants}


VARIANTS: tuple[ApiVariant, ...] = (
    ApiVariant("as-seen"),
    ApiVariant("listed-key-full", _v(listed_key="full")),
    ApiVariant("listed-key-absent", _v(listed_key="absent")),
    ApiVariant("listed-key-null", _v(listed_key="null")),
    ApiVariant("scope-error-without-found", _v(scope_error="required_only")),
    ApiVariant("scope-error-403", _v(scope_error="forbidden_403")),
    ApiVariant("scope-error-unnamed", _v(scope_error="unnamed")),
    ApiVariant("audit-null-user", _v(audit_fields="null_user")),
    ApiVariant("audit-null-system", _v(audit_fields="null_system")),
    ApiVariant("audit-malformed", _v(audit_fields="malformed")),
    ApiVariant("listing-desc", {"listing_order": "desc"}),
    ApiVariant("listing-random", {"listing_order": "random"}),
    ApiVariant("date-filter-utc-minus-5", {"date_filter_utc_offset": timedelta(hours=-5)}),
    ApiVariant("date-filter-end-exclusive", {"date_filter_end_exclusive": True}),
    ApiVariant("unknown-cursor-500", _v(unknown_cursor="error_500")),
    ApiVariant("unknown-cursor-400", _v(unknown_cursor="error_400")),
    ApiVariant("real-key-shape", _v(key_shape="real")),
)

SCOPE_ERROR_VARIANTS: tuple[ApiVariant, ...] = tuple(
    v for v in VARIANTS if v.name == "as-seen" or "scope_error" in v.variants
)


class CountingKey:
    """A fixed key provider that counts the refreshes a client asks for (a scope error must
    never make a client refresh its key)."""

    def __init__(self, key: str) -> None:
        self._key = StaticKey(key)
        self.refreshes = 0

    def __call__(self, *, refresh: bool = False) -> Secret:
        self.refreshes += refresh
        return self._key(refresh=refresh)


def params(variants: tuple[ApiVariant, ...] = VARIANTS) -> list[Any]:
    """`variants` as pytest params with readable ids."""
    return [pytest.param(v, id=v.name) for v in variants]
