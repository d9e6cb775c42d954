"""The snapshot's sections: streamed while the listing is in id order, sorted once when it is
not; either way the same bytes, so the comparison and the insertIds do not depend on the order
Instantly lists in."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from instantly_guard.instantly import InstantlyClient, StaticKey
from instantly_guard.inventory.diff import differences
from instantly_guard.inventory.records import Record
from instantly_guard.inventory.run import ClientReader, Inventory, Outcome
from instantly_guard.inventory.service import local_sink
from instantly_guard.inventory.snapshot import Header, SnapshotWriter, StoredSnapshot
from instantly_guard.inventory.stores import LocalSnapshotStore
from instantly_guard.secret import Secret
from instantly_sandbox import Sandbox
from instantly_sandbox.seed import MEMBER_PENDING

from .inventory_support import Clock, Person, changes, inventory_key


def _line(n: int, value: str = "v") -> str:
    return Record(f"id-{n:05d}", f"name{n}", {"value": value}).line()


def test_a_listing_out_of_order_with_a_repeated_id_closes_to_the_sorted_bytes() -> None:
    ordered = [_line(n) for n in range(2500)]
    shuffled = ordered[:]
    random.Random(7).shuffle(shuffled)
    shuffled.insert(100, ordered[5])  # a page boundary repeated an item
    header = Header(taken_at=datetime(2026, 3, 4, tzinfo=UTC), workspace_id="ws")

    bodies = []
    for listing in (ordered, shuffled):
        writer = SnapshotWriter(header)
        for kind, lines in (("member", [_line(9000)]), ("blocklist", listing)):
            section = writer.section(kind)
            for line in lines:
                section.add(line)
            section.close()
        bodies.append((writer.finish(), writer))

    (streamed, one), (held, other) = bodies
    assert one.streamed
    assert not other.streamed
    assert held == streamed
    assert one.counts == other.counts == {"member": 1, "blocklist": 2500}
    assert [line for kind, line in StoredSnapshot(held).lines() if kind == "blocklist"] == ordered


@given(
    st.sets(st.integers(0, 60), max_size=30),
    st.sets(st.integers(0, 60), max_size=30),
    st.sets(st.integers(0, 60), max_size=10),
)
def test_differences_of_sorted_streams_are_exactly_the_set_differences(
    old_ids: set[int], new_ids: set[int], edited: set[int]
) -> None:
    old = [_line(n) for n in sorted(old_ids)]
    new = [_line(n, "w" if n in edited else "v") for n in sorted(new_ids)]

    found = list(differences(old, new))

    removed = {o for o, n in found if n is None}
    added = {n for o, n in found if o is None}
    changed = {(o, n) for o, n in found if o is not None and n is not None}
    assert removed == {_line(n) for n in old_ids - new_ids}
    assert added == {_line(n, "w" if n in edited else "v") for n in new_ids - old_ids}
    assert changed == {(_line(n), _line(n, "w")) for n in (old_ids & new_ids & edited)}


class Reversed:
    """The workspace as the client reads it, every listing in reverse (an API whose order
    cannot be trusted)."""

    def __init__(self, inner: ClientReader) -> None:
        self.inner = inner

    def records(self, kind: str) -> list[Record]:
        return list(reversed(list(self.inner.records(kind))))


def test_an_unordered_listing_gives_the_same_changes(sandbox: Sandbox, tmp_path: Path) -> None:
    clock = Clock()
    store = LocalSnapshotStore(tmp_path / "inventory" / "snapshot.bin")
    with InstantlyClient(StaticKey(Secret(inventory_key(sandbox))), sandbox.base_url) as client:
        ordered = Inventory(ClientReader(client), local_sink(tmp_path), store, clock=clock)
        unordered = Inventory(
            Reversed(ClientReader(client)), local_sink(tmp_path), store, clock=clock
        )
        assert ordered.run().outcome == Outcome.BASELINE
        clock.advance()
        same = unordered.run()
        assert (same.outcome, same.sorted_listings) == (Outcome.UNCHANGED, False)
        with Person(sandbox) as person:
            member = person.member_id(MEMBER_PENDING)
            person.call("PATCH", f"/workspace-members/{member}", json={"role": "admin"})
        clock.advance()
        report = unordered.run()

    assert report.outcome == Outcome.CHANGED
    assert changes(tmp_path) == [("member.role_changed", MEMBER_PENDING)]
