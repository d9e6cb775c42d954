"""`InstantlyClient`: typed access to the parts of Instantly API v2 this project uses.

Each method names its operation, says whether it is safe to repeat, and hands it to the
`Session` (`session.py`: auth, rate limit, retries, refresh-on-401); answers are validated
into the pydantic models of `models.py`; listings are followed lazily (`pagination.py`).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from types import TracebackType
from typing import Any, Final, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from instantly_guard import __version__
from instantly_guard.instantly import pagination, responses, salvage
from instantly_guard.instantly.keys import KeyProvider
from instantly_guard.instantly.models import (
    ApiKey,
    AuditLog,
    BlockListEntry,
    CreatedApiKey,
    Page,
    Webhook,
    WebhookEvent,
    WebhookTestResult,
    Workspace,
    WorkspaceMember,
)
from instantly_guard.instantly.ratelimit import RateLimiter, default_limiter
from instantly_guard.instantly.retry import RetryPolicy
from instantly_guard.instantly.session import Call, Session
from instantly_guard.secret import Secret
from instantly_guard.settings import DEFAULT_API_BASE

# Instantly's edge blocks the default python-httpx agent: say who we are.
USER_AGENT: Final = (
    f"instantly-guard/{__version__} httpx/{httpx.__version__} python/{platform.python_version()}"
)
WEBHOOK_FIELDS: Final = frozenset(
    {"name", "target_hook_url", "event_type", "campaign", "headers", "custom_interest_value"}
)

# Reads without path parameters that the OpenAPI document gives no `limit` (probe candidates).
_UNPAGED_READS: Final = frozenset(
    {
        "/workspaces/current",
        "/webhooks/event-types",
        "/workspace-billing/plan-details",
        "/crm-actions/phone-numbers",
    }
)

ModelT = TypeVar("ModelT", bound=BaseModel)


def _path(template: str, **ids: str) -> str:
    """Fill `{name}` placeholders, each id percent-encoded so it cannot change the path."""
    for name, value in ids.items():
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty string")
        template = template.replace("{" + name + "}", quote(value, safe=""))
    return template


def _day(value: date) -> str:
    """Instantly's audit-log date filters have day granularity: a datetime is taken in UTC."""
    if isinstance(value, datetime):
        value = (value.astimezone(UTC) if value.tzinfo else value).date()
    return value.isoformat()


class InstantlyClient:
    """A client for Instantly API v2. Thread-safe; use one per process and key provider.

    `timeout` is seconds for every phase (connect at most 5 s) or an `httpx.Timeout`.
    `max_retries` bounds the retries after the first attempt (see `retry.py` for which failures
    are retried); `retry_policy` sets the backoff (its own `max_retries` is replaced).
    `rate_limiter=None` shares the process-wide default limiter. `transport` is for tests
    (`httpx.MockTransport`). Errors are the `InstantlyError` tree of `instantly_guard.errors`.
    """

    def __init__(
        self,
        key_provider: KeyProvider,
        base_url: str = DEFAULT_API_BASE,
        *,
        workspace_id: str | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float | httpx.Timeout = 10.0,
        max_retries: int = 4,
        rate_limiter: RateLimiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
        retry_policy: RetryPolicy | None = None,
        user_agent: str = USER_AGENT,
    ) -> None:
        if isinstance(timeout, int | float):
            timeout = httpx.Timeout(timeout, connect=min(float(timeout), 5.0))
        self._workspace_id = workspace_id
        self._session = Session(
            key_provider,
            base_url,
            workspace_id=workspace_id,
            transport=transport,
            timeout=timeout,
            policy=replace(retry_policy or RetryPolicy(), max_retries=max_retries),
            limiter=rate_limiter or default_limiter(),
            sleep=sleep,
            user_agent=user_agent,
        )
        self.base_url = self._session.base_url

    @property
    def rate_limiter(self) -> RateLimiter:
        """The limiter this client waits on (the process-wide one unless given its own)."""
        return self._session.limiter

    # ---- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> InstantlyClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        workspace = f", workspace_id={self._workspace_id!r}" if self._workspace_id else ""
        return f"InstantlyClient({self.base_url!r}{workspace})"

    # ---- API keys --------------------------------------------------------------------------

    def list_api_keys(self, *, limit: int = 100) -> Iterator[ApiKey]:
        """Every API key of the workspace (their `key` is masked). Pages are followed lazily."""
        return self._items(ApiKey, "/api-keys", limit=pagination.check_limit(limit))

    def create_api_key(self, name: str, scopes: Sequence[str]) -> CreatedApiKey:
        """Create a key; the answer is the only time its string is shown (`.key`, a Secret).

        Never repeated after Instantly may have acted on it: on a 5xx or a transport error once
        the request was sent, the TransportError/ServerError says the key may have been created.
        Resolve by listing keys by `name` (make names unique per attempt) before creating again.
        A 429, a connect error or a bad-key 401 are repeated: Instantly did not act on those.
        """
        if isinstance(scopes, str):
            raise TypeError("scopes must be a sequence of scope strings, not one string")
        body = {"name": name, "scopes": [str(scope) for scope in scopes]}
        call = Call("POST", "/api-keys", "/api-keys", body=body, idempotent=False)
        return self._model(CreatedApiKey, call)

    def delete_api_key(self, key_id: str) -> ApiKey:
        """Delete (revoke) a key; returns it as it was.

        Raises AlreadyDeletedError (a NotFoundError) when a retry, after an attempt whose answer
        was lost, finds the key gone: most likely our earlier attempt deleted it.
        """
        call = Call("DELETE", "/api-keys/{id}", _path("/api-keys/{id}", id=key_id))
        return self._model(ApiKey, call)

    # ---- audit logs ------------------------------------------------------------------------

    def iter_audit_log_pages(
        self,
        *,
        start_date: date | None = None,
        end_date: date | None = None,
        activity_type: int | None = None,
        search: str | None = None,
        limit: int = 1000,
    ) -> Iterator[list[AuditLog]]:
        """Pages of audit entries matching the filters, in the order Instantly lists them
        (undocumented: do not rely on it). Dates are days; a datetime is taken as its UTC day.
        An entry that does not match `AuditLog` comes as a `MalformedAuditLog` (`salvage.py`)
        instead of failing its page."""
        params = _audit_params(start_date, end_date, limit)
        if activity_type is not None:
            params["activity_type"] = int(activity_type)
        if search is not None:
            params["search"] = search
        return self._pages(AuditLog, "/audit-logs", params, item=salvage.audit_log)

    def audit_log_page(
        self,
        *,
        start_date: date | None = None,
        end_date: date | None = None,
        starting_after: str | None = None,
        limit: int = 1000,
    ) -> Page[AuditLog]:
        """One page of `GET /audit-logs`, with the cursor Instantly answered (opaque: pass it
        back as `starting_after` to continue that listing)."""
        params = _audit_params(start_date, end_date, limit)
        if starting_after is not None:
            params["starting_after"] = starting_after
        path = "/audit-logs"
        # As `iter_audit_log_pages`: a malformed entry is salvaged, never fails its page.
        response = self._session.send(Call("GET", path, path, params=params))
        return responses.validate_page(
            AuditLog, response, method="GET", path=path, item=salvage.audit_log
        )

    def iter_audit_logs(
        self,
        *,
        start_date: date | None = None,
        end_date: date | None = None,
        activity_type: int | None = None,
        search: str | None = None,
        limit: int = 1000,
    ) -> Iterator[AuditLog]:
        """The entries of `iter_audit_log_pages`, one by one."""
        pages = self.iter_audit_log_pages(
            start_date=start_date,
            end_date=end_date,
            activity_type=activity_type,
            search=search,
            limit=limit,
        )
        return (entry for page in pages for entry in page)

    # ---- webhooks --------------------------------------------------------------------------

    def list_webhooks(self, *, limit: int = 100) -> Iterator[Webhook]:
        return self._items(Webhook, "/webhooks", limit=pagination.check_limit(limit))

    def get_webhook(self, webhook_id: str) -> Webhook:
        return self._model(Webhook, Call("GET", "/webhooks/{id}", self._webhook(webhook_id)))

    def create_webhook(
        self,
        *,
        target_hook_url: str,
        event_type: str | None,
        name: str | None = None,
        campaign: str | None = None,
        headers: Mapping[str, str | Secret] | None = None,
    ) -> Webhook:
        """Subscribe `target_hook_url` to `event_type` (None: custom label events).

        `headers` are sent by Instantly with every delivery (our receiver's shared secret).
        Not repeated after Instantly may have acted on it (a second create is a second webhook):
        on a 5xx or a transport error once sent, list the webhooks before creating again.
        """
        body: dict[str, Any] = {"target_hook_url": target_hook_url, "event_type": event_type}
        if name is not None:
            body["name"] = name
        if campaign is not None:
            body["campaign"] = campaign
        if headers is not None:
            body["headers"] = _reveal_headers(headers)
        call = Call("POST", "/webhooks", "/webhooks", body=body, idempotent=False)
        return self._model(Webhook, call)

    def update_webhook(self, webhook_id: str, **fields: Any) -> Webhook:
        """PATCH the given fields (`name`, `target_hook_url`, `event_type`, `campaign`,
        `headers`, `custom_interest_value`); None clears a nullable field.

        Retried like any PATCH: the same fields give the same webhook. `headers` replaces the
        whole set; its values may be `Secret`s.
        """
        unknown = set(fields) - WEBHOOK_FIELDS
        if unknown or not fields:
            raise ValueError(
                f"update_webhook takes some of {sorted(WEBHOOK_FIELDS)}; got {sorted(fields)}"
            )
        body = dict(fields)
        if body.get("headers") is not None:
            body["headers"] = _reveal_headers(body["headers"])
        call = Call("PATCH", "/webhooks/{id}", self._webhook(webhook_id), body=body)
        return self._model(Webhook, call)

    def delete_webhook(self, webhook_id: str) -> Webhook:
        """Delete a webhook; AlreadyDeletedError as for `delete_api_key`."""
        return self._model(Webhook, Call("DELETE", "/webhooks/{id}", self._webhook(webhook_id)))

    def resume_webhook(self, webhook_id: str) -> Webhook:
        """Re-enable a webhook Instantly disabled after failed deliveries (`status` -1).

        Retried like a read: resuming an active webhook leaves it active (Instantly may record a
        second "webhook resumed" audit entry).
        """
        path = self._webhook(webhook_id) + "/resume"
        return self._model(Webhook, Call("POST", "/webhooks/{id}/resume", path, idempotent=True))

    def test_webhook(self, webhook_id: str) -> WebhookTestResult:
        """Ask Instantly to send a test delivery to the webhook's target, with its stored headers:
        the one way to see what Instantly really sends. Not retried once sent (each attempt is
        another delivery)."""
        path = self._webhook(webhook_id) + "/test"
        call = Call("POST", "/webhooks/{id}/test", path, idempotent=False)
        return self._model(WebhookTestResult, call)

    # ---- webhook events (the delivery log) ---------------------------------------------------

    def iter_webhook_event_pages(
        self,
        *,
        since: date | None = None,
        until: date | None = None,
        success: bool | None = None,
        search: str | None = None,
        limit: int = 100,
        starting_after: str | None = None,
    ) -> Iterator[list[WebhookEvent]]:
        """Pages of delivery attempts (`from`/`to` are inclusive days, `search` an exact webhook
        URL or lead email), in the order Instantly lists them (undocumented); `starting_after`
        continues after the id of the last item of an earlier page (the documented cursor)."""
        params: dict[str, str | int] = {"limit": pagination.check_limit(limit)}
        if since is not None:
            params["from"] = _day(since)
        if until is not None:
            params["to"] = _day(until)
        if success is not None:
            params["success"] = "true" if success else "false"
        if search is not None:
            params["search"] = search
        if starting_after is not None:
            params["starting_after"] = starting_after
        return self._pages(WebhookEvent, "/webhook-events", params)

    def get_webhook_event(self, event_id: str) -> WebhookEvent:
        path = _path("/webhook-events/{id}", id=event_id)
        return self._model(WebhookEvent, Call("GET", "/webhook-events/{id}", path))

    @staticmethod
    def _webhook(webhook_id: str) -> str:
        return _path("/webhooks/{id}", id=webhook_id)

    # ---- members, block list, workspace ----------------------------------------------------

    def list_workspace_members(self, *, limit: int = 100) -> Iterator[WorkspaceMember]:
        return self._items(
            WorkspaceMember, "/workspace-members", limit=pagination.check_limit(limit)
        )

    def list_block_list_entries(self, *, limit: int = 100) -> Iterator[BlockListEntry]:
        return self._items(
            BlockListEntry, "/block-lists-entries", limit=pagination.check_limit(limit)
        )

    def create_block_list_entry(self, bl_value: str) -> BlockListEntry:
        """Block an email address or a domain.

        Not repeated after Instantly may have acted on it (no idempotency key exists, and a second
        create may duplicate the entry): on a 5xx or a transport error once sent, list the entries
        before creating again.
        """
        call = Call(
            "POST",
            "/block-lists-entries",
            "/block-lists-entries",
            body={"bl_value": bl_value},
            idempotent=False,
        )
        return self._model(BlockListEntry, call)

    def get_current_workspace(self) -> Workspace:
        return self._model(Workspace, Call("GET", "/workspaces/current", "/workspaces/current"))

    def probe(self, operation: str = "GET /campaigns", *, limit: int | None = 1) -> None:
        """A cheap read that proves the key works; raises the InstantlyError otherwise.

        `operation` is a GET without path parameters that the key's scopes allow, as
        `"GET /campaigns"` (what `scopes.probe_operation` returns) or just `"/campaigns"`; the
        default needs `campaigns:read`. Listings are asked for `limit` items (None: no limit);
        the few documented reads that take no `limit` (`/workspaces/current`, ...) never get one.
        The answer must be JSON but is not validated: only the status matters.
        """
        method, _, path = operation.rpartition(" ")
        if method not in ("", "GET") or not path.startswith("/") or "{" in path or "?" in path:
            raise ValueError(f"probe takes a plain GET like 'GET /campaigns', got {operation!r}")
        params = None
        if limit is not None and path not in _UNPAGED_READS:
            params = {"limit": pagination.check_limit(limit)}
        response = self._session.send(Call("GET", path, path, params=params))
        responses.json_body(response, method="GET", path=path)

    # ---- plumbing --------------------------------------------------------------------------

    def _model(self, model: type[ModelT], call: Call) -> ModelT:
        response = self._session.send(call)
        return responses.validate_body(model, response, method=call.method, path=call.path)

    def _pages(
        self,
        model: type[ModelT],
        path: str,
        params: Mapping[str, str | int],
        *,
        item: Callable[[Any], ModelT] | None = None,
    ) -> Iterator[list[ModelT]]:
        """Pages of `model`; with `item`, a bad item is read by it instead of failing its page."""

        def fetch(cursor: str | None) -> Page[ModelT]:
            query = dict(params)
            if cursor is not None:
                query["starting_after"] = cursor
            call = Call("GET", path, path, params=query)
            if item is None:
                return self._model(Page[model], call)  # type: ignore[valid-type]
            response = self._session.send(call)
            return responses.validate_page(model, response, method="GET", path=path, item=item)

        return pagination.follow(fetch, method="GET", path=path)

    def _items(self, model: type[ModelT], path: str, *, limit: int) -> Iterator[ModelT]:
        return (item for page in self._pages(model, path, {"limit": limit}) for item in page)


def _audit_params(start: date | None, end: date | None, limit: int) -> dict[str, str | int]:
    """The query of `GET /audit-logs`: `limit` (1..1000) and the day filters that are set."""
    params: dict[str, str | int] = {
        "limit": pagination.check_limit(limit, pagination.AUDIT_LOG_LIMIT_MAX)
    }
    if start is not None:
        params["start_date"] = _day(start)
    if end is not None:
        params["end_date"] = _day(end)
    return params


def _reveal_headers(headers: Mapping[str, str | Secret]) -> dict[str, str]:
    return {
        str(name): value.reveal() if isinstance(value, Secret) else str(value)
        for name, value in headers.items()
    }
