"""Reading Instantly's delivery log (`GET /webhook-events`) for our webhooks, a page at a time.

The document leaves the log's behaviour open (docs/reconcile.md lists each point). This reader:

- asks for one webhook URL at a time (`search`, "exact webhook URL") but keeps only records
  whose `webhook_url` equals ours, in case the search is looser or ignored;
- yields one page at a time with the cursor that continues after it (the id of the page's last
  item, as the document says) and the page's timestamps, from which the caller reads the
  listing's order: nothing is held beyond a page;
- does not filter by `success` on the server: successes settle pending retries, and the filter
  might be ignored anyway;
- reads timestamps without a zone as UTC;
- fetches a failed record without `payload` once by id (`GET /webhook-events/{id}`), in case
  only the detail carries it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol

from instantly_guard.errors import NotFoundError
from instantly_guard.instantly.models import WebhookEvent


class DeliveryLogClient(Protocol):
    """The two calls the reader makes (`InstantlyClient` has them)."""

    def iter_webhook_event_pages(
        self,
        *,
        since: date | None = None,
        until: date | None = None,
        success: bool | None = None,
        search: str | None = None,
        limit: int = 100,
        starting_after: str | None = None,
    ) -> Iterator[list[WebhookEvent]]: ...

    def get_webhook_event(self, event_id: str) -> WebhookEvent: ...


@dataclass(frozen=True, slots=True)
class Page:
    """One page as listed: our records in it, the cursor after it and every item's position."""

    records: list[Delivery]
    last: tuple[datetime, str] | None
    positions: list[tuple[datetime, str]]


def as_utc(value: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken as UTC (the document shows `Z` times)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivery attempt, normalised. `payload` is None when Instantly did not give it."""

    id: str
    at: datetime
    webhook_url: str
    success: bool
    status_code: int | None
    will_retry: bool
    retry_group_id: str | None
    payload: dict[str, Any] | None

    @classmethod
    def of(cls, event: WebhookEvent) -> Delivery:
        return cls(
            id=event.id,
            at=as_utc(event.timestamp_created),
            webhook_url=event.webhook_url,
            success=event.success,
            status_code=_status(event.status_code),
            will_retry=event.will_retry,
            retry_group_id=event.retry_group_id,
            payload=event.payload,
        )

    @property
    def position(self) -> tuple[datetime, str]:
        """Where the record sits in time (ties broken by id), as the checkpoint keeps it."""
        return self.at, self.id


def _status(value: float | None) -> int | None:
    return int(value) if isinstance(value, int | float) and math.isfinite(value) else None


class DeliveryLog:
    """Reads the delivery records of one webhook URL at a time, page by page."""

    def __init__(self, client: DeliveryLogClient, *, page_size: int = 100):
        self._client = client
        self._page_size = page_size
        self.requests = 0

    def pages(self, url: str, *, since: date | None, after: str | None) -> Iterator[Page]:
        """The pages of `url`'s records created on `since` (a day of the API's) or later,
        continuing after the record id `after`, in the listing's order, until an empty page.

        Each page is one request, asked for with the id of the previous page's last item (the
        documented cursor), so a caller that stops early knows exactly where to resume."""
        cursor = after
        while True:
            listing = self._client.iter_webhook_event_pages(
                since=since, search=url, limit=self._page_size, starting_after=cursor
            )
            self.requests += 1
            events = next(iter(listing), [])
            if not events:
                return
            positions = [(as_utc(e.timestamp_created), e.id) for e in events]
            records = [Delivery.of(e) for e in events if e.webhook_url == url]
            yield Page(records, positions[-1], positions)
            cursor = events[-1].id

    def fetch(self, delivery_id: str) -> Delivery | None:
        """The record as it is now (`GET /webhook-events/{id}`); None when it is gone."""
        self.requests += 1
        try:
            return Delivery.of(self._client.get_webhook_event(delivery_id))
        except NotFoundError:
            return None

    def payload_of(self, delivery: Delivery) -> dict[str, Any] | None:
        """The record's payload, fetched by id when the listing left it out; None if absent."""
        if delivery.payload is not None:
            return delivery.payload
        fetched = self.fetch(delivery.id)
        return fetched.payload if fetched is not None else None
