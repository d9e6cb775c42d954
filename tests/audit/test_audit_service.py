"""The service: configuration, the key source, the HTTP status of every outcome, actionable
error logs, and Cloud Scheduler deduplication, against the sandbox."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest

from instantly_guard.audit.service import (
    build_service,
    export_options,
    scheduler_run_key,
)
from instantly_guard.audit.settings import AuditSettings
from instantly_guard.audit.sinks.local import read_entries
from instantly_guard.errors import BackendError, ConfigError
from instantly_guard.secret import Secret

from .audit_support import MemorySink, assert_exact

SCHEDULER = {
    "X-CloudScheduler-JobName": "instantly-audit-export",
    "X-CloudScheduler-ScheduleTime": "2026-03-04T12:05:00.123Z",
    "X-CloudScheduler": "true",
}
NO_SLEEP = {"sleep": lambda _: None}


def local_env(sb, state: Path, key: str | None = None, **extra: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    env = {
        "GUARD_BACKEND": "local",
        "GUARD_STATE_DIR": str(state),
        "INSTANTLY_API_BASE": sb.base_url,
        "INSTANTLY_API_KEY": key or sb.keys["admin"].key,
        "INSTANTLY_RATE_PER_SECOND": "50",
        "INSTANTLY_RATE_PER_MINUTE": "6000",
        "AUDIT_RATE_SHARE": "1",
    }
    env.update(extra)
    return env


@pytest.fixture
def sb(sandbox_factory):  # type: ignore[no-untyped-def]
    sandbox = sandbox_factory(seed="empty", listing_order="random")
    sandbox.seed_audit_logs(1500, step=timedelta(seconds=30), activity_types=(1, 37, 30))
    return sandbox


@pytest.fixture
def services():  # type: ignore[no-untyped-def]
    made = []

    def make(env, **kwargs):  # type: ignore[no-untyped-def]
        service = build_service(env, **kwargs)
        made.append(service)
        return service

    yield make
    for service in made:
        service.close()


# -- settings -------------------------------------------------------------------------------------


def test_settings_defaults() -> None:
    settings = AuditSettings.from_env({"GUARD_BACKEND": "local", "INSTANTLY_API_KEY": "k" * 20})
    assert settings.log_name == "instantly-audit"
    assert settings.checkpoint_object == "instantly-audit/checkpoint.json"
    assert settings.lookback == timedelta(days=7)
    assert settings.time_budget == timedelta(seconds=480)
    assert settings.overlap == timedelta(minutes=5)
    assert settings.rate_share == 0.25
    # A quarter of Instantly's 100/s and 6,000/min, capped by the process-wide defaults (20/s).
    assert settings.rate_per_second == 20
    assert settings.rate_per_minute == 1200


def test_rate_share_sets_the_exporters_budget() -> None:
    settings = AuditSettings.from_env(
        {
            "GUARD_BACKEND": "local",
            "INSTANTLY_API_KEY": "k" * 20,
            "AUDIT_RATE_SHARE": "0.1",
            "INSTANTLY_RATE_PER_SECOND": "50",
            "INSTANTLY_RATE_PER_MINUTE": "6000",
        }
    )
    assert (settings.rate_per_second, settings.rate_per_minute) == (10, 600)


def test_day_margin_defaults_to_one_day_and_reaches_the_exporter() -> None:
    env = {"GUARD_BACKEND": "local", "INSTANTLY_API_KEY": "k" * 20}
    assert export_options(AuditSettings.from_env(env)).day_margin == 1
    assert export_options(AuditSettings.from_env({**env, "AUDIT_DAY_MARGIN": "2"})).day_margin == 2
    with pytest.raises(ConfigError, match="AUDIT_DAY_MARGIN"):
        AuditSettings.from_env({**env, "AUDIT_DAY_MARGIN": "-1"})


def test_gcp_settings_report_every_problem_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        AuditSettings.from_env(
            {
                "GUARD_BACKEND": "gcp",
                "AUDIT_TIME_BUDGET": "2h",
                "AUDIT_RATE_SHARE": "3",
                "AUDIT_LOG_NAME": "bad name!",
                "LOGGING_EMULATOR_HOST": "logging.example.com:443",
            }
        )
    text = str(caught.value)
    for expected in (
        "AUDIT_CHECKPOINT_BUCKET is required",
        "GOOGLE_CLOUD_PROJECT is required",
        "AUDIT_TIME_BUDGET",
        "AUDIT_RATE_SHARE",
        "AUDIT_LOG_NAME",
        "LOGGING_EMULATOR_HOST",
        "no Instantly key",
    ):
        assert expected in text


def test_the_key_secret_may_be_a_resource_name_or_a_bare_name() -> None:
    base = {"GUARD_BACKEND": "gcp", "GOOGLE_CLOUD_PROJECT": "p1", "AUDIT_CHECKPOINT_BUCKET": "b"}
    full = AuditSettings.from_env({**base, "AUDIT_API_KEY_SECRET": "projects/p2/secrets/audit-key"})
    bare = AuditSettings.from_env({**base, "AUDIT_API_KEY_SECRET": "audit-key"})
    assert (full.key.secret_project, full.key.secret_name) == ("p2", "audit-key")
    assert (bare.key.secret_project, bare.key.secret_name) == ("p1", "audit-key")
    assert "projects/p1/secrets/audit-key" in bare.key.describe()
    with pytest.raises(ConfigError, match="not both"):
        AuditSettings.from_env({**base, "AUDIT_API_KEY_SECRET": "a", "INSTANTLY_API_KEY": "k" * 20})


def test_scheduler_run_key_needs_both_headers() -> None:
    assert scheduler_run_key(SCHEDULER) == "instantly-audit-export@2026-03-04T12:05:00.123Z"
    assert scheduler_run_key({"x-cloudscheduler-jobname": "j"}) is None
    assert scheduler_run_key({}) is None


# -- responses ------------------------------------------------------------------------------------


def test_a_run_answers_200_with_the_summary(sb, tmp_path, services) -> None:  # type: ignore[no-untyped-def]
    service = services(local_env(sb, tmp_path))

    response = service.handle("POST", SCHEDULER)

    assert response.status == 200
    body = response.body
    assert body["exported"] == 1500
    assert body["stopped_reason"] == "complete"
    assert body["duplicates_skipped"] == 0
    assert body["pages"] >= 2
    assert body["checkpoint"]["watermark"]
    assert body["checkpoint"]["location"].endswith("audit/checkpoint.json")
    assert body["duration_ms"] >= 0
    written = [e["insertId"] for e in read_entries(tmp_path / "audit" / "instantly-audit.jsonl")]
    assert_exact(written, sb.state.audit_logs.ids())  # every occurrence: no duplicate hides


def test_a_second_delivery_of_the_same_scheduler_run_exports_nothing(
    sb, tmp_path, services
) -> None:  # type: ignore[no-untyped-def]
    service = services(local_env(sb, tmp_path))
    service.handle("POST", SCHEDULER)
    sb.add_audit_log(37)

    again = service.handle("POST", SCHEDULER)
    following = service.handle(
        "POST", {**SCHEDULER, "X-CloudScheduler-ScheduleTime": "2026-03-04T12:10:00Z"}
    )

    assert again.status == 200
    assert again.body["stopped_reason"] == "duplicate_delivery"
    assert again.body["exported"] == 0
    assert following.body["exported"] == 1


def test_only_post_is_accepted(sb, tmp_path, services) -> None:  # type: ignore[no-untyped-def]
    response = services(local_env(sb, tmp_path)).handle("GET", {})
    assert response.status == 405
    assert response.headers["Allow"] == "POST"


def test_a_key_without_the_audit_scope_is_a_logged_permanent_failure(
    sb, tmp_path, services, caplog
) -> None:  # type: ignore[no-untyped-def]
    weak = sb.add_key("leads-only", ["leads:read", "campaigns:read"])
    service = services(local_env(sb, tmp_path, key=weak.key))

    with caplog.at_level(logging.ERROR, logger="instantly_guard.audit"):
        response = service.handle("POST", SCHEDULER)

    assert response.status == 500
    error = response.body["error"]
    assert error["kind"] == "missing_scope"
    assert "audit_logs:read" in error["required"]
    assert set(error["found"]) == {"leads:read", "campaigns:read"}
    assert response.body["stopped_reason"] == "failed"
    (logged,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    message = logged.getMessage()
    assert "lacks scope audit_logs:read" in message
    assert "INSTANTLY_API_KEY" in message  # which key: where it came from
    assert weak.key not in message


def test_a_revoked_key_is_a_permanent_failure_naming_the_secret(
    sb, tmp_path, services, caplog
) -> None:  # type: ignore[no-untyped-def]
    from instantly_guard.secrets.local import LocalSecretStore

    key = sb.add_key("audit", ["audit_logs:read"])
    store = LocalSecretStore(tmp_path / "secrets")
    store.create_secret("instantly-audit-key", labels={}, annotations={})
    version = store.add_version("instantly-audit-key", Secret(key.key))
    meta = store.get("instantly-audit-key")
    store.update(
        "instantly-audit-key", aliases={"current": version}, annotations={}, etag=meta.etag
    )
    env = local_env(sb, tmp_path, AUDIT_API_KEY_SECRET="instantly-audit-key")
    del env["INSTANTLY_API_KEY"]
    service = services(env, secret_store=store)
    assert service.handle("POST", {}).status == 200  # the key from the secret works
    sb.state.delete_key(key.id)  # revoked in Instantly

    with caplog.at_level(logging.ERROR, logger="instantly_guard.audit"):
        response = service.handle("POST", {})

    assert response.status == 500
    assert response.body["error"]["kind"] == "invalid_key"
    assert "secret instantly-audit-key (alias current" in response.body["error"]["message"]
    assert any("instantly-audit-key" in r.getMessage() for r in caplog.records)


def test_no_paid_plan_is_a_permanent_failure(sb, tmp_path, services) -> None:  # type: ignore[no-untyped-def]
    sb.set_paid_plan(False)
    response = services(local_env(sb, tmp_path)).handle("POST", {})
    assert response.status == 500
    assert response.body["error"]["kind"] == "no_paid_plan"


def test_instantly_unavailable_is_transient(sb, tmp_path, services, caplog) -> None:  # type: ignore[no-untyped-def]
    sb.faults.fail_next("GET /audit-logs", times=10, mode="error_503")
    service = services(local_env(sb, tmp_path), client_options=NO_SLEEP)

    with caplog.at_level(logging.WARNING, logger="instantly_guard.audit"):
        response = service.handle("POST", SCHEDULER)

    assert response.status == 503
    assert response.body["error"]["kind"] == "instantly_unavailable"
    assert any(r.levelno == logging.WARNING for r in caplog.records)
    sb.faults.clear()
    # The Scheduler retry of the same run is not taken for a duplicate.
    retry = service.handle("POST", SCHEDULER)
    assert (retry.status, retry.body["exported"]) == (200, 1500)


@pytest.mark.parametrize(("retryable", "status"), [(True, 503), (False, 500)])
def test_sink_failures_map_by_retryability(sb, tmp_path, services, retryable, status) -> None:  # type: ignore[no-untyped-def]
    sink = MemorySink()

    def broken(entries):  # type: ignore[no-untyped-def]
        raise BackendError("Cloud Logging write failed", retryable=retryable)

    sink.write = broken  # type: ignore[method-assign]
    response = services(local_env(sb, tmp_path), sink=sink).handle("POST", {})
    assert response.status == status
    assert response.body["error"]["kind"] == (
        "backend_unavailable" if retryable else "backend_rejected"
    )


def test_the_key_never_appears_in_a_response_or_a_log(sb, tmp_path, services, caplog) -> None:  # type: ignore[no-untyped-def]
    weak = sb.add_key("weak", ["leads:read"])
    with caplog.at_level(logging.DEBUG):
        response = services(local_env(sb, tmp_path, key=weak.key)).handle("POST", SCHEDULER)
    assert weak.key not in repr(response.body)
    assert weak.key not in caplog.text


def test_a_key_file_is_read_again_after_the_key_is_rejected(sb, tmp_path, services) -> None:  # type: ignore[no-untyped-def]
    old = sb.add_key("audit-old", ["audit_logs:read"])
    new = sb.add_key("audit-new", ["audit_logs:read"])
    key_file = tmp_path / "key"
    key_file.write_text(old.key + "\n")
    env = local_env(sb, tmp_path, INSTANTLY_API_KEY_FILE=str(key_file))
    del env["INSTANTLY_API_KEY"]
    service = services(env)
    assert service.handle("POST", {}).status == 200
    # Rotated: the mounted file now holds the new key and the old one is revoked.
    key_file.write_text(new.key + "\n")
    sb.state.delete_key(old.id)
    sb.add_audit_log(37)

    response = service.handle("POST", {})

    assert response.status == 200
    assert response.body["exported"] >= 1


# -- the deployed key path: AUDIT_API_KEY_SECRET in Secret Manager (GUARD_BACKEND=gcp) ------------

KEY_SECRET_NAME = "instantly-audit-key"  # pragma: allowlist secret (a secret id, no value)


def _point_current_at(store, value: str) -> None:  # type: ignore[no-untyped-def]
    version = store.add_version(KEY_SECRET_NAME, Secret(value))
    store.update(
        KEY_SECRET_NAME,
        aliases={"current": version},
        annotations={},
        etag=store.get(KEY_SECRET_NAME).etag,
    )


@pytest.mark.gcp
def test_the_deployed_key_is_read_from_secret_manager_and_follows_its_current_alias(
    sb, services, caplog
) -> None:  # type: ignore[no-untyped-def]
    """GUARD_BACKEND=gcp end to end: the key through the real Secret Manager client (alias
    `current`), entries through the real Cloud Logging client, the checkpoint through the real
    Cloud Storage client, each against its in-process stand-in."""
    from tests.standins.gcs import GcsStandIn
    from tests.standins.logging_api import LoggingStandIn
    from tests.standins.secret_manager import SecretManagerStandIn

    from instantly_guard.secrets.gcp import GcpSecretStore

    old = sb.add_key("audit-old", ["audit_logs:read"])
    new = sb.add_key("audit-new", ["audit_logs:read"])
    with (
        SecretManagerStandIn() as secret_manager,
        LoggingStandIn() as logging_api,
        GcsStandIn() as gcs,
    ):
        client = secret_manager.client()
        store = GcpSecretStore("demo-project", client=client)
        store.create_secret(KEY_SECRET_NAME, labels={}, annotations={})
        _point_current_at(store, old.key)
        env = {
            "GUARD_BACKEND": "gcp",
            "GOOGLE_CLOUD_PROJECT": "demo-project",
            "AUDIT_CHECKPOINT_BUCKET": "demo-audit",
            "AUDIT_API_KEY_SECRET": f"projects/demo-project/secrets/{KEY_SECRET_NAME}",
            "INSTANTLY_API_BASE": sb.base_url,
            "LOGGING_EMULATOR_HOST": logging_api.target,
            "STORAGE_EMULATOR_HOST": gcs.url,
        }
        service = services(env, secret_store=store)
        try:
            first = service.handle("POST", SCHEDULER)
            assert first.status == 200, first.body
            assert first.body["exported"] == 1500
            assert secret_manager.calls["AccessSecretVersion"] >= 1

            # Rotated: `current` names a new key and the old one is revoked. The next run gets a
            # 401 with the cached key, reads `current` again and carries on.
            _point_current_at(store, new.key)
            sb.state.delete_key(old.id)
            sb.add_audit_log(37)
            second = service.handle(
                "POST", {**SCHEDULER, "X-CloudScheduler-ScheduleTime": "2026-03-04T12:10:00Z"}
            )
            assert (second.status, second.body["exported"]) == (200, 1), second.body

            # Revoked with nothing to replace it: permanent, and the message names the secret.
            sb.state.delete_key(new.id)
            with caplog.at_level(logging.DEBUG):
                third = service.handle(
                    "POST", {**SCHEDULER, "X-CloudScheduler-ScheduleTime": "2026-03-04T12:15:00Z"}
                )
            assert third.status == 500
            assert third.body["error"]["kind"] == "invalid_key"
            assert (
                f"secret projects/demo-project/secrets/{KEY_SECRET_NAME} (alias current"
                in third.body["error"]["message"]
            )
            for key in (old.key, new.key):
                assert key not in repr(third.body)
                assert key not in caplog.text
            # Exactly the sandbox's entries, each written once (counted, not collapsed).
            trail = [  # the audit log; its chain's seals go to a log of their own
                e.insert_id
                for c in logging_api.calls
                if not c.log_name.endswith("-chain")
                for e in c.accepted
            ]
            assert_exact(trail, sb.state.audit_logs.ids())
        finally:
            client.transport.close()


@pytest.mark.gcp
@pytest.mark.parametrize("prepare", ["no_secret", "no_alias", "denied"])
def test_an_unreadable_key_secret_is_a_permanent_failure_naming_the_secret(
    sb, tmp_path, services, prepare
) -> None:  # type: ignore[no-untyped-def]
    import grpc
    from tests.standins.secret_manager import SecretManagerStandIn

    from instantly_guard.secrets.gcp import GcpSecretStore

    with SecretManagerStandIn() as secret_manager:
        client = secret_manager.client()
        store = GcpSecretStore("demo-project", client=client)
        if prepare != "no_secret":
            store.create_secret(KEY_SECRET_NAME, labels={}, annotations={})
        if prepare == "denied":
            _point_current_at(store, sb.keys["admin"].key)
            secret_manager.fail_next("AccessSecretVersion", grpc.StatusCode.PERMISSION_DENIED)
        env = local_env(
            sb, tmp_path, AUDIT_API_KEY_SECRET=f"projects/demo-project/secrets/{KEY_SECRET_NAME}"
        )
        del env["INSTANTLY_API_KEY"]
        try:
            response = services(env, secret_store=store).handle("POST", SCHEDULER)
        finally:
            client.transport.close()

    assert response.status == 500, response.body
    error = response.body["error"]
    assert error["kind"] == "key_unavailable"
    assert f"projects/demo-project/secrets/{KEY_SECRET_NAME}" in error["message"]
    assert "AUDIT_API_KEY_SECRET" in error["message"]
    if prepare == "denied":
        assert "roles/secretmanager.secretAccessor" in error["message"]
    assert sb.keys["admin"].key not in repr(response.body)
