"""The client's pydantic models against the OpenAPI document, and how they keep secrets quiet."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError
from tests.unit.instantly_fakes import api_key, audit_log, webhook

from instantly_guard.instantly import (
    Account,
    ApiKey,
    AuditLog,
    BlockListEntry,
    Campaign,
    CreatedApiKey,
    Webhook,
    Workspace,
    WorkspaceMember,
)
from instantly_guard.instantly.models import WebhookEvent
from instantly_guard.secret import Secret

REPO = Path(__file__).resolve().parents[2]
# The vendored copy: a clone stands alone (tests/unit/test_scopes.py checks it against upstream).
OPENAPI = REPO / "spec" / "instantly-openapi-v2.json"

# model -> (schema, whether the model declares every documented field or only the required ones)
MODELS: dict[type[BaseModel], tuple[str, bool]] = {
    ApiKey: ("APIKey", True),
    CreatedApiKey: ("APIKey", True),
    AuditLog: ("AuditLog", True),
    Webhook: ("Webhook", True),
    WebhookEvent: ("WebhookEvent", True),
    WorkspaceMember: ("WorkspaceMember", True),
    BlockListEntry: ("BlockListEntry", True),
    Workspace: ("Workspace", True),
    Campaign: ("Campaign", False),
    Account: ("Account", False),
}


# Where a model reads more tolerantly than the document (the document requires the field, the
# model does not): field -> why. Every other required field of the document is required here.
RELAXED: dict[type[BaseModel], dict[str, str]] = {
    ApiKey: {
        "key": "never read; listings may mask it, omit it or send null",
        "organization_id": "never read",
        "timestamp_updated": "never read",
    },
    CreatedApiKey: {"organization_id": "never read", "timestamp_updated": "never read"},
    AuditLog: {
        "ip_address": "null on events Instantly's own systems record",
        "from_api": "null on events Instantly's own systems record",
    },
    WebhookEvent: {
        "organization_id": "never read",
        "retry_count": "never read",
        "timestamp_created_date": "never read",
    },
}


@pytest.fixture(scope="module")
def schemas() -> dict[str, Any]:
    # The document ships with the repository, so a missing one is a broken checkout: fail.
    if not OPENAPI.is_file():
        pytest.fail(f"the OpenAPI document is missing: expected it at {OPENAPI}")
    document = json.loads(OPENAPI.read_text(encoding="utf-8"))
    return dict(document["components"]["schemas"])


def _nullable(prop: dict[str, Any]) -> bool:
    kind = prop.get("type")
    return isinstance(kind, list) and "null" in kind


def _example(prop: dict[str, Any]) -> Any:
    if "example" in prop:
        return prop["example"]
    kind = prop.get("type")
    kinds = set(kind) if isinstance(kind, list) else {kind}
    if "object" in kinds:
        return {}
    if "array" in kinds:
        items = prop.get("items", {})
        return [items["example"]] if "example" in items else []
    raise AssertionError(f"no example for {prop}")


def _required_example(schema: dict[str, Any]) -> dict[str, Any]:
    return {name: _example(schema["properties"][name]) for name in schema["required"]}


@pytest.mark.parametrize("model", list(MODELS), ids=lambda m: m.__name__)
def test_required_fields_are_the_documented_ones(
    model: type[BaseModel], schemas: dict[str, Any]
) -> None:
    """The tolerant rule: require what the document requires, except the relaxed fields."""
    schema = schemas[MODELS[model][0]]
    required = {name for name, field in model.model_fields.items() if field.is_required()}
    relaxed = set(RELAXED.get(model, {}))
    assert relaxed <= set(schema["required"]), "a relaxation of a field that is not required"
    assert required == set(schema["required"]) - relaxed


@pytest.mark.parametrize("model", list(RELAXED), ids=lambda m: m.__name__)
def test_relaxed_fields_may_be_absent_or_null(
    model: type[BaseModel], schemas: dict[str, Any]
) -> None:
    example = _required_example(schemas[MODELS[model][0]])
    for name in RELAXED[model]:
        without = {k: v for k, v in example.items() if k != name}
        assert getattr(model.model_validate(without), name) is None
        assert getattr(model.model_validate({**example, name: None}), name) is None


@pytest.mark.parametrize("model", list(MODELS), ids=lambda m: m.__name__)
def test_fields_are_the_documented_ones(model: type[BaseModel], schemas: dict[str, Any]) -> None:
    schema_name, complete = MODELS[model]
    documented = set(schemas[schema_name]["properties"])
    declared = set(model.model_fields)
    assert declared <= documented
    if complete:
        assert declared == documented


@pytest.mark.parametrize("model", list(MODELS), ids=lambda m: m.__name__)
def test_documented_nullable_fields_accept_null(
    model: type[BaseModel], schemas: dict[str, Any]
) -> None:
    schema = schemas[MODELS[model][0]]
    example = _required_example(schema)
    for name, prop in schema["properties"].items():
        if name in model.model_fields and _nullable(prop):
            model.model_validate({**example, name: None})


@pytest.mark.parametrize("model", list(MODELS), ids=lambda m: m.__name__)
def test_the_documents_example_validates(model: type[BaseModel], schemas: dict[str, Any]) -> None:
    schema = schemas[MODELS[model][0]]
    example = {name: _example(prop) for name, prop in schema["properties"].items()}
    model.model_validate(example)


def test_unknown_fields_from_instantly_are_kept() -> None:
    entry = AuditLog.model_validate(audit_log(brand_new_field={"x": 1}))
    assert entry.model_extra == {"brand_new_field": {"x": 1}}


def test_unknown_enum_values_are_accepted() -> None:
    # A new activity type or event must not make a whole page unreadable.
    assert AuditLog.model_validate(audit_log(activity_type=99)).activity_type == 99
    assert Webhook.model_validate(webhook(event_type="future_event")).event_type == "future_event"


def test_a_missing_required_field_is_refused() -> None:
    body = audit_log()
    del body["timestamp"]
    with pytest.raises(ValidationError, match="timestamp"):
        AuditLog.model_validate(body)


def test_a_system_event_with_null_address_and_origin_validates() -> None:
    entry = AuditLog.model_validate(audit_log(ip_address=None, from_api=None, user_id=None))
    assert (entry.ip_address, entry.from_api, entry.user_id) == (None, None, None)


@pytest.mark.parametrize(
    "listed",
    [
        "abcd****wxyz",
        "full-key-string-0123456789abcdef",  # pragma: allowlist secret
        "",
        None,
        42,
        "<absent>",
    ],  # pragma: allowlist secret
    ids=["masked", "full", "empty", "null", "not-a-string", "absent"],
)
def test_a_listed_key_reads_whatever_key_it_carries(listed: object) -> None:
    body = api_key()
    if listed == "<absent>":
        del body["key"]
    else:
        body["key"] = listed
    key = ApiKey.model_validate(body)
    assert key.id == body["id"]
    if isinstance(listed, str) and listed and listed != "<absent>":
        assert isinstance(key.key, Secret)
        assert key.key.reveal() == listed
        for text in (repr(key), key.model_dump_json(), str(key.model_dump())):
            assert listed not in text
    else:
        assert key.key is None


def test_a_created_key_is_a_secret_everywhere_but_reveal() -> None:
    created = CreatedApiKey.model_validate(api_key(key="created-key-value-4242"))
    assert isinstance(created.key, Secret)
    assert created.key.reveal() == "created-key-value-4242"
    for text in (repr(created), str(created), created.model_dump_json(), str(created.model_dump())):
        assert "created-key-value-4242" not in text


def test_an_empty_created_key_is_refused_without_echoing_input() -> None:
    with pytest.raises(ValidationError, match="non-empty string"):
        CreatedApiKey.model_validate(api_key(key=""))


def test_masked_and_webhook_secrets_stay_out_of_repr() -> None:
    listed = ApiKey.model_validate(api_key(key="abcd****wxyz"))
    assert "abcd****wxyz" not in repr(listed)
    assert listed.key is not None
    assert listed.key.reveal() == "abcd****wxyz"
    hook = Webhook.model_validate(webhook(headers={"x-webhook-secret": "hook-secret-5150"}))
    assert "hook-secret-5150" not in repr(hook)
    assert hook.headers == {"x-webhook-secret": "hook-secret-5150"}


def test_a_created_key_is_not_a_listed_key() -> None:
    # Different `key` types: code typed for ApiKey must not get a Secret where it expects a str.
    assert not issubclass(CreatedApiKey, ApiKey)
