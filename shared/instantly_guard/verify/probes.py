"""The probes `verify` runs: one small function each, listed once in `PROBES`.

A probe takes the `Deployment` and yields one `Result` per thing it looked at (a secret, a
webhook, the receiver). It never writes: the keys are exercised with a read their scopes allow
(`scopes.probe_operation`), scopes are compared with what Instantly lists for the key id the
rotation recorded, the receiver gets a forged delivery it must refuse, and Instantly's test
delivery (`POST /webhooks/{id}/test`) is sent with the headers Instantly already has.

To add a probe: write `def probe_x(d: Deployment) -> Iterator[Result]` here and add it to
`PROBES`. An error a probe lets escape is reported against the probe (`run_probes`), so one
failing part never hides the others.
"""

from __future__ import annotations

import json
import secrets as _random
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Final

from instantly_guard.audit.checkpoint.base import CheckpointStore
from instantly_guard.errors import (
    AuthenticationError,
    ConfigError,
    GuardError,
    InstantlyError,
    NotFoundError,
    ScopeError,
)
from instantly_guard.instantly.keys import StaticKey
from instantly_guard.rotation.admin import InstantlyApi, admin_client
from instantly_guard.rotation.model import (
    CURRENT,
    DEFAULT_WEBHOOK_HEADER,
    MANAGED_LABELS,
    Kind,
    ManagedConfig,
    RotationState,
)
from instantly_guard.scopes import FALLBACK_PROBE, PROBE_OPERATIONS, probe_operation
from instantly_guard.secrets.base import LATEST, SecretMetadata
from instantly_guard.terminal import safe
from instantly_guard.verify.deployment import Deployment
from instantly_guard.verify.model import Result, Status

Probe = Callable[[Deployment], Iterator[Result]]

_FAILED_RUNS: Final = frozenset({"failed", "abandoned", "interrupted"})
"""Run outcomes (audit `StopReason`, reconcile `Report.outcome`) that mean the run did not do
its work; every other one (complete, time_budget, a duplicate or busy delivery) is a success."""


def _managed(d: Deployment) -> Iterator[tuple[SecretMetadata, ManagedConfig | ConfigError]]:
    for meta in d.store.list_secrets(MANAGED_LABELS):
        try:
            yield meta, ManagedConfig.parse(meta)
        except ConfigError as exc:
            yield meta, exc


def _error(probe: str, subject: str, exc: GuardError) -> Result:
    """A part that could not be checked: ERROR when trying again may help, else FAIL."""
    retryable = bool(getattr(exc, "retryable", False))
    return Result(probe, subject, Status.ERROR if retryable else Status.FAIL, str(exc))


# -- the receiver ------------------------------------------------------------------------------


def probe_forged_delivery(d: Deployment) -> Iterator[Result]:
    """The receiver refuses a delivery with a wrong secret, and one with none, with 401."""
    name = "receiver.refuses-forged"
    headers = {c.webhook_header for _, c in _managed(d) if isinstance(c, ManagedConfig)}
    header = sorted(headers)[0] if headers else DEFAULT_WEBHOOK_HEADER
    body = json.dumps(
        {"event_type": "reply_received", "timestamp": "2026-01-01T00:00:00Z", "workspace": "x"}
    ).encode()
    forged = _random.token_urlsafe(32)  # never a real secret: 256 random bits
    for label, sent in (("wrong secret", {header: forged}), ("no secret", {})):
        status = d.post(d.receiver_url, body, {"content-type": "application/json", **sent})
        if status is None:
            yield Result(
                name, d.receiver_url, Status.ERROR, f"{label}: the receiver gave no answer"
            )
            continue
        if status == 401:
            yield Result(name, d.receiver_url, Status.PASS, f"{label}: refused with 401")
        elif 200 <= status < 300:
            yield Result(
                name,
                d.receiver_url,
                Status.FAIL,
                f"{label}: ACCEPTED with {status}: anyone can inject events",
                "check the receiver's INSTANTLY_WEBHOOK_SECRET_FILE and WEBHOOK_BASIC_* settings",
            )
        else:
            yield Result(
                name,
                d.receiver_url,
                Status.FAIL,
                f"{label}: answered {status}, not 401",
                "503: the receiver has no usable secret (its Secret Manager volume)",
            )


def probe_test_deliveries(d: Deployment) -> Iterator[Result]:
    """Each webhook recorded on a managed webhook secret targets the receiver, is enabled, and
    Instantly's test delivery (sent with the header Instantly stores) is accepted."""
    name = "webhooks.test-delivery"
    configs = [
        c for _, c in _managed(d) if isinstance(c, ManagedConfig) and c.kind is Kind.WEBHOOK_SECRET
    ]
    if not configs:
        yield Result(
            name, "-", Status.FAIL, "no managed webhook secret", "deploy the Terraform module"
        )
        return
    for config in configs:
        if not config.webhook_ids:
            yield Result(
                name,
                config.name,
                Status.FAIL,
                "no webhook is connected to this secret: Instantly sends nothing",
                f"instantly-guard webhooks connect --secret {config.name} --url "
                f"{d.receiver_url} --webhook-id ID (or --create NAME:EVENT_TYPE)",
            )
            continue
        try:
            client = admin_client(d.store, d.clients, config)
        except GuardError as exc:
            yield _error(name, config.name, exc)
            continue
        try:
            for webhook_id in config.webhook_ids:
                yield _test_one(d, client, name, webhook_id)
        finally:
            client.close()


def _test_one(d: Deployment, client: InstantlyApi, name: str, webhook_id: str) -> Result:
    subject = f"webhook {webhook_id}"
    try:
        hook = client.get_webhook(webhook_id)
    except NotFoundError:
        return Result(
            name,
            subject,
            Status.FAIL,
            "recorded on the secret but gone from Instantly",
            "connect a webhook again (webhooks connect)",
        )
    except GuardError as exc:
        return _error(name, subject, exc)
    subject = f"webhook {hook.name or webhook_id}"
    if hook.target_hook_url != d.receiver_url:
        return Result(
            name,
            subject,
            Status.FAIL,
            f"targets {hook.target_hook_url}, not the receiver",
            "instantly-guard webhooks connect --webhook-id " + webhook_id,
        )
    if hook.status == -1:
        return Result(
            name,
            subject,
            Status.FAIL,
            "disabled by Instantly after failed deliveries",
            "fix the receiver, then webhooks connect (it resumes the webhook)",
        )
    try:
        result = client.test_webhook(webhook_id)
    except GuardError as exc:
        return _error(name, subject, exc)
    status = result.status_code
    if status is not None and 200 <= status < 300 and result.success is not False:
        return Result(name, subject, Status.PASS, f"test delivery accepted ({status})")
    seen = f"HTTP {status}" if status is not None else "no answer"
    return Result(
        name,
        subject,
        Status.FAIL,
        f"the receiver refused Instantly's test delivery ({seen})",
        "instantly-guard webhooks connect (sets the current header); then check the receiver",
    )


# -- managed keys and secrets ------------------------------------------------------------------


def probe_keys(d: Deployment) -> Iterator[Result]:
    """Each managed API key's `current` key authenticates, and holds exactly its declared
    scopes (as Instantly lists the key id the rotation recorded)."""
    name = "keys.current-works"
    for meta, config in _managed(d):
        if isinstance(config, ConfigError):
            yield Result(name, meta.name, Status.FAIL, str(config), "fix the declaration")
            continue
        if config.kind is not Kind.API_KEY:
            continue
        yield from _check_key(d, name, meta, config)


def _check_key(
    d: Deployment, name: str, meta: SecretMetadata, config: ManagedConfig
) -> Iterator[Result]:
    state = RotationState.read(meta)
    alias = CURRENT if state.current else (LATEST if config.self_admin else None)
    if alias is None:
        yield Result(
            name,
            config.name,
            Status.FAIL,
            "no `current` key: its first rotation has not run (or failed)",
            f"instantly-guard rotate {config.name}; then look at the rotation function's logs",
        )
        return
    try:
        key = d.store.access(config.name, alias)
    except GuardError as exc:
        yield _error(name, config.name, exc)
        return
    operation = probe_operation(config.scopes)
    # A key whose scopes allow no cheap read is sent one it lacks the scope for: Instantly's
    # scope error proves it authenticated the key (as the rotation's key test does).
    expect_scope_error = operation == FALLBACK_PROBE
    if expect_scope_error:
        operation = PROBE_OPERATIONS[0]
    client = d.clients(StaticKey(key))
    try:
        client.probe(operation)
    except ScopeError as exc:
        if not expect_scope_error:
            yield Result(
                name,
                config.name,
                Status.FAIL,
                f"its key lacks a declared scope ({operation}: {exc})",
                f"instantly-guard rotate {config.name} (mints a key with the declared scopes)",
            )
            return
    except AuthenticationError:
        yield Result(
            name,
            config.name,
            Status.FAIL,
            f"Instantly rejects its {alias} key (revoked or deleted)",
            f"instantly-guard rotate {config.name} --revoke-now",
        )
        return
    except GuardError as exc:
        yield _error(name, config.name, exc)
        return
    finally:
        client.close()
    yield _compare_scopes(d, config, state.current_key_id if alias == CURRENT else None)


def _compare_scopes(d: Deployment, config: ManagedConfig, key_id: str | None) -> Result:
    name = "keys.exact-scopes"
    if key_id is None:
        return Result(
            name,
            config.name,
            Status.SKIP,
            "authenticates; scopes not compared: the key id is unknown until its first rotation",
        )
    try:
        admin = admin_client(d.store, d.clients, config)
    except GuardError as exc:
        return _error(name, config.name, exc)
    try:
        listed = next((k for k in admin.list_api_keys() if k.id == key_id), None)
    except InstantlyError as exc:
        return _error(name, config.name, exc)
    finally:
        admin.close()
    if listed is None:
        return Result(
            name,
            config.name,
            Status.FAIL,
            f"its key id {key_id} is not among Instantly's keys",
            f"instantly-guard rotate {config.name}",
        )
    held, declared = set(listed.scopes), set(config.scopes)
    if held != declared:
        extra = ", ".join(sorted(held - declared)) or "-"
        missing = ", ".join(sorted(declared - held)) or "-"
        return Result(
            name,
            config.name,
            Status.FAIL,
            f"holds scopes other than declared (extra: {extra}; missing: {missing})",
            f"instantly-guard rotate {config.name} --revoke-now",
        )
    return Result(
        name, config.name, Status.PASS, f"authenticates; holds exactly {', '.join(config.scopes)}"
    )


def probe_rotation_schedule(d: Deployment) -> Iterator[Result]:
    """Each managed secret has a rotation period and a topic to notify, its last rotation did
    not fail, and it is not overdue (last rotated within its period plus the slack)."""
    name = "secrets.rotation-schedule"
    now = d.now()
    for meta, config in _managed(d):
        if isinstance(config, ConfigError):
            continue  # reported by probe_keys
        schedule = meta.rotation
        if schedule is None or schedule.period is None:
            yield Result(
                name,
                meta.name,
                Status.FAIL,
                "no rotation schedule: it is never rotated",
                "declare it through the Terraform module (rotation_period)",
            )
            continue
        if not schedule.topics:
            yield Result(
                name,
                meta.name,
                Status.FAIL,
                "a rotation period but no topic: Secret Manager notifies nobody",
                "terraform apply (the module sets the rotation topic)",
            )
            continue
        state = RotationState.read(meta)
        if state.last_error:
            yield Result(
                name,
                meta.name,
                Status.FAIL,
                f"its last rotation failed: {state.last_error}",
                f"instantly-guard secrets show {meta.name}; instantly-guard rotate {meta.name}",
            )
            continue
        since = state.last_rotated or meta.create_time
        due = schedule.period + d.rotation_slack
        if since is not None and now - since > due:
            yield Result(
                name,
                meta.name,
                Status.FAIL,
                f"overdue: last rotated {_ago(now - since)} ago, period {_ago(schedule.period)}",
                "check the rotation function's logs and dead letters; instantly-guard rotate "
                + meta.name,
            )
            continue
        topics = ", ".join(t.rsplit("/", 1)[-1] for t in schedule.topics)
        yield Result(
            name,
            meta.name,
            Status.PASS,
            f"every {_ago(schedule.period)}, notifies {topics}; "
            + (f"last rotated {_ago(now - since)} ago" if since else "not rotated yet"),
        )


# -- scheduled runs ----------------------------------------------------------------------------


def probe_export_runs(d: Deployment) -> Iterator[Result]:
    """The audit export's last run succeeded within `export_max_age`."""
    yield _freshness("runs.audit-export", d.export_checkpoint, d.export_max_age, d.now())


def probe_reconcile_runs(d: Deployment) -> Iterator[Result]:
    """The reconciliation's last run succeeded within `reconcile_max_age`."""
    yield _freshness("runs.reconcile", d.reconcile_checkpoint, d.reconcile_max_age, d.now())


def _freshness(name: str, store: CheckpointStore, max_age: timedelta, now: datetime) -> Result:
    where = store.describe()
    try:
        state, _ = store.read()
    except GuardError as exc:
        return _error(name, where, exc)
    finished = [r for r in (state.runs if state else ()) if r.finished_at is not None]
    if not finished:
        return Result(
            name,
            where,
            Status.FAIL,
            "no finished run recorded",
            "check its Cloud Scheduler job (or run it once by hand)",
        )
    last = max(finished, key=lambda r: r.finished_at or now)
    age = now - (last.finished_at or now)
    if last.outcome in _FAILED_RUNS:
        return Result(
            name,
            where,
            Status.FAIL,
            f"its last run {last.outcome} ({_ago(age)} ago)",
            "read the function's logs for that run (error.kind says why)",
        )
    if age > max_age:
        return Result(
            name,
            where,
            Status.FAIL,
            f"its last run finished {_ago(age)} ago (expected within {_ago(max_age)})",
            "check its Cloud Scheduler job: paused, failing, or the function is not deployed",
        )
    return Result(name, where, Status.PASS, f"last run {last.outcome} {_ago(age)} ago")


# -- the audit trail ---------------------------------------------------------------------------


def probe_audit_chain(d: Deployment) -> Iterator[Result]:
    """The exported audit trail's digest chains (audit/integrity.py: the export's and the
    inventory's) recompute, every entry is sealed and each chain ends at its stored head."""
    name, where = "audit.chain", d.audit_log
    if d.audit_chain is None:
        yield Result(name, where, Status.SKIP, "not configured")
        return
    try:
        report = d.audit_chain()
    except GuardError as exc:
        result = _error(name, where, exc)
        yield replace(
            result,
            fix="the identity running verify needs roles/logging.viewer on the project "
            "(and storage.objectViewer on the checkpoints bucket) to read the trail",
        )
        return
    if not report.entries and not report.seals and not report.head and not report.altered:
        yield Result(name, where, Status.SKIP, "nothing exported yet")
        return
    writers = ", ".join(f"{w} {len(t)} tip" for w, t in sorted(report.writers.items()))
    if report.ok:
        missing = f"; {report.missing} sealed entries past retention" if report.missing else ""
        yield Result(
            name,
            where,
            Status.PASS,
            f"{report.entries} entries, all sealed by {report.seals} seals ({writers}){missing}",
        )
        return
    found: list[str] = []
    if report.unsealed:
        shown = ", ".join(safe(i) for i in report.unsealed[:5])
        more = f" and {len(report.unsealed) - 5} more" if len(report.unsealed) > 5 else ""
        found.append(
            f"{len(report.unsealed)} entries no export or inventory run sealed ({shown}{more})"
        )
    for label, items in (
        ("altered seals", report.altered),
        ("detached seals", report.detached),
        ("forks", report.forks),
    ):
        if items:
            found.append(f"{label}: {', '.join(safe(i) for i in items[:5])}")
    found += [safe(h) for h in report.head]
    yield Result(
        name,
        where,
        Status.FAIL,
        "; ".join(found),
        "another writer added to the audit log: find who holds roles/logging.logWriter on the "
        "project (the Logging API's Data Access audit logs name the writer), remove it, and "
        "keep the listed entries as evidence; instantly-guard export-audit --verify-chain "
        "shows the full report",
    )


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


PROBES: Final[tuple[tuple[str, Probe], ...]] = (
    ("receiver.refuses-forged", probe_forged_delivery),
    ("webhooks.test-delivery", probe_test_deliveries),
    ("keys.current-works", probe_keys),
    ("secrets.rotation-schedule", probe_rotation_schedule),
    ("runs.audit-export", probe_export_runs),
    ("runs.reconcile", probe_reconcile_runs),
    ("audit.chain", probe_audit_chain),
)


def run_probes(d: Deployment, probes: tuple[tuple[str, Probe], ...] = PROBES) -> list[Result]:
    """Every probe's results in order; an error a probe lets escape becomes its one result."""
    results: list[Result] = []
    for probe_name, probe in probes:
        try:
            results.extend(probe(d))
        except GuardError as exc:
            results.append(_error(probe_name, "-", exc))
    return results
