"""Helpers for the reconciliation tests: a real receiver on loopback that can be stopped and
started again, and the environment a reconciler needs."""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request
from werkzeug.wrappers import Response as WsgiResponse

from instantly_guard.publish.local import read_outbox
from instantly_guard.webhook.receiver import build_receiver
from instantly_sandbox import Sandbox

SECRET = "reconcile-test-secret-0123456789abcdef"  # pragma: allowlist secret
HEADER = "x-webhook-secret"


class ReceiverServer:
    """The webhook receiver (`build_receiver`, outbox publisher) served by werkzeug on a fixed
    loopback port, so that `stop()` makes deliveries fail (connection refused) and `start()`
    brings the same URL back, like a receiver that was down for a while."""

    def __init__(self, state_dir: Path, **env: str) -> None:
        self.state_dir = state_dir
        environment = {
            "GUARD_BACKEND": "local",
            "GUARD_STATE_DIR": str(state_dir),
            "INSTANTLY_WEBHOOK_SECRET": SECRET,
            "WEBHOOK_SECRET_HEADER": HEADER,
            "WEBHOOK_DEDUPE_WINDOW": "0",
            **env,
        }
        self.receiver = build_receiver(environment)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        response = self.receiver.handle(Request(environ))  # type: ignore[arg-type]
        return WsgiResponse(response.body, status=response.status, headers=response.headers)(
            environ, start_response
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> ReceiverServer:
        deadline = time.monotonic() + 10
        while True:
            try:
                self._server = make_server("127.0.0.1", self.port, self._app, threaded=True)
                break
            except OSError:  # the port is still in TIME_WAIT or briefly taken
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def close(self) -> None:
        self.stop()
        self.receiver.close()

    def outbox_ids(self) -> list[str]:
        return [m.attributes["event_id"] for m in read_outbox(self.state_dir)]

    def outbox(self) -> list[Any]:
        return list(read_outbox(self.state_dir))


def add_webhook(sb: Sandbox, url: str) -> str:
    """Our webhook in the sandbox: every event, to `url`, with the receiver's secret header."""
    from instantly_sandbox.state import WebhookRecord

    ws = sb.state
    with ws.lock:
        hook_id, stamp = ws.new_id()
        ws.webhooks[hook_id] = WebhookRecord(
            id=hook_id,
            organization=ws.id,
            target_hook_url=url,
            event_type="all_events",
            timestamp_created=stamp,
            name="reconcile-test",
            headers={HEADER: SECRET},
        )
    return hook_id


def deliver(sb: Sandbox, hook_id: str, n: int, *, lead: str = "lead") -> list[dict[str, Any]]:
    """Deliver `n` distinct events (failures included); return their payloads."""
    from instantly_sandbox import DeliveryError

    payloads = []
    for i in range(n):
        payload = sb.build_event_payload(
            "reply_received", webhook_id=hook_id, lead_email=f"{lead}{i}@prospect.example"
        )
        payloads.append(payload)
        with contextlib.suppress(DeliveryError):  # the receiver is down: a failed delivery
            sb.deliver_webhook_event(hook_id, payload, timeout=2.0)
    return payloads


def our_webhook_ids(sb: Sandbox) -> str:
    """The ids of the webhooks `add_webhook` made: the ones the deployment manages."""
    with sb.state.lock:
        return ",".join(h.id for h in sb.state.webhooks.values() if h.name == "reconcile-test")


def reconcile_env(sb: Sandbox, state_dir: Path, url: str, **extra: str) -> dict[str, str]:
    return {
        "GUARD_BACKEND": "local",
        "GUARD_STATE_DIR": str(state_dir),
        "INSTANTLY_API_BASE": sb.base_url,
        "INSTANTLY_API_KEY": sb.add_key("reconciler", ["webhook_events:read"]).key,
        "RECONCILE_WEBHOOK_URLS": url,
        "RECONCILE_WEBHOOK_IDS": our_webhook_ids(sb),
        **extra,
    }


class Clock:
    """A settable clock for the reconciler (`build_service(clock=...)`), starting now."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


def add_foreign_webhook(
    sb: Sandbox, url: str, *, event_type: str | None = "all_events", campaign: str | None = None
) -> str:
    """A webhook someone else in the workspace aimed at our receiver: no secret header."""
    from instantly_sandbox.state import WebhookRecord

    ws = sb.state
    with ws.lock:
        hook_id, stamp = ws.new_id()
        ws.webhooks[hook_id] = WebhookRecord(
            id=hook_id,
            organization=ws.id,
            target_hook_url=url,
            event_type=event_type,
            campaign=campaign,
            timestamp_created=stamp,
            name="someone-elses",
        )
    return hook_id


def inject_failures(
    sb: Sandbox,
    hook_id: str,
    payloads: list[dict[str, Any]],
    *,
    status: int | None = None,
    start: datetime | None = None,
) -> None:
    """Failed delivery records of `hook_id`, one per payload, a second apart from `start`, as
    Instantly's log would hold them after an outage (written straight into the sandbox: fast)."""
    from instantly_sandbox.state import WebhookEventRecord

    ws = sb.state
    at = start or datetime.now(UTC) - timedelta(hours=1)
    with ws.lock:
        url = ws.webhooks[hook_id].target_hook_url
        for i, payload in enumerate(payloads):
            record_id, created = ws.new_id(at + timedelta(seconds=i))
            ws.webhook_events[record_id] = WebhookEventRecord(
                record_id, created, ws.id, hook_id, url, payload, False, status,
                "connection refused" if status is None else f"HTTP {status}", None,
            )  # fmt: skip
