"""`Reconciler`: one run, from the checkpoint to republished events and back, page by page.

1. Claim the checkpoint (compare-and-swap): a Scheduler run that already finished is a
   duplicate; another run that showed it was working within the lease makes this one stand
   aside.
2. List the webhooks (`GET /webhooks`): ours are the ids the deployment manages (`webhook_ids`,
   and those `webhooks connect` recorded on the webhook secret, read again now: `recorded`);
   their target URLs are the ones read. Any other webhook aimed at one of those URLs is a
   foreign webhook: logged at ERROR (the alert), its deliveries never republished. No id at all
   is a ConfigError: the run would read nothing.
3. Settle the pending records whose retry grace is over (each fetched again by id).
4. For each URL, read only what is new since the checkpoint's position (`position`): oldest
   first after the head's cursor, or newest first from the top down to the head. Every record
   of a page is settled (`_settle`), then the position is written (compare-and-swap, which also
   renews the run's heartbeat). The time budget is checked between pages: a run cut short
   leaves a checkpoint the next run continues from.
5. Optionally resume our webhooks Instantly disabled (`resume`).

A record is settled as: a success; a failure Instantly will still retry (pending); a failure
whose retry group a newer attempt settles; or a missing event, which is republished unless it is
not ours (`attribution`), over the receiver's limits (`refused`, ERROR) or has no payload
(`unrecoverable`, ERROR). No single record can stop the run: only a publish that may succeed
later does, and that page is read again next run.

Publishing happens before the checkpoint write, so a crash in between publishes again next run:
the same event id, dropped by the outbox and by consumers.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from instantly_guard.audit.checkpoint.base import Checkpoint, CheckpointStore, RunRecord
from instantly_guard.errors import ConfigError, ConflictError, GuardError
from instantly_guard.publish.base import Publisher, PublishError
from instantly_guard.reconcile import checkpoint, position
from instantly_guard.reconcile.attribution import Targets, Verdict
from instantly_guard.reconcile.deliveries import Delivery, DeliveryLog, Page
from instantly_guard.reconcile.position import Descent, Mark, Pending, Positions, Stream
from instantly_guard.reconcile.report import RunReport
from instantly_guard.reconcile.republish import Message, message_for
from instantly_guard.reconcile.resume import ProbeResult, WebhookClient, probe_receiver
from instantly_guard.reconcile.resume import resume_disabled as resume_step
from instantly_guard.webhook.handler import MAX_MESSAGE_BYTES, message_size
from instantly_guard.webhook.payload import PayloadError, canonical_json, event_id

_log = logging.getLogger("instantly_guard.reconcile")
TOO_LARGE: Final = 413
TIME_BUDGET: Final = "time_budget"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Options:
    lookback: timedelta = timedelta(days=3)
    retry_grace: timedelta = timedelta(hours=1)
    day_margin: int = 1
    lease: timedelta = timedelta(minutes=15)
    publish_timeout: float = 10.0
    resume: bool = False
    time_budget: timedelta = timedelta(seconds=240)
    max_body_bytes: int = 256 * 1024


class _OutOfTimeError(Exception):
    """The time budget is spent: stop between pages (control flow only)."""


@dataclass(slots=True)
class _Run:
    """The checkpoint as this run holds it, and what it has learned so far."""

    state: Checkpoint
    generation: int
    record: RunRecord
    positions: Positions
    deadline: datetime
    report: RunReport
    base_total: int = 0  # records the checkpoint had settled before this run
    groups: dict[str, set[str]] = field(default_factory=dict)  # retry group -> pending ids
    # Successes of the page being settled (by retry group and by event id): a failure whose
    # event a retry on the same page delivered is `retried_ok`. One page only: a success on a
    # later page makes a republished copy that consumers drop by event id.
    delivered: set[str] = field(default_factory=set)
    republished: set[str] = field(default_factory=set)  # event ids of this page

    def index(self, page: Page) -> None:
        self.republished = set()
        self.delivered = {
            key
            for record in page.records
            if record.success
            for key in (record.retry_group_id, _payload_event_id(record))
            if key
        }

    def pend(self, record_id: str, pending: Pending) -> None:
        self.positions = replace(
            self.positions, pending={**self.positions.pending, record_id: pending}
        )
        if pending.group:
            self.groups.setdefault(pending.group, set()).add(record_id)

    def unpend(self, record_id: str) -> Pending | None:
        found = self.positions.pending.get(record_id)
        if found is not None:
            rest = {k: v for k, v in self.positions.pending.items() if k != record_id}
            self.positions = replace(self.positions, pending=rest)
            if found.group:
                self.groups.get(found.group, set()).discard(record_id)
        return found


def _payload_event_id(record: Delivery) -> str | None:
    if record.payload is None:
        return None
    try:
        return event_id(canonical_json(record.payload))
    except (TypeError, ValueError, RecursionError):
        return None


def _direction(positions: list[position.Position], head: Mark | None) -> str | None:
    """The order a page shows: `desc` when listing after our head's id gave lower ids (the
    cursor is an id), else what its timestamps say; None when they say nothing (one item,
    ties, or both ways)."""
    if head is not None and positions and all(p[1] <= head.id for p in positions):
        return "desc"
    ups = sum(1 for a, b in itertools.pairwise(positions) if b > a)
    downs = sum(1 for a, b in itertools.pairwise(positions) if b < a)
    if ups and not downs:
        return "asc"
    if downs and not ups:
        return "desc"
    return None


class Reconciler:
    def __init__(
        self,
        log: DeliveryLog,
        publisher: Publisher,
        store: CheckpointStore,
        options: Options,
        *,
        webhooks: WebhookClient,
        webhook_ids: Iterable[str] = (),
        recorded: Callable[[], Iterable[str]] | None = None,
        urls: Iterable[str] = (),
        probe: Callable[[str], ProbeResult] = probe_receiver,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._log, self._publisher, self._store = log, publisher, store
        self._options = options
        self._webhooks = webhooks
        self._ids = tuple(dict.fromkeys(webhook_ids))
        self._recorded = recorded
        self._urls = tuple(dict.fromkeys(urls))
        self._probe = probe
        self._clock = clock
        self._webhook_requests = 0

    # -- one run ------------------------------------------------------------------------------

    def run(self, run_key: str | None = None) -> RunReport:
        """One run. Never raises a GuardError: it is in `report.error` (outcome `failed`)."""
        now = self._clock()
        key = run_key or f"manual@{now.isoformat()}"
        report = RunReport(run_key=key, started_at=now)
        requests_before = self._log.requests
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
        run = _Run(
            held.state,
            held.generation,
            held.record,
            Positions.from_extra(held.state.extra),
            now + self._options.time_budget,
            report,
            held.state.exported_total,
        )
        for record_id, pending in run.positions.pending.items():
            if pending.group:
                run.groups.setdefault(pending.group, set()).add(record_id)
        try:
            self._reconcile(run, report)
        except _OutOfTimeError:
            report.outcome = TIME_BUDGET
        except ConflictError:
            report.outcome = "lost_race"
        except GuardError as exc:
            report.outcome, report.error = "failed", exc
        finally:
            report.requests = self._log.requests - requests_before + self._webhook_requests
            self._webhook_requests = 0
        if report.outcome != "lost_race":
            self._close(run, report)
        return report

    def _close(self, run: _Run, report: RunReport) -> None:
        now = self._clock()
        finished = replace(run.record, finished_at=now, outcome=report.outcome, heartbeat_at=now)
        try:
            self._store.write(self._state(run, now).with_run(finished, now), run.generation)
        except ConflictError:
            if report.error is None:
                report.outcome = "lost_race"
        except GuardError as exc:
            if report.error is None:
                report.outcome, report.error = "failed", exc

    def _state(self, run: _Run, now: datetime) -> Checkpoint:
        heads = [s.head.at for s in run.positions.streams.values() if s.head is not None]
        extra = {**run.state.extra, position.KEY: run.positions.to_json()}
        watermark = max([run.state.watermark, *heads])
        total = run.base_total + run.report.settled
        return replace(
            run.state, extra=extra, watermark=watermark, updated_at=now, exported_total=total
        )

    def _save(self, run: _Run, *, budget: bool = True) -> None:
        """Write the position and renew the heartbeat (compare-and-swap; ConflictError ends the
        run as `lost_race`), then stop if the time budget is spent."""
        now = self._clock()
        run.record = replace(run.record, heartbeat_at=now)
        state = self._state(run, now).with_run(run.record, now)
        run.generation = self._store.write(state, run.generation)
        run.state = state
        if budget and now >= run.deadline:
            raise _OutOfTimeError

    def _reconcile(self, run: _Run, report: RunReport) -> None:
        targets = self._targets(report)
        self._settle_pending(run, targets, report)
        for url in targets.urls:
            if self._urls and url not in self._urls:
                continue
            self._read(run, url, targets, report)
        if self._options.resume:
            self._resume(targets, report)

    # -- webhooks -----------------------------------------------------------------------------

    def _our_ids(self) -> tuple[str, ...]:
        """The configured ids and the webhook secret's recorded list as it is now (read at
        every run: `webhooks connect` may have added one since the last)."""
        recorded = tuple(self._recorded()) if self._recorded is not None else ()
        ids = tuple(dict.fromkeys([*recorded, *self._ids]))
        if not ids:
            raise ConfigError(
                "no webhook is ours: the webhook secret records none and RECONCILE_WEBHOOK_IDS "
                "is empty; run `instantly-guard webhooks connect` (docs/deploy.md)"
            )
        return ids

    def _targets(self, report: RunReport) -> Targets:
        ids = self._our_ids()
        hooks = list(self._counted(self._webhooks.list_webhooks()))
        targets = Targets.of(hooks, ids)
        for hook in targets.foreign_hooks():
            report.foreign_webhooks += 1
            # The URL is not logged (it may carry a token); the id and subscription are enough.
            _log.error(
                "webhook %s is not one of ours but delivers to our receiver (event %s, "
                "campaign %s): its deliveries are never republished; find who created it "
                "(audit log) and delete it",
                hook.id,
                hook.event_type or "custom",
                hook.campaign or "any",
                extra={
                    "fields": {
                        "action": "foreign_webhook",
                        "webhook_id": hook.id,
                        "event_type": hook.event_type,
                    }
                },
            )
        report.unknown_webhooks = len(targets.unknown_ids)
        if targets.unknown_ids:
            _log.warning(
                "%d of our %d webhook ids (the webhook secret's list, RECONCILE_WEBHOOK_IDS) "
                "are no Instantly webhook (deleted?): their failed deliveries cannot be found",
                len(targets.unknown_ids),
                len(ids),
                extra={
                    "fields": {"action": "unknown_webhooks", "webhook_ids": targets.unknown_ids}
                },
            )
        unmatched = [url for url in self._urls if url not in targets.ours]
        report.unmatched_urls = len(unmatched)
        if unmatched:
            _log.warning(
                "%d of %d RECONCILE_WEBHOOK_URLS are the target of none of our webhooks "
                "(exact match, a trailing slash counts): nothing is read for them",
                len(unmatched),
                len(self._urls),
                extra={"fields": {"action": "unmatched_urls", "unmatched": len(unmatched)}},
            )
        return targets

    def _counted(self, pages: Iterable[Any]) -> Iterator[Any]:
        # `list_webhooks` pages by 100: count one request per 100 and the one that ends it.
        count = 0
        for count, item in enumerate(pages, start=1):  # noqa: B007 (counted after the loop)
            yield item
        self._webhook_requests += count // 100 + 1

    def _resume(self, targets: Targets, report: RunReport) -> None:
        ours = [hook for hooks in targets.ours.values() for hook in hooks]
        for action in resume_step(self._webhooks, ours, probe=self._probe):
            if action.resumed:
                report.resumed += 1
            else:
                report.resume_skipped += 1

    # -- reading ------------------------------------------------------------------------------

    def _since(self, at: datetime) -> Any:
        return (at - timedelta(days=self._options.day_margin)).date()

    def _read(self, run: _Run, url: str, targets: Targets, report: RunReport) -> None:
        stream = run.positions.stream(url)
        if stream.descent is not None:
            self._descend(run, url, targets, report, stream.descent)
            stream = run.positions.stream(url)
        if stream.order == "desc":
            self._descend(run, url, targets, report, None)
        else:
            self._ascend(run, url, targets, report)

    def _ascend(self, run: _Run, url: str, targets: Targets, report: RunReport) -> None:
        stream = run.positions.stream(url)
        head, floor = stream.head, self._floor(run)
        pages = self._log.pages(
            url, since=self._since(head.at if head else floor), after=head.id if head else None
        )
        for page in pages:
            direction = _direction(page.positions, head)
            if direction == "desc":
                # Newest first after all: from the top down to our head (or the floor).
                self._set(run, url, replace(stream, order="desc"))
                self._descend(run, url, targets, report, None, first=page if not head else None)
                return
            if stream.order is None and direction == "asc":
                stream = replace(stream, order="asc")
            run.index(page)
            for record in page.records:
                if head is None and record.at < floor:
                    continue
                if head is not None and record.id <= head.id:
                    continue
                try:
                    self._settle(run, url, record, targets, report)
                except PublishError:
                    before = _before(page, record)
                    if before is not None:  # keep what this page settled before the failure
                        self._set(run, url, replace(stream, head=Mark(before[1], before[0])))
                        self._save(run, budget=False)
                    raise
            if page.last is not None and (head is None or page.last[1] > head.id):
                head = Mark(page.last[1], page.last[0])
            stream = replace(stream, head=head)
            self._set(run, url, stream)
            self._save(run)

    def _descend(
        self,
        run: _Run,
        url: str,
        targets: Targets,
        report: RunReport,
        descent: Descent | None,
        *,
        first: Page | None = None,
    ) -> None:
        """A newest-first pass from the top (or from `descent`'s cursor) down to the head."""
        stream = run.positions.stream(url)
        floor = self._floor(run)
        if descent is None:
            bottom = stream.head.at if stream.head else floor
            pages: Iterable[Page] = ()
            if first is None:
                pages = self._log.pages(url, since=self._since(bottom), after=None)
        else:
            bottom = descent.stop.at if descent.stop else descent.floor
            pages = self._log.pages(url, since=self._since(bottom), after=descent.cursor.id)
        if first is not None and first.last is not None:
            after = first.last[1]
            pages = _prepend(first, self._log.pages(url, since=self._since(bottom), after=after))
        for page in pages:
            if descent is None:
                top = Mark(page.positions[0][1], page.positions[0][0])
                descent = Descent(top, top, stream.head, floor)
            done = False
            run.index(page)
            for record in page.records:
                if descent.reached(record.position):
                    done = True
                    break
                try:
                    self._settle(run, url, record, targets, report)
                except PublishError:
                    before = _before(page, record)
                    if before is not None:  # keep what this page settled before the failure
                        kept = replace(descent, cursor=Mark(before[1], before[0]))
                        self._set(run, url, Stream("desc", stream.head, kept))
                        self._save(run, budget=False)
                    raise
            if page.last is None or descent.reached(page.last) or done:
                break
            descent = replace(descent, cursor=Mark(page.last[1], page.last[0]))
            self._set(run, url, Stream("desc", stream.head, descent))
            self._save(run)
        if descent is None:
            return  # nothing listed at all
        self._set(run, url, Stream("desc", max_mark(stream.head, descent.top), None))
        self._save(run)

    def _floor(self, run: _Run) -> datetime:
        """Where a URL read for the first time starts: the look-back, never before the
        checkpoint's own start (a URL added later does not read weeks of old records)."""
        return max(run.state.floor, run.report.started_at - self._options.lookback)

    @staticmethod
    def _set(run: _Run, url: str, stream: Stream) -> None:
        run.positions = run.positions.with_stream(url, stream)

    # -- settling -----------------------------------------------------------------------------

    def _settle_pending(self, run: _Run, targets: Targets, report: RunReport) -> None:
        """Pending records whose grace is over, each read again by id: a retry may have
        delivered it (in place), or it is a missing event now."""
        now = report.started_at
        due = [
            (i, p)
            for i, p in run.positions.pending.items()
            if now - p.at >= self._options.retry_grace
        ]
        for done, (record_id, pending) in enumerate(due, start=1):
            record = self._log.fetch(record_id)
            run.unpend(record_id)
            report.settled += 1
            if record is None:
                report.missing += 1
                report.unrecoverable += 1
                _log.error(
                    "pending delivery %s is gone from Instantly's log: its event is lost",
                    record_id,
                    extra={"fields": {"delivery_id": record_id, "action": "unrecoverable"}},
                )
            elif record.success:
                report.retried_ok += 1
            else:
                self._missing(record, pending.url, targets, report, set())
            if done % 100 == 0:
                self._save(run)
        if due:
            self._save(run)

    def _settle(
        self, run: _Run, url: str, record: Delivery, targets: Targets, report: RunReport
    ) -> None:
        report.checked += 1
        if record.retry_group_id:
            # A newer attempt of a retry group decides for the older ones still pending.
            for older in list(run.groups.get(record.retry_group_id, ())):
                if older != record.id and run.unpend(older) is not None:
                    report.settled += 1
                    if record.success:
                        report.retried_ok += 1
        run.unpend(record.id)
        if record.success:
            report.settled += 1
            return
        report.failed += 1
        if record.will_retry and report.started_at - record.at < self._options.retry_grace:
            run.pend(record.id, Pending(url, record.at, record.retry_group_id))
            report.pending += 1
            return
        report.settled += 1
        if record.retry_group_id in run.delivered or _payload_event_id(record) in run.delivered:
            report.retried_ok += 1
            return
        self._missing(record, url, targets, report, run.republished)

    def _missing(
        self, record: Delivery, url: str, targets: Targets, report: RunReport, done: set[str]
    ) -> None:
        payload = self._log.payload_of(record)
        fields: dict[str, Any] = {"delivery_id": record.id, "status_code": record.status_code}
        if payload is None:
            report.missing += 1
            report.unrecoverable += 1
            _log.error(
                "delivery %s failed and Instantly's log holds no payload: the event is lost",
                record.id,
                extra={"fields": {**fields, "action": "unrecoverable"}},
            )
            return
        verdict = targets.attribute(url, payload, record.status_code)
        if verdict is Verdict.FOREIGN:
            report.foreign += 1
            _log.warning(
                "delivery %s is no delivery of our webhooks (its event type or campaign is none "
                "they subscribe to): not republished",
                record.id,
                extra={"fields": {**fields, "action": "foreign_delivery"}},
            )
            return
        if verdict is Verdict.UNATTRIBUTED:
            report.unattributed += 1
            _log.error(
                "delivery %s was refused for authentication and a foreign webhook to the same "
                "receiver subscribes to its event: it cannot be told from a forged one, not "
                "republished",
                record.id,
                extra={"fields": {**fields, "action": "unattributed"}},
            )
            return
        message = self._message(record, payload, verdict, report)
        if message is not None and message.event_id in done:
            return  # another failed attempt of an event this page already republished
        report.missing += 1
        if message is None:
            return
        done.add(message.event_id)
        try:
            self._publisher.publish(message.data, message.attributes, self._options.publish_timeout)
        except PublishError as exc:
            if exc.retryable:
                raise  # the page is read again next run
            self._refuse(record, report, f"Pub/Sub refused it for good ({exc})")
            return
        report.republished += 1
        if len(report.missing_ids) < 100:
            report.missing_ids.append(message.event_id)
        _log.info(
            "republished event %s from failed delivery %s",
            message.event_id,
            record.id,
            extra={
                "fields": {
                    **fields,
                    "event_id": message.event_id,
                    "event_type": message.attributes.get("event_type"),
                    "action": "republished",
                }
            },
        )

    def _message(
        self, record: Delivery, payload: dict[str, Any], verdict: Verdict, report: RunReport
    ) -> Message | None:
        """The receiver's message for `payload`, or None (logged) when the receiver's limits
        would refuse it: a 413 it gave, a body over its size limit, an invalid event, a
        message over Pub/Sub's limit."""
        if record.status_code == TOO_LARGE:
            return self._refuse(record, report, "the receiver refused it as too large (413)")
        try:
            size = len(json.dumps(payload, allow_nan=False, separators=(",", ":")).encode())
        except (TypeError, ValueError, RecursionError):
            size = 0  # message_for names the problem
        if size > self._options.max_body_bytes:
            limit = self._options.max_body_bytes
            return self._refuse(record, report, f"its body ({size} bytes) is over {limit} bytes")
        extra = {"auth_refused": "true"} if verdict is Verdict.OURS_AUTH_REFUSED else {}
        try:
            message = message_for(payload, record.id, self._clock(), extra)
        except (PayloadError, RecursionError) as exc:
            return self._refuse(record, report, f"it is not a valid event ({exc})")
        encoded = message_size(message.data, message.attributes)
        if encoded > MAX_MESSAGE_BYTES:
            return self._refuse(record, report, f"its message ({encoded} bytes) is over Pub/Sub's")
        if verdict is Verdict.OURS_AUTH_REFUSED:
            _log.warning(
                "delivery %s of our webhook was refused for authentication (secret out of "
                "step?): republished with auth_refused=true",
                record.id,
                extra={"fields": {"delivery_id": record.id, "action": "auth_refused"}},
            )
        return message

    @staticmethod
    def _refuse(record: Delivery, report: RunReport, why: str) -> None:
        report.refused += 1
        _log.error(
            "delivery %s failed and is over the receiver's limits: %s; settled as refused, "
            "not republished",
            record.id,
            why,
            extra={
                "fields": {
                    "delivery_id": record.id,
                    "status_code": record.status_code,
                    "action": "refused",
                }
            },
        )


def _before(page: Page, record: Delivery) -> position.Position | None:
    """The position listed just before `record` on `page` (a cursor that resumes at it)."""
    index = page.positions.index(record.position)
    return page.positions[index - 1] if index else None


def _prepend(first: Page, rest: Iterable[Page]) -> Iterator[Page]:
    yield first
    yield from rest


def max_mark(a: Mark | None, b: Mark) -> Mark:
    """The later of two marks in the listing's order (by id, the cursor)."""
    return b if a is None or b.id >= a.id else a
