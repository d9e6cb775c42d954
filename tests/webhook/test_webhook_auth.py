"""Authenticator: constant-time secret check, Basic, source networks, client address."""

from __future__ import annotations

import base64
import ipaddress
import json
import os
from datetime import UTC, datetime

import pytest
from webhook_support import PREVIOUS, SECRET, WRONG_SAME_LENGTH

from instantly_guard.webhook.auth import (
    Authenticator,
    BasicAuth,
    Unconfigured,
    Verdict,
    client_address,
    parse_ip,
)
from instantly_guard.webhook.secrets import StaticSecretSource

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def auth(payload: str = SECRET, **kwargs) -> Authenticator:
    kwargs.setdefault("clock", lambda: NOW)
    return Authenticator(StaticSecretSource("S", payload), **kwargs)


def test_right_secret_is_allowed():
    result = auth().check({"x-webhook-secret": SECRET}, "10.0.0.1")

    assert result.verdict is Verdict.ALLOWED
    assert result.method == "header"


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"x-webhook-secret": WRONG_SAME_LENGTH}, "wrong credentials"),
        ({"x-webhook-secret": SECRET.upper()}, "wrong credentials"),
        ({"x-webhook-secret": ""}, "wrong credentials"),
        ({}, "no credentials"),
        ({"x-other": SECRET}, "no credentials"),
    ],
)
def test_anything_else_is_denied(headers, reason):
    result = auth().check(headers, None)

    assert result.verdict is Verdict.DENIED
    assert result.reason == reason


def test_surrounding_whitespace_in_the_header_is_ignored():
    assert auth().check({"x-webhook-secret": f" {SECRET} "}, None).allowed


def test_previous_secret_source_and_json_rotation_payload():
    with_previous = auth(previous=StaticSecretSource("P", PREVIOUS))
    assert with_previous.check({"x-webhook-secret": PREVIOUS}, None).allowed
    assert not auth().check({"x-webhook-secret": PREVIOUS}, None).allowed

    rotating = json.dumps(
        {"current": SECRET, "previous": PREVIOUS, "previous_expires_at": "2025-06-02T00:00:00Z"}
    )
    assert auth(rotating).check({"x-webhook-secret": PREVIOUS}, None).allowed
    expired = auth(rotating, clock=lambda: datetime(2025, 6, 3, tzinfo=UTC))
    assert not expired.check({"x-webhook-secret": PREVIOUS}, None).allowed
    assert expired.check({"x-webhook-secret": SECRET}, None).allowed


def test_unusable_secret_is_unavailable_never_open():
    result = auth("short").check({"x-webhook-secret": "short"}, None)

    assert result.verdict is Verdict.UNAVAILABLE
    assert "shorter than 16 bytes" in (result.reason or "")
    assert Unconfigured("bad").check({}, None).verdict is Verdict.UNAVAILABLE


def basic_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("authorization", "allowed"),
    [
        (basic_header("instantly", PREVIOUS), True),
        (basic_header("instantly", PREVIOUS[:-1]), False),
        (basic_header("Instantly", PREVIOUS), False),
        ("Basic !!!not-base64!!!", False),
        ("Basic " + base64.b64encode(b"no-colon").decode(), False),
        (f"Bearer {PREVIOUS}", False),
        ("Basic", False),
    ],
)
def test_basic_credentials(authorization, allowed):
    gate = auth(basic=BasicAuth("instantly", StaticSecretSource("B", PREVIOUS)))

    result = gate.check({"authorization": authorization}, None)

    assert result.allowed is allowed
    if allowed:
        assert result.method == "basic"


def test_allow_list_uses_the_right_most_forwarded_entry():
    gate = auth(allowed_networks=[ipaddress.ip_network("203.0.113.0/24")])
    good = {"x-webhook-secret": SECRET}

    assert gate.check({**good, "x-forwarded-for": "203.0.113.9"}, "169.254.1.1").allowed
    forged = gate.check({**good, "x-forwarded-for": "203.0.113.9,198.51.100.1"}, "169.254.1.1")
    assert forged.verdict is Verdict.DENIED
    assert forged.reason == "source address not allowed"
    assert forged.client == "198.51.100.1"
    # Checked before the secret: a caller from elsewhere is refused even with the right secret.
    assert not gate.check({**good, "x-forwarded-for": "garbage"}, None).allowed


def test_a_long_forwarded_header_is_read_like_a_short_one():
    # Short values are looked up in a cache; a long one (a client padding the header) is worked
    # out every time, with the same answer.
    gate = auth(allowed_networks=[ipaddress.ip_network("203.0.113.0/24")])
    good = {"x-webhook-secret": SECRET}
    padding = ",".join(f"198.51.100.{n}" for n in range(40))
    assert len(padding) > 256
    for forwarded in (f"{padding},203.0.113.9", "203.0.113.9"):
        result = gate.check({**good, "x-forwarded-for": forwarded}, "169.254.1.1")
        assert result.allowed
        assert result.client == "203.0.113.9"
    for forwarded, client in (
        (f"203.0.113.9,{padding}", "198.51.100.39"),
        ("203.0.113.9,198.51.100.1", "198.51.100.1"),
    ):
        result = gate.check({**good, "x-forwarded-for": forwarded}, "169.254.1.1")
        assert result.verdict is Verdict.DENIED
        assert result.client == client


@pytest.mark.parametrize(
    ("forwarded", "peer", "hops", "expected"),
    [
        ("203.0.113.9", "169.254.1.1", 1, "203.0.113.9"),
        ("1.1.1.1, 203.0.113.9", "169.254.1.1", 1, "203.0.113.9"),
        ("1.1.1.1, 203.0.113.9, 34.1.1.1", None, 2, "203.0.113.9"),
        ("203.0.113.9", None, 2, None),
        (None, "127.0.0.1", 1, "127.0.0.1"),
        ("203.0.113.9", "127.0.0.1", 0, "127.0.0.1"),
        ("not-an-ip", None, 1, None),
        ("[2001:db8::1]:443", None, 1, "2001:db8::1"),
        ("203.0.113.9:5555", None, 1, "203.0.113.9"),
        ("::ffff:203.0.113.9", None, 1, "203.0.113.9"),
    ],
)
def test_client_address(forwarded, peer, hops, expected):
    address = client_address(forwarded, peer, hops)

    assert (str(address) if address else None) == expected


def test_parse_ip_rejects_junk():
    assert parse_ip("") is None
    assert parse_ip("300.1.1.1") is None


def test_a_mismatch_rereads_a_rotated_file_once(tmp_path):
    from instantly_guard.webhook.secrets import FileSecretSource

    path = tmp_path / "secret"
    path.write_text(SECRET)
    now = [0.0]
    source = FileSecretSource(
        "S_FILE", path, recheck_seconds=3600, refresh_interval=1, monotonic=lambda: now[0]
    )
    gate = Authenticator(source, clock=lambda: NOW)
    assert gate.check({"x-webhook-secret": SECRET}, None).allowed
    new = "rotated-secret-0123456789abcdefXYZ"
    stat = path.stat()
    path.write_text(
        json.dumps(
            {"current": new, "previous": SECRET, "previous_expires_at": "2999-01-01T00:00:00Z"}
        )
    )
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    now[0] = 2.0

    assert gate.check({"x-webhook-secret": new}, None).allowed  # re-read on the mismatch
    assert gate.check({"x-webhook-secret": SECRET}, None).allowed  # previous, until it expires
    assert not gate.check({"x-webhook-secret": WRONG_SAME_LENGTH}, None).allowed


@pytest.mark.parametrize("ows", [" ", "\t", " \t "])
def test_only_space_and_tab_around_the_header_are_optional_whitespace(ows):
    assert auth().check({"x-webhook-secret": f"{ows}{SECRET}{ows}"}, None).allowed


@pytest.mark.parametrize(
    "extra",
    ["\xa0", "\x85", "\x0b", "\x0c", "\x1c", "\u2003"],
    ids=["nbsp", "nel", "vt", "ff", "fs", "em-space"],
)
def test_other_whitespace_around_the_header_is_part_of_the_value(extra):
    # WSGI decodes header bytes as latin-1: 0xA0 on the wire arrives as U+00A0, 0x85 as U+0085.
    for value in (f"{SECRET}{extra}", f"{extra}{SECRET}"):
        result = auth().check({"x-webhook-secret": value}, None)
        assert result.verdict is Verdict.DENIED
        assert result.reason == "wrong credentials"


def test_basic_credentials_are_not_stripped_of_non_http_whitespace():
    basic = BasicAuth("instantly", StaticSecretSource("B", PREVIOUS))
    token = base64.b64encode(f"instantly:{PREVIOUS}".encode()).decode()
    gate = auth(basic=basic)
    assert gate.check({"authorization": f"\tBasic {token} "}, None).allowed
    assert not gate.check({"authorization": f"Basic {token}\xa0"}, None).allowed
    assert not gate.check({"authorization": f"\x85Basic {token}"}, None).allowed


def test_a_forwarded_address_padded_with_nbsp_is_not_an_address():
    assert parse_ip(" 10.0.0.1\t") == ipaddress.ip_address("10.0.0.1")
    assert parse_ip("10.0.0.1\xa0") is None
