"""Webhook targets: the host a URL names, and whether an allow list admits it."""

from __future__ import annotations

import fnmatch
from urllib.parse import urlsplit


def url_host(url: str) -> str:
    """The URL's host name, lower-case; empty when it has none or does not parse. Only the
    host ever goes into evidence: many receivers take their secret in the URL's path."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def host_allowed(host: str, patterns: tuple[str, ...]) -> bool:
    """`fnmatch` patterns, as the check's `webhook_allowed_hosts` (`*-123.run.app`)."""
    return bool(host) and any(fnmatch.fnmatchcase(host, p.lower()) for p in patterns)
