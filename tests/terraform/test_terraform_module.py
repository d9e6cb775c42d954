"""terraform/ without Terraform: every file parses, and the security properties hold structurally.

Terraform cannot be downloaded here, so these tests read the HCL with python-hcl2 and assert what a
reviewer would check by eye: who may read which secret, what is public, which identity runs what,
that every managed secret rotates and notifies, that secret values stay out of state.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2
import pytest
from tests.terraform.offline import HclBlock
from tests.terraform.offline import strings as _strings

from instantly_guard.rotation import events, model
from instantly_guard.scopes import KEY_SCOPES, PROFILES

pytestmark = pytest.mark.terraform

ROOT = Path(__file__).resolve().parents[2]
TF_DIR = ROOT / "terraform"
TF_FILES = sorted(TF_DIR.glob("*.tf"))
EXAMPLE = TF_DIR / "terraform.tfvars.example"
FUNCTIONS = ("webhook", "audit_export", "key_rotation", "reconcile", "inventory")
PUBLIC_MEMBERS = ("allUsers", "allAuthenticatedUsers")


def _unquote(value: Any) -> Any:
    """python-hcl2 keeps the quotes of string literals and block labels; drop them."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"')
    if isinstance(value, list):
        return [_unquote(item) for item in value]
    if isinstance(value, dict):
        return {_unquote(k): _unquote(v) for k, v in value.items() if not str(k).startswith("__")}
    return value


@dataclass(frozen=True)
class Block(HclBlock):
    """A block whose body has its quotes dropped (_unquote)."""

    def block(self, name: str) -> dict[str, Any]:
        """The first nested block called `name` (python-hcl2 gives blocks as lists)."""
        value = self.body.get(name)
        assert isinstance(value, list), f"{self.address} has no {name} block"
        assert value, f"{self.address} has an empty {name} block"
        first = value[0]
        assert isinstance(first, dict)
        return first


@dataclass(frozen=True)
class Module:
    raw: dict[str, dict[str, Any]]
    blocks: list[Block]

    def resources(self, type_: str) -> list[Block]:
        return [b for b in self.blocks if b.kind == "resource" and b.type == type_]

    def resource(self, type_: str, name: str) -> Block:
        matches = [b for b in self.resources(type_) if b.name == name]
        assert len(matches) == 1, f"expected one {type_}.{name}"
        return matches[0]

    def top(self, key: str) -> Iterator[tuple[str, Any]]:
        for file, content in self.raw.items():
            for item in content.get(key, []):
                yield file, item

    @property
    def locals(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for _, item in self.top("locals"):
            merged.update(_unquote(item))
        return merged

    @property
    def variables(self) -> dict[str, dict[str, Any]]:
        merged: dict[str, dict[str, Any]] = {}
        for _, item in self.top("variable"):
            for name, body in item.items():
                merged[_unquote(name)] = body
        return merged


def _load(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        parsed: dict[str, Any] = hcl2.load(handle)
    return parsed


@pytest.fixture(scope="module")
def tf() -> Module:
    raw = {path.name: _load(path) for path in TF_FILES}
    blocks = []
    for file, content in raw.items():
        for kind in ("resource", "data"):
            for item in content.get(kind, []):
                for type_, named in item.items():
                    for name, body in named.items():
                        blocks.append(
                            Block(kind, _unquote(type_), _unquote(name), _unquote(body), file)
                        )
    return Module(raw, blocks)


def _refers_to(expression: Any, address: str) -> bool:
    """Whether an expression string references `address` (e.g. google_service_account.webhook)."""
    return (
        isinstance(expression, str)
        and re.search(rf"\b{re.escape(address)}\b", expression) is not None
    )


# --- Parsing and pinning ---------------------------------------------------------------------------


def test_the_module_is_split_by_concern() -> None:
    names = {path.name for path in TF_FILES}
    assert {
        "versions.tf",
        "variables.tf",
        "main.tf",
        "iam.tf",
        "secrets.tf",
        "pubsub.tf",
        "storage.tf",
        "functions.tf",
        "scheduler.tf",
        "logging.tf",
        "monitoring.tf",
        "outputs.tf",
    } <= names
    assert EXAMPLE.is_file()


@pytest.mark.parametrize("path", [*TF_FILES, EXAMPLE], ids=lambda p: p.name)
def test_every_file_parses(path: Path) -> None:
    assert _load(path)


def test_terraform_and_providers_are_pinned(tf: Module) -> None:
    (_, terraform), *_ = list(tf.top("terraform"))
    terraform = _unquote(terraform)
    required = terraform["required_version"]
    assert re.search(r">=\s*1\.(1[1-9]|[2-9][0-9])", required), required
    providers = terraform["required_providers"][0]
    assert set(providers) >= {"google", "google-beta", "archive", "time"}
    for name, spec in providers.items():
        assert spec["source"] == f"hashicorp/{name}"
        version = spec["version"]
        # ~> or an explicit upper bound: a new major version never arrives unannounced.
        assert version.startswith("~>") or "<" in version or re.fullmatch(r"=?\s*[\d.]+", version)


def test_every_variable_is_described(tf: Module) -> None:
    for name, body in tf.variables.items():
        assert len(_unquote(body.get("description", ""))) > 20, name


def test_variables_validate_what_can_be_wrong(tf: Module) -> None:
    validated = {name for name, body in tf.variables.items() if body.get("validation")}
    assert {
        "project_id",
        "region",
        "name_prefix",
        "managed_keys",
        "admin_key",
        "webhook",
        "audit_export",
        "rotation",
        "audit_log_retention_days",
        "notification_channels",
        "bootstrap_secret_versions",
    } <= validated


# --- Secrets -----------------------------------------------------------------------------------


def test_no_project_level_secret_access(tf: Module) -> None:
    # Authoritative project policies would silently drop every other binding: never.
    for type_ in ("google_project_iam_policy", "google_project_iam_binding"):
        assert not tf.resources(type_), type_
    for binding in tf.resources("google_project_iam_member"):
        role = binding.body["role"]
        assert "secretmanager" not in role, binding.address
        assert "secret_rotator" not in role, binding.address
    # The one Secret Manager permission held project-wide: listing metadata, for the sweep.
    lister = tf.resource("google_project_iam_custom_role", "secret_lister")
    assert lister.body["permissions"] == ["secretmanager.secrets.list"]
    # The rotator role is granted on secrets, never anywhere else.
    rotator = "google_project_iam_custom_role.secret_rotator"
    for block in tf.blocks:
        if _refers_to(block.body.get("role"), rotator):
            assert block.type == "google_secret_manager_secret_iam_member", block.address


def test_project_level_grants_are_the_unavoidable_few(tf: Module) -> None:
    grants = {(b.body["role"], b.body["member"]) for b in tf.resources("google_project_iam_member")}
    assert grants == {
        ("roles/logging.logWriter", "${google_service_account.audit_export.member}"),
        # The inventory writes its change entries into the same log through the same API.
        ("roles/logging.logWriter", "${google_service_account.inventory.member}"),
        ("roles/logging.logWriter", "${google_service_account.build.member}"),
        ("roles/storage.objectViewer", "${google_service_account.build.member}"),
        (
            "${google_project_iam_custom_role.secret_lister.id}",
            "${google_service_account.key_rotation.member}",
        ),
    }
    viewer = tf.resource("google_project_iam_member", "build_source_reader")
    assert "gcf_source_bucket" in viewer.block("condition")["expression"]


def test_the_build_account_reads_only_this_modules_sources(tf: Module) -> None:
    """Not every function-source bucket of the project (issue 18): this module's bucket, and in
    Google's shared gcf-v2-sources bucket only the objects of this module's functions."""
    expression = tf.resource("google_project_iam_member", "build_source_reader").block("condition")[
        "expression"
    ]
    assert 'startsWith(\\"projects/_/buckets/gcf-v2-sources-\\")' not in expression
    assert "local.source_bucket_name" in expression
    assert "for name in values(local.function_names)" in expression
    assert "/objects/${name}/" in expression
    storage = (TF_DIR / "storage.tf").read_text()
    assert re.search(
        r'gcf_source_bucket\s*=\s*"gcf-v2-sources-\$\{data\.google_project\.this\.number\}-'
        r'\$\{var\.region\}"',
        storage,
    )


def test_rotator_role_holds_only_secret_version_work(tf: Module) -> None:
    role = tf.resource("google_project_iam_custom_role", "secret_rotator")
    permissions = set(role.body["permissions"])
    assert permissions <= {
        "secretmanager.secrets.get",
        "secretmanager.secrets.update",
        "secretmanager.versions.access",
        "secretmanager.versions.add",
        "secretmanager.versions.destroy",
        "secretmanager.versions.disable",
        "secretmanager.versions.enable",
        "secretmanager.versions.get",
        "secretmanager.versions.list",
    }
    assert "secretmanager.secrets.update" in permissions  # aliases and annotations
    assert not any(p.endswith((".setIamPolicy", ".delete", ".create")) for p in permissions)


def test_every_secret_grant_is_on_a_managed_secret(tf: Module) -> None:
    grants = tf.resources("google_secret_manager_secret_iam_member")
    assert grants
    for grant in grants:
        assert _refers_to(grant.body["secret_id"], "google_secret_manager_secret.managed")
        assert not any(public in grant.body["member"] for public in PUBLIC_MEMBERS)


def test_the_reconciler_reads_its_key_and_only_the_webhook_secrets_metadata(tf: Module) -> None:
    """It follows the webhook list `webhooks connect` records on the webhook secret, so it needs
    that secret's metadata; its value (the receiver's secret) it must never be able to read."""
    grants = {
        g.name: g.body
        for g in tf.resources("google_secret_manager_secret_iam_member")
        if g.body["member"] == "${google_service_account.reconcile.member}"
    }
    assert set(grants) == {"reconcile_reader", "reconcile_webhook_list"}
    assert grants["reconcile_reader"]["role"] == "roles/secretmanager.secretAccessor"
    assert "var.reconcile.api_key" in grants["reconcile_reader"]["secret_id"]
    webhook_list = grants["reconcile_webhook_list"]
    assert webhook_list["role"] == "roles/secretmanager.viewer"  # no versions.access in it
    webhook_secret = 'google_secret_manager_secret.managed["webhook-secret"]'
    assert webhook_secret in webhook_list["secret_id"]
    env = tf.resource("google_cloudfunctions2_function", "reconcile").block("service_config")
    assert re.search(
        rf"RECONCILE_WEBHOOK_SECRET\s*=\s*{re.escape(webhook_secret)}\.id\b",
        env["environment_variables"],
    )
    # The seed variable is not a second list: the secret's annotation is the one the run reads.
    assert "instantly_webhook_ids" not in env["environment_variables"]
    function = tf.resource("google_cloudfunctions2_function", "reconcile")
    assert (
        "${google_secret_manager_secret_iam_member.reconcile_webhook_list}"
        in function.body["depends_on"]
    )


def test_every_managed_secret_rotates_notifies_and_carries_our_label(tf: Module) -> None:
    secrets = tf.resources("google_secret_manager_secret")
    assert [s.name for s in secrets] == ["managed"]
    secret = secrets[0]
    assert secret.body["for_each"] == "${local.secrets}"
    rotation = secret.block("rotation")
    assert rotation["rotation_period"]
    assert rotation["next_rotation_time"]
    assert _refers_to(secret.block("topics")["name"], "google_pubsub_topic.rotation")
    assert "local.managed_label" in secret.body["labels"]
    assert "local.secret_annotations" in secret.body["annotations"]
    ignored = "".join(secret.block("lifecycle")["ignore_changes"])
    assert "rotation[0].next_rotation_time" in ignored
    assert "version_aliases" in ignored  # `current` belongs to the rotation function
    # The webhook list belongs to `webhooks connect`: no plan reverts what it recorded.
    assert 'annotations["instantly-guard.webhook-ids"]' in ignored
    # The service agent may publish before any secret names the topic.
    assert "${google_pubsub_topic_iam_member.rotation_publishers}" in (secret.body["depends_on"])
    publishers = tf.resource("google_pubsub_topic_iam_member", "rotation_publishers")
    assert _refers_to(publishers.body["topic"], "google_pubsub_topic.rotation")
    assert "google_project_service_identity.secretmanager" in str(publishers.body["for_each"])
    identity = tf.resource("google_project_service_identity", "secretmanager")
    assert identity.body["provider"].strip("${}") == "google-beta"
    assert identity.body["service"] == "secretmanager.googleapis.com"


def test_the_admin_key_and_webhook_secret_are_managed_secrets_too(tf: Module) -> None:
    text = (TF_DIR / "main.tf").read_text()
    secrets_local = text[text.index("secrets = merge(") :]
    assert re.search(r"^\s+admin = \{", secrets_local, re.M)
    assert re.search(r'^\s+"webhook-secret" = \{', secrets_local, re.M)
    assert "for name, key in var.managed_keys" in secrets_local


def test_labels_and_annotations_are_the_ones_the_rotation_function_reads(tf: Module) -> None:
    assert tf.locals["managed_label"] == model.MANAGED_LABELS
    assert tf.locals["kind_label"] == model.KIND_LABEL
    declared = {
        model.AnnotationKey.KIND,
        model.AnnotationKey.SCOPES,
        model.AnnotationKey.KEY_PREFIX,
        model.AnnotationKey.GRACE,
        model.AnnotationKey.RETENTION,
        model.AnnotationKey.ADMIN_SECRET,
        model.AnnotationKey.WEBHOOK_IDS,
        model.AnnotationKey.WEBHOOK_HEADER,
    }
    assert set(tf.locals["annotation_keys"].values()) == declared
    assert not declared & model.STATE_KEYS  # Terraform never writes the function's state
    kinds = {kind.value for kind in model.Kind}
    text = (TF_DIR / "main.tf").read_text()
    assert set(re.findall(r'kind\s+= "([a-z-]+)"', text)) <= kinds


def test_sweep_message_is_the_one_the_rotation_function_recognises(tf: Module) -> None:
    sweep = tf.resource("google_cloud_scheduler_job", "rotation_sweep").block("pubsub_target")
    assert sweep["attributes"] == {events.SWEEP_ATTRIBUTE: events.SWEEP_VALUE}
    assert '"sweep"' in sweep["data"]


def test_secret_values_are_write_only(tf: Module) -> None:
    versions = tf.resources("google_secret_manager_secret_version")
    assert versions
    for version in versions:
        assert "secret_data" not in version.body, version.address
        assert "secret_data_wo" in version.body, version.address
        assert "secret_data_wo_version" in version.body, version.address
        assert version.body["deletion_policy"] == "ABANDON"
    # Reading a value through a data source would copy it into state.
    assert not [b for b in tf.blocks if b.kind == "data" and "secret_manager" in b.type]
    values = tf.variables["bootstrap_secret_values"]
    assert values["sensitive"] is True
    assert values["ephemeral"] is True
    example = EXAMPLE.read_text()
    assert not re.search(r"^\s*bootstrap_secret_values\s*=", example, re.M)


def test_default_keys_are_least_privilege_and_real_scopes(tf: Module) -> None:
    known = {str(scope) for scope in KEY_SCOPES}
    defaults = _unquote(tf.variables["managed_keys"]["default"])
    example = _unquote(_load(EXAMPLE)["managed_keys"])
    for keys in (defaults, example):
        for name, key in keys.items():
            assert key["scopes"], name
            assert set(key["scopes"]) <= known, name
            assert not any(scope.startswith("all:") for scope in key["scopes"]), name
    assert set(defaults["audit-exporter"]["scopes"]) == set(
        PROFILES["audit_exporter"].scope_strings
    )
    assert set(tf.locals["admin_scopes"]) == set(PROFILES["key_rotation_admin"].scope_strings)


# --- Functions, identities, invokers ------------------------------------------------------------


def test_each_function_runs_as_its_own_service_account(tf: Module) -> None:
    functions = {f.name: f for f in tf.resources("google_cloudfunctions2_function")}
    assert set(functions) == set(FUNCTIONS)
    runtime = {}
    for name, function in functions.items():
        email = function.block("service_config")["service_account_email"]
        match = re.fullmatch(r"\$\{google_service_account\.(\w+)\.email\}", email)
        assert match, f"{name} must run as a dedicated google_service_account, not {email}"
        runtime[name] = match.group(1)
        build = function.block("build_config")["service_account"]
        assert build == "${google_service_account.build.id}"
    assert len(set(runtime.values())) == len(runtime)
    assert "build" not in runtime.values()
    accounts = {a.name for a in tf.resources("google_service_account")}
    assert set(runtime.values()) <= accounts


def test_only_the_webhook_is_public(tf: Module) -> None:
    public = [
        b
        for b in tf.blocks
        if any(member in s for s in _strings(b.body) for member in PUBLIC_MEMBERS)
    ]
    assert [b.address for b in public] == ["google_cloud_run_v2_service_iam_member.webhook_public"]
    binding = public[0]
    assert binding.body["member"] == "allUsers"
    assert binding.body["role"] == "roles/run.invoker"
    assert _refers_to(binding.body["name"], "google_cloudfunctions2_function.webhook")

    ingress = {
        f.name: f.block("service_config")["ingress_settings"]
        for f in tf.resources("google_cloudfunctions2_function")
    }
    assert ingress == {
        "webhook": "ALLOW_ALL",
        "audit_export": "ALLOW_INTERNAL_ONLY",
        "key_rotation": "ALLOW_INTERNAL_ONLY",
        "reconcile": "ALLOW_INTERNAL_ONLY",
        "inventory": "ALLOW_INTERNAL_ONLY",
    }


def test_invokers_are_one_identity_per_internal_function(tf: Module) -> None:
    invokers = {
        b.name: b
        for b in tf.resources("google_cloud_run_v2_service_iam_member")
        if b.name != "webhook_public"
    }
    assert set(invokers) == {
        "audit_export_invoker",
        "key_rotation_invoker",
        "reconcile_invoker",
        "inventory_invoker",
    }
    expected = {
        "audit_export_invoker": ("audit_export", "scheduler"),
        "key_rotation_invoker": ("key_rotation", "rotation_push"),
        "reconcile_invoker": ("reconcile", "reconcile_scheduler"),
        "inventory_invoker": ("inventory", "inventory_scheduler"),
    }
    for name, (function, account) in expected.items():
        body = invokers[name].body
        assert body["role"] == "roles/run.invoker"
        assert _refers_to(body["name"], f"google_cloudfunctions2_function.{function}")
        assert body["member"] == f"${{google_service_account.{account}.member}}"


def test_function_wiring_matches_the_bundles(tf: Module) -> None:
    spec = importlib.util.spec_from_file_location("bundle_for_tf", ROOT / "scripts" / "bundle.py")
    assert spec is not None
    assert spec.loader is not None
    bundle = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bundle
    spec.loader.exec_module(bundle)
    assert tf.locals["entry_points"] == bundle.discover_functions()
    for function in tf.resources("google_cloudfunctions2_function"):
        build = function.block("build_config")
        assert build["entry_point"] == f"${{local.entry_points.{function.name}}}"
        source = build["source"][0]["storage_source"][0]
        assert (
            source["object"] == f'${{google_storage_bucket_object.bundle["{function.name}"].name}}'
        )
    objects = tf.resource("google_storage_bucket_object", "bundle")
    assert "filesha256(each.value)" in objects.body["name"]  # content-addressed
    assert (
        "event_trigger" not in tf.resource("google_cloudfunctions2_function", "key_rotation").body
    )


def test_function_environment_covers_the_documented_variables(tf: Module) -> None:
    common = tf.locals["common_env"]
    assert set(common) == {
        "GUARD_BACKEND",
        "GOOGLE_CLOUD_PROJECT",
        "INSTANTLY_API_BASE",
        "LOG_LEVEL",
    }
    assert common["GUARD_BACKEND"] == "gcp"
    expected = {
        "webhook": {
            "INSTANTLY_WEBHOOK_SECRET_FILE",
            "WEBHOOK_SECRET_HEADER",
            "WEBHOOK_PUBSUB_TOPIC",
            "WEBHOOK_MAX_BODY_BYTES",
            "WEBHOOK_ALLOWED_CIDRS",
        },
        "audit_export": {
            "AUDIT_LOG_NAME",
            "AUDIT_CHECKPOINT_BUCKET",
            "AUDIT_CHECKPOINT_OBJECT",
            "AUDIT_LOOKBACK",
            "AUDIT_API_KEY_SECRET",
            "AUDIT_RATE_SHARE",
            "AUDIT_TIME_BUDGET",
        },
        "key_rotation": set(),
        "reconcile": {
            "RECONCILE_WEBHOOK_SECRET",
            "RECONCILE_WEBHOOK_URLS",
            "RECONCILE_TIME_BUDGET",
            "RECONCILE_MAX_BODY_BYTES",
            "RECONCILE_CHECKPOINT_BUCKET",
        },
    }
    for name, variables in expected.items():
        env = tf.resource("google_cloudfunctions2_function", name).block("service_config")
        text = env["environment_variables"]
        assert "local.common_env" in text
        for variable in variables:
            assert re.search(rf"\b{variable}\b", text), f"{name} does not set {variable}"


def test_the_export_and_the_inventory_get_the_same_detection_settings(tf: Module) -> None:
    """The inventory evaluates the inventory.* rules on its change entries: its findings must go
    to the export's findings log and judge webhooks by the same allow list."""
    shared = tf.locals["detection_env"]
    assert set(shared) == {"AUDIT_FINDINGS_LOG", "DETECT_WEBHOOK_HOSTS"}
    assert "var.detections.findings_log" in shared["AUDIT_FINDINGS_LOG"]
    assert "var.detections.webhook_allowed_hosts" in shared["DETECT_WEBHOOK_HOSTS"]
    for name in ("audit_export", "inventory"):
        config = tf.resource("google_cloudfunctions2_function", name).block("service_config")
        text = config["environment_variables"]
        assert "local.detection_env" in text, f"{name} does not get the detection settings"
        assert "AUDIT_FINDINGS_LOG" not in text  # one source: the local


def test_every_variable_terraform_sets_is_read_by_the_library(tf: Module) -> None:
    """A renamed setting on either side shows up here, not as a silent default in production."""
    functions_tf = "\n".join((TF_DIR / f).read_text() for f in ("functions.tf", "reconcile.tf"))
    names = set(tf.locals["common_env"]) | set(
        re.findall(r"^\s+([A-Z][A-Z0-9_]{3,})\s+=", functions_tf, re.M)
    )
    readers = [
        path.read_text()
        for path in (ROOT / "shared" / "instantly_guard").rglob("*.py")
        if not {"localstack", "cli"}
        & set(path.relative_to(ROOT).parts)  # those set variables, they do not read
    ]
    source = "\n".join(readers)
    for name in sorted(names):
        stem = name.removesuffix("_FILE")  # `X_FILE` is read as the file variant of `X`
        assert f'"{stem}' in source, f"terraform sets {name}, the library never reads it"


def test_webhook_secret_is_a_live_volume_on_latest(tf: Module) -> None:
    config = tf.resource("google_cloudfunctions2_function", "webhook").block("service_config")
    assert "secret_environment_variables" not in config
    volume = config["secret_volumes"][0]
    assert 'google_secret_manager_secret.managed["webhook-secret"]' in volume["secret"]
    assert volume["versions"][0]["version"] == "latest"


def test_function_limits(tf: Module) -> None:
    functions = {
        f.name: f.block("service_config") for f in tf.resources("google_cloudfunctions2_function")
    }
    for name, config in functions.items():
        assert config["max_instance_count"], name
        assert config["timeout_seconds"], name
    assert functions["audit_export"]["max_instance_count"] == 1
    rotation = _unquote(tf.variables["rotation"]["default"])
    assert rotation == {}  # defaults live in optional(); the validation caps the timeout at 540
    assert "<= 540" in str(tf.variables["rotation"]["validation"])


# --- Delivery: Pub/Sub, dead letters, schedules ---------------------------------------------------


def test_rotation_events_retry_then_dead_letter(tf: Module) -> None:
    subscription = tf.resource("google_pubsub_subscription", "rotation_push")
    assert _refers_to(subscription.body["topic"], "google_pubsub_topic.rotation")
    assert subscription.body["ack_deadline_seconds"] == 600
    push = subscription.block("push_config")
    assert _refers_to(push["push_endpoint"], "google_cloudfunctions2_function.key_rotation")
    oidc = push["oidc_token"][0]
    assert oidc["service_account_email"] == "${google_service_account.rotation_push.email}"
    assert subscription.block("retry_policy")["minimum_backoff"]
    dead_letter = subscription.block("dead_letter_policy")
    assert _refers_to(dead_letter["dead_letter_topic"], "google_pubsub_topic.rotation_dead_letter")
    assert dead_letter["max_delivery_attempts"]
    # The Pub/Sub agent can forward (publish) and acknowledge (subscribe) dead letters.
    publisher = tf.resource("google_pubsub_topic_iam_member", "rotation_dead_letter_publisher")
    assert "google_project_service_identity.pubsub" in publisher.body["member"]
    subscriber = tf.resource(
        "google_pubsub_subscription_iam_member", "rotation_push_dead_letter_subscriber"
    )
    assert _refers_to(subscriber.body["subscription"], "google_pubsub_subscription.rotation_push")
    # A dead letter with no subscription would be dropped.
    parked = tf.resource("google_pubsub_subscription", "rotation_dead_letter")
    assert _refers_to(parked.body["topic"], "google_pubsub_topic.rotation_dead_letter")


def test_topic_publishers_are_granted_per_topic(tf: Module) -> None:
    grants = tf.resources("google_pubsub_topic_iam_member")
    assert {g.name for g in grants} == {
        "webhook_events_publisher",
        "rotation_dead_letter_publisher",
        "reconcile_publisher",
        "rotation_publishers",
    }
    webhook = tf.resource("google_pubsub_topic_iam_member", "webhook_events_publisher")
    assert webhook.body["member"] == "${google_service_account.webhook.member}"
    assert webhook.body["role"] == "roles/pubsub.publisher"


def test_only_secret_manager_and_the_sweep_may_publish_rotation_events(tf: Module) -> None:
    """Whoever publishes to the rotation topic asks for rotations (issue 18): within the module
    the topic's publishers are exactly the two senders' agents."""
    on_rotation = [
        g
        for kind in ("google_pubsub_topic_iam_member", "google_pubsub_topic_iam_binding")
        for g in tf.resources(kind)
        if _refers_to(g.body["topic"], "google_pubsub_topic.rotation")
    ]
    assert [g.name for g in on_rotation] == ["rotation_publishers"]
    grant = on_rotation[0]
    assert grant.body["role"] == "roles/pubsub.publisher"
    assert grant.body["member"] == "${each.value}"
    members = grant.body["for_each"]
    assert set(members) == {"notifications", "sweep"}
    assert "google_project_service_identity.secretmanager.email" in members["notifications"]
    assert "@gcp-sa-cloudscheduler.iam.gserviceaccount.com" in members["sweep"]
    assert not tf.resources("google_pubsub_topic_iam_policy")


def test_scheduler_calls_are_authenticated(tf: Module) -> None:
    jobs = {j.name: j for j in tf.resources("google_cloud_scheduler_job")}
    assert set(jobs) == {"audit_export", "rotation_sweep", "reconcile", "inventory"}
    callers = {
        "audit_export": "scheduler",
        "reconcile": "reconcile_scheduler",
        "inventory": "inventory_scheduler",
    }
    for name, job in jobs.items():
        if "http_target" in job.body:
            target = job.block("http_target")
            oidc = target["oidc_token"][0]
            account = callers[name]
            assert oidc["service_account_email"] == f"${{google_service_account.{account}.email}}"
            assert _refers_to(target["uri"], f"google_cloudfunctions2_function.{name}")
            assert oidc["audience"] == target["uri"]
    sweep = jobs["rotation_sweep"].block("pubsub_target")
    assert _refers_to(sweep["topic_name"], "google_pubsub_topic.rotation")


# --- Buckets, logging, alerting -----------------------------------------------------------------


@pytest.mark.parametrize("bucket", ["sources", "checkpoints"])
def test_buckets_are_private_uniform_and_versioned(tf: Module, bucket: str) -> None:
    body = tf.resource("google_storage_bucket", bucket)
    assert body.body["uniform_bucket_level_access"] is True
    assert body.body["public_access_prevention"] == "enforced"
    assert body.block("versioning")["enabled"] is True


def test_checkpoint_access_is_bucket_level(tf: Module) -> None:
    grants = sorted(tf.resources("google_storage_bucket_iam_member"), key=lambda g: g.name)
    assert [g.name for g in grants] == [
        "audit_export_checkpoints",
        "inventory_snapshot",
        "reconcile_checkpoints",
    ]
    for grant, account in zip(grants, ("audit_export", "inventory", "reconcile"), strict=True):
        assert _refers_to(grant.body["bucket"], "google_storage_bucket.checkpoints")
        assert grant.body["member"] == f"${{google_service_account.{account}.member}}"
    # Each grant is held to its own prefix: the exporter cannot touch the reconciler's checkpoint
    # or the inventory's snapshot (issue 18), nor they the exporter's.
    for grant in grants:
        assert "startsWith" in grant.block("condition")["expression"], grant.name
    assert "dirname(local.audit_checkpoint_object)" in grants[0].block("condition")["expression"]


def test_the_audit_log_is_excluded_from_the_default_bucket(tf: Module) -> None:
    """One copy, in the audit bucket (issue 18): the _Default sink does not also keep it."""
    exclusions = tf.resources("google_logging_project_exclusion")
    assert [e.name for e in exclusions] == ["audit_from_default"]
    assert _refers_to(exclusions[0].body["filter"], "google_logging_project_sink.audit")
    assert not exclusions[0].body.get("disabled", False)


def test_audit_log_is_routed_to_a_retained_bucket(tf: Module) -> None:
    bucket = tf.resource("google_logging_project_bucket_config", "audit")
    assert bucket.body["retention_days"] == "${var.audit_log_retention_days}"
    sink = tf.resource("google_logging_project_sink", "audit")
    assert _refers_to(sink.body["destination"], "google_logging_project_bucket_config.audit")
    assert "var.audit_export.log_name" in sink.body["filter"]
    assert '"${var.audit_export.log_name}-chain"' in sink.body["filter"]  # the digest chain


POLICY_METRICS = {
    "findings": "findings",
    "audit_export_stalled": "audit_export_runs",
    "audit_export_lag": "audit_export_lag",
    "audit_export_failing": "audit_export_failures",
    "rotation_overdue": "rotation_age",
    "webhook_unauthorized": "webhook_refusals",
    "webhook_unavailable": "webhook_refusals",
    "rotation_failures": "rotation_failures",
    "reconcile_missing": "reconcile_missing",
    "reconcile_actions": "reconcile_actions",
    "reconcile_foreign_webhooks": "reconcile_foreign_webhooks",
    "inventory_failures": "inventory_failures",
}
"""Every alert policy and the log-based metric it watches."""


def _condition_filters(policy: Block) -> str:
    filters = []
    for condition in policy.body["conditions"]:
        for kind in ("condition_threshold", "condition_absent"):
            for block in condition.get(kind, []):
                filters.append(block["filter"])
    return " ".join(filters)


def test_alerts_cover_findings_and_pipeline_health(tf: Module) -> None:
    metrics = {m.name for m in tf.resources("google_logging_metric")}
    assert metrics == set(POLICY_METRICS.values())
    policies = {p.name: p for p in tf.resources("google_monitoring_alert_policy")}
    assert set(policies) == set(POLICY_METRICS)
    for name, policy in policies.items():
        assert policy.body["notification_channels"] == "${var.notification_channels}"
        assert f"google_logging_metric.{POLICY_METRICS[name]}.name" in _condition_filters(policy)
        docs = policy.block("documentation")
        assert docs["subject"]
        assert "Runbook" in docs["content"] or "local.runbook" in docs["content"], name
    rotation_filters = str(policies["rotation_failures"].body["conditions"])
    assert "google_pubsub_subscription.rotation_dead_letter.name" in rotation_filters


def test_no_alert_pages_on_audit_severity_alone(tf: Module) -> None:
    """Rotations create and delete keys (WARNING entries) routinely: alerts on the audit trail go
    through the detection rules' findings, never through the entries' severity."""
    for metric in tf.resources("google_logging_metric"):
        assert "audit_export.log_name" not in metric.body["filter"], metric.name
    findings = tf.resource("google_logging_metric", "findings")
    assert "local.findings_log_filter" in findings.body["filter"]
    assert set(findings.body["label_extractors"]) == {"severity", "rule"}
    policy = tf.resource("google_monitoring_alert_policy", "findings")
    assert policy.body["for_each"] == "${toset(var.alerts.finding_severities)}"
    assert "metric.label.severity" in _condition_filters(policy)


def test_export_health_uses_an_absence_and_a_lag_written_by_each_run(tf: Module) -> None:
    stalled = tf.resource("google_monitoring_alert_policy", "audit_export_stalled")
    (condition,) = stalled.body["conditions"]
    assert condition["condition_absent"][0]["duration"] == "${var.alerts.export_absent_after}"
    lag = tf.resource("google_logging_metric", "audit_export_lag")
    assert lag.body["value_extractor"] == "EXTRACT(jsonPayload.lag_seconds)"
    assert lag.block("metric_descriptor")["value_type"] == "DISTRIBUTION"
    age = tf.resource("google_logging_metric", "rotation_age")
    assert age.body["value_extractor"] == "EXTRACT(jsonPayload.rotation_age_seconds)"


def test_the_findings_log_is_kept_with_the_audit_log(tf: Module) -> None:
    sink = tf.resource("google_logging_project_sink", "audit")
    assert "var.detections.findings_log" in sink.body["filter"]


def test_every_alert_has_its_runbook_entry_in_the_readme(tf: Module) -> None:
    readme = (TF_DIR.parent / "README.md").read_text()
    operations = readme[readme.index("## Operations") :]
    for policy in tf.resources("google_monitoring_alert_policy"):
        title = policy.body["display_name"].replace("${each.value}", "<severity>")
        assert title in operations, f"README, Operations: no runbook entry for {title!r}"


# --- Policy-scanner suppressions --------------------------------------------------------------------


def test_every_checkov_skip_is_inline_and_justified() -> None:
    skips = []
    for path in TF_FILES:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "checkov:skip" not in line:
                continue
            match = re.fullmatch(r"\s+#checkov:skip=(CKV2?_[A-Z]+_\d+):(.+)", line)
            assert match, f"{path.name}:{number}: skip must be indented inside its resource"
            assert len(match.group(2).split()) >= 8, f"{path.name}:{number}: say why"
            skips.append(match.group(1))
    assert skips


def test_webhook_body_limit_validation_matches_the_receiver_maximum() -> None:
    from instantly_guard.webhook.settings import MAX_BODY_LIMIT

    text = (TF_DIR / "variables.tf").read_text()
    bounds = re.findall(r"var\.webhook\.max_body_bytes <= (\d+)", text)
    assert bounds == [str(MAX_BODY_LIMIT)]
