"""Property: arbitrary methods, headers and bodies never cause a 500, and nothing without the
right secret is ever accepted."""

from __future__ import annotations

import json

import functions_framework
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from webhook_support import MAIN, SECRET, WEBHOOK_VARS, local_env

from instantly_guard.publish.local import read_outbox
from instantly_guard.webhook.testing import sample_event

DOCUMENTED = {200, 400, 401, 405, 413, 415}
_FORBIDDEN_NAMES = {
    "content-length",
    "transfer-encoding",
    "host",
    "content-type",
    "x-webhook-secret",
}


@pytest.fixture(scope="module")
def app_and_state(tmp_path_factory):
    state = tmp_path_factory.mktemp("property-state")
    with pytest.MonkeyPatch.context() as patch:
        for name in WEBHOOK_VARS:
            patch.delenv(name, raising=False)
        for key, value in local_env(state, WEBHOOK_MAX_BODY_BYTES="4096").items():
            patch.setenv(key, value)
        app = functions_framework.create_app(target="receive_webhook", source=str(MAIN))
        yield app.test_client(), state


header_names = st.from_regex(r"\A[A-Za-z][A-Za-z0-9-]{0,20}\Z").filter(
    lambda n: n.lower() not in _FORBIDDEN_NAMES
)
header_values = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=60
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
events = st.builds(
    lambda event_type, extra, drop: {
        k: v for k, v in {**sample_event(event_type), **extra}.items() if k not in drop
    },
    st.sampled_from(["reply_received", "email_sent", "link_clicked", "Custom label", ""])
    | st.text(max_size=10),
    st.dictionaries(
        st.sampled_from(["step", "timestamp", "is_first", "lead_email", "event_type", "extra"]),
        json_values,
        max_size=3,
    ),
    st.sets(st.sampled_from(["timestamp", "event_type", "workspace"]), max_size=2),
)
TRICKY = [
    b"[" * 50_000 + b"]" * 50_000,  # deeper than the recursion limit
    b'{"event_type": "x", "timestamp": "2025-01-01T00:00:00Z", "n": ' + b"9" * 5000 + b"}",
    b'{"event_type": "x", "timestamp": "2025-01-01T00:00:00Z", "n": NaN}',
    b'{"event_type": "x", "timestamp": "2025-01-01T00:00:00Z", "n": 1e999}',
    b'\xef\xbb\xbf{"event_type": "x", "timestamp": "2025-01-01T00:00:00Z"}',  # UTF-8 BOM
    json.dumps(sample_event()).encode("utf-16"),
    b'{"event_type": "x", "timestamp": "2025-01-01T00:00:00Z", "s": "\\ud800"}',  # lone surrogate
    b'{"event_type": "x", "timestamp": "2025-01-01T00:00:00Z", "event_type": "y"}',  # repeated key
    b'{"event_type": "\\udc80label", "timestamp": "2025-01-01T00:00:00Z", "workspace": "\\ud800"}',
    b'{"event_type": "reply_received", "timestamp": "2025-01-01T00:00:00Z", "lead_email": "\\ud800@x.io"}',
]
bodies = (
    st.sampled_from(TRICKY)
    | st.binary(max_size=600)
    | json_values.map(lambda v: json.dumps(v).encode())
    | events.map(lambda e: json.dumps(e).encode())
    | st.integers(4000, 6000).map(lambda n: json.dumps(sample_event(pad="x" * n)).encode())
)
secrets = st.one_of(
    st.none(),
    st.just(SECRET),
    st.just(SECRET[:-1]),
    st.just(SECRET + " x"),
    st.just(SECRET.upper()),
    header_values,
)
content_types = st.one_of(
    st.none(),
    st.just("application/json"),
    st.just("application/json; charset=utf-8"),
    header_values,
)


requests = st.fixed_dictionaries(
    {
        "method": st.sampled_from(
            ["POST", "POST", "POST", "GET", "PUT", "DELETE", "PATCH", "OPTIONS"]
        ),
        "headers": st.dictionaries(header_names, header_values, max_size=5),
        "secret": secrets,
        "content_type": content_types,
        "body": bodies,
    }
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=requests)
def test_no_500_and_nothing_accepted_without_the_secret(app_and_state, case):
    client, state = app_and_state
    secret = case["secret"]
    sent = dict(case["headers"])
    if secret is not None:
        sent["x-webhook-secret"] = secret
    if case["content_type"] is not None:
        sent["Content-Type"] = case["content_type"]
    before = len(list(read_outbox(state)))

    response = client.open("/", method=case["method"], headers=sent, data=case["body"])

    assert response.status_code in DOCUMENTED, response.data
    authenticated = secret is not None and secret.strip() == SECRET
    if not authenticated:
        assert response.status_code in {401, 405}
        assert len(list(read_outbox(state))) == before
    if response.status_code == 200:
        assert authenticated
        assert case["method"] == "POST"
        assert response.get_json()["received"] is True
