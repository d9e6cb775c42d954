"""`GET /audit-logs`: recorded mutations, listing orders, cursors under inserts, filters."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from instantly_sandbox import Sandbox

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _walk(client, limit: int = 100, *, between_pages=None, **params) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        query = {"limit": limit, **params} | ({"starting_after": cursor} if cursor else {})
        response = client.get("/audit-logs", params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        if not body["items"]:
            return ids
        ids.extend(item["id"] for item in body["items"])
        cursor = body.get("next_starting_after")
        if cursor is None:
            return ids
        if between_pages is not None:
            between_pages()


@pytest.fixture
def empty(sandbox_factory) -> Sandbox:
    return sandbox_factory(seed="empty")


def test_seeded_ids_are_time_ordered_uuid7(empty: Sandbox) -> None:
    ids = empty.seed_audit_logs(500, start=T0, step=timedelta(milliseconds=0))
    assert ids == sorted(ids)
    assert len(set(ids)) == 500
    assert all(entry_id[14] == "7" and entry_id[19] in "89ab" for entry_id in ids)


def test_an_entry_added_in_the_same_millisecond_as_a_seed_sorts_after_it() -> None:
    sb = Sandbox(seed="empty", clock=lambda: T0)
    seeded = sb.seed_audit_logs(100, start=T0, step=timedelta(0))
    assert sb.add_audit_log(1) > seeded[-1]


@pytest.mark.parametrize("order", ["asc", "desc", "random"])
def test_every_order_traverses_a_snapshot_exactly_once(
    sandbox_factory, client_for, order: str
) -> None:
    sb = sandbox_factory(seed="empty", listing_order=order)
    sb.seed_audit_logs(1_000, start=T0)
    ids = _walk(client_for(sb), limit=77)
    assert len(ids) == len(set(ids)) == 1_000
    assert ids == sb.state.audit_logs.listing_ids()
    if order == "asc":
        assert ids == sorted(ids)
    elif order == "desc":
        assert ids == sorted(ids, reverse=True)
    else:
        assert ids not in (sorted(ids), sorted(ids, reverse=True))


def test_random_order_is_the_same_in_every_listing_and_page_size(
    sandbox_factory, client_for
) -> None:
    sb = sandbox_factory(seed="empty", listing_order="random")
    sb.seed_audit_logs(300, start=T0)
    client = client_for(sb)
    assert _walk(client, limit=7) == _walk(client, limit=1000) == _walk(client, limit=300)


def test_asc_listing_sees_entries_written_during_it(empty: Sandbox, client_for) -> None:
    empty.seed_audit_logs(250, start=T0)
    added: list[str] = []
    ids = _walk(
        client_for(empty), limit=100, between_pages=lambda: added.append(empty.add_audit_log(1))
    )
    assert len(ids) == 250 + len(added)
    assert ids[-len(added) :] == added


def test_desc_listing_does_not_see_entries_written_during_it(empty: Sandbox, client_for) -> None:
    empty.set_listing_order("desc")
    seeded = empty.seed_audit_logs(250, start=T0)
    ids = _walk(client_for(empty), limit=100, between_pages=lambda: empty.add_audit_log(1))
    assert ids == seeded[::-1]


def test_random_listing_sees_exactly_the_new_entries_ranked_after_the_cursor(
    sandbox_factory, client_for
) -> None:
    sb = sandbox_factory(seed="empty", listing_order="random")
    seeded = sb.seed_audit_logs(400, start=T0)
    added: list[str] = []
    ids = _walk(client_for(sb), limit=50, between_pages=lambda: added.append(sb.add_audit_log(1)))
    assert len(ids) == len(set(ids))
    assert set(seeded) <= set(ids)
    # Whatever was added shows up at most once; the final order agrees with the snapshot order.
    final = sb.state.audit_logs.listing_ids()
    assert ids == [entry_id for entry_id in final if entry_id in set(ids)]


def test_mutations_are_audited_with_request_details(sandbox: Sandbox, admin) -> None:
    hook = admin.post(
        "/webhooks",
        json={"target_hook_url": "https://hooks.acme.example/x", "event_type": "email_sent"},
    ).json()
    admin.patch(f"/webhooks/{hook['id']}", json={"headers": {"x-webhook-secret": "s" * 32}})
    sandbox.disable_webhook(hook["id"])
    admin.post(f"/webhooks/{hook['id']}/resume")
    entries = sandbox.state.audit_logs.entries()[-4:]
    assert [entry.activity_type for entry in entries] == [18, 19, 20, 21]
    assert {entry.webhook_id for entry in entries} == {hook["id"]}
    api_made = [entries[0], entries[1], entries[3]]
    assert all(
        entry.from_api and entry.api_key_id == sandbox.keys["admin"].id for entry in api_made
    )
    assert entries[2].from_api is False
    # The secret header value never reaches the audit trail.
    assert "s" * 32 not in str(entries[1])


def test_filters_activity_type_and_search(sandbox: Sandbox, admin) -> None:
    mfa = admin.get("/audit-logs", params={"activity_type": 29, "limit": 100}).json()["items"]
    assert len(mfa) == 5
    assert {item["activity_type"] for item in mfa} == {29}
    found = admin.get("/audit-logs", params={"search": "198.51.100.23", "limit": 100}).json()
    assert {item["activity_type"] for item in found["items"]} == {29, 30}
    by_name = admin.get("/audit-logs", params={"search": "ops-key-manager"}).json()["items"]
    assert [item["activity_type"] for item in by_name] == [37]
    assert admin.get("/audit-logs", params={"activity_type": "x"}).status_code == 400


def test_date_filters_are_whole_days_inclusive(empty: Sandbox, client_for) -> None:
    start = datetime(2025, 3, 1, tzinfo=UTC)
    empty.seed_audit_logs(96, start=start, step=timedelta(hours=1))  # 1 Mar 00:00 .. 4 Mar 23:00
    client = client_for(empty)
    both = _walk(client, start_date="2025-03-02", end_date="2025-03-03")
    assert len(both) == 48
    stamps = [empty.state.audit_logs.get(entry_id).timestamp for entry_id in both]
    assert min(stamps) == "2025-03-02T00:00:00.000Z"
    assert max(stamps) == "2025-03-03T23:00:00.000Z"
    assert len(_walk(client, start_date="2025-03-04")) == 24
    assert len(_walk(client, end_date="2025-03-01")) == 24
    assert client.get("/audit-logs", params={"start_date": "March"}).status_code == 400


@pytest.mark.parametrize("order", ["asc", "desc", "random"])
def test_date_filters_combine_with_every_order(sandbox_factory, client_for, order: str) -> None:
    sb = sandbox_factory(seed="empty", listing_order=order)
    sb.seed_audit_logs(96, start=datetime(2025, 3, 1, tzinfo=UTC), step=timedelta(hours=1))
    ids = _walk(client_for(sb), limit=5, start_date="2025-03-02", end_date="2025-03-02")
    assert len(ids) == len(set(ids)) == 24


def test_add_audit_log_rejects_unknown_types_and_fields(empty: Sandbox) -> None:
    with pytest.raises(ValueError, match="unknown activity_type"):
        empty.add_audit_log(13)
    with pytest.raises(ValueError, match="unknown audit log fields"):
        empty.add_audit_log(1, colour="red")


@pytest.mark.slow
def test_100k_entries_seed_fast_and_page_completely(sandbox_factory, client_for) -> None:
    sb = sandbox_factory(seed="empty", record_responses=False)
    started = time.perf_counter()
    sb.seed_audit_logs(100_000, start=T0)
    assert time.perf_counter() - started < 3.0
    ids = _walk(client_for(sb, timeout=30), limit=1000)
    assert len(ids) == len(set(ids)) == 100_000
