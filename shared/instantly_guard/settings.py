"""Configuration read once, at cold start, from a mapping (os.environ in production, a dict in tests).

`Reader` collects every problem instead of stopping at the first, so an operator fixing a deployment
sees the whole list in one error. Each function builds its own frozen settings object with a Reader;
`CommonSettings` holds what every function and the CLI share.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

from instantly_guard.errors import ConfigError
from instantly_guard.secret import Secret

DEFAULT_API_BASE = "https://api.instantly.ai/api/v2"

T = TypeVar("T")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class Backend(StrEnum):
    """Where state and side effects go: Google Cloud when deployed, local files for dev and tests."""

    GCP = "gcp"
    LOCAL = "local"


def parse_duration(text: str) -> timedelta:
    """`90`, `30s`, `15m`, `2h`, `7d`, `1w`, `250ms` -> timedelta (a bare number is seconds)."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 15m, 2h, 7d)")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2) or "s"])


class Reader:
    """Typed accessors over an environment mapping that record problems instead of raising.

    Call `finish()` after reading everything: it raises one ConfigError listing every problem.
    Secret values are wrapped in `Secret` the moment they are read.
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self.problems: list[str] = []

    def _raw(self, name: str) -> str | None:
        value = self._env.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def _convert(self, name: str, raw: str, convert: Callable[[str], T], what: str) -> T | None:
        try:
            return convert(raw)
        except (ValueError, TypeError) as exc:
            self.problems.append(f"{name}: {what} expected ({exc})")
            return None

    def text(self, name: str, default: str | None = None, *, required: bool = False) -> str | None:
        raw = self._raw(name)
        if raw is None:
            if required:
                self.problems.append(f"{name} is required")
            return default
        return raw

    def integer(
        self, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        raw = self._raw(name)
        if raw is None:
            return default
        value = self._convert(name, raw, int, "an integer")
        if value is None:
            return default
        return self._bounded(name, value, default, minimum, maximum)

    def number(
        self,
        name: str,
        default: float,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> float:
        raw = self._raw(name)
        if raw is None:
            return default
        value = self._convert(name, raw, float, "a number")
        if value is None:
            return default
        return self._bounded(name, value, default, minimum, maximum)

    def _bounded(self, name: str, value: T, default: T, minimum: object, maximum: object) -> T:
        if minimum is not None and value < minimum:  # type: ignore[operator]
            self.problems.append(f"{name}={value} is below the minimum {minimum}")
            return default
        if maximum is not None and value > maximum:  # type: ignore[operator]
            self.problems.append(f"{name}={value} is above the maximum {maximum}")
            return default
        return value

    def flag(self, name: str, default: bool) -> bool:
        raw = self._raw(name)
        if raw is None:
            return default
        lowered = raw.lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        self.problems.append(f"{name}: expected true or false, got {raw!r}")
        return default

    def duration(self, name: str, default: timedelta) -> timedelta:
        raw = self._raw(name)
        if raw is None:
            return default
        value = self._convert(name, raw, parse_duration, "a duration")
        return default if value is None else value

    def choice(self, name: str, enum: type[T], default: T) -> T:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            return enum(raw.lower())  # type: ignore[call-arg]
        except ValueError:
            allowed = ", ".join(str(m.value) for m in enum)  # type: ignore[attr-defined]
            self.problems.append(f"{name}={raw!r} is not one of: {allowed}")
            return default

    def path(self, name: str, default: Path) -> Path:
        raw = self._raw(name)
        return default if raw is None else Path(raw)

    def secret(self, name: str) -> Secret | None:
        """A secret given directly (`NAME`) or as a file (`NAME_FILE`, e.g. a mounted Secret Manager
        volume). The value itself never appears in a problem message."""
        raw = self._env.get(name)
        file_name = self._raw(f"{name}_FILE")
        if raw and file_name:
            self.problems.append(f"set {name} or {name}_FILE, not both")
            return None
        if file_name:
            try:
                return Secret(Path(file_name).read_text(encoding="utf-8").strip())
            except OSError as exc:
                self.problems.append(f"{name}_FILE: cannot read {file_name} ({exc.strerror})")
                return None
        return Secret(raw.strip()) if raw and raw.strip() else None

    def csv(self, name: str) -> tuple[str, ...]:
        raw = self._raw(name)
        if raw is None:
            return ()
        return tuple(part.strip() for part in raw.split(",") if part.strip())

    def networks(self, name: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        networks = []
        for part in self.csv(name):
            try:
                networks.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                self.problems.append(f"{name}: {part!r} is not a CIDR network")
        return tuple(networks)

    def finish(self) -> None:
        """Raise one ConfigError naming every problem found so far."""
        if self.problems:
            raise ConfigError(self.problems)


@dataclass(frozen=True, slots=True)
class CommonSettings:
    """Settings every function and the CLI share."""

    backend: Backend
    state_dir: Path
    api_base: str
    project: str | None
    log_level: str
    rate_per_second: float
    rate_per_minute: int
    secret_location: str | None = None  # GUARD_SECRET_LOCATION: regional secrets' location

    @classmethod
    def read(cls, reader: Reader) -> CommonSettings:
        backend = reader.choice("GUARD_BACKEND", Backend, Backend.GCP)
        project = reader.text("GOOGLE_CLOUD_PROJECT")
        api_base = reader.text("INSTANTLY_API_BASE", DEFAULT_API_BASE) or DEFAULT_API_BASE
        if not api_base.startswith(("https://", "http://127.", "http://localhost", "http://[::1]")):
            reader.problems.append(
                "INSTANTLY_API_BASE must be https:// (plain http only on loopback, for the sandbox)"
            )
        level = (reader.text("LOG_LEVEL", "INFO") or "INFO").upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            reader.problems.append(f"LOG_LEVEL={level!r} is not one of DEBUG, INFO, WARNING, ERROR")
            level = "INFO"
        return cls(
            backend=backend,
            state_dir=reader.path("GUARD_STATE_DIR", Path(".guard")),
            api_base=api_base.rstrip("/"),
            project=project,
            log_level=level,
            # Instantly allows 100/s and 6,000/min per workspace, shared by every key: stay well under.
            rate_per_second=reader.number(
                "INSTANTLY_RATE_PER_SECOND", 20.0, minimum=0.1, maximum=50
            ),
            rate_per_minute=reader.integer(
                "INSTANTLY_RATE_PER_MINUTE", 1200, minimum=1, maximum=6000
            ),
            secret_location=_location(reader),
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CommonSettings:
        reader = Reader(env)
        settings = cls.read(reader)
        reader.finish()
        return settings


def _location(reader: Reader) -> str | None:
    """GUARD_SECRET_LOCATION: the location of regional secrets (`europe-west1`); unset: global."""
    location = reader.text("GUARD_SECRET_LOCATION")
    if location is not None and not re.fullmatch(r"[a-z][a-z0-9-]{1,62}", location):
        reader.problems.append(f"GUARD_SECRET_LOCATION={location!r} is not a location name")
        return None
    return location
