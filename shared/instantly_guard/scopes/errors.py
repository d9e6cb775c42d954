"""Errors of the scopes module. Both are `ConfigError`s: scopes and operation names come from
configuration (secret annotations, `--scopes`, Terraform variables, profile definitions).

    ConfigError                 (instantly_guard.errors)
    ├── ScopeParseError         a scope string is not a scope a key can hold
    └── UnknownOperationError   an operation key is not in the OpenAPI document
"""

from __future__ import annotations

from collections.abc import Iterable

from instantly_guard.errors import ConfigError


class ScopeParseError(ConfigError):
    """One or more scope strings are invalid. `tokens` are the offending inputs, in order;
    `problems` (from ConfigError) explain each one and list the valid vocabulary."""

    def __init__(self, problems: Iterable[str], *, tokens: Iterable[str]) -> None:
        self.tokens: tuple[str, ...] = tuple(tokens)
        super().__init__(problems)


class UnknownOperationError(ConfigError):
    """One or more operation keys ("METHOD /path") are not in the OpenAPI document.
    `operations` are the unknown keys, in order."""

    def __init__(self, problems: Iterable[str], *, operations: Iterable[str]) -> None:
        self.operations: tuple[str, ...] = tuple(operations)
        super().__init__(problems)
