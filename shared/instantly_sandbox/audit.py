"""The workspace's audit log: an id-sorted store with three listing orders and stable cursors.

Ids are UUIDv7 minted from each entry's timestamp, so the id order is the time order. A listing
answers the entries that come *after the cursor in the listing order* (the cursor is the last id
of the previous page), evaluated when each page is served:

- `asc`: ids greater than the cursor, oldest first. Entries written during a paged listing appear
  on a later page (they sort after every existing id); back-dated ones before the cursor do not.
- `desc`: ids smaller than the cursor, newest first. New entries do not appear in a listing that
  has started (they sort before its first page), as with any newest-first API.
- `random`: a fixed pseudo-random permutation: entries sort by a keyed hash of their id. The
  permutation is a function of the id alone, so it is the same on every page and in every
  listing of one sandbox, the cursor (hash, id) pins a position that survives inserts, and paging
  a snapshot visits every entry exactly once. An entry added mid-listing appears exactly when its
  hash sorts after the cursor.

Pages hold `limit` entries; a full page always carries `next_starting_after` (even when nothing
follows, so the next page is empty), a short page never does.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import random
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, NamedTuple, get_args

from instantly_guard.vocabulary import ACTIVITY_DESCRIPTIONS
from instantly_sandbox.ids import Uuid7Factory, iso_ms, to_ms, uuid7_floor, uuid7_from_parts

ListingOrder = Literal["asc", "desc", "random"]
LISTING_ORDERS: tuple[str, ...] = get_args(ListingOrder)

ACTIVITY_NAMES: Mapping[int, str] = ACTIVITY_DESCRIPTIONS
"""The documented activity types (the `AuditLog.activity_type` enum) and their names."""

OPTIONAL_FIELDS: tuple[str, ...] = (
    "user_agent",
    "user_id",
    "user_name",
    "api_key_id",
    "affected_count",
    "campaign_id",
    "webhook_id",
    "subsequence_id",
    "list_id",
)
_SETTABLE = frozenset(
    (*OPTIONAL_FIELDS, "ip_address", "from_api", "organization_id", "audit_metadata")
)
_SEARCHED = ("user_agent", "user_id", "user_name", "ip_address", "api_key_id", "campaign_id")


class AuditEntry(NamedTuple):
    """One audit log entry, in the `AuditLog` schema's field names (a tuple: 100,000 of them
    are built in a fraction of a second and stay small)."""

    id: str
    timestamp: str
    organization_id: str
    activity_type: int
    ip_address: str
    from_api: bool
    user_agent: str | None = None
    user_id: str | None = None
    user_name: str | None = None
    api_key_id: str | None = None
    affected_count: int | None = None
    campaign_id: str | None = None
    webhook_id: str | None = None
    subsequence_id: str | None = None
    list_id: str | None = None
    audit_metadata: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "timestamp": self.timestamp,
            "organization_id": self.organization_id,
            "activity_type": self.activity_type,
            "user_agent": self.user_agent,
            "user_id": self.user_id,
            "user_name": self.user_name,
            "ip_address": self.ip_address,
            "from_api": self.from_api,
            "api_key_id": self.api_key_id,
            "affected_count": self.affected_count,
            "campaign_id": self.campaign_id,
            "webhook_id": self.webhook_id,
            "subsequence_id": self.subsequence_id,
            "list_id": self.list_id,
            "audit_metadata": dict(self.audit_metadata or {}),
        }

    def matches_search(self, needle: str) -> bool:
        """Case-insensitive substring match on the descriptive fields and the metadata."""
        for name in _SEARCHED:
            value = getattr(self, name)
            if value is not None and needle in value.lower():
                return True
        return bool(self.audit_metadata) and needle in json.dumps(self.audit_metadata).lower()


@dataclass(frozen=True)
class AuditQuery:
    """Filters of `GET /audit-logs`; times are Unix milliseconds, both bounds inclusive."""

    activity_type: int | None = None
    search: str | None = None
    start_ms: int | None = None
    end_ms: int | None = None

    def predicate(self) -> Callable[[AuditEntry], bool] | None:
        checks: list[Callable[[AuditEntry], bool]] = []
        if self.activity_type is not None:
            wanted = self.activity_type
            checks.append(lambda entry: entry.activity_type == wanted)
        if self.search:
            needle = self.search.lower()
            checks.append(lambda entry: entry.matches_search(needle))
        if not checks:
            return None
        return lambda entry: all(check(entry) for check in checks)


class AuditLogStore:
    """Thread-safe store of `AuditEntry` kept sorted by id. See the module doc for listing."""

    def __init__(
        self,
        organization_id: str,
        ids: Uuid7Factory,
        clock: Callable[[], datetime],
        *,
        order: ListingOrder = "asc",
        shuffle_key: bytes | None = None,
    ) -> None:
        self.organization_id = organization_id
        self._ids = ids
        self._clock = clock
        self._lock = threading.RLock()
        self._by_id: dict[str, AuditEntry] = {}
        self._sorted: list[str] = []
        self._ranked: list[tuple[bytes, str]] | None = None  # built on first random listing
        self._shuffle_key = shuffle_key or random.randbytes(16)
        self.order: ListingOrder = order
        self.set_order(order)
        # How `GET /audit-logs` reads `start_date`/`end_date` (see routes/audit_logs.py).
        self.date_filter_utc_offset = timedelta(0)
        self.date_filter_end_exclusive = False

    # --- writing -----------------------------------------------------------------------------

    def add(self, activity_type: int, *, at: datetime | None = None, **fields: Any) -> AuditEntry:
        """Record one entry at `at` (default: now). `fields` are optional `AuditEntry` fields
        plus `ip_address`, `from_api` and `organization_id` to override the defaults."""
        ms = to_ms(at or self._clock())
        entry = self._build(self._ids.new_ms(ms), ms, activity_type, fields)
        with self._lock:
            self._by_id[entry.id] = entry
            bisect.insort(self._sorted, entry.id)
            if self._ranked is not None:
                bisect.insort(self._ranked, (self._rank(entry.id), entry.id))
        return entry

    def seed(
        self,
        n: int,
        *,
        start: datetime,
        step: timedelta,
        activity_types: Sequence[int],
        fields: Mapping[str, Any] | None = None,
    ) -> list[str]:
        """Bulk-add `n` entries at `start`, `start + step`, ... cycling through `activity_types`.

        Built in one pass and merged with one sort, so 100,000 entries take well under a second.
        Returns their ids in time order.
        """
        if n < 0:
            raise ValueError("n must be >= 0")
        if not activity_types:
            raise ValueError("activity_types must not be empty")
        template = self._build("", 0, activity_types[0], dict(fields or {}))
        start_ms = to_ms(start)
        step_ms = step // timedelta(milliseconds=1)
        rng = random.Random()
        entries: list[AuditEntry] = []
        previous_ms, counter = None, 0
        types = itertools.cycle(activity_types)
        organization_id, ip_address, from_api = template[2], template[4], template[5]
        rest = tuple(template[6:])
        make = tuple.__new__  # the NamedTuple constructor, without its keyword handling
        for index in range(n):
            ms = start_ms + index * step_ms
            # Same millisecond (step 0 or sub-ms): keep counting so the ids stay in order.
            counter = counter + 1 if ms == previous_ms else rng.getrandbits(64)
            previous_ms = ms
            activity_type = next(types)
            if activity_type not in ACTIVITY_NAMES:
                raise ValueError(f"unknown activity_type {activity_type}")
            entries.append(
                make(
                    AuditEntry,
                    (
                        uuid7_from_parts(ms, counter),
                        iso_ms(ms),
                        organization_id,
                        activity_type,
                        ip_address,
                        from_api,
                        *rest,
                    ),
                )
            )
        if entries:
            self._ids.observe(previous_ms or 0, counter)
        with self._lock:
            for entry in entries:
                self._by_id[entry.id] = entry
            self._sorted.extend(entry.id for entry in entries)
            self._sorted.sort()
            if self._ranked is not None:
                self._ranked.extend((self._rank(entry.id), entry.id) for entry in entries)
                self._ranked.sort()
        return [entry.id for entry in entries]

    def _build(
        self, entry_id: str, ms: int, activity_type: int, fields: Mapping[str, Any]
    ) -> AuditEntry:
        if activity_type not in ACTIVITY_NAMES:
            raise ValueError(f"unknown activity_type {activity_type}")
        unknown = set(fields) - _SETTABLE
        if unknown:
            raise ValueError(f"unknown audit log fields: {', '.join(sorted(unknown))}")
        return AuditEntry(
            id=entry_id,
            timestamp=iso_ms(ms),
            organization_id=fields.get("organization_id", self.organization_id),
            activity_type=activity_type,
            ip_address=fields.get("ip_address", "127.0.0.1"),
            from_api=bool(fields.get("from_api", False)),
            audit_metadata=dict(fields.get("audit_metadata") or {}) or None,
            **{name: fields.get(name) for name in OPTIONAL_FIELDS},
        )

    # --- reading -----------------------------------------------------------------------------

    def set_order(self, order: ListingOrder) -> None:
        if order not in LISTING_ORDERS:
            raise ValueError(f"listing order must be one of {', '.join(LISTING_ORDERS)}")
        self.order = order

    def __len__(self) -> int:
        return len(self._sorted)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._by_id

    def get(self, entry_id: str) -> AuditEntry | None:
        return self._by_id.get(entry_id)

    def ids(self) -> list[str]:
        """Every id, in time order."""
        with self._lock:
            return list(self._sorted)

    def listing_ids(self) -> list[str]:
        """Every id in the current listing order (what an unfiltered traversal yields)."""
        with self._lock:
            if self.order == "asc":
                return list(self._sorted)
            if self.order == "desc":
                return self._sorted[::-1]
            return [entry_id for _, entry_id in self._ranking()]

    def entries(self) -> list[AuditEntry]:
        """Every entry, in time order."""
        with self._lock:
            return [self._by_id[entry_id] for entry_id in self._sorted]

    def page(
        self, query: AuditQuery, *, limit: int, starting_after: str | None
    ) -> tuple[list[AuditEntry], str | None]:
        """One page of the listing in the current order: (entries, next_starting_after)."""
        predicate = query.predicate()
        with self._lock:
            candidates = self._walk(query, starting_after)
            if predicate is not None:
                candidates = (entry for entry in candidates if predicate(entry))
            page = list(itertools.islice(candidates, limit))
        cursor = page[-1].id if page and len(page) == limit else None
        return page, cursor

    def _walk(self, query: AuditQuery, after: str | None) -> Iterator[AuditEntry]:
        """Entries after the cursor in listing order, limited to the query's time window."""
        ids = self._sorted
        # Ids embed their millisecond, so the time window is a range of the sorted ids.
        low = None if query.start_ms is None else uuid7_floor(query.start_ms)
        high = None if query.end_ms is None else uuid7_floor(query.end_ms + 1)
        lo = 0 if low is None else bisect.bisect_left(ids, low)
        hi = len(ids) if high is None else bisect.bisect_left(ids, high)
        if self.order == "asc":
            if after is not None:
                lo = max(lo, bisect.bisect_right(ids, after))
            return (self._by_id[ids[i]] for i in range(lo, hi))
        if self.order == "desc":
            if after is not None:
                hi = min(hi, bisect.bisect_left(ids, after))
            return (self._by_id[ids[i]] for i in range(hi - 1, lo - 1, -1))
        ranked = self._ranking()
        start = 0 if after is None else bisect.bisect_right(ranked, (self._rank(after), after))
        return (
            self._by_id[entry_id]
            for _, entry_id in itertools.islice(ranked, start, None)
            if (low is None or entry_id >= low) and (high is None or entry_id < high)
        )

    def _ranking(self) -> list[tuple[bytes, str]]:
        if self._ranked is None:
            self._ranked = sorted((self._rank(entry_id), entry_id) for entry_id in self._sorted)
        return self._ranked

    def _rank(self, entry_id: str) -> bytes:
        return hashlib.blake2b(entry_id.encode(), key=self._shuffle_key, digest_size=8).digest()
