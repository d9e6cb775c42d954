"""Audit sinks: `gcp` (Cloud Logging, imported only when used) and `local` (a JSONL file)."""

from instantly_guard.audit.sinks.base import LogSink
from instantly_guard.audit.sinks.local import JsonlSink, read_entries

__all__ = ["JsonlSink", "LogSink", "read_entries"]
