"""What the check holds a workspace to: a frozen `Policy` with safe defaults.

A policy comes from three layers, later ones winning key by key: the defaults below, a TOML file
(`instantly-guard check --policy FILE`), and command-line flags. The file is flat, one key per
field, with the field names below:

    environment = "production"          # or "development": tolerates all:all keys
    managed_key_prefix = "instantly-guard"
    key_max_age_days = 90
    max_key_creators = 1
    rotation_keys = []                  # ids or names of keys trusted to create/delete keys
    webhook_allowed_hosts = ["hooks.example.com", "*-123456789012.europe-west1.run.app"]
    managed_webhooks = []               # ids or names of our webhooks (besides the managed
                                        # webhook secrets' recorded ids)
    max_admins = 3                      # owners + admins
    invitation_max_age_days = 14
    allowed_email_domains = ["example.com"]
    internal_domains = ["example.com"]  # must be on the block list
    competitor_domains = ["rival.example"]
    audit_window_days = 7
    mfa_failure_threshold = 3
    env_file_examples = [".env.example", ".env.sample", ".env.template", ".env.dist"]
    disabled_rules = []                 # rule ids never reported

A list given on the command line replaces the file's list (it does not extend it). Every problem
in the file and the flags is reported at once, in one ConfigError.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from instantly_guard.errors import ConfigError

DEFAULT_KEY_PREFIX = "instantly-guard"


class Environment(StrEnum):
    PRODUCTION = "production"
    DEVELOPMENT = "development"


@dataclass(frozen=True, slots=True)
class Policy:
    """The thresholds and lists the rules compare a workspace against. Defaults are the
    recommended production settings; an empty list means "not configured" and the rule that needs
    it is reported as skipped, not passed."""

    environment: Environment = Environment.PRODUCTION
    managed_key_prefix: str = DEFAULT_KEY_PREFIX
    key_max_age_days: int = 90
    max_key_creators: int = 1
    rotation_keys: tuple[str, ...] = ()
    webhook_allowed_hosts: tuple[str, ...] = ()
    managed_webhooks: tuple[str, ...] = ()
    max_admins: int = 3
    invitation_max_age_days: int = 14
    allowed_email_domains: tuple[str, ...] = ()
    internal_domains: tuple[str, ...] = ()
    competitor_domains: tuple[str, ...] = ()
    audit_window_days: int = 7
    mfa_failure_threshold: int = 3
    env_file_examples: tuple[str, ...] = (
        ".env.example",
        ".env.sample",
        ".env.template",
        ".env.dist",
    )
    disabled_rules: tuple[str, ...] = ()

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "policy") -> Policy:
        """Build a policy from plain data (a parsed TOML file, CLI overrides, a test's dict)."""
        problems: list[str] = []
        values: dict[str, Any] = {}
        names = {f.name: f for f in dataclasses.fields(cls)}
        for key, raw in data.items():
            name = key.replace("-", "_")
            if name not in names:
                hint = difflib.get_close_matches(name, names, n=1)
                suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
                problems.append(f"{source}: unknown option {key!r}{suggestion}")
                continue
            value = _convert(name, raw, problems, source)
            if value is not None:
                values[name] = value
        if problems:
            raise ConfigError(problems)
        return cls(**values)

    @classmethod
    def load(cls, path: Path | None = None, overrides: Mapping[str, Any] | None = None) -> Policy:
        """Defaults, then the TOML file at `path` (if any), then `overrides`, validated once."""
        data: dict[str, Any] = {}
        if path is not None:
            try:
                with path.open("rb") as handle:
                    data = tomllib.load(handle)
            except OSError as exc:
                raise ConfigError(f"--policy {path}: cannot read ({exc.strerror})") from exc
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"--policy {path}: not valid TOML ({exc})") from exc
        data.update(overrides or {})
        return cls.from_mapping(data, source=str(path) if path else "policy")

    def as_dict(self) -> dict[str, Any]:
        return {
            f.name: (list(v) if isinstance(v, tuple) else str(v) if isinstance(v, StrEnum) else v)
            for f in dataclasses.fields(self)
            for v in [getattr(self, f.name)]
        }


_INT_MINIMUM = {
    "key_max_age_days": 1,
    "max_key_creators": 0,
    "max_admins": 1,
    "invitation_max_age_days": 1,
    "audit_window_days": 1,
    "mfa_failure_threshold": 1,
}
_LOWERCASE_LISTS = {
    "webhook_allowed_hosts",
    "allowed_email_domains",
    "internal_domains",
    "competitor_domains",
}


def _convert(name: str, raw: Any, problems: list[str], source: str) -> Any:
    where = f"{source}: {name}"
    if name == "environment":
        try:
            return Environment(str(raw).lower())
        except ValueError:
            problems.append(f"{where} must be one of production, development (got {raw!r})")
            return None
    if name == "managed_key_prefix":
        text = str(raw).strip().strip("/")
        if not isinstance(raw, str) or not text or "/" in text:
            problems.append(f"{where} must be a non-empty name without '/' (got {raw!r})")
            return None
        return text
    if name in _INT_MINIMUM:
        if isinstance(raw, bool) or not isinstance(raw, int | str):
            problems.append(f"{where} must be an integer (got {raw!r})")
            return None
        try:
            number = int(raw)
        except ValueError:
            problems.append(f"{where} must be an integer (got {raw!r})")
            return None
        if number < _INT_MINIMUM[name]:
            problems.append(f"{where} must be at least {_INT_MINIMUM[name]} (got {number})")
            return None
        return number
    # Every remaining field is a list of strings.
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        problems.append(f"{where} must be a list of strings (got {raw!r})")
        return None
    cleaned = [i.strip() for i in items if i.strip()]
    if name in _LOWERCASE_LISTS:
        cleaned = [i.lower().rstrip(".").removeprefix("@") for i in cleaned]
    return tuple(dict.fromkeys(cleaned))
