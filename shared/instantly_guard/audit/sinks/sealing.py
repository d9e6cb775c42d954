"""A sink that seals every batch into the audit digest chain (`audit/integrity.py`).

`SealingSink(data, seals, head, writer=...)` writes each batch to `data`, then its seal to `seals`
(the chain log), then moves the stored head: the export's chain, or the inventory's (`writer`). Stopped between the batch and its seal, the batch is written
again by the next run (the checkpoint did not move) and sealed then; stopped after the seal and
before the head moved, the next seal re-chains from the old head, which verification accepts (a
dead-end seal whose ids are sealed again). Another run having moved the head meanwhile is logged
and the head is taken over: verification will show that fork.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from instantly_guard.audit.chainhead import ChainHead
from instantly_guard.audit.entries import ExportEntry
from instantly_guard.audit.integrity import EXPORT_WRITER, seal_entry
from instantly_guard.audit.sinks.base import LogSink
from instantly_guard.errors import ConflictError

_log = logging.getLogger("instantly_guard.audit.chain")


class SealingSink:
    def __init__(
        self, data: LogSink, seals: LogSink, head: ChainHead, *, writer: str = EXPORT_WRITER
    ) -> None:
        self._data = data
        self._writer = writer
        self._seals = seals
        self._head = head

    def write(self, entries: Sequence[ExportEntry]) -> None:
        if not entries:
            return
        prev, generation = self._head.read()
        self._data.write(entries)
        seal = seal_entry(prev, entries, self._writer)
        self._seals.write([seal])
        new_head = seal.insert_id.removeprefix("chain-")
        try:
            self._head.write(new_head, generation)
        except ConflictError:
            _log.warning(
                "the audit chain head moved during this batch (another run?): taking it over",
                extra={"fields": {"chain_fork": True}},
            )
            _, generation = self._head.read()
            self._head.write(new_head, generation)

    @property
    def head(self) -> ChainHead:
        return self._head

    def describe(self) -> str:
        return f"{self._data.describe()} (sealed in {self._seals.describe()})"

    def close(self) -> None:
        """Close whatever connections the two sinks hold (the wrapped sinks' own `close`)."""
        for part in (self._data, self._seals):
            closer = getattr(part, "close", None)
            if callable(closer):
                closer()
