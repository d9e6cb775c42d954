"""`instantly-guard check`: the security checklist of a workspace and the local repository.

The workspace is read with the key in INSTANTLY_API_KEY (or the file named by
INSTANTLY_API_KEY_FILE) at INSTANTLY_API_BASE; it needs only the read scopes of the
`posture_check` profile (`--show-scopes`). The repository is the git work tree around `--repo`
(default: the current directory). With GUARD_BACKEND set (and its GUARD_STATE_DIR or
GOOGLE_CLOUD_PROJECT), the managed secrets are read too, for the key ids rotations minted: a
rotation's own key changes are then not reported as made outside rotation.

Exit status: 0, or 1 when a failed finding reaches `--fail-on` (default high), 2 for a usage or
configuration error (a rejected key), 3 when Instantly could not be read (run again).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from instantly_guard.check.managed import ManagedKeys
    from instantly_guard.instantly import InstantlyClient

# `check.model.Severity`, most severe first, spelled out (a test keeps them equal): importing the
# check package for an enum would load the Instantly client into every `instantly-guard --help`.
FAIL_ON_CHOICES = ("critical", "high", "medium", "low", "info", "none")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "check",
        help="check a workspace and this repository against the security checklist",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--format",
        choices=("table", "json", "sarif", "html"),
        default="table",
        help="table (default), json, sarif (code scanning) or html (one self-contained page)",
    )
    out.add_argument("--output", "-o", type=Path, help="write the report here (default: stdout)")
    out.add_argument(
        "--fail-on",
        choices=FAIL_ON_CHOICES,
        default="high",
        help="exit 1 when a failed finding is at least this severe (default: high; none: never)",
    )
    out.add_argument(
        "--fail-on-skipped",
        action="store_true",
        help="also exit 1 when a rule could not be evaluated (a missing scope, say)",
    )
    what = parser.add_argument_group("what to check")
    what.add_argument("--repo", type=Path, default=Path("."), help="git work tree (default: .)")
    what.add_argument("--no-repo", action="store_true", help="skip the repository rules")
    what.add_argument(
        "--no-workspace",
        action="store_true",
        help="skip the workspace (no key needed): repository rules only",
    )
    what.add_argument(
        "--key-secret",
        metavar="NAME",
        help="read the key from this managed secret (alias current) in the store GUARD_BACKEND "
        "names, instead of INSTANTLY_API_KEY: it survives rotations",
    )
    what.add_argument("--show-scopes", action="store_true", help="print the scopes needed, exit")
    what.add_argument("--list-rules", action="store_true", help="print every rule, exit")
    pol = parser.add_argument_group(
        "policy", "Flags override the --policy TOML file; a repeated flag replaces its list."
    )
    pol.add_argument(
        "--policy", type=Path, help="TOML policy file (its keys: docs/posture-check.md)"
    )
    pol.add_argument("--environment", choices=("production", "development"))
    pol.add_argument("--key-prefix", dest="managed_key_prefix", metavar="PREFIX")
    pol.add_argument("--max-key-age-days", dest="key_max_age_days", type=int, metavar="DAYS")
    pol.add_argument("--max-admins", type=int, metavar="N")
    pol.add_argument("--audit-days", dest="audit_window_days", type=int, metavar="DAYS")
    for flag, field, what_for in (
        ("--allowed-domain", "allowed_email_domains", "member email domain"),
        ("--internal-domain", "internal_domains", "own domain that must be on the block list"),
        ("--competitor-domain", "competitor_domains", "competitor that must be on the block list"),
        ("--webhook-host", "webhook_allowed_hosts", "allowed target host or *-N.REGION.run.app"),
        ("--rotation-key", "rotation_keys", "id or name of a key trusted to create/delete keys"),
        ("--disable", "disabled_rules", "rule id to leave out"),
    ):
        pol.add_argument(flag, dest=field, action="append", metavar="VALUE", help=what_for)
    parser.set_defaults(handler=run)


_POLICY_FLAGS = (
    "environment",
    "managed_key_prefix",
    "key_max_age_days",
    "max_admins",
    "audit_window_days",
    "allowed_email_domains",
    "internal_domains",
    "competitor_domains",
    "webhook_allowed_hosts",
    "rotation_keys",
    "disabled_rules",
)


def run(args: argparse.Namespace) -> int:
    from instantly_guard.check import (
        ALL_RULES,
        REQUIRED_SCOPES,
        RULES_BY_ID,
        Policy,
        Severity,
        exit_code,
        run_check,
        scope_advice,
    )
    from instantly_guard.check.report import render
    from instantly_guard.check.report.table import summary, use_colour
    from instantly_guard.errors import AuthenticationError, ConfigError

    if args.show_scopes:
        print("\n".join(REQUIRED_SCOPES))
        print(scope_advice(), file=sys.stderr)
        return 0
    if args.list_rules:
        for rule in ALL_RULES:
            print(f"{rule.id:<36} {rule.severity!s:<9} {rule.title}")
        return 0

    overrides: dict[str, Any] = {
        name: getattr(args, name) for name in _POLICY_FLAGS if getattr(args, name) is not None
    }
    policy = Policy.load(args.policy, overrides)
    unknown = [rule_id for rule_id in policy.disabled_rules if rule_id not in RULES_BY_ID]
    if unknown:
        raise ConfigError(f"unknown rule id(s) to disable: {', '.join(unknown)} (see --list-rules)")

    client = None if args.no_workspace else _client(os.environ, args.key_secret)
    managed = None if client is None else _managed_keys(os.environ)
    try:
        report = run_check(
            client, policy, repo=None if args.no_repo else args.repo, managed=managed
        )
    except AuthenticationError as exc:
        raise ConfigError(
            f"Instantly rejected the key ({exc.method} {exc.path} -> {exc.status}): it is "
            f"missing, revoked or for another API base. {scope_advice()}"
        ) from exc
    finally:
        if client is not None:
            client.close()

    threshold = None if args.fail_on == "none" else Severity(args.fail_on)
    if args.output is not None:
        try:
            args.output.write_text(render(report, args.format), encoding="utf-8")
        except OSError as exc:
            # Exit 2, not a traceback's 1: CI reads 1 as "findings at --fail-on".
            raise ConfigError(f"--output {args.output}: cannot write ({exc.strerror})") from exc
        print(
            f"instantly-guard check: {summary(report)}; report written to {args.output}",
            file=sys.stderr,
        )
    else:
        colour = args.format == "table" and use_colour(sys.stdout)
        sys.stdout.write(render(report, args.format, colour=colour))
        sys.stdout.flush()
    if all(f.skipped for f in report.findings):
        # A run that evaluated no rule is no pass: exit 2 (configuration), never a green 0.
        reasons = sorted({f.evidence for f in report.findings}) or ["every section was excluded"]
        print(
            f"instantly-guard check: nothing was checked ({'; '.join(reasons)}); run it inside "
            "a git work tree (or pass --repo PATH), or give it a workspace key",
            file=sys.stderr,
        )
        return 2
    return exit_code(report.findings, threshold, fail_on_skipped=args.fail_on_skipped)


def _managed_keys(env: Mapping[str, str]) -> ManagedKeys | None:
    """The managed secrets' key ids when GUARD_BACKEND names a store (so the rotations' own key
    changes are recognised); None, with a note, when it is set but cannot be read."""
    if not env.get("GUARD_BACKEND"):
        return None
    from instantly_guard.check.managed import read_managed_keys
    from instantly_guard.errors import GuardError
    from instantly_guard.secrets.factory import open_store
    from instantly_guard.settings import CommonSettings, Reader
    from instantly_guard.terminal import safe

    try:
        reader = Reader(env)
        common = CommonSettings.read(reader)
        reader.finish()
        return read_managed_keys(open_store(common))
    except GuardError as exc:
        print(
            f"instantly-guard check: cannot read the managed secrets ({safe(exc)}); key changes by "
            "rotations are told apart by name and --rotation-key only",
            file=sys.stderr,
        )
        return None


def _key_secrets(env: Mapping[str, str]) -> list[str]:
    """With a secret store configured (GUARD_BACKEND), the managed secrets whose key the check
    could use: a hint for the error when no key was given, so it never fails on its own."""
    if not env.get("GUARD_BACKEND"):
        return []
    from instantly_guard.check import REQUIRED_SCOPES
    from instantly_guard.rotation.model import Kind, ManagedConfig
    from instantly_guard.scopes import grants
    from instantly_guard.secrets.factory import open_store
    from instantly_guard.settings import CommonSettings, Reader

    try:  # only a hint: whatever fails here, the error it would add to is the one that counts
        store = open_store(CommonSettings.read(Reader(env)))
        return sorted(
            config.name
            for config in ManagedConfig.declared_in(store)
            if config.kind is Kind.API_KEY
            and all(grants(config.scopes, s) for s in REQUIRED_SCOPES)
        )
    except Exception:
        return []


def _client(env: Mapping[str, str], key_secret: str | None = None) -> InstantlyClient:
    """An InstantlyClient for the check's key, configured from the environment."""
    from instantly_guard.check import scope_advice
    from instantly_guard.errors import ConfigError
    from instantly_guard.instantly import InstantlyClient, StaticKey, configure_default
    from instantly_guard.settings import CommonSettings, Reader

    reader = Reader(env)
    settings = CommonSettings.read(reader)
    key = None if key_secret else reader.secret("INSTANTLY_API_KEY")
    reader.finish()
    if key_secret:
        from instantly_guard.cli.names import unknown_secret
        from instantly_guard.secrets.base import SecretNotFoundError
        from instantly_guard.secrets.factory import open_store

        store = open_store(settings)
        try:
            key = store.access(key_secret, "current")
        except SecretNotFoundError:
            raise unknown_secret(store, key_secret) from None
    if key is None:
        secrets = _key_secrets(env)
        advice = (
            "or name the managed secret that holds one: "
            + " or ".join(f"--key-secret {name}" for name in secrets)
            + "; "
            if secrets
            else ""
        )
        raise ConfigError(
            "INSTANTLY_API_KEY (or INSTANTLY_API_KEY_FILE) is required to check the workspace, "
            f"{advice}or pass --no-workspace to check only the repository."
            + ("" if secrets else " " + scope_advice())
        )
    configure_default(settings.rate_per_second, settings.rate_per_minute)
    return InstantlyClient(StaticKey(key), settings.api_base)
