"""`instantly-guard secrets declare|set|show|list`: managed secrets, on either backend.

    secrets declare NAME --scopes S [--grace 1d] [--admin-secret ADMIN] [--key-prefix P]
    secrets declare NAME --kind webhook-secret --webhook-id ID [--webhook-id ID2] --admin-secret A
    secrets set NAME [--key-id ID] < value        (the admin key, created by hand once)
    secrets show NAME                             (metadata, aliases, versions; never a value)
    secrets list                                  (the managed secrets and their state)

The backend follows GUARD_BACKEND (`local`: GUARD_STATE_DIR/secrets; `gcp`: Secret Manager in
GOOGLE_CLOUD_PROJECT). Declaring is what Terraform does when deployed: a secret with our label
and annotations and no version; its first rotation mints and stores the key.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from typing import Any

from instantly_guard.errors import ConfigError
from instantly_guard.rotation.model import MANAGED_LABELS, Kind, ManagedConfig, RotationState
from instantly_guard.scopes import get_profile, parse_scopes
from instantly_guard.secret import Secret
from instantly_guard.secrets.base import SecretMetadata, SecretStore, check_secret_name
from instantly_guard.settings import CommonSettings, Reader, parse_duration


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "secrets",
        help="declare, set and inspect managed secrets (Instantly keys, webhook secrets)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="secrets_command", required=True, metavar="ACTION")

    declare = commands.add_parser("declare", help="create a managed secret (no version yet)")
    declare.add_argument("name")
    declare.add_argument(
        "--kind",
        choices=[k.value for k in Kind],
        default=Kind.API_KEY.value,
        help="default api-key",
    )
    declare.add_argument("--scopes", help="the key's scopes, comma-separated (api-key)")
    declare.add_argument(
        "--profile", help="take the scopes of a named profile, e.g. audit_exporter"
    )
    declare.add_argument("--grace", help="how long the old key keeps working (default 1d)")
    declare.add_argument("--retention", help="keep disabled versions this long (default 7d)")
    declare.add_argument("--admin-secret", help="secret holding the minting key (default: itself)")
    declare.add_argument("--key-prefix", help="key name prefix (default instantly-guard)")
    declare.add_argument(
        "--webhook-id", action="append", default=[], help="webhook using the secret (repeatable)"
    )
    declare.add_argument("--webhook-header", help="header name (default x-webhook-secret)")
    declare.set_defaults(handler=declare_secret)

    set_ = commands.add_parser("set", help="store a value read from stdin as `current`")
    set_.add_argument("name")
    set_.add_argument(
        "--key-id",
        help="Instantly id of the key being stored, so its first rotation can revoke it",
    )
    set_.set_defaults(handler=set_secret)

    show = commands.add_parser("show", help="metadata, aliases and versions (never a value)")
    show.add_argument("name")
    show.set_defaults(handler=show_secret)

    list_ = commands.add_parser("list", help="managed secrets and where their rotation stands")
    list_.set_defaults(handler=list_secrets)


def open_store(env: Mapping[str, str] | None = None) -> SecretStore:
    # Imported here: the builder loads the rotation engine (the Instantly client, pydantic),
    # which `instantly-guard --help` must not pay for.
    from instantly_guard.secrets.factory import open_store

    reader = Reader(os.environ if env is None else env)
    common = CommonSettings.read(reader)
    if common.backend.value == "gcp" and not common.project:
        reader.problems.append("GOOGLE_CLOUD_PROJECT is required with GUARD_BACKEND=gcp")
    reader.finish()
    return open_store(common)


def _print(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def declare_secret(args: argparse.Namespace) -> int:
    name = check_secret_name(args.name)
    kind = Kind(args.kind)
    scopes: tuple[str, ...] = ()
    problems = []
    if kind is Kind.API_KEY:
        if args.profile:
            scopes = get_profile(args.profile).scope_strings
        if args.scopes:
            scopes = tuple(sorted({*scopes, *(str(s) for s in parse_scopes(args.scopes))}))
        if not scopes:
            problems.append("an api-key secret needs --scopes or --profile")
    else:
        if not args.webhook_id:
            problems.append("a webhook secret needs at least one --webhook-id")
        if not args.admin_secret:
            problems.append("a webhook secret needs --admin-secret (a key with webhooks:update)")
    for option in ("grace", "retention"):
        value = getattr(args, option)
        if value:
            try:
                parse_duration(value)
            except ValueError as exc:
                problems.append(f"--{option}: {exc}")
    if problems:
        raise ConfigError(problems)
    labels, annotations = ManagedConfig.declare(
        kind=kind,
        scopes=scopes,
        key_prefix=args.key_prefix,
        admin_secret=args.admin_secret,
        grace=args.grace,
        retention=args.retention,
        webhook_ids=tuple(args.webhook_id),
        webhook_header=args.webhook_header,
    )
    store = open_store()
    meta = store.create_secret(name, labels=labels, annotations=annotations)
    ManagedConfig.parse(meta)  # the same check the rotation will make
    _print({"declared": name, "labels": dict(meta.labels), "annotations": dict(meta.annotations)})
    return 0


def set_secret(args: argparse.Namespace) -> int:
    from instantly_guard.rotation.engine import set_current

    value = sys.stdin.read().strip()
    if not value:
        raise ConfigError("no value on stdin")
    store = open_store()
    version = set_current(store, args.name, Secret(value), key_id=args.key_id)
    result: dict[str, Any] = {"secret": args.name, "version": version, "alias": "current"}
    if not args.key_id:
        result["note"] = (
            "no --key-id given: the first rotation cannot revoke this key; delete it in "
            "Instantly by hand after that rotation"
        )
    _print(result)
    return 0


def describe(meta: SecretMetadata, store: SecretStore) -> dict[str, Any]:
    """Everything about a secret except its values."""
    state = RotationState.read(meta)
    versions = [
        {"version": v.version, "state": v.state.value, "created": v.create_time.isoformat()}
        for v in store.list_versions(meta.name)
    ]
    return {
        "name": meta.name,
        "managed": ManagedConfig.is_managed(meta),
        "labels": dict(meta.labels),
        "annotations": dict(meta.annotations),
        "aliases": dict(meta.aliases),
        "etag": meta.etag,
        "phase": state.phase.value,
        "lease": str(state.lease) if state.lease else None,
        "revocations": [r.to_json() for r in state.revocations],
        "destructions": [d.to_json() for d in state.destructions],
        "last_error": state.last_error,
        "versions": versions,
    }


def show_secret(args: argparse.Namespace) -> int:
    store = open_store()
    _print(describe(store.get(args.name), store))
    return 0


def list_secrets(args: argparse.Namespace) -> int:
    store = open_store()
    rows = []
    for meta in store.list_secrets(MANAGED_LABELS):
        state = RotationState.read(meta)
        rows.append(
            {
                "name": meta.name,
                "kind": meta.labels.get("instantly_guard_kind"),
                "current": state.current,
                "phase": state.phase.value,
                "last_rotated": state.last_rotated.isoformat() if state.last_rotated else None,
                "pending_revocations": len(state.revocations),
                "last_error": state.last_error,
            }
        )
    _print(rows)
    return 0
