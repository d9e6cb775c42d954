"""Property-based: arbitrary JSON through the rotation function's entry path (issue 18).

Whatever arrives, `handle_push` answers (never raises) and acknowledges what it cannot use; a
genuine SECRET_ROTATE is still read as one whatever else the message carries."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rotation_helpers import World

from instantly_guard.rotation.events import RotateRequest, SweepRequest, decode_push
from instantly_guard.rotation.function import ACK_STATUS, RotationFunction

any_text = st.text(st.characters(exclude_categories=()), max_size=20)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=25,
)
messages = st.fixed_dictionaries(
    {},
    optional={
        "attributes": json_values | st.dictionaries(any_text, json_values, max_size=5),
        "data": json_values | st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode()),
        "messageId": json_values,
        "publishTime": json_values,
    },
)
envelopes = (
    json_values
    | st.fixed_dictionaries(
        {"message": messages | json_values}, optional={"subscription": any_text}
    )
    | st.fixed_dictionaries(
        {"specversion": st.just("1.0")},
        optional={"type": json_values, "data": json_values, "data_base64": json_values},
    )
)


def _raw(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8", "surrogatepass")


@settings(max_examples=300, deadline=None)
@given(body=envelopes, headers=st.dictionaries(any_text, any_text, max_size=3))
def test_decoding_never_raises(body: Any, headers: dict[str, str]) -> None:
    delivery = decode_push(headers, _raw(body))
    assert delivery.decoded is not None


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=envelopes)
def test_the_function_acknowledges_anything_it_cannot_use(local_world: World, body: Any) -> None:
    function = RotationFunction(local_world.rotator)
    handled = function.handle_push({"Content-Type": "application/json"}, _raw(body))
    assert handled.status == ACK_STATUS
    assert local_world.sandbox.calls["POST /api-keys"] == 0


@settings(max_examples=200, deadline=None)
@given(
    extra_attributes=st.dictionaries(
        any_text.filter(
            lambda k: k not in {"eventType", "secretId", "timestamp", "instantlyGuard"}
        ),
        any_text,
        max_size=5,
    ),
    data=json_values,
    extra_message=st.dictionaries(
        any_text.filter(lambda k: k not in {"attributes", "data", "messageId", "publishTime"}),
        json_values,
        max_size=3,
    ),
)
def test_a_genuine_rotate_event_is_read_whatever_else_it_carries(
    extra_attributes: dict[str, str], data: Any, extra_message: dict[str, Any]
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    stamp = now.isoformat().replace("+00:00", "Z")
    if isinstance(data, dict) and data.get("action") == "sweep":
        data = None
    message = {
        **extra_message,
        "attributes": {
            **extra_attributes,
            "eventType": "SECRET_ROTATE",
            "secretId": "projects/p/secrets/audit-exporter-key",  # pragma: allowlist secret
            "timestamp": stamp,
        },
        "data": base64.b64encode(_raw(data)).decode(),
        "messageId": "1",
        "publishTime": (now + timedelta(seconds=1)).isoformat(),
    }
    decoded = decode_push({}, _raw({"message": message})).decoded
    assert not isinstance(decoded, SweepRequest)
    assert isinstance(decoded, RotateRequest), decoded
    assert decoded.secret == "audit-exporter-key"  # pragma: allowlist secret
    assert decoded.event_time == now
