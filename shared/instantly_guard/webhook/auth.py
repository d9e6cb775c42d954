"""Who may deliver: the shared-secret header, optional HTTP Basic, optional source networks.

Instantly does not sign deliveries. The only proof of origin is a header we register on the
webhook (`headers` in `POST /webhooks`), which Instantly sends with every delivery. So:

- the header value is compared in constant time with every secret accepted right now (current,
  and previous during a rotation's grace period). Both sides are hashed with SHA-256 first, so
  the comparison takes the same time whatever the lengths, and every candidate is compared (no
  early exit revealing which one matched);
- HTTP Basic credentials, when configured, are accepted instead of the header (same rules);
- an optional allow list of networks restricts the client address (see `client_address`).

A check that fails yields DENIED with an internal `reason` for the log; the HTTP answer is the
same whichever check failed. When no secret is usable, the result is UNAVAILABLE (answered 503):
the receiver never falls open.

## The client address behind Google's front end

A Cloud Function (gen2, i.e. Cloud Run) never sees the client's socket: Google's front end
terminates the connection and the function's peer address is an internal proxy. The front end
*appends* the address it accepted the connection from to `X-Forwarded-For`
(`X-Forwarded-For: <whatever the client sent>, <client address>`). Everything left of that entry
came from the client and can be forged; the right-most entry cannot. So the client address is the
`proxy_hops`-th entry from the right: 1 (default) when the function is called on its own URL;
2 behind an external Application Load Balancer, which appends `<client address>, <load balancer
address>`. `proxy_hops = 0` ignores the header and uses the peer address (a local server with no
proxy in front). If the header has fewer entries than `proxy_hops`, or the entry is not an IP
address, the address is unknown and an allow list rejects the request. Without the header at all
(nothing in front of the process), the peer address is used.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Final, NamedTuple, Protocol

from instantly_guard.secret import Secret
from instantly_guard.webhook.secrets import SecretSource, SecretUnavailableError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Verdict(Enum):
    ALLOWED = "allowed"
    DENIED = "denied"
    UNAVAILABLE = "unavailable"


class AuthResult(NamedTuple):  # a tuple: built on every request, several times cheaper
    """The outcome of one check. `reason` is for the log only, never for the client."""

    verdict: Verdict
    method: str | None = None  # "header" or "basic" when allowed
    reason: str | None = None
    client: str | None = None

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOWED


def _digest(value: str | bytes) -> bytes:
    data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    return hashlib.sha256(data).digest()


def _matches_any(provided: bytes, candidates: Sequence[Secret]) -> bool:
    """Constant-time: every candidate is compared, digests of equal length."""
    provided_digest = _digest(provided)
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(provided_digest, candidate.sha256())
    return matched


# HTTP's optional whitespace (RFC 9110, 5.6.3): space and tab only. `str.strip()` would also
# remove U+00A0 and U+0085 (0xA0 and 0x85 on the wire), and so accept a value that is not the secret.
OWS: Final = " \t"


def strip_ows(value: str) -> str:
    """`value` without leading and trailing HTTP optional whitespace (space, tab), nothing else."""
    return value.strip(OWS)


def _header_bytes(value: str) -> bytes:
    # WSGI hands header values over as latin-1 decoded text: this recovers the bytes on the wire.
    try:
        return strip_ows(value).encode("latin-1")
    except UnicodeEncodeError:
        return strip_ows(value).encode("utf-8", "surrogateescape")


@functools.lru_cache(maxsize=1024)  # a sender uses few addresses; ipaddress parsing is slow
def parse_ip(text: str) -> IPAddress | None:
    """An IP address from `1.2.3.4`, `1.2.3.4:567`, `2001:db8::1` or `[2001:db8::1]:567`."""
    text = strip_ows(text).strip('"')
    if not text:
        return None
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@functools.lru_cache(maxsize=1024)  # str() of an address rebuilds its text every time
def address_text(address: IPAddress) -> str:
    return str(address)


def client_address(
    forwarded_for: str | None, peer: str | None, proxy_hops: int
) -> IPAddress | None:
    """The client's address as described in the module docstring (None when unknown)."""
    if proxy_hops <= 0 or forwarded_for is None:
        return parse_ip(peer) if peer else None
    entries = forwarded_for.split(",")
    if len(entries) < proxy_hops:
        return None
    return parse_ip(entries[-proxy_hops])


# A sender delivers from a few addresses: the address and its text are worked out once per
# `X-Forwarded-For` value (short ones only, so a sender of long ones cannot make it hold much),
# and so is the answer that admits it.
_CACHED_FORWARDED: Final = 256


def _client_text(
    forwarded_for: str | None, peer: str | None, proxy_hops: int
) -> tuple[IPAddress | None, str | None]:
    """`client_address` and its text."""
    address = client_address(forwarded_for, peer, proxy_hops)
    return address, (address_text(address) if address is not None else None)


_client: Final = functools.lru_cache(maxsize=1024)(_client_text)


@functools.lru_cache(maxsize=1024)
def _allowed_by_header(client: str | None) -> AuthResult:
    return AuthResult(Verdict.ALLOWED, method="header", client=client)


@dataclass(frozen=True, slots=True)
class BasicAuth:
    """HTTP Basic credentials: a user name and a password source (rotatable like the secret)."""

    user: str
    password: SecretSource


class HeaderLookup(Protocol):
    """Case-insensitive header access (a Werkzeug `EnvironHeaders`, or a dict of lower-case names)."""

    def get(self, key: str, /) -> str | None: ...


class Gate(Protocol):
    """Anything that can admit or refuse a request (an Authenticator, or Unconfigured)."""

    def check(self, headers: HeaderLookup, peer: str | None) -> AuthResult: ...


class Unconfigured:
    """The gate of a receiver whose configuration is invalid: every request is UNAVAILABLE."""

    def __init__(self, problem: str) -> None:
        self.problem = problem

    def check(self, headers: HeaderLookup, peer: str | None) -> AuthResult:
        return AuthResult(Verdict.UNAVAILABLE, reason=self.problem)


class Authenticator:
    """Decides whether a request comes from Instantly. Thread-safe; sources reload themselves."""

    def __init__(
        self,
        secret: SecretSource,
        *,
        previous: SecretSource | None = None,
        header: str = "x-webhook-secret",
        basic: BasicAuth | None = None,
        allowed_networks: Sequence[IPNetwork] = (),
        proxy_hops: int = 1,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._secret = secret
        self._previous = previous
        self._header = header.lower()
        self._basic = basic
        self._networks = tuple(allowed_networks)
        self._hops = proxy_hops
        self._clock = clock

    @property
    def header(self) -> str:
        return self._header

    def _sources(self) -> list[SecretSource]:
        sources = [self._secret]
        if self._previous is not None:
            sources.append(self._previous)
        if self._basic is not None:
            sources.append(self._basic.password)
        return sources

    def _candidates(self) -> tuple[Sequence[Secret], Sequence[Secret]]:
        """(header secrets, basic passwords) accepted now; raises SecretUnavailableError."""
        version = self._secret.load()
        steady = version.previous is None and not version.older
        if steady and self._previous is None and self._basic is None:
            return (version.current,), ()  # one secret outside a rotation (every request)
        now = self._clock()
        secrets = list(version.accepted(now))
        if self._previous is not None:
            secrets.extend(self._previous.load().accepted(now))
        passwords = list(self._basic.password.load().accepted(now)) if self._basic else []
        return secrets, passwords

    def check(self, headers: HeaderLookup, peer: str | None) -> AuthResult:
        """Check one request (headers are looked up by lower-case name)."""
        result = self._check(headers, peer)
        # Refresh every source (a list, not a short-circuiting generator).
        if result.reason == "wrong credentials" and True in [s.refresh() for s in self._sources()]:
            # A secret file changed since we last read it (a rotation just switched Instantly to
            # the new secret): check once more against what it holds now.
            result = self._check(headers, peer)
        return result

    def _check(self, headers: HeaderLookup, peer: str | None) -> AuthResult:
        try:
            secrets, passwords = self._candidates()
        except SecretUnavailableError as exc:
            return AuthResult(Verdict.UNAVAILABLE, reason=exc.problem)
        forwarded = headers.get("x-forwarded-for")
        short = forwarded is None or len(forwarded) <= _CACHED_FORWARDED
        address, client = (_client if short else _client_text)(forwarded, peer, self._hops)
        if self._networks and (
            address is None or not any(address in network for network in self._networks)
        ):
            return AuthResult(Verdict.DENIED, reason="source address not allowed", client=client)
        provided = headers.get(self._header)
        if provided is not None and _matches_any(_header_bytes(provided), secrets):
            return _allowed_by_header(client)
        basic = self._basic
        if basic is not None and _basic_matches(basic, headers.get("authorization"), passwords):
            return AuthResult(Verdict.ALLOWED, method="basic", client=client)
        if provided is None and not (self._basic and headers.get("authorization")):
            return AuthResult(Verdict.DENIED, reason="no credentials", client=client)
        return AuthResult(Verdict.DENIED, reason="wrong credentials", client=client)


def _basic_matches(
    basic: BasicAuth, authorization: str | None, passwords: Sequence[Secret]
) -> bool:
    """Whether `Authorization: Basic ...` carries the user and one accepted password."""
    if authorization is None:
        return False
    scheme, _, token = strip_ows(authorization).partition(" ")
    if scheme.lower() != "basic" or not strip_ows(token):
        return False
    try:
        decoded = base64.b64decode(strip_ows(token), validate=True)
    except (binascii.Error, ValueError):
        return False
    user, sep, password = decoded.partition(b":")
    if not sep:
        return False
    user_ok = hmac.compare_digest(_digest(user), _digest(basic.user))
    password_ok = _matches_any(password, passwords)
    return user_ok & password_ok
