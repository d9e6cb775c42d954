"""The request `handle` reads, with its headers looked up in the WSGI environ directly.

Werkzeug's `EnvironHeaders.get` goes through three Python layers per lookup, and for a header
that is absent it raises and catches a KeyError. A delivery looks up about six headers, and most
are absent: the trace and X-Forwarded-For outside Cloud Run, Transfer-Encoding and
`Authorization` almost always. Reading the environ instead gives the same values for about 3%
fewer instructions in the whole request (callgrind, docs/performance.md). Everything else (the body
stream, an unusual Content-Length) is still Werkzeug's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Protocol

from instantly_guard.webhook.handler import Readable, RequestLike

# The WSGI keys that carry no HTTP_ prefix (PEP 3333).
_UNPREFIXED: Final = frozenset({"CONTENT_TYPE", "CONTENT_LENGTH"})
_MAX_PLAIN_LENGTH_DIGITS: Final = 18  # well inside int() and any real body


class WerkzeugRequest(RequestLike, Protocol):
    """A Flask/Werkzeug request: what `handle` reads, and the WSGI environ under it."""

    @property
    def environ(self) -> Mapping[str, Any]: ...


def environ_key(name: str) -> str:
    """The environ key of the HTTP header `name`, as Werkzeug's `EnvironHeaders` computes it."""
    key = name.upper().replace("-", "_")
    return key if key in _UNPREFIXED else f"HTTP_{key}"


class EnvironHeaders:
    """Header values by case-insensitive name, read from a WSGI environ (a `HeaderLookup`)."""

    __slots__ = ("_environ",)

    # A handful of names are ever asked for (our own constants and the configured secret header):
    # each one's key is computed once per process.
    _keys: dict[str, str] = {}

    def __init__(self, environ: Mapping[str, Any]) -> None:
        self._environ = environ

    def get(self, name: str, /) -> str | None:
        key = self._keys.get(name)
        if key is None:
            key = self._keys[name] = environ_key(name)
        value = self._environ.get(key)
        return value if isinstance(value, str) else None  # a server's values are always text


class WsgiRequest:
    """A `RequestLike` over a Werkzeug request whose headers are read from its environ."""

    __slots__ = ("_request", "headers")

    def __init__(self, request: WerkzeugRequest) -> None:
        self._request = request
        self.headers = EnvironHeaders(request.environ)

    @property
    def method(self) -> str:
        return self._request.method

    @property
    def remote_addr(self) -> str | None:
        return self._request.remote_addr

    @property
    def content_length(self) -> int | None:
        """Werkzeug's `content_length`, read directly for a plain decimal Content-Length."""
        environ = self._request.environ
        declared = environ.get("CONTENT_LENGTH")
        if (
            isinstance(declared, str)
            and declared.isascii()
            and declared.isdigit()
            and len(declared) <= _MAX_PLAIN_LENGTH_DIGITS
            and "HTTP_TRANSFER_ENCODING" not in environ
        ):
            return int(declared)
        return self._request.content_length  # chunked, empty, signed, spaced, or garbage

    @property
    def stream(self) -> Readable:
        return self._request.stream
