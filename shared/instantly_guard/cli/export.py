"""`instantly-guard export-audit`: run the audit export by hand, with the function's own code.

Without dates it is one scheduled-style run against the stored checkpoint (what Cloud Scheduler
triggers). With `--since` it is a backfill of the UTC days [since, until] (until: today) that
neither reads nor moves the scheduled runs' checkpoint; entries exported before collapse in Cloud
Logging by insertId. A backfill keeps its own checkpoint under GUARD_STATE_DIR/audit: stopped
with Ctrl-C (or by a failure), the same command resumes where it stopped. The backend follows
GUARD_BACKEND (gcp: Cloud Logging and the Cloud Storage checkpoint; local: the JSONL sink and
checkpoint under GUARD_STATE_DIR/audit). The key comes from AUDIT_API_KEY_SECRET or
INSTANTLY_API_KEY(_FILE).

With GUARD_BACKEND=gcp a backfill reaching further back than the log bucket keeps entries
(AUDIT_LOG_RETENTION, default 30d as Cloud Logging's _Default bucket) is refused: Cloud Logging
accepts such entries and stores none of them.

On a terminal: progress on stderr while it runs, and a readable summary; `--format json` (the
default when stdout is not a terminal) prints the run's JSON summary instead. Exit codes: 0 the
run ended as planned (also when another run holds the checkpoint: the summary says until when),
1 the export failed, 2 usage or configuration (also a key without audit_logs:read, an invalid
key, no paid plan), 3 Instantly or Google unavailable (running again may help), 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from types import FrameType
from typing import IO, Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UPSTREAM = 3
EXIT_INTERRUPTED = 130


@contextlib.contextmanager
def _stop_signals_interrupt() -> Iterator[None]:
    """SIGTERM (`kill`, a container stop) and SIGHUP (a closed terminal) stop the run as Ctrl-C
    does: the exporter saves its checkpoint and releases its lease, so a rerun resumes at once
    instead of dying silently with 143 and waiting out the lease."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {}
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is None:
            continue
        with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
            previous[sig] = signal.signal(sig, interrupt)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# Failures a person fixes in configuration (the key, its scopes, the plan, the settings).
_USAGE_KINDS = frozenset(
    {"missing_scope", "invalid_key", "no_paid_plan", "permission_denied", "config"}
)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export-audit",
        help="export Instantly's audit log now (a scheduled-style run, or a backfill)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--since", type=_day, metavar="DATE", help="backfill from this UTC day")
    parser.add_argument(
        "--until", type=_day, metavar="DATE", help="backfill up to this UTC day (default today)"
    )
    parser.add_argument(
        "--format",
        choices=("auto", "text", "json"),
        default="auto",
        help="text for a person, json for a program (default auto: text on a terminal)",
    )
    parser.add_argument(
        "--verify-chain",
        action="store_true",
        help="export nothing: recompute the exported trail's digest chain (exit 1 if broken)",
    )
    parser.set_defaults(handler=run)


def verify_chain(args: argparse.Namespace) -> int:
    """`--verify-chain`: where GUARD_BACKEND exports, recompute the digest chain
    (instantly_guard.audit.integrity): 0 intact, 1 an entry or seal no export run wrote."""
    from instantly_guard.audit.integrity import INVENTORY_WRITER
    from instantly_guard.audit.service import verify_chain_from_env
    from instantly_guard.errors import ConfigError
    from instantly_guard.inventory.service import chain_head_from_env
    from instantly_guard.terminal import safe

    try:
        heads = {INVENTORY_WRITER: chain_head_from_env(os.environ)}
        report = verify_chain_from_env(os.environ, heads)
    except ConfigError as exc:
        print(f"instantly-guard: {safe(exc)}", file=sys.stderr)
        return EXIT_USAGE
    body = report.as_json()
    if _wants_json(args):
        print(json.dumps(body, ensure_ascii=True))
    else:
        verdict = "intact" if report.ok else "BROKEN"
        lines = [f"audit chain {verdict}: {report.entries} entries, {report.seals} seals"]
        for name in ("unsealed", "altered", "detached", "forks", "head"):
            if body[name]:
                lines.append(f"  {name}: {', '.join(safe(x) for x in body[name])}")
        if body["missing"]:
            lines.append(f"  {body['missing']} sealed entries not in the log (retention?)")
        print("\n".join(lines))
    return EXIT_OK if report.ok else 1


def _is_tty(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _wants_json(args: argparse.Namespace) -> bool:
    fmt = getattr(args, "format", "auto")
    return fmt == "json" or (fmt == "auto" and not _is_tty(sys.stdout))


def run(args: argparse.Namespace) -> int:
    from instantly_guard.audit.service import build_service, describe_failure, respond
    from instantly_guard.errors import ConfigError
    from instantly_guard.logs import configure_logging
    from instantly_guard.terminal import safe

    if args.verify_chain:
        return verify_chain(args)
    if args.until is not None and args.since is None:
        print("instantly-guard: --until needs --since (a backfill)", file=sys.stderr)
        return EXIT_USAGE
    if args.since is not None and args.until is not None and args.until < args.since:
        print("instantly-guard: --until is before --since", file=sys.stderr)
        return EXIT_USAGE
    today = datetime.now(UTC).date()
    if args.since is not None and args.since > today:
        print("instantly-guard: --since is in the future", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(stream=sys.stderr)
    try:
        service = build_service(os.environ)
    except ConfigError as exc:
        print(f"instantly-guard: {safe(exc)}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(service.log_level, stream=sys.stderr)
    retention = service.options.retention
    if args.since is not None and retention is not None:
        oldest = (datetime.now(UTC) - retention).date() + timedelta(days=1)
        if args.since < oldest:
            service.close()
            print(
                f"instantly-guard: --since {args.since} is {(today - args.since).days:,} days "
                f"back, but the log bucket keeps {retention.days} days (AUDIT_LOG_RETENTION): "
                f"Cloud Logging would accept the entries dated before {oldest} and store none "
                f"of them. Use --since {oldest} or later, or set AUDIT_LOG_RETENTION to the "
                "bucket's retention.",
                file=sys.stderr,
            )
            return EXIT_USAGE
    progress = _Progress(sys.stderr) if _is_tty(sys.stderr) else None
    if progress is not None:
        progress.attach(logging.getLogger())
    try:
        with _stop_signals_interrupt():
            if args.since is not None:
                summary = service.backfill(args.since, args.until, progress=progress)
            else:
                summary = service.run(progress=progress)
    finally:
        if progress is not None:
            progress.detach()
        service.close()
    response = respond(summary, service.key_source)
    if _wants_json(args):
        print(json.dumps(response.body))
    else:
        print(
            "\n".join(
                safe(line)
                for line in _text(response.body, backfill=args.since is not None).split("\n")
            )
        )
    if summary.stopped_reason.value == "interrupted":
        return EXIT_INTERRUPTED
    if summary.error is None:
        return EXIT_OK
    failure = describe_failure(summary.error, service.key_source)
    if failure.kind in _USAGE_KINDS or (failure.kind == "key_unavailable" and failure.permanent):
        return EXIT_USAGE
    return EXIT_FAILED if failure.permanent else EXIT_UPSTREAM


class _Progress:
    """One line on a terminal, redrawn at most 5 times a second: listings (windows) made, pages,
    entries exported, their rate, and the share of the time span done with an ETA from it."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._started = time.monotonic()
        self._drawn = 0.0
        self._width = 0
        self._logger = logging.getLogger()
        self._lock = threading.Lock()  # records may come from the read-ahead thread

    def __call__(self, summary: Any) -> None:
        now = time.monotonic()
        if now - self._drawn < 0.2:
            return
        self._drawn = now
        elapsed = max(now - self._started, 1e-6)
        rate = summary.exported / elapsed
        parts = [
            f"{summary.exported:,} exported",
            f"{summary.pages:,} pages",
        ]
        if summary.days:
            parts.append(f"{summary.days:,} windows")
        parts.append(f"{rate:,.0f}/s")
        done = summary.done_fraction
        if done is not None:
            parts.append(f"{done:.0%} of the time span")
            if 0.01 < done < 1.0:
                parts.append(f"ETA {_duration(elapsed * (1 - done) / done)}")
        line = "export-audit: " + ", ".join(parts)
        with self._lock:
            self._stream.write("\r" + line.ljust(self._width))
            self._stream.flush()
            self._width = len(line)

    def clear(self) -> None:
        with self._lock:
            if self._width:
                self._stream.write("\r" + " " * self._width + "\r")
                self._stream.flush()
                self._width = 0
                self._drawn = 0.0  # redrawn at the next report, below the log line

    def attach(self, logger: logging.Logger) -> None:
        """Clear the line before any record of `logger`'s handlers is written, so a log line
        never lands after the progress text; the next report draws it again."""
        for handler in logger.handlers:
            handler.addFilter(self._before_record)
        self._logger = logger

    def detach(self) -> None:
        self.clear()
        for handler in self._logger.handlers:
            handler.removeFilter(self._before_record)

    def _before_record(self, record: logging.LogRecord) -> bool:
        self.clear()
        return True


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _text(body: dict[str, Any], *, backfill: bool) -> str:
    """The summary for a person."""
    what = "Backfill" if backfill else "Audit export"
    reason = body["stopped_reason"]
    seconds = body["duration_ms"] / 1000
    exported = body["exported"]
    checkpoint = body["checkpoint"]
    headline = {
        "complete": f"{what} complete.",
        "time_budget": f"{what} stopped at its time budget; the next run continues.",
        "lost_race": f"{what} stopped: another run wrote the checkpoint and carries on.",
        "duplicate_delivery": f"{what} did nothing: this Scheduler run already ran.",
        "run_in_progress": f"{what} did nothing: another run holds the checkpoint.",
        "failed": f"{what} failed.",
        "interrupted": (
            f"{what} interrupted; what was written is kept. Run the same command again to "
            "resume where it stopped."
        ),
    }.get(reason, f"{what}: {reason}.")
    lines = [headline]
    blocked = body.get("blocked_by")
    if blocked:
        lines.append(
            f"  Run {blocked['run']} started {blocked['started_at']} and was last seen "
            f"{blocked['last_seen_at']}. If it was killed, the next run after "
            f"{blocked['lease_until']} takes over."
        )
    rate = f" ({exported / seconds:,.0f} entries/s)" if seconds > 0 and exported else ""
    pairs: list[tuple[str, str]] = [
        (
            "exported",
            f"{exported:,} entries ({body['duplicates_skipped']:,} already exported, "
            f"{body['late_entries']:,} late arrivals)",
        ),
        (
            "listed",
            f"{body['pages']:,} pages"
            + (f" in {body['days']:,} windows" if body["days"] else "")
            + (f", order {body['order']}" if body.get("order") else ""),
        ),
        ("took", f"{seconds:,.1f} s{rate}"),
        (
            "checkpoint",
            f"watermark {checkpoint['watermark'] or '-'} "
            + (
                "(the backfill's own checkpoint is deleted: it is complete)"
                if backfill and reason == "complete"
                else f"at {checkpoint['location']}"
            ),
        ),
    ]
    beyond = body.get("beyond_retention")
    if beyond:
        pairs.append(
            (
                "not written",
                f"{beyond['entries']:,} entries older than the log bucket's retention "
                f"(AUDIT_LOG_RETENTION; the oldest dated {beyond['oldest']})",
            )
        )
    if body.get("future_entries"):
        pairs.append(
            (
                "clock skew",
                f"{body['future_entries']:,} entries dated over a day ahead were written with "
                "the export's time",
            )
        )
    error = body.get("error")
    if error:
        pairs.append(("error", f"{error['kind']}: {error['message']}"))
    width = max(len(name) for name, _ in pairs)
    lines += [f"  {name:<{width}}  {value}" for name, value in pairs]
    return "\n".join(lines)
