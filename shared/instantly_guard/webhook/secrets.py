"""The webhook secret's payload format, and sources that re-read it when it changes.

## Payload format (one Secret Manager version, an env value, or a mounted file)

The payload is UTF-8 text; surrounding whitespace (a trailing newline) is ignored. It is either

1. **a plain secret**: the whole text is the secret, e.g. `hM3q...` (it must not start with `{`); or
2. **a JSON object** listing every secret Instantly may send right now:

       {"current": "<secret>",
        "previous": "<secret>",
        "previous_expires_at": "2025-06-01T12:00:00Z"}

   - `current` (required): the secret the webhooks are being switched to.
   - `previous` (optional, may be null): the secret being retired. It is accepted only while the
     receiver's clock is before `previous_expires_at`; after that it is ignored (not an error), so
     a version written at the start of a grace period stops accepting the old secret on its own.
   - `previous_expires_at` (required when `previous` is set): ISO-8601 date-time **with** a UTC
     offset (`Z` or `+00:00`).
   - `older` (optional): `[{"secret": "<secret>", "expires_at": "<date-time>"}, ...]`, secrets
     retired by earlier rotations whose grace has not ended yet (a second rotation inside one
     grace period). Each is accepted until its own `expires_at`, exactly like `previous`.
   - Other keys are ignored, so a writer may add metadata (for example a rotation id); a reader
     that predates `older` accepts `current` and `previous` and ignores it.

Every secret is at least 16 bytes of visible ASCII (0x21-0x7E: it travels in an HTTP header).
A payload that breaks any rule is rejected as a whole: the receiver then accepts nothing and
answers 503 (it never falls back to an older value it was told to replace).

Why this shape: a receiver that mounts the secret's `latest` version as a file sees exactly one
version, so during a rotation's grace period that one version must name both secrets. The
rotation writes `{"current": new, "previous": old, "previous_expires_at": end of grace}` *before*
it changes the header on Instantly's webhooks (the receiver must accept the new secret before
Instantly sends it), and may later write the plain new secret (or let the expiry do the work).
`format_secret_payload` writes this format; `parse_secret_payload` reads it.

## Sources

`StaticSecretSource` holds a value read once (an environment variable: Secret Manager values
passed as env vars are read once per instance anyway). `FileSecretSource` re-reads its file when
its inode, size or modification time changes, and at least every `recheck_seconds` whatever they
say: Cloud Run fetches a secret volume's value from Secret Manager when the file is read, so its
metadata need not change when a version is added. The recheck bounds how long a secret that was
removed (a leak) stays accepted. `refresh()` re-reads at once (at most every
`refresh_interval` seconds): the receiver calls it when credentials did not match, so the first
delivery carrying a just-rotated secret is accepted without waiting for the recheck.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol

from instantly_guard.errors import GuardError
from instantly_guard.secret import Secret

MIN_SECRET_BYTES: Final = 16
_VISIBLE_ASCII = frozenset(range(0x21, 0x7F))


class SecretFormatError(GuardError, ValueError):
    """The payload breaks the format. The message never contains a secret value."""


class SecretUnavailableError(GuardError):
    """No usable secret right now (missing file, unreadable, bad payload). `problem` says why."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(problem)


@dataclass(frozen=True, slots=True)
class Retiring:
    """A secret still accepted until `expires_at` (an aware datetime), then ignored."""

    secret: Secret
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class SecretVersion:
    """What one payload allows: the current secret and, each until it expires, the previous one
    and any `older` ones."""

    current: Secret
    previous: Secret | None = None
    previous_expires_at: datetime | None = None
    older: tuple[Retiring, ...] = ()

    @property
    def retiring(self) -> tuple[Retiring, ...]:
        """Every retired secret with its expiry, `previous` first."""
        head: tuple[Retiring, ...] = ()
        if self.previous is not None and self.previous_expires_at is not None:
            head = (Retiring(self.previous, self.previous_expires_at),)
        return head + self.older

    def accepted(self, now: datetime) -> tuple[Secret, ...]:
        """The secrets to accept at `now` (an aware datetime)."""
        if self.previous is None and not self.older:  # outside a rotation (every request)
            return (self.current,)
        return (self.current, *(r.secret for r in self.retiring if now < r.expires_at))


def check_secret(value: str, what: str = "secret") -> Secret:
    """Wrap `value` as a Secret after checking the length and character rules."""
    encoded = value.encode("utf-8")
    if not encoded:
        raise SecretFormatError(f"{what} is empty")
    if any(byte not in _VISIBLE_ASCII for byte in encoded):
        raise SecretFormatError(f"{what} must be visible ASCII (no spaces or control characters)")
    if len(encoded) < MIN_SECRET_BYTES:
        raise SecretFormatError(f"{what} is shorter than {MIN_SECRET_BYTES} bytes")
    return Secret(value)


def _parse_expiry(value: Any) -> datetime:
    if not isinstance(value, str):
        raise SecretFormatError("previous_expires_at must be an ISO-8601 string")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise SecretFormatError("previous_expires_at is not an ISO-8601 date-time") from exc
    if parsed.tzinfo is None:
        raise SecretFormatError("previous_expires_at needs a UTC offset (e.g. ...T12:00:00Z)")
    return parsed


def parse_secret_payload(text: str) -> SecretVersion:
    """Read one payload in the format described in this module's docstring."""
    stripped = text.strip()
    if not stripped.startswith("{"):
        return SecretVersion(current=check_secret(stripped, "secret"))
    try:
        document = json.loads(stripped)
    except ValueError as exc:
        raise SecretFormatError("payload starts with '{' but is not a valid JSON object") from exc
    if not isinstance(document, dict):
        raise SecretFormatError("payload is not a JSON object")
    current = document.get("current")
    if not isinstance(current, str):
        raise SecretFormatError("'current' is required and must be a string")
    version_current = check_secret(current.strip(), "'current'")
    older = _parse_older(document.get("older"))
    previous = document.get("previous")
    if previous is None:
        if older:
            raise SecretFormatError("'older' needs 'previous'")
        return SecretVersion(current=version_current)
    if not isinstance(previous, str):
        raise SecretFormatError("'previous' must be a string or null")
    version_previous = check_secret(previous.strip(), "'previous'")
    if "previous_expires_at" not in document:
        raise SecretFormatError("'previous' needs 'previous_expires_at'")
    expires = _parse_expiry(document["previous_expires_at"])
    return SecretVersion(version_current, version_previous, expires, older)


def _parse_older(value: Any) -> tuple[Retiring, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise SecretFormatError("'older' must be a list")
    older = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("secret"), str):
            raise SecretFormatError("each of 'older' needs a string 'secret'")
        if "expires_at" not in item:
            raise SecretFormatError("each of 'older' needs 'expires_at'")
        secret = check_secret(item["secret"].strip(), "an 'older' secret")
        older.append(Retiring(secret, _parse_expiry(item["expires_at"])))
    return tuple(older)


def format_secret_payload(
    current: str,
    previous: str | None = None,
    previous_expires_at: datetime | None = None,
    older: Sequence[tuple[str, datetime]] = (),
) -> str:
    """Write a payload `parse_secret_payload` accepts: plain when there is no previous secret;
    `older` (secret, expiry) pairs only with a previous one."""
    check_secret(current, "current")
    if previous is None:
        if older:
            raise SecretFormatError("older secrets need a previous one")
        return current
    check_secret(previous, "previous")
    document: dict[str, Any] = {
        "current": current,
        "previous": previous,
        "previous_expires_at": _format_expiry(previous_expires_at),
    }
    if older:
        document["older"] = [
            {
                "secret": check_secret(secret, "an older secret").reveal(),
                "expires_at": _format_expiry(at),
            }
            for secret, at in older
        ]
    return json.dumps(document, sort_keys=True)


def _format_expiry(value: datetime | None) -> str:
    if value is None or value.tzinfo is None:
        raise SecretFormatError("an expiry must be an aware datetime")
    return value.astimezone(UTC).isoformat()


class SecretSource(Protocol):
    """Where a secret comes from. `load` raises SecretUnavailableError when there is none to use."""

    @property
    def name(self) -> str: ...

    def load(self) -> SecretVersion: ...

    def refresh(self) -> bool:
        """Re-read now if the source can change; True when the value changed."""
        ...


class StaticSecretSource:
    """A payload given once (an environment variable), parsed at construction."""

    def __init__(self, name: str, payload: str) -> None:
        self._name = name
        try:
            self._version: SecretVersion | None = parse_secret_payload(payload)
            self._problem = ""
        except SecretFormatError as exc:
            self._version = None
            self._problem = f"{name}: {exc}"

    @property
    def name(self) -> str:
        return self._name

    @property
    def problem(self) -> str | None:
        return self._problem or None

    def load(self) -> SecretVersion:
        if self._version is None:
            raise SecretUnavailableError(self._problem)
        return self._version

    def refresh(self) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class _Snapshot:
    key: tuple[int, int, int, int]
    read_at: float
    version: SecretVersion | None
    problem: str | None
    digest: bytes


class FileSecretSource:
    """A payload in a file (a Secret Manager volume mount), re-read when the file changes.

    A `load` costs one `stat` (at most one every `stat_interval` seconds when that is set); the
    file is read again only when its (device, inode, size, mtime) changed or `recheck_seconds`
    passed. A missing, unreadable or invalid file makes `load` raise SecretUnavailableError until
    the file is fixed: never an older value once the file has been looked at again.
    """

    def __init__(
        self,
        name: str,
        path: Path,
        *,
        recheck_seconds: float = 5.0,
        refresh_interval: float = 1.0,
        stat_interval: float = 0.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._name = name
        self._path = path
        self._recheck = recheck_seconds
        self._stat_interval = stat_interval
        self._stat_at = -math.inf  # monotonic time of the last stat
        self._refresh_interval = refresh_interval
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def path(self) -> Path:
        return self._path

    def load(self) -> SecretVersion:
        snapshot = self._current()
        if snapshot.version is None:
            raise SecretUnavailableError(snapshot.problem or f"{self._name}: no secret")
        return snapshot.version

    def refresh(self) -> bool:
        """Re-read the file now, unless it was read less than `refresh_interval` ago and looks the
        same (so a stream of bad credentials cannot turn into a stream of file reads)."""
        now = self._monotonic()
        with self._lock:
            old = self._snapshot
            key = self._stat_key()
            self._stat_at = now
            if old is not None and old.key == key and now - old.read_at < self._refresh_interval:
                return False
            self._snapshot = new = self._read(key, now, old)
        return old is None or new.digest != old.digest or new.problem != old.problem

    def _stat_key(self) -> tuple[int, int, int, int] | str:
        try:
            st = os.stat(self._path)
        except OSError as exc:
            return f"{self._name}: cannot read {self._path} ({exc.strerror or exc})"
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def _current(self) -> _Snapshot:
        now = self._monotonic()
        snapshot = self._snapshot
        # A stat releases the interpreter to another thread (one request's worth of switches
        # under a threaded server): with `stat_interval`, a fresh snapshot is trusted that long.
        # A failed one never: a fixed file is taken at once.
        if (
            snapshot is not None
            and snapshot.version is not None
            and now - snapshot.read_at < self._recheck
            and now - self._stat_at < self._stat_interval
        ):
            return snapshot
        key = self._stat_key()
        self._stat_at = now
        if snapshot is not None and snapshot.key == key and now - snapshot.read_at < self._recheck:
            return snapshot
        with self._lock:
            snapshot = self._snapshot
            if (
                snapshot is not None
                and snapshot.key == key
                and now - snapshot.read_at < self._recheck
            ):
                return snapshot
            self._snapshot = snapshot = self._read(key, now, snapshot)
            return snapshot

    def _read(
        self, key: tuple[int, int, int, int] | str, now: float, old: _Snapshot | None
    ) -> _Snapshot:
        if isinstance(key, str):
            return _Snapshot((0, 0, 0, 0), now, None, key, b"")
        try:
            raw = self._path.read_bytes()
        except OSError as exc:
            problem = f"{self._name}: cannot read {self._path} ({exc.strerror or exc})"
            return _Snapshot((0, 0, 0, 0), now, None, problem, b"")
        digest = hashlib.sha256(raw).digest()
        if old is not None and old.digest == digest:
            # Unchanged content: keep the parsed value (and its Secret objects).
            return _Snapshot(key, now, old.version, old.problem, digest)
        try:
            text = raw.decode("utf-8")
            return _Snapshot(key, now, parse_secret_payload(text), None, digest)
        except UnicodeDecodeError:
            return _Snapshot(key, now, None, f"{self._name}: file is not UTF-8", digest)
        except SecretFormatError as exc:
            return _Snapshot(key, now, None, f"{self._name}: {exc}", digest)
