"""The audit trail's digest chain: an entry another writer adds to the exported log is detected.

Anyone with `logging.logWriter` on the project can write into the audit log (Cloud Logging has no
per-log writer IAM). So after each batch the export (and the inventory) writes a *seal* (`sinks/sealing.py`) to a log
of its own (`<log name>-chain`), listing the batch's insertIds and chained to the previous seal:

    digest = sha256("writer:" + writer + "\\n" + prev digest + "\\n"
                    + the batch's insertIds, sorted, one per line)
    seal   = insertId "chain-<digest>", labels {chain_seal: "true"},
             jsonPayload {"chain": {"writer", "prev", "digest", "count", "ids"}}

Two writers put entries into the audit log: the export (`writer` "export") and the inventory
("inventory", its change entries). Each keeps a chain of its own, so neither races the other:
the first seal's `prev` is `GENESIS`; the newest digest is kept in a small object beside the
writer's state (`chainhead.py`: the export's beside its checkpoint, the inventory's beside its
snapshot), written after each seal, so the next batch (and the next run) continues the chain.
The writer is in the digest input, so a seal cannot be moved to the other chain. Seals written
before writers were named have no `writer` and no writer line in their digest: the export's.

`verify_chain` recomputes each writer's chain on its own over entries read back (the JSONL
file, or Cloud Logging's entries); an entry is sealed when any chain lists it. It reports:

- an entry listed in no seal (`unsealed`): written by another writer (or by a run that stopped
  between its batch and its seal: the next run writes the batch again, sealed);
- a seal whose digest does not match its ids and prev (`altered`);
- a seal that chains to nothing seen (`detached`) or a second seal on one prev whose ids are not
  all sealed elsewhere (`fork`): a forged seal. A run that stopped after a seal but before moving
  the head re-seals the same ids from the same prev: the same digest, or a dead-end branch whose
  ids are sealed again, which is not a problem;
- given a writer's stored chain head, a chain of that writer that does not end there (`head`).

What it does not do: a seal is a plain hash, not a signature, so a writer who forges a seal for
its entry and chains it at the tip goes undetected until that chain's next seal forks from the
same prev (or at once, given `head`). Entries older than the log's retention drop out of a
verification window: seals listing them report them as `missing` (information, not a failure).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from instantly_guard.audit.entries import ExportEntry

GENESIS: Final = "0" * 64
SEAL_LABEL: Final = "chain_seal"
SEAL_PREFIX: Final = "chain-"
CHAIN_LOG_SUFFIX: Final = "-chain"
EXPORT_WRITER: Final = "export"
INVENTORY_WRITER: Final = "inventory"
_LISTED: Final = 20


def chain_log_name(log_name: str) -> str:
    """The log the seals of `log_name` are written to."""
    return log_name + CHAIN_LOG_SUFFIX


def digest(prev: str, ids: Iterable[str], writer: str | None = None) -> str:
    """The chain digest of a batch: its insertIds (order-free) under the previous digest and,
    for seals that name one, their writer (a seal cannot be moved to another writer's chain).
    `writer=None` is the digest of the seals written before writers were named."""
    text = prev + "\n" + "\n".join(sorted(ids))
    if writer is not None:
        text = "writer:" + writer + "\n" + text
    return hashlib.sha256(text.encode("utf-8", "backslashreplace")).hexdigest()


def seal_entry(
    prev: str, entries: Sequence[ExportEntry], writer: str = EXPORT_WRITER
) -> ExportEntry:
    """The seal of one batch (module docstring), timed with its newest entry."""
    ids = sorted(e.insert_id for e in entries)
    value = digest(prev, ids, writer)
    payload = json.dumps(
        {
            "chain": {
                "writer": writer,
                "prev": prev,
                "digest": value,
                "count": len(ids),
                "ids": ids,
            }
        },
        separators=(",", ":"),
        ensure_ascii=True,
    )
    newest: datetime = max(e.timestamp for e in entries)
    return ExportEntry(
        SEAL_PREFIX + value,
        newest,
        "NOTICE",
        {SEAL_LABEL: "true"},
        payload,
        len(payload) + 512,
    )


@dataclass
class ChainReport:
    """What `verify_chain` found. `ok` when nothing but `missing` was found. `tips` are every
    writer's chain ends (`writers` maps each writer to its own)."""

    entries: int = 0
    seals: int = 0
    tips: list[str] = field(default_factory=list)
    writers: dict[str, list[str]] = field(default_factory=dict)
    unsealed: list[str] = field(default_factory=list)
    altered: list[str] = field(default_factory=list)
    detached: list[str] = field(default_factory=list)
    forks: list[str] = field(default_factory=list)
    head: list[str] = field(default_factory=list)
    missing: int = 0

    @property
    def ok(self) -> bool:
        return not (self.unsealed or self.altered or self.detached or self.forks or self.head)

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "seals": self.seals,
            "tips": self.tips,
            "writers": self.writers,
            "unsealed": self.unsealed[:_LISTED],
            "unsealed_count": len(self.unsealed),
            "altered": self.altered[:_LISTED],
            "detached": self.detached[:_LISTED],
            "forks": self.forks[:_LISTED],
            "head": self.head,
            "missing": self.missing,
        }


@dataclass(frozen=True)
class _Seal:
    insert_id: str
    prev: str
    digest: str
    ids: tuple[str, ...]
    writer: str | None  # None: a seal from before writers were named (the export's)

    @property
    def chain(self) -> str:
        return self.writer or EXPORT_WRITER


def _seal_of(entry: Mapping[str, Any]) -> _Seal | None:
    chain = (entry.get("jsonPayload") or {}).get("chain")
    if not isinstance(chain, Mapping):
        return None
    ids = chain.get("ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        return None
    writer = chain.get("writer")
    if writer is not None and not isinstance(writer, str):
        return None
    return _Seal(
        str(entry.get("insertId", "")),
        str(chain.get("prev", "")),
        str(chain.get("digest", "")),
        tuple(ids),
        writer,
    )


def is_seal(entry: Mapping[str, Any]) -> bool:
    labels = entry.get("labels") or {}
    return isinstance(labels, Mapping) and labels.get(SEAL_LABEL) == "true"


def verify_chain(
    entries: Iterable[Mapping[str, Any]],
    seals: Iterable[Mapping[str, Any]] = (),
    *,
    head: str | None = None,
    heads: Mapping[str, str] | None = None,
) -> ChainReport:
    """Recompute the chains over log entries read back (LogEntry JSON: `insertId`, `labels`,
    `jsonPayload`). Seals may come in `seals` or mixed into `entries` (told apart by label).
    Each writer's chain is checked on its own against its stored head (`heads`, by writer;
    `head` is the export's); an entry is sealed when any chain lists it."""
    report = ChainReport()
    data: set[str] = set()
    found: list[_Seal] = []
    for entry in [*entries, *seals]:
        if is_seal(entry):
            seal = _seal_of(entry)
            if seal is None:
                report.altered.append(str(entry.get("insertId", "")))
                continue
            found.append(seal)
        else:
            data.add(str(entry.get("insertId", "")))
    report.entries = len(data)
    chains: dict[str, dict[str, _Seal]] = {}
    for seal in found:
        if (
            digest(seal.prev, seal.ids, seal.writer) != seal.digest
            or seal.insert_id != SEAL_PREFIX + seal.digest
        ):
            report.altered.append(seal.insert_id)
        else:
            chains.setdefault(seal.chain, {})[seal.digest] = seal
    report.seals = sum(len(valid) for valid in chains.values())

    stored = dict(heads or {})
    if head is not None:
        stored[EXPORT_WRITER] = head
    sealed: set[str] = set()
    for writer in sorted(set(chains) | {w for w, h in stored.items() if h != GENESIS}):
        valid = chains.get(writer, {})
        tips = _check_chain(valid, report)
        report.writers[writer] = tips
        report.tips += tips
        sealed.update(i for s in valid.values() for i in s.ids)
        wanted = stored.get(writer)
        if wanted is not None and wanted != GENESIS and tips != [wanted]:
            report.head.append(
                f"the {writer} chain ends at {tips or ['nothing']}, its stored head is {wanted}"
            )

    report.unsealed = sorted(data - sealed)
    report.missing = len(sealed - data)
    return report


def _check_chain(valid: Mapping[str, _Seal], report: ChainReport) -> list[str]:
    """One writer's chain: its detached starts and forks into `report`; its tips returned."""
    children: dict[str, list[_Seal]] = {}
    for seal in valid.values():
        children.setdefault(seal.prev, []).append(seal)
    sealed_by: dict[str, int] = {}
    for seal in valid.values():
        for entry_id in set(seal.ids):
            sealed_by[entry_id] = sealed_by.get(entry_id, 0) + 1

    def dead_end_resealed(seal: _Seal) -> bool:
        # A stopped run's seal: nothing chains on it and every id it lists is sealed again.
        return not children.get(seal.digest) and all(sealed_by[i] > 1 for i in seal.ids)

    roots = [s for s in valid.values() if s.prev != GENESIS and s.prev not in valid]
    genesis = children.get(GENESIS, [])
    if len(roots) + (1 if genesis else 0) > 1:
        # One start per window: the trail's first seal, or the first one whose prev fell out.
        starts = sorted([*roots, *genesis], key=lambda s: (-_descendants(s, children), s.digest))
        report.detached += [s.insert_id for s in starts[1:] if not dead_end_resealed(s)]
    for prev, kids in children.items():
        live = sorted(
            (k for k in kids if not dead_end_resealed(k)),
            key=lambda k: (-_descendants(k, children), k.digest),
        )
        # The branch the chain goes on is the longest; any other live one was not ours.
        report.forks += [f"{k.insert_id} (on {prev[:12]})" for k in live[1:]]
    return sorted(d for d, s in valid.items() if not children.get(d) and not dead_end_resealed(s))


def _descendants(seal: _Seal, children: Mapping[str, list[_Seal]]) -> int:
    count, stack = 0, [seal]
    while stack:
        current = stack.pop()
        kids = children.get(current.digest, [])
        count += len(kids)
        stack.extend(kids)
    return count
