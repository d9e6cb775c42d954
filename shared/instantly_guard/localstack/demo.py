"""`make demo`: a scripted walkthrough against a running local stack, one line per step.

1. a forged webhook delivery (no valid secret header) is refused with 401;
2. a genuine one, delivered by the sandbox with the webhook's header, is accepted and is in the
   outbox;
3. the audit export runs as Cloud Scheduler would call it and writes entries to the JSONL log;
4. the audit export key is rotated by a SECRET_ROTATE CloudEvent to the rotation function, and
   the old key is revoked (grace 0s locally): it now gets 401 from Instantly;
5. the export runs again and works with the new key (nothing restarted);
6. the detection rules the export ran on every batch found the seeded MFA attack, and none of
   the rotation's own key changes (labelled `managed_rotation=true`) is a finding;
7. the posture check reads the workspace with its read-only key: findings by severity;
8. the receiver is down (the sandbox cannot reach it) while Instantly delivers three events and
   then disables the webhook; the reconcile function, run as Cloud Scheduler would, republishes
   the three from Instantly's delivery log and resumes the webhook: each event is in the outbox
   exactly once, marked `reconciled`;
9. a person's script promotes a member to admin and moves a webhook to another URL over
   Instantly's API (Instantly's audit log records neither); the inventory function, run as Cloud
   Scheduler would, writes `member.role_changed` and `webhook.target_changed` into the exported
   audit log beside Instantly's entries, and the promotion is an `inventory.member-promoted`
   finding (the next demo demotes the member again: no finding).
10. `instantly-guard verify` proves the whole stack as it would a deployment: forged delivery
    refused, Instantly's test delivery accepted, every key working with exactly its scopes,
    rotation schedules, and the export and reconcile runs just made.

Every step reports ok or FAILED with what it saw; a step that needs an earlier one which failed
is not run, and says so (`NEEDS`): "export works with the new key" means nothing after a failed
rotation. The demo's exit status is 1 if any step failed or was not run.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import httpx

from instantly_guard.audit.service import findings_path
from instantly_guard.audit.sinks.local import read_entries
from instantly_guard.check import WORKSPACE_RULE_IDS, Policy, run_check
from instantly_guard.check.managed import read_managed_keys
from instantly_guard.check.report.table import summary
from instantly_guard.errors import AuthenticationError, GuardError
from instantly_guard.instantly import InstantlyClient, RateLimiter, StaticKey
from instantly_guard.localstack.provision import (
    STORE_ADMIN,
    STORE_CHECK,
    STORE_EXPORTER,
    WEBHOOK_HEADER,
)
from instantly_guard.localstack.provision import store_for as _store_for
from instantly_guard.localstack.state import StackInfo
from instantly_guard.publish.local import read_outbox
from instantly_guard.rotation.model import RotationState
from instantly_guard.secret import Secret

_TIMEOUT = httpx.Timeout(60.0, connect=5.0)


@dataclass(frozen=True, slots=True)
class Step:
    title: str
    ok: bool
    detail: str
    ran: bool = True


NEEDS: dict[str, str] = {"export works with the new key": "key rotated, old key revoked"}
"""A step -> the earlier step whose success it depends on (it is not run when that failed)."""


class Demo:
    def __init__(self, info: StackInfo, out: TextIO) -> None:
        self.info = info
        self.out = out
        self.state_dir = Path(info.state_dir)
        self.store = _store_for(self.state_dir)
        self.steps: list[Step] = []

    def plan(self) -> list[tuple[str, Callable[[], tuple[bool, str]]]]:
        return [
            ("forged webhook rejected", self.forged_webhook),
            ("genuine webhook accepted", self.genuine_webhook),
            ("audit entries exported", self.export),
            ("key rotated, old key revoked", self.rotate),
            ("export works with the new key", self.export_again),
            ("attack detected, rotation not", self.detections),
            ("posture check", self.check),
            ("missed events reconciled", self.reconcile),
            ("member and webhook changes recorded", self.inventory),
            ("deployment verified", self.verify),
        ]

    def run(
        self, plan: list[tuple[str, Callable[[], tuple[bool, str]]]] | None = None
    ) -> list[Step]:
        for title, action in plan if plan is not None else self.plan():
            self._step(title, action)
        passed = sum(step.ok for step in self.steps)
        not_run = sum(not step.ran for step in self.steps)
        tail = f", {not_run} not run" if not_run else ""
        self.out.write(f"\n{passed}/{len(self.steps)} steps passed{tail}.\n")
        self.out.flush()
        return self.steps

    def _step(self, title: str, action: Callable[[], tuple[bool, str]]) -> None:
        needed = NEEDS.get(title)
        failed = [s for s in self.steps if s.title == needed and not s.ok]
        if failed:
            step = Step(title, False, f"needs {needed!r}, which did not pass", ran=False)
            self.steps.append(step)
            self.out.write(f"  [{'not run':^7}] {title:<30} {step.detail}\n")
            self.out.flush()
            return
        try:
            ok, detail = action()
        except (GuardError, httpx.HTTPError, OSError, ValueError, KeyError) as exc:
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        self.steps.append(Step(title, ok, detail))
        mark = "ok" if ok else "FAILED"
        self.out.write(f"  [{mark:^6}] {title:<30} {detail}\n")
        self.out.flush()

    # -- steps ----------------------------------------------------------------------------------

    def forged_webhook(self) -> tuple[bool, str]:
        url = self.info.functions["webhook"].url
        payload = {
            "event_type": "reply_received",
            "timestamp": _now(),
            "workspace": "forged",
            "campaign_id": "forged",
            "campaign_name": "forged",
        }
        forged = {WEBHOOK_HEADER: "forged-" + secrets.token_urlsafe(24)}
        response = httpx.post(url, json=payload, headers=forged, timeout=_TIMEOUT)
        return (
            response.status_code == 401,
            f"{response.status_code} from {url} for a wrong {WEBHOOK_HEADER}",
        )

    def genuine_webhook(self) -> tuple[bool, str]:
        before = {m.id for m in read_outbox(self.state_dir)}
        url = f"{self.info.control_url}/webhooks/{self.info.webhook_id}/deliver"
        response = httpx.post(url, json={}, timeout=_TIMEOUT)
        status = response.json().get("status")
        new = [m for m in read_outbox(self.state_dir) if m.id not in before]
        if status != 200 or len(new) != 1:
            return False, f"receiver answered {status}; {len(new)} new outbox event(s)"
        event = new[0]
        kind = event.attributes.get("event_type", "?")
        return True, (
            f"receiver answered 200; {kind} event {event.id[:12]} is in the outbox "
            f"({len(before) + 1} in total)"
        )

    def export(self) -> tuple[bool, str]:
        body = self._export_call()
        jsonl = self.state_dir / "audit" / "instantly-audit.jsonl"
        lines = _count_lines(jsonl)
        # A second demo against the same stack may find nothing new: the checkpoint holds.
        return lines > 0, (
            f"{body.get('exported')} new entries ({body.get('duplicates_skipped')} already "
            f"exported) -> {_shown(jsonl)} ({lines} lines)"
        )

    def rotate(self) -> tuple[bool, str]:
        old_key = self.store.access(STORE_EXPORTER, "current")
        old_id = RotationState.read(self.store.get(STORE_EXPORTER)).current_key_id
        url = self.info.functions["key_rotation"].url
        event_time = _now()
        message = {
            "message": {
                "attributes": {
                    "eventType": "SECRET_ROTATE",
                    "secretId": f"projects/local/secrets/{STORE_EXPORTER}",
                    "timestamp": event_time,
                },
                "messageId": secrets.token_hex(8),
                "publishTime": event_time,
            },
            "subscription": "projects/local/subscriptions/rotation",
        }
        headers = {
            "ce-specversion": "1.0",
            "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
            "ce-source": "//pubsub.googleapis.com/projects/local/topics/rotation",
            "ce-id": secrets.token_hex(8),
            "ce-time": event_time,
        }
        response = httpx.post(url, json=message, headers=headers, timeout=_TIMEOUT)
        if response.status_code >= 300:
            return False, f"rotation function answered {response.status_code}"
        new_id = RotationState.read(self.store.get(STORE_EXPORTER)).current_key_id
        new_key = self.store.access(STORE_EXPORTER, "current")
        old_status = self._probe(old_key)
        new_status = self._probe(new_key)
        ok = new_id != old_id and old_status == 401 and new_status == 200
        return ok, (
            f"{STORE_EXPORTER}: key {_short(old_id)} -> {_short(new_id)}; "
            f"old key now gets {old_status}, new key {new_status}"
        )

    def export_again(self) -> tuple[bool, str]:
        body = self._export_call()
        return True, (
            f"{body.get('exported')} new entries (the rotation's own key created/deleted events)"
        )

    def detections(self) -> tuple[bool, str]:
        """The export ran the detection rules on what it wrote: the seeded MFA attack is a
        finding, and the rotation's own key changes (labelled managed_rotation=true) are not."""
        audit = read_entries(self.state_dir / "audit" / "instantly-audit.jsonl", unique=True)
        rotation = {e["insertId"] for e in audit if e["labels"].get("managed_rotation") == "true"}
        findings = [e["jsonPayload"] for e in read_entries(findings_path(self.state_dir))]
        flagged = {i for f in findings for i in f.get("audit_entry_ids", ())}
        mfa = [f for f in findings if f.get("rule") == "audit.mfa-failures"]
        ok = bool(mfa) and bool(rotation) and not rotation & flagged
        attack = mfa[0]["message"] if mfa else "no audit.mfa-failures finding"
        return ok, (
            f"{len(findings)} findings, e.g. {attack}; {len(rotation)} rotation key changes "
            f"labelled managed_rotation=true, {len(rotation & flagged)} of them a finding "
            "(instantly-guard findings)"
        )

    def check(self) -> tuple[bool, str]:
        key = self.store.access(STORE_CHECK, "current")
        policy = Policy.load(Path(self.info.check_policy)) if self.info.check_policy else Policy()
        with self._client(key) as client:
            # With the store's key ids, the rotations this demo ran are not findings.
            report = run_check(client, policy, managed=read_managed_keys(self.store))
        failed_rules = {f.rule_id for f in report.failed}
        detail = (
            f"{summary(report)}; {len(failed_rules & WORKSPACE_RULE_IDS)} of "
            f"{len(WORKSPACE_RULE_IDS)} workspace rules found a seeded problem"
        )
        return bool(report.failed) and not any(f.skipped for f in report.findings), detail

    def reconcile(self) -> tuple[bool, str]:
        before = {m.id for m in read_outbox(self.state_dir)}
        control = f"{self.info.control_url}/webhooks/{self.info.webhook_id}"
        tag = secrets.token_hex(4)
        for i in range(3):  # Instantly delivers while the receiver is down: refused, logged
            payload = {
                "event_type": "reply_received",
                "timestamp": _now(),
                "workspace": "demo",
                "campaign_id": "demo",
                "campaign_name": "Demo",
                "lead_email": f"outage-{tag}-{i}@prospect.example",
            }
            body = {"payload": payload, "unreachable": True}
            httpx.post(f"{control}/deliver", json=body, timeout=_TIMEOUT)
        httpx.post(f"{control}/disable", json={}, timeout=_TIMEOUT)  # after repeated failures
        url = self.info.functions["reconcile"].url
        headers = {
            "X-CloudScheduler-JobName": "local-demo",
            "X-CloudScheduler-ScheduleTime": _now(),
        }
        response = httpx.post(url, headers=headers, timeout=_TIMEOUT)
        report: dict[str, Any] = response.json()
        if response.status_code != 200:
            return False, f"reconcile answered {response.status_code}: {json.dumps(report)[:300]}"
        after = list(read_outbox(self.state_dir))
        new = [m for m in after if m.id not in before]
        reconciled = {m.id for m in new if m.attributes.get("reconciled") == "true"}
        ids = [m.id for m in after]
        ok = (
            reconciled == set(report.get("missing_event_ids", ()))
            and len(reconciled) == len(new) == 3
            and len(ids) == len(set(ids))
            and report.get("resumed") == 1
        )
        return ok, (
            f"{report.get('checked')} deliveries checked, {report.get('missing')} missing, "
            f"{report.get('republished')} republished, {report.get('resumed')} webhook resumed; "
            f"{len(new)} new in the outbox, each once ({len(ids)} in total)"
        )

    def inventory(self) -> tuple[bool, str]:
        from instantly_sandbox.seed import HOOK_OUTSIDE_ALLOW_LIST, MEMBER_PENDING

        first = self._inventory_call()  # the baseline, or whatever changed since the last demo
        admin = self.store.access(STORE_ADMIN, "current")
        with httpx.Client(
            base_url=self.info.api_base,
            headers={"Authorization": f"Bearer {admin.reveal()}"},
            timeout=_TIMEOUT,
        ) as person:
            members = person.get("/workspace-members", params={"search": MEMBER_PENDING})
            member = members.raise_for_status().json()["items"][0]
            role = "editor" if member["role"] == "admin" else "admin"  # again: back and forth
            person.patch(
                f"/workspace-members/{member['id']}", json={"role": role}
            ).raise_for_status()
            hooks = person.get("/webhooks", params={"limit": 100}).raise_for_status().json()
            hook = next(h for h in hooks["items"] if h.get("name") == HOOK_OUTSIDE_ALLOW_LIST)
            target = f"https://collector-{secrets.token_hex(3)}.example/instantly"
            person.patch(
                f"/webhooks/{hook['id']}", json={"target_hook_url": target}
            ).raise_for_status()
        second = self._inventory_call()
        log = self.state_dir / "audit" / "instantly-audit.jsonl"
        entries = {
            entry["labels"]["change"]: entry
            for entry in read_entries(log, unique=True)
            if entry["labels"].get("source") == "inventory"
            and entry["jsonPayload"].get("observed_at")
            == second.get("observed_at", "").replace("+00:00", "Z")
        }
        recorded = {change: entry["jsonPayload"] for change, entry in entries.items()}
        promoted = recorded.get("member.role_changed", {})
        moved = recorded.get("webhook.target_changed", {})
        ok = (promoted.get("after") or {}).get("role") == role and (moved.get("after") or {}).get(
            "url"
        ) == target
        # The inventory ran the inventory.* rules on its entries: a promotion is a finding, the
        # demotion of the next demo is not.
        entry_id = entries.get("member.role_changed", {}).get("insertId")
        rules = [
            f["jsonPayload"].get("rule")
            for f in read_entries(findings_path(self.state_dir), unique=True)
            if entry_id in f["jsonPayload"].get("audit_entry_ids", ())
        ]
        ok = ok and rules == (["inventory.member-promoted"] if role == "admin" else [])
        return ok, (
            f"first run {first.get('outcome')}, then {json.dumps(second.get('changes'))}: "
            f"{MEMBER_PENDING} {(promoted.get('before') or {}).get('role')} -> {role}"
            f" ({'finding ' + ', '.join(rules) if rules else 'no finding'}), "
            f"{HOOK_OUTSIDE_ALLOW_LIST} -> {target} in {_shown(log)} "
            "(instantly-guard changes, instantly-guard findings)"
        )

    # -- helpers --------------------------------------------------------------------------------

    def verify(self) -> tuple[bool, str]:
        from instantly_guard.localstack.provision import backend_env
        from instantly_guard.verify.deployment import build_deployment
        from instantly_guard.verify.model import Report, Status
        from instantly_guard.verify.probes import run_probes

        env = backend_env(self.state_dir, self.info.api_base)
        url = self.info.functions["webhook"].url
        report = Report.of(run_probes(build_deployment(env, receiver_url=url)))
        bad = [r for r in report.results if r.status in {Status.FAIL, Status.ERROR}]
        detail = (
            f"{report.count(Status.PASS)} checks passed, {len(bad)} failed"
            f" ({len(report.results)} results; `instantly-guard verify` prints them)"
        )
        if bad:
            detail += f": {bad[0].probe} {bad[0].subject}: {bad[0].detail}"
        return report.exit_code == 0, detail

    def _inventory_call(self) -> dict[str, Any]:
        url = self.info.functions["inventory"].url
        response = httpx.post(url, timeout=_TIMEOUT)
        body: dict[str, Any] = response.json()
        if response.status_code != 200:
            raise ValueError(f"inventory answered {response.status_code}: {json.dumps(body)[:300]}")
        return body

    def _export_call(self) -> dict[str, Any]:
        url = self.info.functions["audit_export"].url
        headers = {
            "X-CloudScheduler-JobName": "local-demo",
            "X-CloudScheduler-ScheduleTime": _now(),
        }
        response = httpx.post(url, headers=headers, timeout=_TIMEOUT)
        body: dict[str, Any] = response.json()
        if response.status_code != 200:
            raise ValueError(f"export answered {response.status_code}: {json.dumps(body)[:300]}")
        return body

    def _client(self, key: Secret) -> InstantlyClient:
        return InstantlyClient(
            StaticKey(key), self.info.api_base, rate_limiter=RateLimiter(20, 1200), max_retries=1
        )

    def _probe(self, key: Secret) -> int:
        """200 when `key` can read the audit log, else the status Instantly answered."""
        with self._client(key) as client:
            try:
                next(client.iter_audit_log_pages(limit=1), None)
            except AuthenticationError as exc:
                return exc.status or 401
        return 200


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _short(value: str | None) -> str:
    return (value or "?")[:13] + "..." if value and len(value) > 13 else (value or "?")


def _count_lines(path: Path) -> int:
    try:
        with path.open("rb") as handle:
            return sum(1 for _ in handle)
    except OSError:
        return 0


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def run_demo(info: StackInfo, out: TextIO) -> bool:
    """Run every step against the stack `info` describes; True when all passed."""
    started = time.monotonic()
    out.write(
        f"instantly-guard demo against the local stack (sandbox {info.api_base}, "
        f"state {_shown(Path(info.state_dir))})\n\n"
    )
    steps = Demo(info, out).run()
    out.write(f"({time.monotonic() - started:.1f}s)\n")
    return all(step.ok for step in steps)
