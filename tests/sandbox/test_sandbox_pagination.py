"""Cursor pagination and the documented `limit` bounds."""

from __future__ import annotations

import pytest

from instantly_sandbox import Sandbox


@pytest.mark.parametrize(
    ("path", "limit", "message"),
    [
        ("/api-keys", "0", "querystring/limit must be >= 1"),
        ("/api-keys", "101", "querystring/limit must be <= 100"),
        ("/webhooks", "-3", "querystring/limit must be >= 1"),
        ("/workspace-members", "ten", "querystring/limit must be integer"),
        ("/audit-logs", "1001", "querystring/limit must be <= 1000"),
        ("/audit-logs", "0", "querystring/limit must be >= 1"),
    ],
)
def test_out_of_range_limit_is_400(admin, path: str, limit: str, message: str) -> None:
    response = admin.get(path, params={"limit": limit})
    assert response.status_code == 400
    assert response.json() == {"statusCode": 400, "error": "Bad Request", "message": message}


@pytest.mark.parametrize(("path", "limit"), [("/api-keys", 100), ("/audit-logs", 1000)])
def test_limit_upper_bounds_are_accepted(admin, path: str, limit: int) -> None:
    assert admin.get(path, params={"limit": limit}).status_code == 200


def _walk(client, path: str, limit: int, **params) -> tuple[list[str], list[dict]]:
    ids: list[str] = []
    pages: list[dict] = []
    cursor = None
    while True:
        query = {"limit": limit, **params} | ({"starting_after": cursor} if cursor else {})
        body = client.get(path, params=query).json()
        pages.append(body)
        if not body["items"]:
            break
        ids.extend(item.get("id") or item.get("email") for item in body["items"])
        cursor = body.get("next_starting_after")
        if cursor is None:
            break
    return ids, pages


def test_a_short_page_has_no_cursor(sandbox: Sandbox, admin) -> None:
    body = admin.get("/api-keys", params={"limit": 100}).json()
    assert len(body["items"]) == len(sandbox.state.api_keys)
    assert "next_starting_after" not in body


def test_an_exactly_full_last_page_still_carries_a_cursor_and_the_next_is_empty(
    sandbox: Sandbox, admin
) -> None:
    count = len(sandbox.state.api_keys)
    first = admin.get("/api-keys", params={"limit": count}).json()
    assert len(first["items"]) == count
    assert first["next_starting_after"] == first["items"][-1]["id"]
    after = admin.get(
        "/api-keys", params={"limit": count, "starting_after": first["next_starting_after"]}
    ).json()
    assert after == {"items": []}


@pytest.mark.parametrize(
    ("path", "collection"),
    [
        ("/api-keys", "api_keys"),
        ("/webhooks", "webhooks"),
        ("/workspace-members", "members"),
        ("/block-lists-entries", "block_list"),
        ("/campaigns", "campaigns"),
        ("/accounts", "accounts"),
    ],
)
def test_paging_by_two_visits_every_item_once(
    sandbox: Sandbox, admin, path: str, collection: str
) -> None:
    ids, pages = _walk(admin, path, 2)
    assert sorted(ids) == sorted(getattr(sandbox.state, collection))
    assert len(pages) >= 2


def test_accounts_cursor_is_timestamp_and_email(admin) -> None:
    body = admin.get("/accounts", params={"limit": 1}).json()
    account = body["items"][0]
    assert body["next_starting_after"] == f"{account['timestamp_created']}&{account['email']}"


def test_a_deleted_cursor_item_does_not_break_the_listing(sandbox: Sandbox, client_for) -> None:
    # The newest key lists last, so it is never the cursor of the first page.
    client = client_for(sandbox, sandbox.add_key("key-admin", ["api_keys:all"]).key)
    first = client.get("/api-keys", params={"limit": 2}).json()
    cursor = first["next_starting_after"]
    assert client.delete(f"/api-keys/{cursor}").status_code == 200
    rest, _ = _walk(client, "/api-keys", 100, starting_after=cursor)
    assert sorted([item["id"] for item in first["items"][:1]] + rest) == sorted(
        sandbox.state.api_keys
    )


def test_list_filters(sandbox: Sandbox, admin) -> None:
    pending = admin.get("/workspace-members", params={"accepted": "false"}).json()["items"]
    assert [member["email"] for member in pending] == ["gina@acme.example"]
    domains = admin.get("/block-lists-entries", params={"domains_only": "true"}).json()["items"]
    assert all(entry["is_domain"] for entry in domains)
    assert len(domains) == 2
    hooks = admin.get("/webhooks", params={"event_type": "email_bounced"}).json()["items"]
    assert [hook["name"] for hook in hooks] == ["bounce-sync"]
    bad = admin.get("/workspace-members", params={"accepted": "maybe"})
    assert bad.status_code == 400
