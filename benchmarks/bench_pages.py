"""Reading one 1,000-entry audit-log page: the tolerant path against the strict one.

Baseline: `responses.validate_body(Page[AuditLog])`, the strict one-pass validation (what a page
cost before malformed entries were tolerated). Measured: `responses.validate_page` on the same
all-valid page (the fast path: should be ~1), on a page of system events with null
`ip_address`/`from_api` (still one pass), and on a page with one malformed entry (each entry
read on its own, the bad one salvaged). Medians of 9 interleaved rounds of 5 parses each.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx

from benchmarks.common import Row
from instantly_guard.instantly import responses, salvage
from instantly_guard.instantly.models import AuditLog, Page

_ORG = "019ffad2-5c3e-7d8a-963d-6ecaf1ba9999"
_ROUNDS = 9
_PARSES = 5


def _entry(n: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": f"019ffad2-9b83-7eb2-a5c2-{n:012d}",
        "timestamp": "2026-08-13T11:11:58.015Z",
        "organization_id": _ORG,
        "activity_type": 37,
        "user_agent": "Mozilla/5.0",
        "user_id": _ORG,
        "user_name": "Ann Admin",
        "ip_address": "203.0.113.7",
        "from_api": True,
        "api_key_id": _ORG,
        "affected_count": None,
        "campaign_id": None,
        "webhook_id": None,
        "subsequence_id": None,
        "list_id": None,
        "audit_metadata": {"id": _ORG, "name": "k", "scopes": ["audit_logs:read"]},
        **fields,
    }


def _page(items: list[dict[str, Any]]) -> httpx.Response:
    body = {"items": items, "next_starting_after": items[-1].get("id", "x")}
    return httpx.Response(200, content=json.dumps(body).encode())


def _medians(cases: list[Callable[[], object]]) -> list[float]:
    """Median ms per parse of each case over rounds that run every case back to back, so a
    loaded machine slows them alike."""
    samples: list[list[float]] = [[] for _ in cases]
    for _ in range(_ROUNDS):
        for case, times in zip(cases, samples, strict=True):
            started = time.perf_counter()
            for _ in range(_PARSES):
                case()
            times.append((time.perf_counter() - started) / _PARSES * 1000)
    return [statistics.median(times) for times in samples]


def run() -> list[Row]:
    valid = _page([_entry(n) for n in range(1000)])
    system = _page([_entry(n, ip_address=None, from_api=None) for n in range(1000)])
    one_bad = _page(
        [_entry(n, timestamp="nope" if n == 500 else _entry(0)["timestamp"]) for n in range(1000)]
    )
    logging.getLogger("instantly_guard.instantly").setLevel(logging.ERROR)  # the once-only warning

    def strict(response: httpx.Response) -> Callable[[], object]:
        return lambda: responses.validate_body(
            Page[AuditLog], response, method="GET", path="/audit-logs"
        )

    def tolerant(response: httpx.Response) -> Callable[[], object]:
        return lambda: responses.validate_page(
            AuditLog, response, method="GET", path="/audit-logs", item=salvage.audit_log
        )

    baseline, *measured = _medians(
        [strict(valid), tolerant(valid), tolerant(system), tolerant(one_bad)]
    )
    note = "1,000 entries per page; baseline = strict one-pass validation of the valid page"
    names = (
        "tolerant parse, valid page",
        "tolerant parse, null ip/from_api",
        "tolerant parse, one malformed",
    )
    return [
        Row("strict parse, valid page", baseline, "ms/page", None, "baseline"),
        *(
            Row(name, value, "ms/page", baseline, note)
            for name, value in zip(names, measured, strict=True)
        ),
    ]
