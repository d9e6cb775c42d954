"""The port every audit sink implements: write one batch of entries, all or raise."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from instantly_guard.audit.entries import ExportEntry


class LogSink(Protocol):
    """Where exported entries go.

    `write` returns once every entry of the batch is stored (or deliberately replaced, see the
    Cloud Logging sink's partial-success handling) and raises `BackendError` otherwise. Entries
    of a failed batch may have been partly written: the exporter writes them again on the next
    run, and equal `insertId` + `timestamp` collapse in Cloud Logging.
    """

    def write(self, entries: Sequence[ExportEntry]) -> None: ...

    def describe(self) -> str: ...
