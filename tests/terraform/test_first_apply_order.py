"""The first apply's order, read from terraform/*.tf as Terraform builds its graph.

Terraform orders work by references and `depends_on`; Google is eventually consistent, so some
of that order also needs a wait (`time_sleep`, hashicorp/time). Without providers `terraform
validate` cannot run here, so this test builds the same dependency graph from the HCL (every
`resource.name` and `data.type.name` reference, through locals, plus `depends_on`), checks it has
no cycle (Terraform refuses one), and checks the orderings a first apply into a fresh project
needs (docs/deploy.md, "First apply: ordering and waits").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from tests.terraform.offline import TF_DIR, hcl_blocks, label, load, strings

pytestmark = pytest.mark.terraform

REFERENCE = re.compile(r"\b(data\.)?((?:google|time|terraform)_[a-z0-9_]+)\.([a-z0-9_]+)\b")
LOCAL = re.compile(r"\blocal\.([a-z0-9_]+)\b")

# The API each resource family calls: these must wait for the enablement to propagate.
API_OF_PREFIX = {
    "google_project_iam_custom_role": "iam.googleapis.com",
    "google_service_account": "iam.googleapis.com",
    "google_secret_manager_secret": "secretmanager.googleapis.com",  # pragma: allowlist secret
    "google_pubsub_": "pubsub.googleapis.com",
    "google_storage_": "storage.googleapis.com",
    "google_artifact_registry_": "artifactregistry.googleapis.com",
    "google_cloudfunctions2_": "cloudfunctions.googleapis.com",
    "google_cloud_scheduler_": "cloudscheduler.googleapis.com",
    "google_logging_": "logging.googleapis.com",
    "google_monitoring_": "monitoring.googleapis.com",
    "google_project_service_identity": "serviceusage.googleapis.com",
}


@dataclass(frozen=True)
class Graph:
    edges: dict[str, set[str]]  # address -> what it waits for (directly)
    bodies: dict[str, dict[str, Any]]

    def waits_for(self, address: str) -> set[str]:
        """Everything `address` waits for, transitively."""
        seen: set[str] = set()
        pending = list(self.edges[address])
        while pending:
            node = pending.pop()
            if node not in seen:
                seen.add(node)
                pending += self.edges.get(node, set())
        return seen

    def cycle(self) -> list[str] | None:
        state: dict[str, int] = {}  # 1 visiting, 2 done
        path: list[str] = []

        def visit(node: str) -> list[str] | None:
            state[node] = 1
            path.append(node)
            for nxt in sorted(self.edges.get(node, set())):
                if state.get(nxt) == 1:
                    return [*path[path.index(nxt) :], nxt]
                if nxt not in state and (found := visit(nxt)):
                    return found
            path.pop()
            state[node] = 2
            return None

        for node in sorted(self.edges):
            if node not in state and (found := visit(node)):
                return found
        return None

    def of_type(self, type_: str) -> list[str]:
        return [a for a in self.edges if a.startswith(f"{type_}.")]


def build_graph() -> Graph:
    parsed = [load(path) for path in sorted(TF_DIR.glob("*.tf"))]
    locals_: dict[str, Any] = {}
    for content in parsed:
        for block in content.get("locals", []):
            locals_.update({k: v for k, v in block.items() if not k.startswith("__")})

    def references(value: Any, seen_locals: frozenset[str] = frozenset()) -> set[str]:
        found: set[str] = set()
        for text in strings(value):
            for data, type_, name in REFERENCE.findall(text):
                found.add(f"{data}{type_}.{name}")
            for name in LOCAL.findall(text):
                if name in locals_ and name not in seen_locals:
                    found |= references(locals_[name], seen_locals | {name})
        return found

    edges: dict[str, set[str]] = {}
    bodies: dict[str, dict[str, Any]] = {}
    for content in parsed:
        for block in hcl_blocks(content, ""):
            bodies[block.address] = block.body
            edges[block.address] = references(block.body) - {block.address}
    return Graph(edges, bodies)


@pytest.fixture(scope="module")
def graph() -> Graph:
    return build_graph()


def _waits(graph: Graph, sleep: str) -> str:
    return label(str(graph.bodies[sleep]["create_duration"]))


def test_the_dependency_graph_has_no_cycle(graph: Graph) -> None:
    assert graph.cycle() is None


def test_cycle_detection_finds_one() -> None:
    looped = Graph({"a.x": {"b.y"}, "b.y": {"c.z"}, "c.z": {"a.x"}}, {})
    assert looped.cycle() == ["a.x", "b.y", "c.z", "a.x"]


def test_everything_calling_an_enabled_api_waits_for_the_enablement_to_propagate(
    graph: Graph,
) -> None:
    sleep = "time_sleep.services_enabled"
    assert "google_project_service.enabled" in graph.waits_for(sleep)
    assert _waits(graph, sleep) == "var.apply_waits.services"
    enabled = str(graph.bodies["google_project_service.enabled"]["for_each"])
    checked = []
    for address in graph.edges:
        api = next((v for k, v in API_OF_PREFIX.items() if address.startswith(k)), None)
        if api is None:
            continue
        if api != "serviceusage.googleapis.com":
            assert api in enabled, (address, api)
        assert sleep in graph.waits_for(address), (
            f"{address} may call {api} before it is on: depend on {sleep}, "
            "not on google_project_service.enabled"
        )
        checked.append(address)
    # The custom roles race the IAM API being enabled in a fresh project.
    for role in graph.of_type("google_project_iam_custom_role"):
        assert sleep in graph.waits_for(role), role
    assert len(checked) > 30


def test_the_first_secret_waits_for_the_publisher_grant_to_propagate(graph: Graph) -> None:
    grant = "google_pubsub_topic_iam_member.rotation_publishers"
    managed = "google_secret_manager_secret.managed"
    sleeps = [
        s
        for s in graph.waits_for(managed)
        if s.startswith("time_sleep.") and grant in graph.waits_for(s)
    ]
    assert sleeps, f"{managed} must wait for a time_sleep after {grant}"
    assert {_waits(graph, s) for s in sleeps} == {"var.apply_waits.iam"}


def test_grants_to_service_agents_wait_for_the_agents(graph: Graph) -> None:
    for address, body in graph.bodies.items():
        if "_iam_member." not in address:
            continue
        if "google_project_service_identity." in str(body.get("member", "")):
            assert "time_sleep.service_agents" in graph.waits_for(address), address
    agents = graph.waits_for("time_sleep.service_agents")
    assert {"google_project_service_identity.secretmanager"} <= agents
    assert {"google_project_service_identity.pubsub"} <= agents


def test_functions_wait_for_their_build_and_mount_grants_to_propagate(graph: Graph) -> None:
    build_grants = {
        "google_project_iam_member.build_log_writer",
        "google_project_iam_member.build_source_reader",
        "google_artifact_registry_repository_iam_member.build_writer",
    }
    functions = graph.of_type("google_cloudfunctions2_function")
    assert len(functions) >= 3
    for function in functions:
        sleeps = {s for s in graph.waits_for(function) if s.startswith("time_sleep.")}
        after_build = [s for s in sleeps if build_grants <= graph.waits_for(s)]
        assert after_build, (
            f"{function} may build before the build account's grants propagate: "
            "add time_sleep.build_grants to its depends_on"
        )
    webhook = "google_cloudfunctions2_function.webhook"
    mount = "google_secret_manager_secret_iam_member.webhook_reader"
    assert any(
        mount in graph.waits_for(s) for s in graph.waits_for(webhook) if s.startswith("time_sleep.")
    ), "Cloud Run checks the mounted secret's grant at deployment"


def test_alert_policies_wait_for_the_log_metrics_they_filter_on(graph: Graph) -> None:
    policies = graph.of_type("google_monitoring_alert_policy")
    assert policies
    for policy in policies:
        metrics = {m for m in graph.edges[policy] if m.startswith("google_logging_metric.")}
        sleeps = [
            s
            for s in graph.waits_for(policy)
            if s.startswith("time_sleep.") and metrics <= graph.waits_for(s)
        ]
        assert sleeps, (
            f"{policy} may be created before Monitoring finds {sorted(metrics)}: "
            "list them in time_sleep.log_metrics's triggers and depend on it"
        )
        assert {_waits(graph, s) for s in sleeps} == {"var.apply_waits.log_metrics"}


def test_the_waits_default_to_what_google_documents() -> None:
    text = (TF_DIR / "variables.tf").read_text()
    block = text[text.index('variable "apply_waits"') :]
    block = block[: block.index("\n}\n")]
    defaults = dict(re.findall(r"(\w+)\s+= optional\(string, \"(\d+)s\"\)", block))
    assert int(defaults["services"]) >= 60
    assert int(defaults["iam"]) >= 120  # usually within two minutes
    assert int(defaults["log_metrics"]) >= 600  # the provider's issue: up to ten minutes
