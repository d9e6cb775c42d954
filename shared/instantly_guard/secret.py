"""A wrapper that keeps secret values out of logs, errors and reprs."""

from __future__ import annotations

import hashlib
import hmac
from typing import Final, NoReturn

from instantly_guard import redaction

_MASK: Final = "***"


class Secret:
    """An opaque secret value.

    `repr()` and `str()` give `Secret('***')`; only `reveal()` returns the value, so a secret reaches
    a wire or a file only where the code says so. Every value is registered with the log redactor,
    so even a value revealed by mistake into a log record is masked there.
    """

    __slots__ = ("_sha256", "_value")

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Secret wraps a str")
        self._value = value
        self._sha256: bytes | None = None
        redaction.register(value)

    def sha256(self) -> bytes:
        """The SHA-256 of the value's UTF-8 bytes (surrogates kept), computed once: what a
        constant-time comparison of a presented credential compares against."""
        digest = self._sha256
        if digest is None:
            digest = self._sha256 = hashlib.sha256(
                self._value.encode("utf-8", "surrogateescape")
            ).digest()
        return digest

    def reveal(self) -> str:
        """Return the plain value. Call it only where the value must leave the process."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{_MASK}')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(hashlib.sha256(self._value.encode()).digest())

    def __len__(self) -> int:
        return len(self._value)

    def __reduce__(self) -> NoReturn:
        # Pickling would write the value wherever the pickle goes (a cache, a queue, a crash dump).
        raise TypeError("Secret values cannot be pickled")
