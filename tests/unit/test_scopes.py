"""The scopes module: the generated table against the OpenAPI document, parsing, the matching
rule, least privilege, profiles, risk and probes."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from instantly_guard.errors import ConfigError, GuardError
from instantly_guard.scopes import (
    ACTIONS,
    ALL,
    FALLBACK_PROBE,
    KEY_SCOPES,
    OPERATION_ONLY_RESOURCES,
    OPERATIONS,
    PROBE_OPERATIONS,
    PROFILES,
    RESOURCES,
    UNSCOPED_OPERATIONS,
    Risk,
    Scope,
    ScopeParseError,
    UnknownOperationError,
    accepted_by,
    allows,
    assess,
    format_scopes,
    get_profile,
    grants,
    minimal_scopes,
    missing_for,
    parse_scope,
    parse_scopes,
    probe_operation,
    required_scope,
    risk_level,
    risk_reason,
    scope_risk,
)

REPO = Path(__file__).resolve().parents[2]
OPENAPI = REPO / "spec" / "instantly-openapi-v2.json"
GENERATED = REPO / "shared" / "instantly_guard" / "scopes" / "_generated.py"
SCOPE_LINE = "Requires one of the following scopes:"
# The document as handed to the project, beside the repository (absent on a user's clone).
UPSTREAM_OPENAPI = REPO.parent / "shared" / "instantly" / "openapi-v2.json"


def s(text: str) -> Scope:
    resource, action = text.split(":")
    return Scope(resource, action)


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    # The repository carries its own copy; a missing one is a broken checkout: fail.
    if not OPENAPI.is_file():
        pytest.fail(f"the OpenAPI document is missing: expected it at {OPENAPI}")
    return json.loads(OPENAPI.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_scopes", REPO / "scripts" / "gen_scopes.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses resolve string annotations through sys.modules while the class is built.
    sys.modules["gen_scopes"] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["gen_scopes"]
    return module


# --- the generated table ----------------------------------------------------------------------


def test_committed_table_equals_a_fresh_generation(
    openapi: dict[str, Any], gen: ModuleType
) -> None:
    doc, digest = gen.load_document(OPENAPI)
    fresh = gen.render(gen.extract(doc, digest))
    assert GENERATED.read_text(encoding="utf-8") == fresh, "stale: run `make scopes`"


def test_generated_module_is_ruff_formatted() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "--diff", str(GENERATED)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_mode_reports_a_stale_file_and_accepts_a_fresh_one(
    openapi: dict[str, Any], gen: ModuleType, tmp_path: Path
) -> None:
    out = tmp_path / "_generated.py"
    out.write_text("# stale\n", encoding="utf-8")
    assert gen.main([str(OPENAPI), "--output", str(out), "--check"]) == 1
    assert gen.main([str(OPENAPI), "--output", str(out)]) == 0
    assert gen.main([str(OPENAPI), "--output", str(out), "--check"]) == 0
    assert out.read_text(encoding="utf-8") == GENERATED.read_text(encoding="utf-8")


def test_generator_refuses_scopes_it_cannot_read(gen: ModuleType) -> None:
    doc = {
        "paths": {
            "/api/v2/api-keys": {
                "post": {
                    "description": f"{SCOPE_LINE} `api_keys:create`",
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {
                                    "properties": {
                                        "scopes": {"items": {"enum": ["api_keys:create"]}}
                                    }
                                }
                            }
                        }
                    },
                }
            },
            "/api/v2/things": {"get": {"description": "Needs the things scope"}},
        }
    }
    with pytest.raises(gen.OpenApiError, match=r"GET /things: .*unrecognised form"):
        gen.extract(doc, "0")


def test_vocabulary_is_the_key_scope_enum(openapi: dict[str, Any]) -> None:
    body = openapi["paths"]["/api/v2/api-keys"]["post"]["requestBody"]
    enum = body["content"]["application/json"]["schema"]["properties"]["scopes"]["items"]["enum"]
    assert {str(scope) for scope in KEY_SCOPES} == set(enum)
    assert len(RESOURCES) == 36
    assert RESOURCES[0] == ALL
    assert ACTIONS == ("all", "create", "read", "update", "delete")
    # Not the full product: email_verifications has no update or delete.
    assert len(KEY_SCOPES) == 36 * 5 - 2
    assert s("email_verifications:delete") not in KEY_SCOPES


def test_every_operation_is_in_the_table_with_the_scopes_its_description_lists(
    openapi: dict[str, Any],
) -> None:
    expected: dict[str, set[str]] = {}
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                text = operation.get("description", "")
                expected[f"{method.upper()} {path.removeprefix('/api/v2')}"] = set(
                    re.findall(r"`([a-z_-]+:[a-z]+)`", text.partition(SCOPE_LINE)[2])
                )
    assert len(expected) == 173
    assert {op: {str(x) for x in scopes} for op, scopes in OPERATIONS.items()} == expected


def test_27_operations_list_no_scope(openapi: dict[str, Any]) -> None:
    assert len(UNSCOPED_OPERATIONS) == 27
    assert {"GET /webhooks", "POST /webhooks/{id}/test", "GET /campaigns/analytics"} <= (
        UNSCOPED_OPERATIONS
    )


def test_every_listed_scope_list_follows_the_matching_rule() -> None:
    for operation, accepted in OPERATIONS.items():
        if accepted:
            required = required_scope(operation)
            assert required is not None
            assert accepted == accepted_by(required), operation


@pytest.mark.parametrize(
    ("operation", "scope"),
    [
        ("GET /audit-logs", "audit_logs:read"),
        ("POST /api-keys", "api_keys:create"),
        ("GET /api-keys", "api_keys:read"),
        ("DELETE /api-keys/{id}", "api_keys:delete"),
        ("GET /webhooks/{id}", "webhooks:read"),
        ("PATCH /webhooks/{id}", "webhooks:update"),
        ("POST /webhooks/{id}/resume", "webhooks:update"),
        ("GET /webhook-events", "webhook_events:read"),
        ("GET /workspace-members", "workspace_members:read"),
        ("GET /block-lists-entries", "block_list_entries:read"),
        ("GET /workspaces/current", "workspaces:read"),
        ("POST /leads/list", "leads:read"),
        ("POST /campaigns/{id}/activate", "campaigns:update"),
        ("POST /campaigns/{id}/pause", "campaigns:update"),
        ("DELETE /workspaces/current/whitelabel-domain", "workspaces:update"),
        ("POST /email-verification", "email_verifications:create"),
        ("GET /supersearch-enrichment/history/{resource_id}", "supersearch_enrichments:read"),
    ],
)
def test_operations_need_what_the_document_says(operation: str, scope: str) -> None:
    assert required_scope(operation) == s(scope)


def test_supersearch_scopes_are_required_but_cannot_be_held() -> None:
    assert sorted(OPERATION_ONLY_RESOURCES) == ["supersearch_enrichments"]
    assert required_scope("GET /webhooks") is None


# --- parsing ----------------------------------------------------------------------------------


def test_parse_scope_round_trips_every_key_scope() -> None:
    for scope in KEY_SCOPES:
        assert parse_scope(f"  {scope} ") == scope


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("leads", r"'leads' is not a scope: expected RESOURCE:ACTION.*valid actions: all, create"),
        ("leads:read:x", r"'leads:read:x' is not a scope"),
        ("lead:read", r"unknown resource 'lead' in 'lead:read' \(did you mean 'leads'\?\)"),
        ("background_jobs:read", r"did you mean 'background-jobs'\?"),
        ("Leads:read", r"did you mean 'leads'\?"),
        ("leads:write", r"unknown action 'write' in 'leads:write'; valid actions: all, create"),
        ("leads:raed", r"did you mean 'read'\?"),
        ("email_verifications:update", r"email_verifications only takes all, create, read"),
        ("supersearch_enrichments:read", r"does not let a key hold it; only all:read or all:all"),
        ("", r"'' is not a scope"),
    ],
)
def test_parse_scope_names_the_bad_token_and_the_way_out(text: str, message: str) -> None:
    with pytest.raises(ScopeParseError, match=message) as caught:
        parse_scope(text)
    assert caught.value.tokens == (text,)


def test_unknown_resource_lists_every_valid_resource() -> None:
    with pytest.raises(ScopeParseError, match="valid resources: ") as caught:
        parse_scope("nope:read")
    assert all(resource in str(caught.value) for resource in RESOURCES)


def test_parse_scope_errors_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        parse_scope("x")
    assert issubclass(ScopeParseError, GuardError)
    assert issubclass(UnknownOperationError, ConfigError)


def test_parse_scopes_accepts_strings_and_iterables() -> None:
    expected = frozenset({s("leads:read"), s("audit_logs:all")})
    assert parse_scopes("leads:read,audit_logs:all") == expected
    assert parse_scopes(" leads:read, audit_logs:all ,") == expected
    assert parse_scopes("leads:read audit_logs:all leads:read") == expected
    assert parse_scopes(["leads:read", s("audit_logs:all")]) == expected
    assert parse_scopes("") == frozenset()
    assert parse_scopes([]) == frozenset()


def test_parse_scopes_reports_every_bad_token_at_once() -> None:
    with pytest.raises(ScopeParseError, match=r"'lead:read'.*'leads:writ'") as caught:
        parse_scopes("lead:read, leads:read, leads:writ")
    assert caught.value.tokens == ("lead:read", "leads:writ")
    assert len(caught.value.problems) == 4  # two tokens, then the resources and actions lists


def test_parse_scopes_validates_scope_objects_too() -> None:
    with pytest.raises(ScopeParseError, match="nope:read"):
        parse_scopes([Scope("nope", "read")])


def test_format_scopes_is_sorted_and_unique() -> None:
    assert format_scopes([s("leads:read"), s("audit_logs:read"), s("leads:read")]) == (
        "audit_logs:read,leads:read"
    )
    assert str(s("all:all")) == "all:all"


# --- the matching rule ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("held", "required", "expected"),
    [
        ("leads:read", "leads:read", True),
        ("leads:all", "leads:read", True),
        ("all:read", "leads:read", True),
        ("all:all", "leads:read", True),
        ("leads:read", "leads:update", False),
        ("leads:update", "leads:read", False),
        ("all:read", "campaigns:read", True),
        ("all:read", "campaigns:delete", False),
        ("all:delete", "campaigns:read", False),
        ("leads:all", "lead_lists:read", False),
        ("campaigns:read", "all:read", False),
        ("all:read", "all:all", False),
        ("leads:create,leads:read,leads:update,leads:delete", "leads:all", False),
        ("leads:all", "leads:all", True),
        ("all:all", "leads:all", True),
        ("all:update", "leads:all", False),
        ("", "leads:read", False),
    ],
)
def test_matching_rule(held: str, required: str, expected: bool) -> None:
    assert grants(held, required) is expected


def test_matching_rule_over_every_pair_of_key_scopes() -> None:
    # An independent statement of the rule: resource and action each match exactly or are `all`.
    for have in KEY_SCOPES:
        for need in KEY_SCOPES:
            expected = have.resource in (need.resource, ALL) and have.action in (need.action, ALL)
            assert grants([have], need) is expected, (have, need)


def test_accepted_by_lists_least_privilege_first_without_repeats() -> None:
    assert accepted_by("leads:read") == (
        s("leads:read"),
        s("leads:all"),
        s("all:read"),
        s("all:all"),
    )
    assert accepted_by("all:read") == (s("all:read"), s("all:all"))
    assert accepted_by(s("supersearch_enrichments:read"))[2:] == (s("all:read"), s("all:all"))


def test_allows_follows_the_table() -> None:
    for held in ("audit_logs:read", "audit_logs:all", "all:read", "all:all"):
        assert allows(held, "GET /audit-logs")
    for held in ("audit_logs:create", "api_keys:read", "all:update", ""):
        assert not allows(held, "GET /audit-logs")


def test_an_operation_with_no_listed_scope_allows_any_key() -> None:
    assert allows("", "GET /webhooks")
    assert allows("leads:read", "GET /webhooks")


def test_supersearch_operations_are_reachable_only_through_all() -> None:
    operation = "GET /supersearch-enrichment/history/{resource_id}"
    assert allows("all:read", operation)
    assert not allows("leads:all,campaigns:all", operation)


def test_unknown_operations_are_reported_with_a_suggestion() -> None:
    with pytest.raises(UnknownOperationError, match=r"did you mean 'GET /audit-logs'\?") as caught:
        allows("all:all", "GET /api/v2/audit-logs")
    assert caught.value.operations == ("GET /api/v2/audit-logs",)
    with pytest.raises(UnknownOperationError, match=r"'get /webhook' \(did you mean 'GET /webh"):
        minimal_scopes(["get /webhook"])
    with pytest.raises(UnknownOperationError, match=r"'FOO'.*'BAR'.*written 'METHOD /path'"):
        missing_for("", ["FOO", "GET /webhooks", "BAR"])


def test_missing_for_names_what_would_allow_each_denied_operation() -> None:
    held = "audit_logs:read,webhooks:read"
    operations = ["GET /audit-logs", "GET /api-keys", "GET /webhooks", "DELETE /api-keys/{id}"]
    assert missing_for(held, operations) == {
        "GET /api-keys": accepted_by("api_keys:read"),
        "DELETE /api-keys/{id}": accepted_by("api_keys:delete"),
    }
    assert missing_for("all:all", operations) == {}


# --- least privilege --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operations", "expected"),
    [
        (["GET /audit-logs"], {"audit_logs:read"}),
        (["GET /webhooks", "GET /webhooks/event-types"], set()),
        ([], set()),
        (["GET /audit-logs", "GET /audit-logs"], {"audit_logs:read"}),
        (
            [
                "POST /campaigns",
                "GET /campaigns",
                "PATCH /campaigns/{id}",
                "DELETE /campaigns/{id}",
            ],
            {"campaigns:create", "campaigns:read", "campaigns:update", "campaigns:delete"},
        ),
        (["POST /leads/list", "POST /campaigns/{id}/pause"], {"leads:read", "campaigns:update"}),
        (
            ["GET /supersearch-enrichment/history/{resource_id}", "GET /campaigns"],
            {"all:read"},  # campaigns:read is dropped: all:read, needed anyway, grants it
        ),
        (
            ["POST /supersearch-enrichment/ai", "GET /campaigns"],
            {"all:create", "campaigns:read"},
        ),
    ],
)
def test_minimal_scopes(operations: list[str], expected: set[str]) -> None:
    assert minimal_scopes(operations) == {s(x) for x in expected}


def test_minimal_scopes_of_one_operation_is_its_required_scope_when_a_key_can_hold_it() -> None:
    for operation in OPERATIONS:
        required = required_scope(operation)
        minimal = minimal_scopes([operation])
        if required is None:
            assert minimal == frozenset()
        elif required in KEY_SCOPES:
            assert minimal == {required}, operation
        else:
            assert minimal < {s("all:read"), s("all:create"), s("all:update")}, operation


def test_minimal_scopes_of_everything_covers_everything() -> None:
    scopes = minimal_scopes(OPERATIONS)
    assert scopes <= KEY_SCOPES
    assert all(allows(scopes, operation) for operation in OPERATIONS)
    assert not any(scope.resource != ALL and scope.action == ALL for scope in scopes)


# --- profiles ---------------------------------------------------------------------------------


EXPECTED_PROFILES = {
    "audit_exporter": ({"audit_logs:read"}, Risk.LOW),
    "key_rotation_admin": ({"api_keys:create", "api_keys:read", "api_keys:delete"}, Risk.CRITICAL),
    "webhook_enrichment": ({"webhook_events:read", "leads:read", "campaigns:read"}, Risk.LOW),
    "webhook_reconciler": ({"webhook_events:read"}, Risk.LOW),
    "webhook_reconciler_resume": ({"webhook_events:read", "webhooks:update"}, Risk.HIGH),
    "posture_check": (
        {
            "api_keys:read",
            "workspace_members:read",
            "block_list_entries:read",
            "workspaces:read",
            "audit_logs:read",
        },
        Risk.LOW,
    ),
    "read_only_analytics": (
        {
            "campaigns:read",
            "subsequences:read",
            "accounts:read",
            "inbox_placement_analytics:read",
            "inbox_placement_reports:read",
        },
        Risk.LOW,
    ),
    "lead_import": (
        {"campaigns:read", "lead_lists:read", "lead_lists:create", "leads:read", "leads:create"},
        Risk.MEDIUM,
    ),
    "campaign_launcher": (
        {"accounts:read", "campaigns:create", "campaigns:read", "campaigns:update", "leads:create"},
        Risk.MEDIUM,
    ),
}


def test_profiles_have_the_expected_scopes_and_risk() -> None:
    assert list(PROFILES) == list(EXPECTED_PROFILES)
    for name, (scopes, risk) in EXPECTED_PROFILES.items():
        profile = get_profile(name)
        assert set(profile.scope_strings) == scopes, name
        assert profile.risk is risk, name


@pytest.mark.parametrize("name", list(EXPECTED_PROFILES))
def test_profile_is_least_privilege_and_covers_its_operations(name: str) -> None:
    profile = PROFILES[name]
    assert profile.scopes == minimal_scopes(profile.operations)
    assert all(allows(profile.scopes, operation) for operation in profile.operations)
    assert all(scope.breadth == 0 for scope in profile.scopes), "no wildcard in a profile"
    for scope in profile.scopes:  # every scope is needed by some operation
        assert missing_for(profile.scopes - {scope}, profile.operations), (name, scope)


def test_posture_check_is_read_only() -> None:
    assert {scope.action for scope in PROFILES["posture_check"].scopes} == {"read"}


def test_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown scope profile 'auditor'.*audit_exporter"):
        get_profile("auditor")


# --- risk -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "risk"),
    [
        ("all:all", Risk.CRITICAL),
        ("all:create", Risk.CRITICAL),
        ("all:update", Risk.CRITICAL),
        ("all:delete", Risk.CRITICAL),
        ("api_keys:create", Risk.CRITICAL),
        ("api_keys:all", Risk.CRITICAL),
        ("workspace_members:create", Risk.CRITICAL),
        ("workspaces:delete", Risk.CRITICAL),
        ("all:read", Risk.HIGH),
        ("api_keys:delete", Risk.HIGH),
        ("leads:delete", Risk.HIGH),
        ("campaigns:delete", Risk.HIGH),
        ("leads:all", Risk.HIGH),
        ("webhooks:update", Risk.HIGH),
        ("emails:create", Risk.HIGH),
        ("leads:create", Risk.MEDIUM),
        ("campaigns:update", Risk.MEDIUM),
        ("api_keys:read", Risk.LOW),
        ("audit_logs:read", Risk.LOW),
    ],
)
def test_scope_risk(scope: str, risk: Risk) -> None:
    assert scope_risk(scope) is risk
    assert risk_reason(scope)


def test_risk_of_a_set_is_its_worst_member() -> None:
    assert risk_level("") is Risk.LOW
    assert risk_level("leads:read,leads:create") is Risk.MEDIUM
    assert risk_level("leads:read,leads:create,api_keys:create") is Risk.CRITICAL
    assert Risk.HIGH >= Risk.MEDIUM
    assert str(Risk.CRITICAL) == "critical"


def test_every_all_write_is_critical_and_every_key_scope_is_rated() -> None:
    for scope in KEY_SCOPES:
        risk = scope_risk(scope)
        if scope.resource == ALL and scope.action != "read":
            assert risk is Risk.CRITICAL, scope


def test_assess_lists_worst_first_with_reasons() -> None:
    rated = assess("leads:read,api_keys:create,all:read")
    assert [(str(scope), risk) for scope, risk, _ in rated] == [
        ("api_keys:create", Risk.CRITICAL),
        ("all:read", Risk.HIGH),
        ("leads:read", Risk.LOW),
    ]
    assert "mint" in rated[0][2]


# --- probes -----------------------------------------------------------------------------------


def test_probe_operations_are_cheap_scoped_reads(openapi: dict[str, Any]) -> None:
    for operation in (*PROBE_OPERATIONS, FALLBACK_PROBE):
        method, path = operation.split(" ")
        assert method == "GET"
        assert "{" not in path
        parameters = openapi["paths"]["/api/v2" + path]["get"].get("parameters", [])
        assert not [p["name"] for p in parameters if p.get("required")], operation
        assert bool(OPERATIONS[operation]) is (operation != FALLBACK_PROBE), operation


@pytest.mark.parametrize(
    ("held", "probe"),
    [
        (PROFILES["key_rotation_admin"].scopes, "GET /api-keys"),
        (PROFILES["audit_exporter"].scopes, "GET /audit-logs"),
        (PROFILES["webhook_enrichment"].scopes, "GET /webhook-events"),
        (PROFILES["campaign_launcher"].scopes, "GET /campaigns"),
        ("all:read", "GET /api-keys"),
        ("leads:create", FALLBACK_PROBE),
        ("", FALLBACK_PROBE),
    ],
)
def test_probe_operation(held: Any, probe: str) -> None:
    assert probe_operation(held) == probe
    assert allows(held, probe)


def test_repository_copy_of_the_openapi_document_matches_upstream() -> None:
    if not UPSTREAM_OPENAPI.is_file():
        pytest.skip("no upstream copy beside the repository to compare with")
    assert OPENAPI.read_bytes() == UPSTREAM_OPENAPI.read_bytes(), (
        "spec/instantly-openapi-v2.json differs from ../shared/instantly/openapi-v2.json: "
        "copy it over and run `make scopes`"
    )
