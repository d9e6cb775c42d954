"""`Sandbox`: a local Instantly API v2 on loopback, with the controls tests need.

    with Sandbox(seed="demo") as sb:               # started on a free port
        client = InstantlyClient(StaticKey(sb.keys["admin"].key), base_url=sb.base_url)
        sb.faults.fail_next("POST /api-keys", mode="lost_response")
        sb.seed_audit_logs(10_000)

See `seed` for the workspaces, `faults` for failure modes, `audit` for listing orders and cursors,
`control` for the same controls over HTTP.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

from instantly_sandbox.audit import ListingOrder
from instantly_sandbox.control import Control
from instantly_sandbox.delivery import (
    DELIVERY_USER_AGENT,
    DeliveryError,
    build_event_payload,
    delivered_event_type,
    post_event,
    subscribed_to,
)
from instantly_sandbox.delivery_log import DeliveryLogOptions
from instantly_sandbox.faults import Faults
from instantly_sandbox.gateway import BASE_PATH, Gateway, GatewayOptions
from instantly_sandbox.ids import iso
from instantly_sandbox.ratelimit import RateLimiter
from instantly_sandbox.recorder import ResponseLog
from instantly_sandbox.seed import SeededKey, SeedName, new_workspace
from instantly_sandbox.server import SandboxHTTPServer, make_server
from instantly_sandbox.state import (
    HEADER_VIEWS,
    HeaderView,
    WebhookEventRecord,
    WebhookRecord,
    Workspace,
)
from instantly_sandbox.variants import Variants


def _utc_now() -> datetime:
    return datetime.now(UTC)


START_LISTENERS: list[Callable[[Sandbox], None]] = []
"""Called with every sandbox that starts (the pytest plugin uses it to contract-check them all)."""


class Sandbox:
    """A fake Instantly workspace served over real HTTP.

    Args:
        seed: "demo" (every planted problem, see `instantly_sandbox.seed`) or "empty".
        listing_order: order of `GET /audit-logs` pages: "asc", "desc" or "random".
        rate_limit_per_s / rate_limit_per_min: workspace limits answered with 429 (None: off).
        clock: returns the current aware datetime; timestamps and new ids follow it.
        retry_after_s: send `Retry-After` on 429 and 503 (the real API documents none).
        timeout_hold_s: how long a `timeout` fault holds the connection before dropping it.
        record_responses: keep `responses` for the contract check (off for benchmarks).
        webhook_failure_limit: consecutive failed deliveries after which a webhook is disabled
            (status -1, audit entry 20), as Instantly does; None never disables.
        shuffle_key: key of the "random" permutation (default: random per sandbox).
        date_filter_utc_offset: the UTC offset of the timezone in which `GET /audit-logs` reads
            its `start_date`/`end_date` days (default 0: UTC days). Instantly does not document
            it; e.g. `timedelta(hours=-5)` serves day D as D 05:00 UTC to D+1 05:00 UTC.
        date_filter_end_exclusive: `end_date` ends before its day starts instead of after it ends
            (default False: inclusive, as documented nowhere either).
        variants: plausible behaviours the document leaves open or that differ from what was
            seen, as `{"listed_key": "absent", "scope_error": "unnamed", ...}` (see
            `instantly_sandbox.variants`; default: what was seen). Survive `reset`.
        webhook_header_read: "raw" or "masked": how webhook header values read back on
            `GET /webhooks` and `GET /webhooks/{id}` (undocumented; default raw).
        webhook_header_echo: the same for the answer to `POST /webhooks` and `PATCH`.
        delivery_log: how `GET /webhook-events` shows deliveries and whether failed ones are
            retried (see `instantly_sandbox.delivery_log`; default: oldest first, no retries).
    """

    def __init__(
        self,
        seed: SeedName = "demo",
        listing_order: ListingOrder = "asc",
        rate_limit_per_s: float | None = None,
        clock: Callable[[], datetime] | None = None,
        *,
        rate_limit_per_min: float | None = None,
        retry_after_s: float | None = None,
        timeout_hold_s: float = 5.0,
        record_responses: bool = True,
        max_recorded_responses: int = 20_000,
        webhook_failure_limit: int | None = None,
        delivery_user_agent: str = DELIVERY_USER_AGENT,
        shuffle_key: bytes | None = None,
        date_filter_utc_offset: timedelta = timedelta(0),
        date_filter_end_exclusive: bool = False,
        variants: Mapping[str, str] | Variants | None = None,
        webhook_header_read: HeaderView = "raw",
        webhook_header_echo: HeaderView = "raw",
        delivery_log: DeliveryLogOptions | None = None,
    ) -> None:
        self._clock = clock or _utc_now
        self._header_views: tuple[HeaderView, HeaderView] = ("raw", "raw")
        self._date_filter = (date_filter_utc_offset, date_filter_end_exclusive)
        self._seed_name: SeedName = seed
        self._listing_order: ListingOrder = listing_order
        self._shuffle_key = shuffle_key
        self._ws, self._keys = new_workspace(
            seed, clock=self._clock, listing_order=listing_order, shuffle_key=shuffle_key
        )
        self.set_date_filter(date_filter_utc_offset, end_exclusive=date_filter_end_exclusive)
        self.set_webhook_headers(read=webhook_header_read, echo=webhook_header_echo)
        self._delivery_log = delivery_log or DeliveryLogOptions()
        self._ws.delivery_log = self._delivery_log
        self.faults = Faults()
        self.responses = ResponseLog(enabled=record_responses, max_entries=max_recorded_responses)
        self._limit_values = (rate_limit_per_s, rate_limit_per_min)
        self._limiter = RateLimiter(rate_limit_per_s, rate_limit_per_min)
        self._gateway = Gateway(
            lambda: self._ws,
            faults=self.faults,
            limiter=self._limiter,
            responses=self.responses,
            options=GatewayOptions(
                timeout_hold_s=timeout_hold_s,
                retry_after_s=retry_after_s,
                variants=Variants.of(variants),
            ),
        )
        self._ws.key_shape = self.variants.key_shape
        self._control = Control(self)
        self.webhook_failure_limit = webhook_failure_limit
        self.delivery_user_agent = delivery_user_agent
        self._server: SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Self:
        """Serve on `host:port` (0: a free port) in a daemon thread; returns self."""
        if self._server is not None:
            raise RuntimeError("the sandbox is already started")
        server = make_server(host, port, self._gateway.handle, self._control.handle)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"instantly-sandbox:{server.server_address[1]}",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread
        for listener in list(START_LISTENERS):
            listener(self)
        return self

    def stop(self) -> None:
        """Stop serving: held responses are released, open connections closed. Idempotent."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self if self._server is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        """`http://HOST:PORT` (no path)."""
        if self._server is None:
            raise RuntimeError("the sandbox is not started")
        host, port = self._server.server_address[:2]
        host = str(host)
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT/api/v2`: usable as `INSTANTLY_API_BASE`."""
        return self.url + BASE_PATH

    @property
    def control_url(self) -> str:
        return self.url + "/_sandbox"

    # --- state -----------------------------------------------------------------------------------

    @property
    def state(self) -> Workspace:
        """The live workspace (api_keys, audit_logs, webhooks, members, block_list, ...)."""
        return self._ws

    @property
    def keys(self) -> dict[str, SeededKey]:
        """Keys whose strings are known: the seeded ones and those from `add_key`, by name."""
        return self._keys

    @property
    def calls(self) -> Counter[str]:
        """API requests received per operation ("METHOD /path"), faults and 429s included."""
        return self._gateway.calls

    def add_key(self, name: str, scopes: Iterable[str]) -> SeededKey:
        """Create a key directly (no audit entry) and remember it in `keys`."""
        seeded = SeededKey.of(self._ws.create_key(name, scopes))
        self._keys[name] = seeded
        return seeded

    def reset(self, seed: SeedName | None = None) -> dict[str, SeededKey]:
        """Replace the workspace by a freshly seeded one (new ids and key strings); clears faults
        and the rate-limit history. Returns the new `keys`."""
        self._seed_name = seed or self._seed_name
        self._ws, self._keys = new_workspace(
            self._seed_name,
            clock=self._clock,
            listing_order=self._listing_order,
            shuffle_key=self._shuffle_key,
        )
        self.set_date_filter(self._date_filter[0], end_exclusive=self._date_filter[1])
        self.set_webhook_headers(read=self._header_views[0], echo=self._header_views[1])
        self._ws.delivery_log = self._delivery_log
        self._ws.key_shape = self.variants.key_shape
        self.faults.clear()
        self._limiter.configure(*self._limit_values)
        return self._keys

    # --- audit log -----------------------------------------------------------------------------

    def seed_audit_logs(
        self,
        n: int,
        start: datetime | None = None,
        step: timedelta = timedelta(seconds=1),
        activity_types: Sequence[int] = (1,),
        **fields: Any,
    ) -> list[str]:
        """Bulk-add `n` entries at `start`, `start + step`, ... (default start: so that the last
        one is now), cycling through `activity_types`; `fields` are set on every entry.
        Returns the ids (UUIDv7) in time order. 100,000 entries take well under a second."""
        if start is None:
            start = self._clock() - step * n
        return self._ws.audit_logs.seed(
            n, start=start, step=step, activity_types=activity_types, fields=fields
        )

    def add_audit_log(
        self, activity_type: int, *, at: datetime | None = None, **fields: Any
    ) -> str:
        """Add one entry (at `at`, default now) and return its id. `fields`: `AuditLog` fields."""
        return self._ws.audit_logs.add(activity_type, at=at, **fields).id

    def set_date_filter(self, utc_offset: timedelta, *, end_exclusive: bool = False) -> None:
        """How `GET /audit-logs` reads `start_date`/`end_date` from now on: days at `utc_offset`
        (within +-24h), `end_date` exclusive or inclusive. Survives `reset`."""
        if abs(utc_offset) >= timedelta(days=1):
            raise ValueError("utc_offset must be within +-24 hours")
        self._date_filter = (utc_offset, end_exclusive)
        self._ws.audit_logs.date_filter_utc_offset = utc_offset
        self._ws.audit_logs.date_filter_end_exclusive = end_exclusive

    @property
    def variants(self) -> Variants:
        """The plausible behaviours this sandbox shows (`instantly_sandbox.variants`)."""
        return self._gateway.options.variants

    def set_variants(self, **values: str) -> Variants:
        """Change some variants from now on (`listed_key=`, `scope_error=`, `audit_fields=`,
        `unknown_cursor=`);
        ValueError for an unknown name or value. Returns them all."""
        options = self._gateway.options
        options.variants = options.variants.changed(**values)
        self._ws.key_shape = options.variants.key_shape
        return options.variants

    def forget_cursors(self) -> None:
        """Make every cursor answered so far unknown (as after a change on Instantly's side):
        `variants.unknown_cursor` says what a later `starting_after` with one gets."""
        with self._ws.lock:
            self._ws.issued_cursors.clear()

    def set_webhook_headers(self, *, read: HeaderView, echo: HeaderView) -> None:
        """How webhook header values read back from now on: on GET (`read`) and in the POST /
        PATCH answer (`echo`), each "raw" or "masked" (first four characters, then `*`).
        Deliveries always carry the stored values. Survives `reset`."""
        for what, view in (("read", read), ("echo", echo)):
            if view not in HEADER_VIEWS:
                raise ValueError(f"{what} must be one of {', '.join(HEADER_VIEWS)}, not {view!r}")
        self._header_views = (read, echo)
        self._ws.webhook_header_read = read
        self._ws.webhook_header_echo = echo

    def set_listing_order(self, order: ListingOrder) -> None:
        """Order of `GET /audit-logs` from now on (see `instantly_sandbox.audit`)."""
        self._ws.audit_logs.set_order(order)
        self._listing_order = order

    # --- workspace switches --------------------------------------------------------------------

    def set_rate_limit(self, per_s: float | None, per_min: float | None = None) -> None:
        self._limiter.configure(per_s, per_min)
        self._limit_values = (per_s, per_min)

    def set_paid_plan(self, active: bool) -> None:
        """Without an active paid plan every API call answers 402."""
        self._ws.workspace.paid = active

    # --- webhooks ------------------------------------------------------------------------------

    def set_delivery_log(self, options: DeliveryLogOptions) -> None:
        """How `GET /webhook-events` shows deliveries, and the retry policy, from now on.
        Survives `reset`."""
        self._delivery_log = options
        self._ws.delivery_log = options

    def disable_webhook(self, webhook_id: str) -> WebhookRecord:
        """Do what Instantly does to a failing webhook: status -1 and audit entry 20."""
        return self._ws.disable_webhook(webhook_id)

    def build_event_payload(
        self, event_type: str, *, webhook_id: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        """A realistic payload for `event_type` in this workspace (first campaign unless the
        webhook names one, or `campaign_id=` is given). See `delivery.build_event_payload`."""
        ws = self._ws
        with ws.lock:
            hook = ws.webhooks.get(webhook_id) if webhook_id else None
            campaigns = sorted(ws.campaigns.values(), key=lambda c: c.id)
            campaign = ws.campaigns.get(hook.campaign) if hook and hook.campaign else None
            campaign = campaign or (campaigns[0] if campaigns else None)
        fields.setdefault("campaign_id", campaign.id if campaign else ws.ids.new(self._clock()))
        fields.setdefault("campaign_name", campaign.name if campaign else "Campaign")
        fields.setdefault("timestamp", self._clock())
        return build_event_payload(event_type, workspace_id=ws.id, **fields)

    def deliver_webhook_event(
        self,
        webhook_id: str,
        payload: dict[str, Any] | None = None,
        *,
        timeout: float = 5.0,
        force: bool = False,
        unreachable: bool = False,
    ) -> int:
        """POST `payload` (default: one built for the webhook's event type) to the webhook's
        target with its custom headers; returns the target's HTTP status.

        Records a webhook event (`GET /webhook-events`). Raises KeyError for an unknown webhook and
        DeliveryError when the webhook is disabled (unless `force`) or the target gives no answer.
        `unreachable` fails the delivery as a refused connection without contacting the target:
        the receiver's outage as Instantly sees it, without stopping a process someone owns.
        """
        ws = self._ws
        with ws.lock:
            hook = ws.webhooks[webhook_id]
            if hook.disabled and not force:
                raise DeliveryError(f"webhook {webhook_id} is disabled (status -1)")
            url, headers, event_type = (
                hook.target_hook_url,
                dict(hook.headers or {}),
                hook.event_type,
            )
        if payload is None:
            name = "reply_received" if event_type in (None, "all_events") else event_type
            payload = self.build_event_payload(name, webhook_id=webhook_id)
        if unreachable:
            problem = f"delivery to {url} failed: ConnectError: [Errno 111] Connection refused"
            self._record_delivery(hook, payload, None, problem, None)
            raise DeliveryError(problem)
        # Not under the lock: the receiver may well call the sandbox back.
        try:
            status, elapsed = post_event(
                url, headers, payload, timeout=timeout, user_agent=self.delivery_user_agent
            )
        except DeliveryError as exc:
            self._record_delivery(hook, payload, None, str(exc), None)
            raise
        self._record_delivery(hook, payload, status, None, elapsed)
        return status

    def dispatch_event(self, payload: dict[str, Any]) -> dict[str, int | None]:
        """Deliver `payload` to every active webhook subscribed to its `event_type` (and its
        campaign); webhook id -> status, None where the target gave no answer."""
        delivered = delivered_event_type(str(payload.get("event_type")))
        with self._ws.lock:
            targets = [
                hook.id
                for hook in self._ws.webhooks.values()
                if not hook.disabled
                and subscribed_to(hook.event_type, delivered)
                and hook.campaign in (None, payload.get("campaign_id"))
            ]
        results: dict[str, int | None] = {}
        for hook_id in targets:
            try:
                results[hook_id] = self.deliver_webhook_event(hook_id, payload)
            except DeliveryError:
                results[hook_id] = None
        return results

    def retry_webhook_events(self, *, timeout: float = 5.0) -> int:
        """Run Instantly's retry pass now: redeliver every failed delivery that `will_retry`
        (the wait `retry_delay` is not waited for). Returns how many were redelivered.

        A retry goes to the webhook's current target with its current headers. A webhook that
        was deleted or disabled meanwhile is not retried (`will_retry` becomes false)."""
        ws = self._ws
        with ws.lock:
            due = [event for event in ws.webhook_events.values() if event.will_retry]
        count = 0
        for event in sorted(due, key=lambda e: e.id):
            with ws.lock:
                hook = ws.webhooks.get(event.webhook_id)
                if hook is None or hook.disabled:
                    event.will_retry, event.timestamp_next_retry = False, None
                    continue
                url, headers = hook.target_hook_url, dict(hook.headers or {})
            try:
                status, elapsed = post_event(
                    url,
                    headers,
                    event.payload,
                    timeout=timeout,
                    user_agent=self.delivery_user_agent,
                )
                outcome: tuple[int | None, str | None, int | None] = (status, None, elapsed)
            except DeliveryError as exc:
                outcome = (None, str(exc), None)
            self._record_delivery(hook, event.payload, *outcome, retry_of=event)
            count += 1
        return count

    def _record_delivery(
        self,
        hook: WebhookRecord,
        payload: dict[str, Any],
        status: int | None,
        problem: str | None,
        elapsed_ms: int | None,
        *,
        retry_of: WebhookEventRecord | None = None,
    ) -> None:
        ws = self._ws
        options = ws.delivery_log
        success = status is not None and 200 <= status < 300
        error = problem or (None if success else f"HTTP {status}")
        with ws.lock:
            now = self._clock()
            attempt = 0 if retry_of is None else retry_of.retry_count + 1
            will_retry = not success and attempt < options.retry_limit
            next_retry = iso(now + options.retry_delay) if will_retry else None
            if retry_of is not None and options.retries == "in_place":
                retry_of.success, retry_of.status_code, retry_of.error_message = (
                    success,
                    status,
                    error,
                )
                retry_of.retry_count, retry_of.retry_successful = attempt, success
                retry_of.will_retry, retry_of.timestamp_next_retry = will_retry, next_retry
                retry_of.response_time_ms = elapsed_ms
            else:
                event_id, stamp = ws.new_id()
                group = retry_of.retry_group_id if retry_of is not None else None
                if retry_of is not None:
                    # The attempt was retried: it no longer waits for a retry of its own.
                    retry_of.will_retry, retry_of.timestamp_next_retry = False, None
                ws.webhook_events[event_id] = WebhookEventRecord(
                    id=event_id,
                    timestamp_created=stamp,
                    organization_id=ws.id,
                    webhook_id=hook.id,
                    webhook_url=hook.target_hook_url,
                    payload=dict(payload),
                    success=success,
                    status_code=status,
                    error_message=error,
                    response_time_ms=elapsed_ms,
                    retry_count=attempt,
                    will_retry=will_retry,
                    retry_group_id=group or (event_id if options.retry_limit else None),
                    retry_successful=success if retry_of is not None else None,
                    timestamp_next_retry=next_retry,
                )
            hook.failures = 0 if success else hook.failures + 1
            limit = self.webhook_failure_limit
            if limit is not None and hook.failures >= limit and not hook.disabled:
                ws.disable_webhook(hook.id)
