"""The short guide `make run` prints once the stack is ready: URLs, what to try, where it lands."""

from __future__ import annotations

from pathlib import Path

from instantly_guard.localstack.provision import (
    STORE_CHECK,
    STORE_EXPORTER,
    WEBHOOK_HEADER,
)
from instantly_guard.localstack.state import StackInfo

READY_LINE = "instantly-guard local stack is ready"


def render(info: StackInfo, notes: list[str] | None = None) -> str:
    state = Path(info.state_dir)
    webhook = info.functions["webhook"].url
    export = info.functions["audit_export"].url
    rotation = info.functions["key_rotation"].url
    here = _shown(state)
    env = f"GUARD_BACKEND=local GUARD_STATE_DIR={here} INSTANTLY_API_BASE={info.api_base}"
    lines = [
        f"{READY_LINE} (state in {here}/, logs in {here}/logs/)",
        *[f"  note: {note}" for note in notes or []],
        "",
        f"  Instantly sandbox   {info.api_base}   (control API {info.control_url})",
        f"  webhook receiver    {webhook}   <- the sandbox webhook {info.webhook_id} points here",
        f"  audit export        {export}",
        f"  key rotation        {rotation}   (Pub/Sub push or CloudEvents)",
        f"  reconcile           {info.functions['reconcile'].url}",
        f"  inventory           {info.functions['inventory'].url}",
        "",
        "Send a genuine event (the sandbox delivers it with the webhook's secret header):",
        f"  curl -s -X POST {info.control_url}/webhooks/{info.webhook_id}/deliver -d '{{}}'",
        "A forged one (no secret) is refused with 401:",
        f"  curl -si -X POST {webhook} -H 'Content-Type: application/json' \\",
        '       -d \'{"event_type":"reply_received","timestamp":"2025-01-01T00:00:00Z"}\'',
        f"  -> accepted events: .venv/bin/instantly-guard outbox --state-dir {here}",
        "",
        "Export the audit log now (what Cloud Scheduler does; the check runs too, AUDIT_RUN_CHECK):",
        f"  curl -s -X POST {export} -H 'X-CloudScheduler-JobName: local' \\",
        '       -H "X-CloudScheduler-ScheduleTime: $(date -u +%FT%TZ)"',
        f"  -> entries: {here}/audit/instantly-audit.jsonl   checkpoint: {here}/audit/checkpoint.json",
        f"     check findings: WARNING lines in {here}/logs/audit_export.log",
        "",
        "Rotate the audit export key (grace 0s here: the old key is revoked at once):",
        f"  {env} \\",
        f"    .venv/bin/instantly-guard rotate {STORE_EXPORTER} --revoke-now",
        "  or the way Secret Manager triggers it, a Pub/Sub CloudEvent to the function:",
        f"  curl -s -X POST {rotation} -H 'Content-Type: application/json' \\",
        "       -H 'ce-specversion: 1.0' -H 'ce-type: google.cloud.pubsub.topic.v1.messagePublished' \\",
        "       -H 'ce-source: //pubsub.googleapis.com/projects/local/topics/rotation' -H \"ce-id: $RANDOM\" \\",
        '       -d \'{"message":{"attributes":{"eventType":"SECRET_ROTATE","secretId":'
        f'"projects/local/secrets/{STORE_EXPORTER}","timestamp":"\'$(date -u +%FT%TZ)\'"}}}}}}\'',
        f"  -> secrets: {env} .venv/bin/instantly-guard secrets list",
        f"     (webhook header {WEBHOOK_HEADER}; secret values live in {here}/secrets/, mode 0600)",
        "",
        "Reconcile missed deliveries (Instantly's delivery log -> the outbox; resumes a disabled",
        "webhook once the receiver answers its probe):",
        f"  curl -s -X POST {info.functions['reconcile'].url} -H 'X-CloudScheduler-JobName: local' \\",
        '       -H "X-CloudScheduler-ScheduleTime: $(date -u +%FT%TZ)"',
        "",
        "Record member, key, webhook and block-list changes (the first run writes a baseline):",
        f"  curl -s -X POST {info.functions['inventory'].url}",
        f"  -> changes: .venv/bin/instantly-guard changes --state-dir {here}",
        "",
        "Check the workspace and this repository (read-only key: the store's current version):",
        f"  {env} \\",
        f"    .venv/bin/instantly-guard check --key-secret {STORE_CHECK} "
        f"--policy {_shown(Path(info.check_policy))}",
        "  -> exit 1: the demo workspace is seeded with a problem for every rule; the command",
        "     survives rotations, and the store tells the check which key changes were rotations",
        "Prove the stack as a deployment is proven (exit 1 until an export and a reconcile ran):",
        f"  {env} .venv/bin/instantly-guard verify",
        "Or the whole walkthrough: make demo",
        "",
        "Ctrl-C stops everything.",
    ]
    return "\n".join(lines) + "\n"


def _shown(path: Path) -> str:
    """`path` relative to the current directory when it is below it (shorter commands)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
