"""What a managed secret declares (its configuration) and where its rotation stands (its state).

Both live on the secret itself, as Secret Manager annotations and version aliases, so the secret
is the single source of truth and every change to the state is one etag-guarded update.

Labels (select managed secrets; Terraform and `secrets declare` set them; underscores, not
hyphens, so that a `labels.KEY=VALUE` list filter needs no quoting):
    instantly_guard = managed
    instantly_guard_kind = api-key | webhook-secret

Declared annotations (configuration):
    instantly-guard.kind            api-key (default) | webhook-secret
    instantly-guard.scopes          the key's scopes, comma-separated            (api-key)
    instantly-guard.key-prefix      key name prefix, default `instantly-guard`   (api-key)
    instantly-guard.admin-secret    secret holding the key that mints/revokes; default: itself
    instantly-guard.grace           how long the old key/secret keeps working, default 1d
    instantly-guard.retention       how long a disabled version is kept before destroy, default 7d
    instantly-guard.webhook-ids     comma-separated Instantly webhook ids         (webhook-secret)
    instantly-guard.webhook-header  header carrying the secret, default x-webhook-secret

State annotations (written by the rotation only):
    instantly-guard.phase           creating | tested | stored; absent when idle
    instantly-guard.rotation-id     id of the rotation in progress or last finished
    instantly-guard.rotation-time   time of the event that started it (duplicate detection)
    instantly-guard.lease           "<holder> <expiry>": who is working on it, until when
    instantly-guard.pending-key-id  Instantly id of the tested key not yet current
    instantly-guard.pending-fingerprint  sha256 prefix of that key (finds its version after a crash)
    instantly-guard.current-key-id  Instantly id of the key in `current`
    instantly-guard.revocations     JSON list of old keys/versions and when they may be revoked
    instantly-guard.destructions    JSON list of disabled versions and when they may be destroyed
    instantly-guard.last-rotated    time the last rotation finished
    instantly-guard.last-error      the last failure (type and message; never a value)

Aliases: `current` (what consumers read), `pending` (stored, not yet current), `previous` (the
version `current` replaced, until it is revoked).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from instantly_guard.errors import ConfigError
from instantly_guard.secrets.base import (
    ANNOTATIONS_MAX_BYTES,
    SecretMetadata,
    SecretStore,
    annotations_size,
)
from instantly_guard.settings import parse_duration

PREFIX: Final = "instantly-guard."
LABEL: Final = "instantly_guard"
LABEL_VALUE: Final = "managed"
KIND_LABEL: Final = "instantly_guard_kind"
MANAGED_LABELS: Final = {LABEL: LABEL_VALUE}

CURRENT: Final = "current"
PENDING: Final = "pending"
PREVIOUS: Final = "previous"

DEFAULT_KEY_PREFIX: Final = "instantly-guard"
DEFAULT_GRACE: Final = timedelta(days=1)
DEFAULT_RETENTION: Final = timedelta(days=7)
DEFAULT_WEBHOOK_HEADER: Final = "x-webhook-secret"
STATE_RESERVE: Final = 1024
"""Annotation bytes a new rotation must find free before it starts: what it adds until it
finishes (ids, a fingerprint, a lease, one revocation, a last error) with room to spare."""


class AnnotationKey:
    """The Secret Manager annotation keys we read and write on a managed secret: its declaration
    (kind, scopes, grace, ...) and the resumable rotation state (phase, lease, pending key, ...)."""

    KIND = PREFIX + "kind"
    SCOPES = PREFIX + "scopes"
    KEY_PREFIX = PREFIX + "key-prefix"
    ADMIN_SECRET = PREFIX + "admin-secret"
    GRACE = PREFIX + "grace"
    RETENTION = PREFIX + "retention"
    WEBHOOK_IDS = PREFIX + "webhook-ids"
    WEBHOOK_HEADER = PREFIX + "webhook-header"

    PHASE = PREFIX + "phase"
    ROTATION_ID = PREFIX + "rotation-id"
    ROTATION_TIME = PREFIX + "rotation-time"
    LEASE = PREFIX + "lease"
    PENDING_KEY_ID = PREFIX + "pending-key-id"
    PENDING_FINGERPRINT = PREFIX + "pending-fingerprint"
    CURRENT_KEY_ID = PREFIX + "current-key-id"
    REVOCATIONS = PREFIX + "revocations"
    DESTRUCTIONS = PREFIX + "destructions"
    LAST_ROTATED = PREFIX + "last-rotated"
    LAST_ERROR = PREFIX + "last-error"


DECLARED_KEYS: Final = frozenset(
    {
        AnnotationKey.KIND,
        AnnotationKey.SCOPES,
        AnnotationKey.KEY_PREFIX,
        AnnotationKey.ADMIN_SECRET,
        AnnotationKey.GRACE,
        AnnotationKey.RETENTION,
        AnnotationKey.WEBHOOK_IDS,
        AnnotationKey.WEBHOOK_HEADER,
    }
)
"""What a declaration sets (Terraform, `secrets declare`); the rest is the rotation's state."""

STATE_KEYS: Final = frozenset(
    {
        AnnotationKey.PHASE,
        AnnotationKey.ROTATION_ID,
        AnnotationKey.ROTATION_TIME,
        AnnotationKey.LEASE,
        AnnotationKey.PENDING_KEY_ID,
        AnnotationKey.PENDING_FINGERPRINT,
        AnnotationKey.CURRENT_KEY_ID,
        AnnotationKey.REVOCATIONS,
        AnnotationKey.DESTRUCTIONS,
        AnnotationKey.LAST_ROTATED,
        AnnotationKey.LAST_ERROR,
    }
)


class Kind(StrEnum):
    API_KEY = "api-key"
    WEBHOOK_SECRET = "webhook-secret"  # noqa: S105 (a kind name, not a password)


class Phase(StrEnum):
    IDLE = "idle"
    CREATING = "creating"  # a key may exist in Instantly under this rotation's name, unrecorded
    TESTED = "tested"  # a tested key is recorded; a version holding it may or may not exist
    STORED = "stored"  # `pending` names the version holding the new key or secret


def fingerprint(value: str) -> str:
    """A non-reversible fingerprint of a high-entropy value (64 bits of SHA-256)."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


def _exact(value: datetime) -> str:
    """`value` in UTC with a `Z`, microseconds kept when there are any (a grace of 0 makes a
    revocation due at once: rounding it up would delay it)."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _stamp(value: datetime) -> str:
    """`value` rounded *up* to the second, as `YYYY-MM-DDTHH:MM:SSZ`: 20 bytes instead of 32
    (the annotations are bounded), and a destruction read back is never due earlier than it
    was set."""
    value = value.astimezone(UTC)
    if value.microsecond:
        value = value.replace(microsecond=0) + timedelta(seconds=1)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class ManagedConfig:
    """The declared configuration of one managed secret."""

    name: str
    kind: Kind
    scopes: tuple[str, ...]
    key_prefix: str
    admin_secret: str
    grace: timedelta
    retention: timedelta
    webhook_ids: tuple[str, ...]
    webhook_header: str

    @property
    def self_admin(self) -> bool:
        return self.kind is Kind.API_KEY and self.admin_secret == self.name

    def key_name(self, rotation_id: str) -> str:
        """`<prefix>/<secret>/<rotation id>`: finds this rotation's key again after a crash."""
        return f"{self.key_prefix}/{self.name}/{rotation_id}"

    @classmethod
    def declared_in(cls, store: SecretStore) -> Iterator[ManagedConfig]:
        """The declaration of every managed secret in `store` that parses (a broken one is left
        to `secrets show` and its own rotation to report)."""
        for meta in store.list_secrets(MANAGED_LABELS):
            try:
                yield cls.parse(meta)
            except ConfigError:
                continue

    @staticmethod
    def is_managed(meta: SecretMetadata) -> bool:
        return meta.labels.get(LABEL) == LABEL_VALUE

    @classmethod
    def parse(cls, meta: SecretMetadata) -> ManagedConfig:
        """Read the declared annotations; one ConfigError lists every problem."""
        from instantly_guard.scopes import parse_scopes

        notes = meta.annotations
        problems: list[str] = []
        raw_kind = notes.get(AnnotationKey.KIND, Kind.API_KEY.value)
        try:
            kind = Kind(raw_kind)
        except ValueError:
            problems.append(f"{AnnotationKey.KIND}={raw_kind!r} is not api-key or webhook-secret")
            kind = Kind.API_KEY

        def duration(key: str, default: timedelta) -> timedelta:
            text = notes.get(key)
            if not text:
                return default
            try:
                return parse_duration(text)
            except ValueError as exc:
                problems.append(f"{key}: {exc}")
                return default

        scopes: tuple[str, ...] = ()
        raw_scopes = notes.get(AnnotationKey.SCOPES, "")
        if kind is Kind.API_KEY:
            try:
                scopes = tuple(sorted(str(s) for s in parse_scopes(raw_scopes)))
            except ConfigError as exc:
                problems.append(f"{AnnotationKey.SCOPES}: {exc}")
            if not scopes and not problems:
                problems.append(f"{AnnotationKey.SCOPES} is required for an api-key secret")
        webhook_ids = tuple(
            p.strip() for p in notes.get(AnnotationKey.WEBHOOK_IDS, "").split(",") if p.strip()
        )
        admin = notes.get(AnnotationKey.ADMIN_SECRET, "").strip() or meta.name
        if kind is Kind.WEBHOOK_SECRET and admin == meta.name:
            problems.append(
                f"{AnnotationKey.ADMIN_SECRET} is required for a webhook secret "
                "(a secret holding a key with webhooks:update)"
            )
        config = cls(
            name=meta.name,
            kind=kind,
            scopes=scopes,
            key_prefix=notes.get(AnnotationKey.KEY_PREFIX, "").strip() or DEFAULT_KEY_PREFIX,
            admin_secret=admin,
            grace=duration(AnnotationKey.GRACE, DEFAULT_GRACE),
            retention=duration(AnnotationKey.RETENTION, DEFAULT_RETENTION),
            webhook_ids=webhook_ids,
            webhook_header=(
                notes.get(AnnotationKey.WEBHOOK_HEADER, "").strip() or DEFAULT_WEBHOOK_HEADER
            ),
        )
        if problems:
            raise ConfigError([f"secret {meta.name}: {p}" for p in problems])
        return config

    @classmethod
    def declare(
        cls,
        *,
        kind: Kind,
        scopes: tuple[str, ...] = (),
        key_prefix: str | None = None,
        admin_secret: str | None = None,
        grace: str | None = None,
        retention: str | None = None,
        webhook_ids: tuple[str, ...] = (),
        webhook_header: str | None = None,
    ) -> tuple[dict[str, str], dict[str, str]]:
        """Labels and annotations declaring a managed secret (what Terraform writes too)."""
        notes = {AnnotationKey.KIND: kind.value}
        if scopes:
            notes[AnnotationKey.SCOPES] = ",".join(scopes)
        for key, value in (
            (AnnotationKey.KEY_PREFIX, key_prefix),
            (AnnotationKey.ADMIN_SECRET, admin_secret),
            (AnnotationKey.GRACE, grace),
            (AnnotationKey.RETENTION, retention),
            (AnnotationKey.WEBHOOK_HEADER, webhook_header),
        ):
            if value:
                notes[key] = value
        if webhook_ids:
            notes[AnnotationKey.WEBHOOK_IDS] = ",".join(webhook_ids)
        return {**MANAGED_LABELS, KIND_LABEL: kind.value}, notes


@dataclass(frozen=True, slots=True)
class Revocation:
    """An old key (and its version) to revoke once `after` has passed.

    For a webhook secret, `combined` is the version that carried both secrets during the grace."""

    version: str | None
    after: datetime
    key_id: str | None = None
    combined: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"after": _exact(self.after)}  # exact: never revoke early
        for name in ("version", "key_id", "combined"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Revocation:
        after = _parse_time(str(data.get("after", "")))
        if after is None:
            raise ValueError("revocation without a valid 'after'")
        return cls(
            version=data.get("version"),
            after=after,
            key_id=data.get("key_id"),
            combined=data.get("combined"),
        )


@dataclass(frozen=True, slots=True)
class Destruction:
    version: str
    after: datetime

    def to_json(self) -> list[str]:
        """`[version, after]`: one per disabled version for the whole retention, so compact
        (about 30 bytes; hourly rotation with 14 days' retention keeps 336 of them)."""
        return [self.version, _stamp(self.after)]

    @classmethod
    def from_json(cls, data: Any) -> Destruction:
        """Reads `[version, after]` and the older `{"version", "after"}` form."""
        if isinstance(data, Mapping):
            data = [data.get("version"), data.get("after")]
        if not isinstance(data, list) or len(data) != 2:
            raise ValueError("destruction is neither [version, after] nor an object")
        version, when = str(data[0] or ""), _parse_time(str(data[1] or ""))
        if when is None or not version.isdigit():
            raise ValueError("destruction without a valid version or 'after'")
        return cls(version=version, after=when)


@dataclass(frozen=True, slots=True)
class Lease:
    holder: str
    until: datetime

    def active(self, now: datetime) -> bool:
        return now < self.until

    def __str__(self) -> str:
        return f"{self.holder} {_iso(self.until)}"

    @classmethod
    def parse(cls, text: str | None) -> Lease | None:
        holder, _, until = (text or "").partition(" ")
        when = _parse_time(until)
        return cls(holder, when) if holder and when else None


@dataclass(frozen=True, slots=True)
class RotationState:
    """Where a secret's rotation stands, read from its annotations and aliases."""

    phase: Phase = Phase.IDLE
    rotation_id: str | None = None
    rotation_time: datetime | None = None
    lease: Lease | None = None
    pending_key_id: str | None = None
    pending_fingerprint: str | None = None
    current_key_id: str | None = None
    revocations: tuple[Revocation, ...] = ()
    destructions: tuple[Destruction, ...] = ()
    last_rotated: datetime | None = None
    last_error: str | None = None
    aliases: Mapping[str, str] = field(default_factory=dict)

    @property
    def current(self) -> str | None:
        return self.aliases.get(CURRENT)

    @property
    def pending(self) -> str | None:
        return self.aliases.get(PENDING)

    @classmethod
    def read(cls, meta: SecretMetadata) -> RotationState:
        notes = meta.annotations
        try:
            phase = Phase(notes.get(AnnotationKey.PHASE, Phase.IDLE.value))
        except ValueError:
            phase = Phase.IDLE
        return cls(
            phase=phase,
            rotation_id=notes.get(AnnotationKey.ROTATION_ID) or None,
            rotation_time=_parse_time(notes.get(AnnotationKey.ROTATION_TIME)),
            lease=Lease.parse(notes.get(AnnotationKey.LEASE)),
            pending_key_id=notes.get(AnnotationKey.PENDING_KEY_ID) or None,
            pending_fingerprint=notes.get(AnnotationKey.PENDING_FINGERPRINT) or None,
            current_key_id=notes.get(AnnotationKey.CURRENT_KEY_ID) or None,
            revocations=tuple(
                _load(
                    AnnotationKey.REVOCATIONS,
                    notes.get(AnnotationKey.REVOCATIONS),
                    Revocation.from_json,
                )
            ),
            destructions=tuple(
                _load(
                    AnnotationKey.DESTRUCTIONS,
                    notes.get(AnnotationKey.DESTRUCTIONS),
                    Destruction.from_json,
                )
            ),
            last_rotated=_parse_time(notes.get(AnnotationKey.LAST_ROTATED)),
            last_error=notes.get(AnnotationKey.LAST_ERROR) or None,
            aliases=dict(meta.aliases),
        )

    def evolve(self, **changes: Any) -> RotationState:
        return replace(self, **changes)

    def annotations(self, declared: Mapping[str, str]) -> dict[str, str]:
        """The full annotation map to write: declared keys kept, state keys from this state."""
        notes = {k: v for k, v in declared.items() if k not in STATE_KEYS}
        values: dict[str, str | None] = {
            AnnotationKey.PHASE: None if self.phase is Phase.IDLE else self.phase.value,
            AnnotationKey.ROTATION_ID: self.rotation_id,
            # Full precision: duplicate detection compares event times exactly.
            AnnotationKey.ROTATION_TIME: self.rotation_time.isoformat()
            if self.rotation_time
            else None,
            AnnotationKey.LEASE: str(self.lease) if self.lease else None,
            AnnotationKey.PENDING_KEY_ID: self.pending_key_id,
            AnnotationKey.PENDING_FINGERPRINT: self.pending_fingerprint,
            AnnotationKey.CURRENT_KEY_ID: self.current_key_id,
            AnnotationKey.REVOCATIONS: _dump([r.to_json() for r in self.revocations]),
            AnnotationKey.DESTRUCTIONS: _dump([d.to_json() for d in self.destructions]),
            AnnotationKey.LAST_ROTATED: _iso(self.last_rotated) if self.last_rotated else None,
            AnnotationKey.LAST_ERROR: self.last_error[:500] if self.last_error else None,
        }
        notes.update({k: v for k, v in values.items() if v})
        return notes

    def room(self, declared: Mapping[str, str]) -> int:
        """Annotation bytes still free once this state is written (negative: it does not fit)."""
        return ANNOTATIONS_MAX_BYTES - 1 - annotations_size(self.annotations(declared))


def _load(key: str, text: str | None, parse: Any) -> list[Any]:
    """Parse a JSON list annotation. Malformed state is an error, never silently dropped: an
    entry forgotten here could be an old key that is never revoked."""
    if not text:
        return []
    try:
        items = json.loads(text)
        if not isinstance(items, list):
            raise TypeError("not a list")
        return [parse(item) for item in items]
    except (ValueError, TypeError, AttributeError) as exc:
        raise ConfigError(f"annotation {key} is malformed ({exc}); repair it by hand") from exc


def _dump(items: list[Any]) -> str | None:
    return json.dumps(items, separators=(",", ":"), sort_keys=True) if items else None
