"""Fault injection: every mode, with and without the change being committed."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from instantly_sandbox import Sandbox

CREATE = {"name": "rotation/1", "scopes": ["audit_logs:read"]}


def _named(sb: Sandbox, name: str) -> int:
    return len(sb.state.keys_named(name))


@pytest.mark.parametrize(
    ("mode", "status", "error"),
    [
        ("error_500", 500, "Internal Server Error"),
        ("error_503", 503, "Service Unavailable"),
        ("error_429", 429, "Too Many Requests"),
    ],
)
def test_error_modes_answer_the_envelope_and_change_nothing(
    sandbox: Sandbox, admin, mode: str, status: int, error: str
) -> None:
    sandbox.faults.fail_next("POST /api-keys", times=2, mode=mode)
    for _ in range(2):
        response = admin.post("/api-keys", json=CREATE)
        assert response.status_code == status
        assert response.json()["error"] == error
        assert "retry-after" not in response.headers
    assert _named(sandbox, "rotation/1") == 0
    assert admin.post("/api-keys", json=CREATE).status_code == 200
    assert sandbox.faults.fired == [("POST /api-keys", mode)] * 2


def test_502_is_a_non_json_gateway_page(sandbox: Sandbox, admin) -> None:
    sandbox.faults.fail_next("GET /audit-logs", mode="error_502")
    response = admin.get("/audit-logs")
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    assert "Bad Gateway" in response.text


def test_commit_then_500_leaves_the_change_in_place(sandbox: Sandbox, admin) -> None:
    sandbox.faults.fail_next("POST /api-keys", mode="error_500", commit=True)
    assert admin.post("/api-keys", json=CREATE).status_code == 500
    assert _named(sandbox, "rotation/1") == 1


def test_lost_response_commits_and_drops_the_connection(sandbox: Sandbox, admin) -> None:
    sandbox.faults.fail_next("POST /api-keys", mode="lost_response")
    with pytest.raises(httpx.RemoteProtocolError):
        admin.post("/api-keys", json=CREATE)
    orphans = sandbox.state.keys_named("rotation/1")
    assert len(orphans) == 1  # created, but nobody ever saw its key string
    last = sandbox.state.audit_logs.entries()[-1]
    assert (last.activity_type, last.audit_metadata["id"]) == (37, orphans[0].id)
    # The server keeps serving on new connections.
    assert admin.get("/api-keys").status_code == 200


def test_lost_delete_response_still_deletes(sandbox: Sandbox, admin) -> None:
    victim = sandbox.keys["legacy-zapier"]
    sandbox.faults.fail_next("DELETE /api-keys/{id}", mode="lost_response")
    with pytest.raises(httpx.RemoteProtocolError):
        admin.delete(f"/api-keys/{victim.id}")
    assert victim.id not in sandbox.state.api_keys
    assert admin.delete(f"/api-keys/{victim.id}").status_code == 404


def test_timeout_outlasts_the_client_and_changes_nothing(sandbox: Sandbox, client_for) -> None:
    sandbox.faults.fail_next("POST /api-keys", mode="timeout", hold_s=2.0)
    client = client_for(sandbox, timeout=0.2)
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        client.post("/api-keys", json=CREATE)
    assert time.monotonic() - started < 1.5
    assert _named(sandbox, "rotation/1") == 0


def test_timeout_after_commit(sandbox_factory, client_for) -> None:
    sb = sandbox_factory(seed="demo", timeout_hold_s=0.5)
    sb.faults.fail_next("POST /api-keys", mode="timeout", commit=True)
    with pytest.raises(httpx.ReadTimeout):
        client_for(sb, timeout=0.2).post("/api-keys", json=CREATE)
    assert _named(sb, "rotation/1") == 1


def test_held_timeout_ends_in_a_dropped_connection(sandbox_factory, client_for) -> None:
    sb = sandbox_factory(seed="demo", timeout_hold_s=0.1)
    sb.faults.fail_next("GET /api-keys", mode="timeout")
    with pytest.raises(httpx.RemoteProtocolError):
        client_for(sb, timeout=5).get("/api-keys")


def test_stop_does_not_wait_for_a_held_response(sandbox_factory, client_for) -> None:
    sb = sandbox_factory(seed="demo", timeout_hold_s=30)
    sb.faults.fail_next("GET /campaigns", mode="timeout")
    client = client_for(sb, timeout=30)
    failures: list[BaseException] = []

    def call() -> None:
        try:
            client.get("/campaigns")
        except httpx.HTTPError as exc:
            failures.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 5
    while sb.calls["GET /campaigns"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    sb.stop()
    caller.join(5)
    assert time.monotonic() - started < 2
    assert failures
    assert not caller.is_alive()


def test_wildcard_fault_hits_the_next_call_of_any_operation(sandbox: Sandbox, admin) -> None:
    sandbox.faults.fail_next("*", mode="error_503")
    assert admin.get("/workspace-members").status_code == 503
    assert admin.get("/workspace-members").status_code == 200


def test_faults_are_consumed_in_order_per_operation(sandbox: Sandbox, admin) -> None:
    sandbox.faults.fail_next("GET /api-keys", mode="error_500")
    sandbox.faults.fail_next("GET /api-keys", mode="error_429")
    assert admin.get("/campaigns").status_code == 200  # other operations are untouched
    assert [admin.get("/api-keys").status_code for _ in range(3)] == [500, 429, 200]


def test_retry_after_is_opt_in(sandbox_factory, client_for) -> None:
    sb = sandbox_factory(seed="demo", retry_after_s=2)
    sb.faults.fail_next("GET /api-keys", mode="error_429")
    assert client_for(sb).get("/api-keys").headers["retry-after"] == "2"


@pytest.mark.parametrize(
    ("operation", "mode", "message"),
    [
        ("POST /api-keys", "explode", "unknown fault mode"),
        ("/api-keys", "error_500", "operation must look like"),
        ("FETCH /api-keys", "error_500", "operation must look like"),
    ],
)
def test_bad_fault_arguments_are_refused(sandbox: Sandbox, operation, mode, message) -> None:
    with pytest.raises(ValueError, match=message):
        sandbox.faults.fail_next(operation, mode=mode)


def test_operation_keys_may_carry_the_base_path(sandbox: Sandbox, admin) -> None:
    sandbox.faults.fail_next("post /api/v2/api-keys")
    assert admin.post("/api-keys", json=CREATE).status_code == 500
