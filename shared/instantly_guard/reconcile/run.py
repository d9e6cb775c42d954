"""`Reconciler`: one run, from the checkpoint to republished events and back.

1. Claim the checkpoint (compare-and-swap): a Scheduler run that already finished is a
   duplicate; another unfinished run within the lease makes this one stand aside.
2. Read the delivery log of our webhook URLs from the day of the checkpoint's floor, minus
   `day_margin` days (the API's day boundaries are undocumented), to now.
3. Index the successes: an event is delivered when any record of it succeeded, recognised by
   `retry_group_id` or by the event id of its payload.
4. For every record not yet settled, oldest first: a success settles; a failure Instantly will
   retry (`will_retry`, younger than `retry_grace`) stays pending; a failure whose event was
   delivered settles as `retried_ok`; any other failure is a missing event: its payload (fetched
   by id if the listing has none) is published with the receiver's event id, then it settles.
5. Write the checkpoint past the settled records and close the run (one compare-and-swap).
6. Optionally resume our webhooks Instantly disabled (see `resume`).

Publishing happens before the checkpoint write, so a crash in between publishes again next run:
the same event id, dropped by the outbox and by consumers. A run that loses the final write to
another run (`lost_race`) changes nothing that the other run would not redo the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from instantly_guard.audit.checkpoint.base import CheckpointStore
from instantly_guard.errors import ConflictError, GuardError
from instantly_guard.publish.base import Publisher
from instantly_guard.reconcile import checkpoint
from instantly_guard.reconcile.deliveries import Delivery, DeliveryLog
from instantly_guard.reconcile.report import RunReport
from instantly_guard.reconcile.republish import message_for
from instantly_guard.reconcile.resume import ProbeResult, WebhookClient, probe_receiver
from instantly_guard.reconcile.resume import resume_disabled as resume_step
from instantly_guard.webhook.payload import PayloadError, canonical_json, event_id

_log = logging.getLogger("instantly_guard.reconcile")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Options:
    lookback: timedelta = timedelta(days=3)
    overlap: timedelta = timedelta(hours=6)
    retry_grace: timedelta = timedelta(hours=1)
    day_margin: int = 1
    lease: timedelta = timedelta(minutes=15)
    publish_timeout: float = 10.0
    resume: bool = False


def _payload_event_id(delivery: Delivery) -> str | None:
    if delivery.payload is None:
        return None
    try:
        return event_id(canonical_json(delivery.payload))
    except (TypeError, ValueError):
        return None


class Reconciler:
    def __init__(
        self,
        log: DeliveryLog,
        publisher: Publisher,
        store: CheckpointStore,
        options: Options,
        *,
        webhooks: WebhookClient | None = None,
        probe: Callable[[str], ProbeResult] = probe_receiver,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._log, self._publisher, self._store = log, publisher, store
        self._options = options
        self._webhooks = webhooks
        self._probe = probe
        self._clock = clock

    def run(self, run_key: str | None = None) -> RunReport:
        """One run. Never raises a GuardError: it is in `report.error` (outcome `failed`)."""
        now = self._clock()
        key = run_key or f"manual@{now.isoformat()}"
        report = RunReport(run_key=key, started_at=now)
        try:
            held = checkpoint.claim(
                self._store,
                now=now,
                start=now - self._options.lookback,
                run_key=key,
                lease=self._options.lease,
            )
        except ConflictError:
            report.outcome = checkpoint.Outcome.BUSY
            return report
        except GuardError as exc:
            report.outcome, report.error = "failed", exc
            return report
        if isinstance(held, str):
            report.outcome = held
            return report
        settled: list[tuple[datetime, str]] = []
        try:
            self._reconcile(held, report, settled)
            if self._options.resume and self._webhooks is not None:
                self._resume(report)
        except GuardError as exc:
            report.outcome, report.error = "failed", exc
        finally:
            report.requests = self._log.requests
        try:
            checkpoint.settle(
                self._store,
                held,
                settled,
                now=self._clock(),
                overlap=self._options.overlap,
                outcome=report.outcome,
            )
        except ConflictError:
            if report.error is None:
                report.outcome = "lost_race"
        except GuardError as exc:
            if report.error is None:
                report.outcome, report.error = "failed", exc
        return report

    def _reconcile(
        self, held: checkpoint.Claim, report: RunReport, settled: list[tuple[datetime, str]]
    ) -> None:
        state, options = held.state, self._options
        self._check_urls(report)
        since = (state.floor - timedelta(days=options.day_margin)).date()
        records = self._log.read(since)
        report.checked = len(records)
        delivered_groups = {r.retry_group_id for r in records if r.success and r.retry_group_id}
        delivered_events = {i for r in records if r.success and (i := _payload_event_id(r))}
        handled: set[str] = set()
        for record in records:
            if not state.is_new(*record.position):
                continue
            if record.success:
                settled.append(record.position)
                continue
            report.failed += 1
            if record.will_retry and report.started_at - record.at < options.retry_grace:
                report.pending += 1
                continue
            if record.retry_group_id in delivered_groups or (
                _payload_event_id(record) in delivered_events
            ):
                report.retried_ok += 1
                settled.append(record.position)
                continue
            self._republish(record, report, handled)
            settled.append(record.position)

    def _check_urls(self, report: RunReport) -> None:
        """Warn when a configured URL is no webhook's target: its records (searched by exact
        URL) would never be found, and the run would look clean. `GET /webhooks` needs no
        scope."""
        if self._webhooks is None:
            return
        targets = {hook.target_hook_url for hook in self._webhooks.list_webhooks()}
        unmatched = [url for url in self._log.urls if url not in targets]
        report.unmatched_urls = len(unmatched)
        if unmatched:
            _log.warning(
                "%d of %d RECONCILE_WEBHOOK_URLS match no Instantly webhook's target_hook_url "
                "exactly (a trailing slash counts): their failed deliveries cannot be found",
                len(unmatched),
                len(self._log.urls),
                extra={"fields": {"action": "unmatched_urls", "unmatched": len(unmatched)}},
            )

    def _republish(self, record: Delivery, report: RunReport, handled: set[str]) -> None:
        payload = self._log.payload_of(record)
        if payload is None:
            report.missing += 1
            report.unrecoverable += 1
            _log.error(
                "delivery %s failed and Instantly's log holds no payload: the event is lost",
                record.id,
                extra={"fields": {"delivery_id": record.id, "action": "unrecoverable"}},
            )
            return
        try:
            message = message_for(payload, record.id, self._clock())
        except PayloadError as exc:
            report.missing += 1
            report.invalid += 1
            _log.warning(
                "delivery %s failed and its payload is not a valid event (%s): not republished",
                record.id,
                exc,
                extra={"fields": {"delivery_id": record.id, "action": "invalid"}},
            )
            return
        if message.event_id in handled:
            return  # another failed attempt of the same event, in this run
        handled.add(message.event_id)
        report.missing += 1
        # A PublishError propagates: the record stays unsettled and the next run tries again.
        self._publisher.publish(message.data, message.attributes, self._options.publish_timeout)
        report.republished += 1
        report.missing_ids.append(message.event_id)
        _log.info(
            "republished event %s from failed delivery %s",
            message.event_id,
            record.id,
            extra={
                "fields": {
                    "event_id": message.event_id,
                    "delivery_id": record.id,
                    "event_type": message.attributes.get("event_type"),
                    "action": "republished",
                }
            },
        )

    def _resume(self, report: RunReport) -> None:
        assert self._webhooks is not None  # noqa: S101 (checked by the caller)
        for action in resume_step(self._webhooks, self._log.urls, probe=self._probe):
            if action.resumed:
                report.resumed += 1
            else:
                report.resume_skipped += 1
