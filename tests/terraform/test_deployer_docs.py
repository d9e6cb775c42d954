"""The deployer's `iam.serviceAccounts.actAs` need, documented for every account that needs it.

The accounts are read from terraform/: a scheduler job or push subscription that mints an OIDC
token for an account, and a function that runs or builds as one, each make Google check the
deployer's `actAs` on that account. An account added later must be documented too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from tests.terraform.offline import ROOT, TF_DIR, label, load

pytestmark = pytest.mark.terraform

ACCOUNT = re.compile(r"\bgoogle_service_account\.([a-z0-9_]+)\.(?:email|id|name|member)\b")


def _first(body: dict[str, Any], *path: str) -> Iterator[Any]:
    """Values at a nested-block path (python-hcl2 gives blocks as lists of dicts)."""
    if not path:
        yield body
        return
    value = body.get(path[0])
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                yield from _first(item, *path[1:])
    elif value is not None and len(path) == 1:
        yield value


# (resource type, path to the argument naming the account, why Google checks actAs there)
ACT_AS = [
    ("google_cloud_scheduler_job", ("http_target", "oidc_token", "service_account_email")),
    ("google_pubsub_subscription", ("push_config", "oidc_token", "service_account_email")),
    ("google_cloudfunctions2_function", ("service_config", "service_account_email")),
    ("google_cloudfunctions2_function", ("build_config", "service_account")),
]


def accounts_needing_act_as() -> dict[str, str]:
    """google_service_account name -> its account_id with the prefix as NAME_PREFIX."""
    resources: dict[str, dict[str, Any]] = {}
    for path in sorted(TF_DIR.glob("*.tf")):
        for item in load(path).get("resource", []):
            for type_, named in item.items():
                for name, body in named.items():
                    resources[f"{label(type_)}.{label(name)}"] = body
    names: set[str] = set()
    for type_, argument in ACT_AS:
        for address, body in resources.items():
            if address.startswith(f"{type_}."):
                for value in _first(body, *argument):
                    names |= set(ACCOUNT.findall(str(value)))
    ids = {}
    for name in names:
        account_id = str(resources[f"google_service_account.{name}"]["account_id"])
        ids[name] = account_id.strip('"').replace("${var.name_prefix}", "NAME_PREFIX")
    return ids


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    following = re.search(r"^#{1,2} ", text[start + len(heading) :], re.M)
    return text[start : start + len(heading) + following.start()] if following else text[start:]


def test_the_six_accounts_are_found() -> None:
    assert set(accounts_needing_act_as()) >= {
        "scheduler",
        "rotation_push",
        "webhook",
        "audit_export",
        "key_rotation",
        "build",
    }


def test_docs_deploy_names_every_account_the_deployer_must_act_as() -> None:
    section = _section((ROOT / "docs" / "deploy.md").read_text(), "## The deployer's permissions")
    assert "iam.serviceAccounts.actAs" in section
    assert "roles/iam.serviceAccountUser" in section
    for name, account_id in accounts_needing_act_as().items():
        assert f"`{account_id}`" in section, name
    for reason in ("Scheduler", "push subscription", "runtime", "build"):
        assert reason in section


def test_the_readme_terraform_section_says_so_too() -> None:
    section = _section((ROOT / "README.md").read_text(), "## Deploying with Terraform")
    assert "iam.serviceAccounts.actAs" in section
    for account_id in accounts_needing_act_as().values():
        suffix = account_id.removeprefix("NAME_PREFIX")
        assert suffix in section, account_id
