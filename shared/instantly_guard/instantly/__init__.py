"""The Instantly API v2 client: typed methods, key providers, rate limiting, retries.

    from instantly_guard.instantly import InstantlyClient, StaticKey
    with InstantlyClient(StaticKey(key), base_url) as client:
        for entry in client.iter_audit_logs(start_date=day):
            ...

Modules: `client` (InstantlyClient), `models` (pydantic resources), `keys` (KeyProvider,
StaticKey, CachedKey), `ratelimit` (process-wide limiter), `retry` (what is retried and how
long to wait), `responses` (status -> exception mapping), `pagination` (cursor following).
"""

from instantly_guard.instantly.client import USER_AGENT, InstantlyClient
from instantly_guard.instantly.keys import CachedKey, KeyProvider, StaticKey
from instantly_guard.instantly.models import (
    Account,
    ApiKey,
    ApiKeyBase,
    AuditLog,
    BlockListEntry,
    Campaign,
    CreatedApiKey,
    InstantlyModel,
    Page,
    Webhook,
    Workspace,
    WorkspaceMember,
)
from instantly_guard.instantly.ratelimit import RateLimiter, configure_default, default_limiter
from instantly_guard.instantly.retry import RetryPolicy

__all__ = [
    "USER_AGENT",
    "Account",
    "ApiKey",
    "ApiKeyBase",
    "AuditLog",
    "BlockListEntry",
    "CachedKey",
    "Campaign",
    "CreatedApiKey",
    "InstantlyClient",
    "InstantlyModel",
    "KeyProvider",
    "Page",
    "RateLimiter",
    "RetryPolicy",
    "StaticKey",
    "Webhook",
    "Workspace",
    "WorkspaceMember",
    "configure_default",
    "default_limiter",
]
