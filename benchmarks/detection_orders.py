"""Findings per burst, by listing order: the count behind docs/detections.md "Any order".

A sandbox with 3,000 entries over 20 h and one burst of five failed MFA challenges (an hour
apart, or a minute apart), exported through `DetectingSink` with pages of 100 in each listing
order the sandbox models (random: five permutation keys), in one run and again after a lost
checkpoint. Prints the `audit.mfa-failures` findings of each: 1 everywhere is right.

python -m benchmarks.detection_orders
"""

from __future__ import annotations

import json
import logging
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from instantly_guard.audit.checkpoint import LocalCheckpointStore
from instantly_guard.audit.detecting import DetectingSink
from instantly_guard.audit.entries import ExportEntry
from instantly_guard.audit.exporter import ClientPageSource, Exporter, ExportOptions
from instantly_guard.detections import Config
from instantly_guard.detections.detector import Detector
from instantly_guard.detections.state import LocalStateStore
from instantly_guard.instantly import InstantlyClient, RateLimiter, StaticKey
from instantly_sandbox.sandbox import Sandbox

OPTIONS = ExportOptions(lookback=timedelta(days=3), checkpoint_interval=timedelta(0))
ORDERS = ["asc", "desc", *(f"random:{k}" for k in range(1, 6))]


class _Findings:
    def __init__(self) -> None:
        self.entries: list[ExportEntry] = []

    def write(self, entries: object) -> None:
        self.entries.extend(entries)  # type: ignore[call-overload]

    def describe(self) -> str:
        return "memory"


class _Discard(_Findings):
    def write(self, entries: object) -> None:
        pass


def count(order: str, spacing: timedelta, root: Path) -> tuple[int, int]:
    listing, _, key = order.partition(":")
    sb = Sandbox(
        seed="empty",
        listing_order=listing,
        shuffle_key=key.encode() or None,  # type: ignore[arg-type]
    ).start()
    try:
        now = datetime.now(UTC)
        sb.seed_audit_logs(3000, start=now - timedelta(hours=20), step=timedelta(seconds=24))
        for i in range(5):
            sb.add_audit_log(
                29, at=now - timedelta(hours=15) + i * spacing, user_id="u-a", user_name="A"
            )
        client = InstantlyClient(
            StaticKey(sb.keys["admin"].key), sb.base_url, rate_limiter=RateLimiter(1000, 60000)
        )
        findings = _Findings()
        detector = Detector(Config(), LocalStateStore(root / "detections.json"))
        sink = DetectingSink(_Discard(), detector, findings)  # type: ignore[arg-type]
        counts = []
        for _ in range(2):  # one run, then every entry again after a lost checkpoint
            (root / "checkpoint.json").unlink(missing_ok=True)
            store = LocalCheckpointStore(root / "checkpoint.json")
            Exporter(ClientPageSource(client, page_size=100), sink, store, OPTIONS).run()
            sink.flush()
            payloads = [json.loads(e.payload_json) for e in findings.entries]
            counts.append(sum(p["rule"] == "audit.mfa-failures" for p in payloads))
        client.close()
        return counts[0], counts[1]
    finally:
        sb.stop()


def main() -> None:
    logging.getLogger("instantly_guard").setLevel(logging.ERROR)  # one line per finding: noise here
    for spacing in (timedelta(hours=1), timedelta(minutes=1)):
        cells = []
        for order in ORDERS:
            with tempfile.TemporaryDirectory() as tmp:
                first, total = count(order, spacing, Path(tmp))
            cells.append(f"{order} {first}/{total}")
        print(f"burst spaced {spacing}: " + ", ".join(cells))


if __name__ == "__main__":
    main()
