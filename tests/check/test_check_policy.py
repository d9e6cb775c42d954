from __future__ import annotations

from pathlib import Path

import pytest

from instantly_guard.check import Environment, Policy
from instantly_guard.errors import ConfigError


def test_defaults_are_the_documented_production_settings() -> None:
    policy = Policy()
    assert policy.environment is Environment.PRODUCTION
    assert policy.key_max_age_days == 90
    assert policy.managed_key_prefix == "instantly-guard"
    assert policy.max_key_creators == 1


def test_toml_file_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(
        'environment = "development"\n'
        "key_max_age_days = 30\n"
        'allowed_email_domains = ["Example.com", "@partner.example"]\n'
        'webhook_allowed_hosts = ["hooks.example.com"]\n'
    )
    policy = Policy.load(path, {"webhook_allowed_hosts": ["*.run.app"], "key-max-age-days": 45})
    assert policy.environment is Environment.DEVELOPMENT
    assert policy.key_max_age_days == 45
    assert policy.allowed_email_domains == ("example.com", "partner.example")
    # A list on the command line replaces the file's list.
    assert policy.webhook_allowed_hosts == ("*.run.app",)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(
        'environment = "staging"\nkey_max_age = 3\nmax_admins = 0\nmanaged_key_prefix = "a/b"\n'
    )
    with pytest.raises(ConfigError) as caught:
        Policy.load(path)
    problems = "\n".join(caught.value.problems)
    assert "environment must be one of production, development" in problems
    assert "unknown option 'key_max_age' (did you mean 'key_max_age_days'?)" in problems
    assert "max_admins must be at least 1" in problems
    assert "managed_key_prefix" in problems


def test_bad_toml_and_missing_file_are_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("this is = = not toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Policy.load(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        Policy.load(tmp_path / "missing.toml")


def test_as_dict_round_trips() -> None:
    policy = Policy(internal_domains=("example.com",), environment=Environment.DEVELOPMENT)
    assert Policy.from_mapping(policy.as_dict()) == policy
