"""The webhook receiver's configuration, read once at cold start from a mapping.

| variable | default | meaning |
|---|---|---|
| `INSTANTLY_WEBHOOK_SECRET` / `_FILE` | required | the header secret, or a file holding it (a Secret Manager volume on `latest`, re-read when it changes). Plain secret or the JSON rotation format of `webhook.secrets`; >= 16 bytes |
| `INSTANTLY_WEBHOOK_SECRET_PREVIOUS` / `_FILE` | unset | a second accepted secret, for a rotation done by hand; remove it when the grace ends |
| `WEBHOOK_SECRET_RECHECK` | `5s` | re-read `*_FILE` secrets at least this often (Cloud Run fetches a volume's value on read; bounds how long a removed secret is still accepted). A mismatch also re-reads at once, at most every second |
| `WEBHOOK_SECRET_HEADER` | `x-webhook-secret` | the header carrying the secret |
| `WEBHOOK_BASIC_USER`, `WEBHOOK_BASIC_PASSWORD` / `_FILE` | unset | also accept HTTP Basic with these credentials (both or neither; the password follows the secret's rules and format) |
| `WEBHOOK_ALLOWED_CIDRS` | unset (any) | comma-separated networks the client address must be in |
| `WEBHOOK_PROXY_HOPS` | `1` | proxies appending to X-Forwarded-For (1: Google's front end; 2: plus a load balancer; 0: use the peer address) |
| `WEBHOOK_MAX_BODY_BYTES` | `262144` | larger bodies get 413; 1024 to 1048576 (1 MiB: the published canonical JSON, up to 6x the body, must fit Pub/Sub's 10 MB) |
| `WEBHOOK_PUBLISHER` | `auto` | `auto` (Pub/Sub when GUARD_BACKEND=gcp, the outbox when local), `pubsub`, `outbox`, `noop` (benchmarks; local only) |
| `WEBHOOK_PUBSUB_TOPIC` | required for Pub/Sub | `projects/P/topics/T`, or `T` with GOOGLE_CLOUD_PROJECT |
| `WEBHOOK_PUBLISH_TIMEOUT` | `10s` | how long to wait for the publish acknowledgement before answering 503 |
| `WEBHOOK_DEDUPE_WINDOW` | `10m` | how long an accepted id is remembered to answer duplicates (0 disables) |
| `WEBHOOK_DEDUPE_SIZE` | `10000` | at most this many remembered ids |
| `PUBSUB_EMULATOR_HOST` | unset | `host:port` of a Pub/Sub emulator (plaintext, no credentials) |
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Final

from instantly_guard.settings import Backend, CommonSettings, Reader
from instantly_guard.webhook.secrets import SecretFormatError, parse_secret_payload

DEFAULT_HEADER: Final = "x-webhook-secret"
DEFAULT_MAX_BODY: Final = 256 * 1024
# The body is published as its canonical JSON (`webhook.payload.canonical_json`: ASCII only),
# and Pub/Sub refuses a message above 10 MB (10,000,000 bytes of data plus attributes). Re-encoding
# grows a body by at most 6x: one byte becomes at most six (DEL, 0x7f, is valid raw inside a JSON
# string and comes out as `\u007f`; a 2-byte UTF-8 character becomes 6 bytes (3x), a 4-byte one
# a 12-byte surrogate pair (3x); a number at most 4.5x (`1e15` -> `1000000000000000.0`); escapes
# and literals keep their length; whitespace and duplicate keys only shrink). So a 1 MiB body
# gives at most 6 * 1,048,576 = 6,291,456 bytes of data, plus under 8 KB of attributes (seven
# values of at most 1,024 bytes): well inside the handler's 9.5 MB bound on a message
# (`handler.MAX_MESSAGE_BYTES`), which therefore never refuses an event within this limit.
# (Cloud Run itself refuses HTTP/1 requests above 32 MiB before they reach the function.)
MAX_BODY_LIMIT: Final = 1024 * 1024
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_RESERVED_HEADERS = frozenset({"content-type", "content-length", "host", "x-forwarded-for"})


class PublisherKind(StrEnum):
    AUTO = "auto"
    PUBSUB = "pubsub"
    OUTBOX = "outbox"
    NOOP = "noop"


@dataclass(frozen=True, slots=True)
class SecretRef:
    """Where one secret comes from: a value given once, or a file re-read when it changes."""

    name: str  # the variable name, for messages
    value: str | None = None
    path: Path | None = None

    def __repr__(self) -> str:
        where = f"path={str(self.path)!r}" if self.path else "value='***'"
        return f"SecretRef({self.name!r}, {where})"


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    common: CommonSettings
    secret: SecretRef
    previous_secret: SecretRef | None
    secret_recheck: float
    secret_header: str
    basic_user: str | None
    basic_password: SecretRef | None
    allowed_networks: tuple[str, ...]
    proxy_hops: int
    max_body_bytes: int
    publisher: PublisherKind  # resolved: never AUTO
    topic: str | None
    publish_timeout: float
    dedupe_window: float
    dedupe_size: int
    emulator_host: str | None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WebhookSettings:
        """Read every variable; raise one ConfigError naming every problem."""
        reader = Reader(env)
        common = CommonSettings.read(reader)
        secret = _secret_ref(reader, "INSTANTLY_WEBHOOK_SECRET", required=True)
        previous = _secret_ref(reader, "INSTANTLY_WEBHOOK_SECRET_PREVIOUS", required=False)
        recheck = reader.duration("WEBHOOK_SECRET_RECHECK", timedelta(seconds=5)).total_seconds()
        if not 0 <= recheck <= 3600:
            reader.problems.append("WEBHOOK_SECRET_RECHECK must be between 0s and 1h")
            recheck = 5.0
        header = (reader.text("WEBHOOK_SECRET_HEADER", DEFAULT_HEADER) or DEFAULT_HEADER).lower()
        if not _TOKEN.match(header) or header in _RESERVED_HEADERS:
            reader.problems.append(f"WEBHOOK_SECRET_HEADER={header!r} is not a usable header name")
        basic_user = reader.text("WEBHOOK_BASIC_USER")
        basic_password = _secret_ref(reader, "WEBHOOK_BASIC_PASSWORD", required=False)
        if (basic_user is None) != (basic_password is None):
            reader.problems.append(
                "set both WEBHOOK_BASIC_USER and WEBHOOK_BASIC_PASSWORD, or neither"
            )
        if basic_user is not None and ":" in basic_user:
            reader.problems.append("WEBHOOK_BASIC_USER cannot contain ':'")
        networks = reader.networks("WEBHOOK_ALLOWED_CIDRS")
        hops = reader.integer("WEBHOOK_PROXY_HOPS", 1, minimum=0, maximum=10)
        max_body = reader.integer(
            "WEBHOOK_MAX_BODY_BYTES", DEFAULT_MAX_BODY, minimum=1024, maximum=MAX_BODY_LIMIT
        )
        kind = reader.choice("WEBHOOK_PUBLISHER", PublisherKind, PublisherKind.AUTO)
        if kind is PublisherKind.AUTO:
            kind = PublisherKind.PUBSUB if common.backend is Backend.GCP else PublisherKind.OUTBOX
        if kind is PublisherKind.NOOP and common.backend is not Backend.LOCAL:
            reader.problems.append(
                "WEBHOOK_PUBLISHER=noop drops every event: allowed only with GUARD_BACKEND=local"
            )
        topic = _topic(reader, common.project) if kind is PublisherKind.PUBSUB else None
        timeout = reader.duration("WEBHOOK_PUBLISH_TIMEOUT", timedelta(seconds=10)).total_seconds()
        if not 0.05 <= timeout <= 300:
            reader.problems.append("WEBHOOK_PUBLISH_TIMEOUT must be between 50ms and 300s")
            timeout = 10.0
        window = reader.duration("WEBHOOK_DEDUPE_WINDOW", timedelta(minutes=10)).total_seconds()
        size = reader.integer("WEBHOOK_DEDUPE_SIZE", 10_000, minimum=0, maximum=1_000_000)
        emulator = reader.text("PUBSUB_EMULATOR_HOST")
        reader.finish()
        return cls(
            common=common,
            secret=secret or SecretRef("INSTANTLY_WEBHOOK_SECRET"),
            previous_secret=previous,
            secret_recheck=recheck,
            secret_header=header,
            basic_user=basic_user,
            basic_password=basic_password,
            allowed_networks=tuple(str(n) for n in networks),
            proxy_hops=hops,
            max_body_bytes=max_body,
            publisher=kind,
            topic=topic,
            publish_timeout=timeout,
            dedupe_window=max(0.0, window),
            dedupe_size=size,
            emulator_host=emulator,
        )


def _secret_ref(reader: Reader, name: str, *, required: bool) -> SecretRef | None:
    """`NAME` (checked now: it never changes) or `NAME_FILE` (checked on every load)."""
    value = reader.text(name)
    path = reader.text(f"{name}_FILE")
    if value is not None and path is not None:
        reader.problems.append(f"set {name} or {name}_FILE, not both")
        return None
    if path is not None:
        return SecretRef(name, path=Path(path))
    if value is None:
        if required:
            reader.problems.append(f"{name} (or {name}_FILE) is required")
        return None
    try:
        parse_secret_payload(value)
    except SecretFormatError as exc:
        reader.problems.append(f"{name}: {exc}")
        return None
    return SecretRef(name, value=value)


def _topic(reader: Reader, project: str | None) -> str | None:
    raw = reader.text("WEBHOOK_PUBSUB_TOPIC")
    if raw is None:
        reader.problems.append("WEBHOOK_PUBSUB_TOPIC is required when publishing to Pub/Sub")
        return None
    if raw.startswith("projects/"):
        parts = raw.split("/")
        if len(parts) != 4 or parts[2] != "topics" or not parts[1] or not parts[3]:
            reader.problems.append(f"WEBHOOK_PUBSUB_TOPIC={raw!r} is not projects/P/topics/T")
            return None
        return raw
    if "/" in raw:
        reader.problems.append(f"WEBHOOK_PUBSUB_TOPIC={raw!r} is not a topic name")
        return None
    if not project:
        reader.problems.append(
            "WEBHOOK_PUBSUB_TOPIC is a short name: set GOOGLE_CLOUD_PROJECT or give projects/P/topics/T"
        )
        return None
    return f"projects/{project}/topics/{raw}"
