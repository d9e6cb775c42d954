from __future__ import annotations

from tests.check.check_fixtures import failed, run, snapshot

from instantly_guard.check import BlockEntryInfo, Policy
from instantly_guard.check.rules import blocklist


def test_each_missing_domain_is_one_failure_with_its_kind() -> None:
    entries = (BlockEntryInfo("example.com", True), BlockEntryInfo("bob@rival.example", False))
    policy = Policy(
        internal_domains=("example.com",), competitor_domains=("rival.example", "other.example")
    )
    found = failed(run(blocklist.missing_domain, snapshot(block_list=entries), policy))
    # A single address on the competitor's domain does not block the domain.
    assert [f.subject for f in found] == ["block-list/rival.example", "block-list/other.example"]
    assert found[0].evidence == "competitor domain rival.example is not on the block list"
    assert "<domain>" in found[0].fix


def test_complete_block_list_passes_case_insensitively() -> None:
    entries = (BlockEntryInfo("Example.COM", True),)
    findings = run(
        blocklist.missing_domain,
        snapshot(block_list=entries),
        Policy(internal_domains=("example.com",)),
    )
    assert [f.status for f in findings] == ["pass"]


def test_block_list_rule_is_skipped_without_configured_domains() -> None:
    assert [f.status for f in run(blocklist.missing_domain, snapshot(block_list=()))] == ["skip"]
