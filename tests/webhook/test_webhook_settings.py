"""WebhookSettings: defaults, every problem reported at once, secrets never in messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from webhook_support import SECRET

from instantly_guard.errors import ConfigError
from instantly_guard.webhook.handler import MAX_MESSAGE_BYTES
from instantly_guard.webhook.settings import MAX_BODY_LIMIT, PublisherKind, WebhookSettings


def test_defaults_for_local():
    settings = WebhookSettings.from_env(
        {"GUARD_BACKEND": "local", "INSTANTLY_WEBHOOK_SECRET": SECRET}
    )

    assert settings.secret_header == "x-webhook-secret"
    assert settings.max_body_bytes == 262144
    assert settings.publisher is PublisherKind.OUTBOX
    assert settings.publish_timeout == 10
    assert settings.dedupe_window == 600
    assert settings.proxy_hops == 1
    assert settings.allowed_networks == ()
    assert SECRET not in repr(settings)


def test_gcp_needs_a_topic_and_completes_short_names():
    settings = WebhookSettings.from_env(
        {
            "INSTANTLY_WEBHOOK_SECRET": SECRET,
            "WEBHOOK_PUBSUB_TOPIC": "events",
            "GOOGLE_CLOUD_PROJECT": "p1",
        }
    )
    assert settings.publisher is PublisherKind.PUBSUB
    assert settings.topic == "projects/p1/topics/events"

    with pytest.raises(ConfigError, match="WEBHOOK_PUBSUB_TOPIC is required"):
        WebhookSettings.from_env({"INSTANTLY_WEBHOOK_SECRET": SECRET})


def test_every_problem_is_reported_at_once_without_secret_values():
    env = {
        "GUARD_BACKEND": "gcp",
        "INSTANTLY_WEBHOOK_SECRET": "short-secret",
        "INSTANTLY_WEBHOOK_SECRET_PREVIOUS": "p" * 20,
        "INSTANTLY_WEBHOOK_SECRET_PREVIOUS_FILE": "/run/secret",
        "WEBHOOK_SECRET_HEADER": "bad header",
        "WEBHOOK_BASIC_USER": "user",
        "WEBHOOK_ALLOWED_CIDRS": "10.0.0.0/8, nope",
        "WEBHOOK_MAX_BODY_BYTES": "10",
        "WEBHOOK_PUBLISHER": "noop",
        "WEBHOOK_PUBLISH_TIMEOUT": "forever",
    }

    with pytest.raises(ConfigError) as caught:
        WebhookSettings.from_env(env)

    text = str(caught.value)
    for expected in (
        "INSTANTLY_WEBHOOK_SECRET: secret is shorter than 16 bytes",
        "set INSTANTLY_WEBHOOK_SECRET_PREVIOUS or INSTANTLY_WEBHOOK_SECRET_PREVIOUS_FILE, not both",
        "WEBHOOK_SECRET_HEADER",
        "WEBHOOK_BASIC_USER and WEBHOOK_BASIC_PASSWORD",
        "'nope' is not a CIDR",
        "WEBHOOK_MAX_BODY_BYTES=10 is below the minimum",
        "noop drops every event",
        "WEBHOOK_PUBLISH_TIMEOUT",
    ):
        assert expected in text
    assert "short-secret" not in text
    assert "p" * 20 not in text


def test_missing_secret_is_a_problem():
    with pytest.raises(
        ConfigError,
        match=r"INSTANTLY_WEBHOOK_SECRET \(or INSTANTLY_WEBHOOK_SECRET_FILE\) is required",
    ):
        WebhookSettings.from_env({"GUARD_BACKEND": "local"})


def test_file_secrets_are_checked_when_loaded_not_at_startup(tmp_path: Path):
    settings = WebhookSettings.from_env(
        {"GUARD_BACKEND": "local", "INSTANTLY_WEBHOOK_SECRET_FILE": str(tmp_path / "not-yet")}
    )

    assert settings.secret.path == tmp_path / "not-yet"
    assert settings.secret.value is None


def test_body_limit_is_capped_so_the_canonical_message_fits_pubsub():
    base = {"GUARD_BACKEND": "local", "INSTANTLY_WEBHOOK_SECRET": SECRET}

    at_cap = WebhookSettings.from_env({**base, "WEBHOOK_MAX_BODY_BYTES": str(MAX_BODY_LIMIT)})
    assert at_cap.max_body_bytes == MAX_BODY_LIMIT == 1024 * 1024
    # Every body within the cap, re-encoded at worst 6x, fits the handler's bound on a message.
    assert 6 * MAX_BODY_LIMIT + 8 * 1024 < MAX_MESSAGE_BYTES < 10_000_000
    with pytest.raises(ConfigError, match="WEBHOOK_MAX_BODY_BYTES=2097152 is above the maximum"):
        WebhookSettings.from_env({**base, "WEBHOOK_MAX_BODY_BYTES": str(2 * 1024 * 1024)})
