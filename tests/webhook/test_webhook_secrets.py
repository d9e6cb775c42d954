"""The webhook secret payload format and the file source that follows a rotated volume."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import pytest
from webhook_support import PREVIOUS, SECRET

from instantly_guard.webhook.secrets import (
    FileSecretSource,
    SecretFormatError,
    SecretUnavailableError,
    StaticSecretSource,
    format_secret_payload,
    parse_secret_payload,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def revealed(secrets):
    return [s.reveal() for s in secrets]


def test_plain_payload_is_the_secret_without_surrounding_whitespace():
    version = parse_secret_payload(f"  {SECRET}\n")

    assert revealed(version.accepted(NOW)) == [SECRET]


def test_json_payload_accepts_previous_until_it_expires():
    payload = json.dumps(
        {"current": SECRET, "previous": PREVIOUS, "previous_expires_at": "2025-06-01T12:00:00Z"}
    )
    version = parse_secret_payload(payload)

    assert revealed(version.accepted(NOW - timedelta(seconds=1))) == [SECRET, PREVIOUS]
    assert revealed(version.accepted(NOW)) == [SECRET]


def test_json_payload_without_previous():
    assert revealed(parse_secret_payload(json.dumps({"current": SECRET})).accepted(NOW)) == [SECRET]
    payload = json.dumps({"current": SECRET, "previous": None, "rotation_id": "r-7"})
    assert revealed(parse_secret_payload(payload).accepted(NOW)) == [SECRET]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("", "secret is empty"),
        ("short-secret", "shorter than 16 bytes"),
        ("has a space in the middle 0123", "visible ASCII"),
        ("{not json", "not a valid JSON object"),
        ("{}", "'current' is required"),
        (
            json.dumps({"current": 12345678901234567890}),
            "'current' is required and must be a string",
        ),
        (json.dumps({"current": "short"}), "'current' is shorter than 16 bytes"),
        (json.dumps({"current": SECRET, "previous": PREVIOUS}), "needs 'previous_expires_at'"),
        (
            json.dumps(
                {"current": SECRET, "previous": 5, "previous_expires_at": "2025-01-01T00:00:00Z"}
            ),
            "'previous' must be a string",
        ),
        (
            json.dumps(
                {
                    "current": SECRET,
                    "previous": PREVIOUS,
                    "previous_expires_at": "2025-06-01T12:00:00",
                }
            ),
            "UTC offset",
        ),
        (
            json.dumps({"current": SECRET, "previous": PREVIOUS, "previous_expires_at": "soon"}),
            "not an ISO-8601",
        ),
    ],
)
def test_bad_payloads_are_rejected_without_echoing_the_value(payload, message):
    with pytest.raises(SecretFormatError, match=message) as caught:
        parse_secret_payload(payload)

    assert SECRET not in str(caught.value)
    assert PREVIOUS not in str(caught.value)


def test_format_round_trips():
    expires = datetime(2025, 6, 2, tzinfo=UTC)
    payload = format_secret_payload(SECRET, PREVIOUS, expires)
    version = parse_secret_payload(payload)

    assert version.previous_expires_at == expires
    assert revealed(version.accepted(NOW)) == [SECRET, PREVIOUS]
    assert format_secret_payload(SECRET) == SECRET
    with pytest.raises(SecretFormatError):
        format_secret_payload(SECRET, PREVIOUS, datetime(2025, 6, 2))  # naive


def test_static_source_reports_its_problem_by_name():
    source = StaticSecretSource("INSTANTLY_WEBHOOK_SECRET", "tiny")

    with pytest.raises(SecretUnavailableError, match="INSTANTLY_WEBHOOK_SECRET: secret is shorter"):
        source.load()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_file_source_follows_replacement_and_in_place_rewrites(tmp_path):
    path = tmp_path / "secret"
    path.write_text(SECRET)
    clock = Clock()
    source = FileSecretSource("X_FILE", path, recheck_seconds=60, monotonic=clock)
    assert revealed(source.load().accepted(NOW)) == [SECRET]

    # Replaced by rename (new inode), as a volume mount swaps its content.
    staged = tmp_path / "staged"
    staged.write_text(PREVIOUS)
    os.replace(staged, path)
    assert revealed(source.load().accepted(NOW)) == [PREVIOUS]

    # Rewritten in place with the same size: caught by the mtime, or at the latest by the recheck.
    same_size = "x" * len(PREVIOUS)
    path.write_text(same_size)
    os.utime(path, ns=(1, 1))
    assert revealed(source.load().accepted(NOW)) == [same_size]


def test_file_source_rechecks_after_the_interval_even_when_stat_is_unchanged(tmp_path):
    path = tmp_path / "secret"
    path.write_text(SECRET)
    stat = path.stat()
    clock = Clock()
    source = FileSecretSource("X_FILE", path, recheck_seconds=5, monotonic=clock)
    source.load()
    other = "y" * len(SECRET)
    path.write_text(other)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # stat looks the same

    assert revealed(source.load().accepted(NOW)) == [SECRET]
    clock.now = 6
    assert revealed(source.load().accepted(NOW)) == [other]


def test_file_source_fails_closed_on_missing_or_bad_file(tmp_path):
    path = tmp_path / "secret"
    source = FileSecretSource("X_FILE", path)

    with pytest.raises(SecretUnavailableError, match="cannot read"):
        source.load()
    path.write_text("short")
    with pytest.raises(SecretUnavailableError, match="shorter than 16"):
        source.load()
    path.write_bytes(b"\xff" * 20)
    with pytest.raises(SecretUnavailableError, match="not UTF-8"):
        source.load()
    path.write_text(SECRET)
    assert revealed(source.load().accepted(NOW)) == [SECRET]
    path.unlink()
    with pytest.raises(SecretUnavailableError):
        source.load()  # never the older value


def test_refresh_rereads_at_once_but_at_most_every_interval(tmp_path):
    path = tmp_path / "secret"
    path.write_text(SECRET)
    clock = Clock()
    source = FileSecretSource(
        "X_FILE", path, recheck_seconds=3600, refresh_interval=1, monotonic=clock
    )
    source.load()
    stat = path.stat()
    path.write_text(PREVIOUS[: len(SECRET)].ljust(len(SECRET), "z"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # metadata unchanged, as on Cloud Run

    assert source.refresh() is False  # read less than a second ago
    clock.now = 1.5
    assert source.refresh() is True
    assert revealed(source.load().accepted(NOW)) != [SECRET]
    clock.now = 3
    assert source.refresh() is False  # read again, nothing changed


def test_older_secrets_are_each_accepted_until_their_own_expiry():
    third = "t" * 40
    payload = format_secret_payload(
        SECRET, PREVIOUS, NOW + timedelta(hours=2), [(third, NOW + timedelta(hours=1))]
    )
    version = parse_secret_payload(payload)
    assert revealed(version.accepted(NOW)) == [SECRET, PREVIOUS, third]
    assert revealed(version.accepted(NOW + timedelta(minutes=90))) == [SECRET, PREVIOUS]
    assert revealed(version.accepted(NOW + timedelta(hours=3))) == [SECRET]


@pytest.mark.parametrize(
    "older",
    [
        "nope",
        [{"secret": "t" * 40}],
        [{"secret": 5, "expires_at": "2025-06-01T12:00:00Z"}],
        [{"secret": "short", "expires_at": "2025-06-01T12:00:00Z"}],  # pragma: allowlist secret
        [{"secret": "t" * 40, "expires_at": "2025-06-01T12:00:00"}],
    ],
    ids=["not-a-list", "no-expiry", "not-a-string", "too-short", "naive"],
)
def test_a_malformed_older_list_rejects_the_whole_payload(older):
    payload = {
        "current": SECRET,
        "previous": PREVIOUS,
        "previous_expires_at": "2025-06-01T12:00:00Z",
        "older": older,
    }
    with pytest.raises(SecretFormatError):
        parse_secret_payload(json.dumps(payload))
    payload_item = {"secret": "t" * 40, "expires_at": "2025-06-01T12:00:00Z"}
    with pytest.raises(SecretFormatError, match="'older' needs 'previous'"):
        parse_secret_payload(json.dumps({**payload, "previous": None, "older": [payload_item]}))


def test_with_a_stat_interval_the_file_is_looked_at_once_per_interval(tmp_path):
    path = tmp_path / "secret"
    path.write_text(SECRET)
    clock = Clock()
    source = FileSecretSource("X_FILE", path, recheck_seconds=60, stat_interval=1, monotonic=clock)
    assert revealed(source.load().accepted(NOW)) == [SECRET]
    staged = tmp_path / "staged"
    staged.write_text(PREVIOUS)
    os.replace(staged, path)

    clock.now = 0.5
    assert revealed(source.load().accepted(NOW)) == [SECRET]  # not looked at yet
    clock.now = 1.0
    assert revealed(source.load().accepted(NOW)) == [PREVIOUS]
    path.unlink()
    clock.now = 1.5
    assert revealed(source.load().accepted(NOW)) == [PREVIOUS]
    clock.now = 2.0
    with pytest.raises(SecretUnavailableError, match="cannot read"):
        source.load()  # fails closed once looked at again
    path.write_text(SECRET)
    assert revealed(source.load().accepted(NOW)) == [SECRET]  # a failed file: looked at every time
