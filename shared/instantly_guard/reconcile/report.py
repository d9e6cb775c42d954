"""`RunReport`: what one reconciliation run did, logged as one line and answered as JSON.

Counters (every run, also when it stopped early):

    checked        new delivery records of our webhook URLs read
    settled        records newly settled (the checkpoint moves past them)
    failed         new failed records (one event may fail several times)
    pending        failed records Instantly will still retry: looked at again next run
    retried_ok     failed records whose event a later attempt delivered
    missing        distinct events whose every delivery failed (what the alert counts)
    republished    of those, published now (a copy the outbox or a consumer drops by event id
                   when the receiver did get it after all)
    unrecoverable  missing events without a payload in the log: lost, logged at ERROR
    refused        missing events over the receiver's limits (a 413 it gave, the body size, not a
                   valid event, over Pub/Sub's message limit): settled, logged at ERROR
    foreign        failed records no webhook of ours would have received (event type, campaign):
                   not ours, never republished
    unattributed   failed records refused for authentication that a foreign webhook to the same
                   receiver could have sent: never republished, logged at ERROR
    foreign_webhooks  webhooks that are not ours aimed at our receiver URLs (ERROR, alert)
    unknown_webhooks  configured webhook ids Instantly does not list
    resumed        webhooks Instantly had disabled that this run resumed
    unmatched_urls configured receiver URLs that are no webhook's target (a misconfiguration)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from instantly_guard.errors import GuardError


@dataclass(slots=True)
class RunReport:
    run_key: str
    started_at: datetime
    outcome: str = "complete"  # complete | time_budget | duplicate | busy | lost_race | failed
    checked: int = 0
    settled: int = 0
    failed: int = 0
    pending: int = 0
    retried_ok: int = 0
    missing: int = 0
    republished: int = 0
    unrecoverable: int = 0
    refused: int = 0
    foreign: int = 0
    unattributed: int = 0
    foreign_webhooks: int = 0
    unknown_webhooks: int = 0
    resumed: int = 0
    resume_skipped: int = 0
    unmatched_urls: int = 0
    requests: int = 0
    error: GuardError | None = None
    missing_ids: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "run_key": self.run_key,
            "outcome": self.outcome,
            "checked": self.checked,
            "settled": self.settled,
            "failed": self.failed,
            "pending": self.pending,
            "retried_ok": self.retried_ok,
            "missing": self.missing,
            "republished": self.republished,
            "unrecoverable": self.unrecoverable,
            "refused": self.refused,
            "foreign": self.foreign,
            "unattributed": self.unattributed,
            "foreign_webhooks": self.foreign_webhooks,
            "unknown_webhooks": self.unknown_webhooks,
            "resumed": self.resumed,
            "resume_skipped": self.resume_skipped,
            "unmatched_urls": self.unmatched_urls,
            "requests": self.requests,
        }
        if self.missing_ids:
            body["missing_event_ids"] = self.missing_ids[:100]
        return body
