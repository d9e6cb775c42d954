"""How the Instantly client follows `next_starting_after`, and when it stops."""

from __future__ import annotations

import gc
import weakref
from datetime import date

import httpx
import pytest
from tests.unit.instantly_fakes import (
    ScriptedApi,
    api_key,
    audit_log,
    block_list_entry,
    make_client,
    member,
    page,
    webhook,
)

from instantly_guard.errors import UnexpectedResponseError


def test_cursors_are_followed_to_the_end_and_every_item_arrives_once() -> None:
    entries = [audit_log() for _ in range(5)]
    api = ScriptedApi(
        page(entries[:2], cursor=entries[1]["id"]),
        page(entries[2:4], cursor=entries[3]["id"]),
        page(entries[4:]),
    )
    client, _ = make_client(api)
    assert [e.id for e in client.iter_audit_logs(limit=2)] == [e["id"] for e in entries]
    assert [r.url.params.get("starting_after") for r in api.requests] == [
        None,
        entries[1]["id"],
        entries[3]["id"],
    ]
    assert {r.url.params["limit"] for r in api.requests} == {"2"}


def test_an_empty_page_ends_the_listing_even_with_a_cursor() -> None:
    # Instantly's last page may still carry a cursor.
    api = ScriptedApi(page([api_key()], cursor="c1"), page([], cursor="c2"), page([api_key()]))
    client, _ = make_client(api)
    assert len(list(client.list_api_keys())) == 1
    assert api.count == 2


def test_a_page_without_a_cursor_ends_the_listing() -> None:
    api = ScriptedApi(page([webhook(), webhook()]), page([webhook()]))
    client, _ = make_client(api)
    assert len(list(client.list_webhooks())) == 2
    assert api.count == 1


def test_a_short_page_with_a_cursor_is_not_taken_as_the_end() -> None:
    api = ScriptedApi(page([member()], cursor="c1"), page([member()], cursor="c2"), page([]))
    client, _ = make_client(api)
    assert len(list(client.list_workspace_members(limit=100))) == 2
    assert api.count == 3


def test_a_repeated_cursor_raises_instead_of_looping() -> None:
    api = ScriptedApi(
        page([block_list_entry()], cursor="c1"),
        page([block_list_entry()], cursor="c2"),
        page([block_list_entry()], cursor="c1"),
    )
    client, _ = make_client(api)
    seen: list[object] = []
    with pytest.raises(UnexpectedResponseError, match="cursor 'c1' came back after 2 pages"):
        seen.extend(client.list_block_list_entries())
    assert len(seen) == 3  # what arrived before the loop was detected was handed out
    assert api.count == 3


def test_a_cursor_equal_to_the_one_just_sent_raises() -> None:
    api = ScriptedApi(page([audit_log()], cursor="same"))
    client, _ = make_client(api)
    with pytest.raises(UnexpectedResponseError, match="stopping instead of looping"):
        list(client.iter_audit_logs())
    assert api.count == 2


def test_pages_are_fetched_lazily() -> None:
    api = ScriptedApi(page([audit_log()], cursor="c1"), page([audit_log()], cursor="c2"), page([]))
    client, _ = make_client(api)
    pages = client.iter_audit_log_pages(limit=1)
    assert api.count == 0
    first = next(pages)
    assert len(first) == 1
    assert api.count == 1


def test_audit_log_pages_are_lists_of_entries() -> None:
    api = ScriptedApi(page([audit_log(), audit_log()], cursor="c1"), page([audit_log()]))
    client, _ = make_client(api)
    assert [len(p) for p in client.iter_audit_log_pages(limit=2)] == [2, 1]


def test_a_page_read_is_freed_without_waiting_for_the_cycle_collector() -> None:
    """httpx binds a response and its stream to each other; unless the client breaks that cycle,
    every ~400 KB audit page waits for a full collection, and a long export's memory grows."""
    answered: list[weakref.ref[httpx.Response]] = []

    def reply(request: httpx.Request) -> httpx.Response:
        response = page([audit_log()])
        answered.append(weakref.ref(response))
        return response

    client, _ = make_client(ScriptedApi(reply))
    gc.disable()
    try:
        listed = client.audit_log_page(start_date=date(2026, 1, 1))
        assert len(listed.items) == 1
        assert answered[0]() is None
    finally:
        gc.enable()
