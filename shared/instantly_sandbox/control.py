"""The control API under `/_sandbox/` for out-of-process use (`make run`, the demo, scripts).

No authentication; answered only to loopback clients (403 otherwise). JSON in, JSON out; errors are
`{"error": "..."}` with 400 or 404. Endpoints (bodies are JSON objects, all fields optional unless
marked):

- `GET /_sandbox/health` -> `{"ok": true, "base_url": ...}`
- `POST /_sandbox/keys {name*, scopes*}` -> `{"id", "key", "scopes"}` (added directly, no audit)
- `POST /_sandbox/audit-logs {activity_type*, timestamp, <AuditLog fields>}` -> `{"id"}`
- `POST /_sandbox/audit-logs/seed {n*, start, step_s, activity_types}` -> `{"count", "first_id", "last_id"}`
- `PUT /_sandbox/listing-order {order*: asc|desc|random}` -> `{"order"}`
- `GET /_sandbox/variants` -> `{"variants": {...}, "choices": {dimension: [values]}}`
- `PUT /_sandbox/variants {listed_key, scope_error, audit_fields}` -> `{"variants": {...}}`
- `PUT /_sandbox/date-filter {utc_offset_s, end_exclusive}` -> the same (how `GET /audit-logs`
  reads `start_date`/`end_date`)
- `GET /_sandbox/calls` -> `{"calls": {"METHOD /path": n}}`: API requests received (benchmarks
  count requests at the sandbox)
- `POST /_sandbox/faults {operation*, times, mode, hold_s, commit}` -> `{"pending": [...]}`
- `DELETE /_sandbox/faults` -> `{"pending": []}`
- `PUT /_sandbox/rate-limit {per_s, per_min}` (null disables) -> the limits
- `PUT /_sandbox/paid-plan {active*}` -> `{"active"}`
- `PUT /_sandbox/webhook-headers {read, echo}` (each `raw` | `masked`, default raw) -> both
- `POST /_sandbox/webhooks/{id}/disable` -> the webhook (status -1, audit entry 20)
- `POST /_sandbox/webhooks/{id}/deliver {payload | event_type, unreachable}` -> `{"status": <target's
  status>}`, or 502 `{"error"}` when the target gave no answer (`unreachable`: as if it were down)
- `PUT /_sandbox/delivery-log {order, retries, payload, success_filter, search_filter, timestamps,
  retry_limit, retry_delay_s}` -> `{"options"}`: how `GET /webhook-events` behaves (`instantly_sandbox.delivery_log`)
- `POST /_sandbox/webhook-events/retry` -> `{"retried": n}`: Instantly's retry pass, now
- `POST /_sandbox/reset {seed}` -> `{"keys": {...}}` (a fresh workspace: new ids and key strings)
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from instantly_sandbox.delivery import DeliveryError
from instantly_sandbox.delivery_log import DeliveryLogOptions
from instantly_sandbox.variants import choices
from instantly_sandbox.wire import HttpRequest, Outcome

if TYPE_CHECKING:
    from instantly_sandbox.sandbox import Sandbox

_WEBHOOK_ACTION = re.compile(r"^/_sandbox/webhooks/(?P<id>[^/]+)/(?P<action>disable|deliver)$")


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _reply(body: Any, status: int = 200) -> Outcome:
    return Outcome(status, body)


def _is_loopback(client_ip: str) -> bool:
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


class Control:
    """Dispatches `/_sandbox/...` requests to the `Sandbox` methods of the same meaning."""

    def __init__(self, sandbox: Sandbox) -> None:
        self._sb = sandbox

    def handle(self, request: HttpRequest) -> Outcome:
        if not _is_loopback(request.client_ip):
            return _reply({"error": "the control API answers loopback clients only"}, 403)
        try:
            body = json.loads(request.body) if request.body else {}
            if not isinstance(body, dict):
                raise ControlError(400, "the body must be a JSON object")
            return self._dispatch(request.method, request.path.rstrip("/"), body)
        except ControlError as exc:
            return _reply({"error": str(exc)}, exc.status)
        except (ValueError, TypeError, KeyError) as exc:
            return _reply({"error": f"{type(exc).__name__}: {exc}"}, 400)

    def _dispatch(self, method: str, path: str, body: dict[str, Any]) -> Outcome:
        sb = self._sb
        route = (method, path)
        if route == ("GET", "/_sandbox/health"):
            return _reply({"ok": True, "base_url": sb.base_url})
        if route == ("POST", "/_sandbox/keys"):
            return _reply(sb.add_key(body["name"], body["scopes"]).to_json())
        if route == ("POST", "/_sandbox/audit-logs"):
            fields = dict(body)
            activity_type = int(fields.pop("activity_type"))
            if "timestamp" in fields:
                fields["at"] = _datetime(fields.pop("timestamp"))
            return _reply({"id": sb.add_audit_log(activity_type, **fields)})
        if route == ("POST", "/_sandbox/audit-logs/seed"):
            ids = sb.seed_audit_logs(
                int(body["n"]),
                start=_datetime(body["start"]) if body.get("start") else None,
                step=timedelta(seconds=float(body.get("step_s", 1.0))),
                activity_types=tuple(body.get("activity_types") or (1,)),
            )
            return _reply(
                {
                    "count": len(ids),
                    "first_id": ids[0] if ids else None,
                    "last_id": ids[-1] if ids else None,
                }
            )
        if route == ("PUT", "/_sandbox/listing-order"):
            sb.set_listing_order(body["order"])
            return _reply({"order": body["order"]})
        if route == ("GET", "/_sandbox/variants"):
            return _reply({"variants": sb.variants.to_json(), "choices": choices()})
        if route == ("PUT", "/_sandbox/variants"):
            return _reply({"variants": sb.set_variants(**body).to_json()})
        if route == ("PUT", "/_sandbox/date-filter"):
            offset = float(body.get("utc_offset_s", 0))
            exclusive = bool(body.get("end_exclusive", False))
            sb.set_date_filter(timedelta(seconds=offset), end_exclusive=exclusive)
            return _reply({"utc_offset_s": offset, "end_exclusive": exclusive})
        if route == ("GET", "/_sandbox/calls"):
            return _reply({"calls": dict(sb.calls)})
        if route == ("PUT", "/_sandbox/delivery-log"):
            sb.set_delivery_log(DeliveryLogOptions.from_json(body))
            return _reply({"options": body})
        if route == ("POST", "/_sandbox/webhook-events/retry"):
            return _reply({"retried": sb.retry_webhook_events()})
        if route == ("POST", "/_sandbox/faults"):
            sb.faults.fail_next(
                body["operation"],
                int(body.get("times", 1)),
                body.get("mode", "error_500"),
                hold_s=body.get("hold_s"),
                commit=bool(body.get("commit", False)),
            )
            return _reply({"pending": [asdict(fault) for fault in sb.faults.pending()]})
        if route == ("DELETE", "/_sandbox/faults"):
            sb.faults.clear()
            return _reply({"pending": []})
        if route == ("PUT", "/_sandbox/rate-limit"):
            sb.set_rate_limit(body.get("per_s"), body.get("per_min"))
            return _reply({"per_s": body.get("per_s"), "per_min": body.get("per_min")})
        if route == ("PUT", "/_sandbox/paid-plan"):
            sb.set_paid_plan(bool(body["active"]))
            return _reply({"active": bool(body["active"])})
        if route == ("PUT", "/_sandbox/webhook-headers"):
            read, echo = body.get("read", "raw"), body.get("echo", "raw")
            sb.set_webhook_headers(read=read, echo=echo)
            return _reply({"read": read, "echo": echo})
        if route == ("POST", "/_sandbox/reset"):
            keys = sb.reset(body.get("seed"))
            return _reply({"keys": {name: key.to_json() for name, key in keys.items()}})
        found = _WEBHOOK_ACTION.match(path)
        if found and method == "POST":
            return self._webhook_action(found["id"], found["action"], body)
        raise ControlError(404, f"no control endpoint {method} {path}")

    def _webhook_action(self, webhook_id: str, action: str, body: dict[str, Any]) -> Outcome:
        sb = self._sb
        if webhook_id not in sb.state.webhooks:
            raise ControlError(404, f"no webhook {webhook_id}")
        if action == "disable":
            return _reply(sb.disable_webhook(webhook_id).to_json())
        payload = body.get("payload")
        if payload is None and body.get("event_type"):
            payload = sb.build_event_payload(body["event_type"], webhook_id=webhook_id)
        try:
            status = sb.deliver_webhook_event(
                webhook_id,
                payload,
                force=bool(body.get("force")),
                unreachable=bool(body.get("unreachable")),
            )
        except DeliveryError as exc:
            return _reply({"error": str(exc)}, 502)
        return _reply({"status": status})


def _datetime(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
