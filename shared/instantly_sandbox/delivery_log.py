"""How `GET /webhook-events` reports deliveries, in each variant the document leaves open.

The `WebhookEvent` schema gives the fields (`success`, `retry_count`, `will_retry`,
`retry_group_id`, `retry_successful`, `timestamp_next_retry`, an optional `payload`) but not
how they behave. `DeliveryLogOptions` picks one reading of each open point, so that a client
can be tested under all of them:

- `order`: the listing's order, oldest first (`asc`, ids are UUIDv7) or newest first (`desc`);
- `retries`: a retry is a new record sharing the first attempt's `retry_group_id`
  (`separate`), or the first record is updated in place (`in_place`: `retry_count` grows,
  `success` flips when a retry succeeds);
- `payload`: listed with every record (`listed`), only by `GET /webhook-events/{id}`
  (`detail_only`), or never (`absent`; the schema does not require it);
- `success_filter`: `?success=` is applied (`honoured`) or ignored (`ignored`);
- `search_filter`: `?search=` (an exact webhook URL or lead email) is applied or ignored;
- `timestamps`: `2026-08-13T11:11:58.208Z` (`ms_z`, the document's examples) or
  `2026-08-13T11:11:58.208+00:00` (`offset`);
- `retry_limit`: how many retries Instantly makes after a failed delivery (0: none, the record
  says `will_retry: false`), `retry_delay` the wait before each (undocumented; "3 retries in
  30 s" is an unsourced claim).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

ListingDirection = Literal["asc", "desc"]
RetryRecording = Literal["separate", "in_place"]
PayloadListing = Literal["listed", "detail_only", "absent"]
SuccessFilter = Literal["honoured", "ignored"]
SearchFilter = Literal["honoured", "ignored"]
TimestampStyle = Literal["ms_z", "offset"]


@dataclass(frozen=True, slots=True)
class DeliveryLogOptions:
    """One reading of every open point of `GET /webhook-events` (see the module doc)."""

    order: ListingDirection = "asc"
    retries: RetryRecording = "separate"
    payload: PayloadListing = "listed"
    success_filter: SuccessFilter = "honoured"
    search_filter: SearchFilter = "honoured"
    timestamps: TimestampStyle = "ms_z"
    retry_limit: int = 0
    retry_delay: timedelta = timedelta(seconds=30)

    def __post_init__(self) -> None:
        choices: dict[str, tuple[str, ...]] = {
            "order": ("asc", "desc"),
            "retries": ("separate", "in_place"),
            "payload": ("listed", "detail_only", "absent"),
            "success_filter": ("honoured", "ignored"),
            "search_filter": ("honoured", "ignored"),
            "timestamps": ("ms_z", "offset"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}")
        if self.retry_limit < 0:
            raise ValueError("retry_limit must be >= 0")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeliveryLogOptions:
        """From the control API's body (`retry_delay_s` in seconds)."""
        fields = dict(data)
        if "retry_delay_s" in fields:
            fields["retry_delay"] = timedelta(seconds=float(fields.pop("retry_delay_s")))
        return cls(**fields)

    def stamp(self, value: str | None) -> str | None:
        """A sandbox timestamp (`...sssZ`) in this variant's style."""
        if value is None or self.timestamps == "ms_z":
            return value
        return value.removesuffix("Z") + "+00:00"
