"""Reading Instantly's delivery log (`GET /webhook-events`) for our webhooks.

The document leaves the log's behaviour open (docs/reconcile.md lists each point). This reader
depends on none of the open points:

- it reads every page of a window of whole days (`from`, inclusive) and sorts the records
  itself, so the listing order does not matter;
- it asks for one webhook URL at a time (`search`, "exact webhook URL") but keeps only records
  whose `webhook_url` equals ours, in case the search is looser or ignored;
- it does not filter by `success` on the server: successes are needed to recognise a failed
  delivery that a retry delivered after all, and the filter might be ignored anyway;
- timestamps without a zone are read as UTC;
- a failed record without `payload` is fetched once by id (`GET /webhook-events/{id}`), in case
  only the detail carries it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
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
    ) -> Iterator[list[WebhookEvent]]: ...

    def get_webhook_event(self, event_id: str) -> WebhookEvent: ...


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
            will_retry=event.will_retry,
            retry_group_id=event.retry_group_id,
            payload=event.payload,
        )

    @property
    def position(self) -> tuple[datetime, str]:
        """Where the record sits in time (ties broken by id), as the checkpoint keeps it."""
        return self.at, self.id


class DeliveryLog:
    """Reads the delivery records of the given webhook URLs since a day."""

    def __init__(self, client: DeliveryLogClient, urls: Iterable[str], *, page_size: int = 100):
        self._client = client
        self._urls = tuple(dict.fromkeys(urls))
        self._page_size = page_size
        self.requests = 0

    @property
    def urls(self) -> tuple[str, ...]:
        return self._urls

    def read(self, since: date) -> list[Delivery]:
        """Every record of our webhooks created on `since` (a day of the API's) or later,
        oldest first. One record per id (a record listed twice, e.g. updated in place while
        we paged, is kept in the copy seen last)."""
        found: dict[str, Delivery] = {}
        for url in self._urls:
            pages = self._client.iter_webhook_event_pages(
                since=since, search=url, limit=self._page_size
            )
            for page in pages:
                self.requests += 1
                for event in page:
                    if event.webhook_url == url:
                        found[event.id] = Delivery.of(event)
        return sorted(found.values(), key=lambda d: d.position)

    def payload_of(self, delivery: Delivery) -> dict[str, Any] | None:
        """The record's payload, fetched by id when the listing left it out; None if absent."""
        if delivery.payload is not None:
            return delivery.payload
        self.requests += 1
        try:
            return self._client.get_webhook_event(delivery.id).payload
        except NotFoundError:
            return None
