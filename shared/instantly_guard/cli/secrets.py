"""`instantly-guard secrets declare|set|show|list`: managed secrets, on either backend.

    secrets declare NAME --scopes S [--grace 1d] [--admin-secret ADMIN] [--key-prefix P]
    secrets declare NAME --kind webhook-secret --admin-secret A [--webhook-id ID ...]
                                                  (or record them later: webhooks connect)
    secrets declare NAME --update ...             (fix a declaration; the rotation state is kept)
    secrets undeclare NAME [--force|--revoke-key] (delete a declared secret; --force if it has keys,
                                                   printing their ids; --revoke-key deletes them)
    secrets set NAME [--key-id ID] < value        (the admin key, created by hand once)
    secrets show NAME                             (metadata, aliases, versions; never a value)
    secrets list                                  (the managed secrets and their state)

Every action takes --format text|json (default: text on a terminal, JSON otherwise).

The backend follows GUARD_BACKEND (`local`: GUARD_STATE_DIR/secrets; `gcp`: Secret Manager in
GOOGLE_CLOUD_PROJECT). Declaring is what Terraform does when deployed: a secret with our label
and annotations and no version; its first rotation mints and stores the key.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from instantly_guard.cli import output
from instantly_guard.cli.names import store_name, unknown_secret
from instantly_guard.errors import ConfigError, GuardError
from instantly_guard.rotation.model import (
    DECLARED_KEYS,
    DEFAULT_WEBHOOK_HEADER,
    MANAGED_LABELS,
    PREFIX,
    AnnotationKey,
    Kind,
    ManagedConfig,
    RotationState,
)
from instantly_guard.scopes import get_profile, parse_scopes
from instantly_guard.secret import Secret
from instantly_guard.secrets.base import (
    SecretMetadata,
    SecretNotFoundError,
    SecretStore,
    check_secret_name,
)
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
        help="default api-key (with --update: the declared kind)",
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
    declare.add_argument(
        "--environment",
        choices=("production", "development"),
        default="production",
        help="all:all (full access) is allowed only in development, as in Terraform and the check",
    )
    declare.add_argument(
        "--update",
        action="store_true",
        help=(
            "change the declaration of an existing secret: only the options given change (an "
            "empty value, e.g. --grace '', restores the default); versions and rotation state stay"
        ),
    )
    declare.set_defaults(handler=declare_secret)

    undeclare = commands.add_parser(
        "undeclare", help="delete a declared secret (refused while it holds a key, unless --force)"
    )
    undeclare.add_argument("name")
    undeclare.add_argument(
        "--force",
        action="store_true",
        help="delete it even though it holds versions (revoke its key in Instantly yourself: "
        "its id is printed)",
    )
    undeclare.add_argument(
        "--revoke-key",
        action="store_true",
        help="delete its Instantly key(s) first, with its admin secret's key, then the secret",
    )
    undeclare.set_defaults(handler=undeclare_secret)

    set_ = commands.add_parser(
        "set", help="store a value as `current` (read from stdin; prompted, hidden, on a terminal)"
    )
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
    for action in (declare, undeclare, set_, show, list_):
        output.add_format_argument(action)


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


def get_meta(store: SecretStore, name: str, *, managed: bool = True) -> SecretMetadata:
    """The secret's metadata, or an error that says where we looked and what to do next."""
    try:
        meta = store.get(check_secret_name(name))
    except SecretNotFoundError:
        raise unknown_secret(store, name) from None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if managed and not ManagedConfig.is_managed(meta):
        raise unknown_secret(store, name, managed=False)
    return meta


def _check_admin(store: SecretStore, name: str, admin: str | None) -> list[str]:
    """Problems with `--admin-secret`: it must be a declared api-key secret (or the secret itself),
    or every rotation of `name` fails later with advice that loops back here."""
    if not admin or admin == name:
        return []
    try:
        meta = store.get(check_secret_name(admin))
    except (SecretNotFoundError, ValueError):
        hint = unknown_secret(store, admin).problems[0]
        return [f"--admin-secret: {hint} (declare and set the admin secret before {name})"]
    if not ManagedConfig.is_managed(meta):
        return [f"--admin-secret {admin} is not managed by instantly-guard"]
    admin_kind = meta.annotations.get(f"{PREFIX}kind", Kind.API_KEY.value)
    if admin_kind != Kind.API_KEY.value:
        return [f"--admin-secret {admin} is a {admin_kind}, not an api-key secret"]
    return []


def _declared(meta: SecretMetadata) -> dict[str, str]:
    """The declaration a secret carries (not its rotation state): what `--update` starts from."""
    return {k: v for k, v in meta.annotations.items() if k in DECLARED_KEYS}


def _check_webhooks_free(
    store: SecretStore, name: str, webhook_ids: tuple[str, ...], header: str | None
) -> list[str]:
    """Two secrets rotating the same header of one webhook would overwrite each other's header,
    and the receiver would refuse every delivery signed with the other one."""
    header = (header or DEFAULT_WEBHOOK_HEADER).lower()
    problems = []
    for other in ManagedConfig.declared_in(store):
        shared = sorted(set(webhook_ids) & set(other.webhook_ids))
        if other.name == name or other.kind is not Kind.WEBHOOK_SECRET or not shared:
            continue
        if other.webhook_header.lower() == header:
            problems.append(
                f"webhook {', '.join(shared)} already has its {header} header rotated by secret "
                f"{other.name}: use that secret, or change it with "
                f"`instantly-guard secrets declare {other.name} --update --webhook-id ...`"
            )
    return problems


def declare_secret(args: argparse.Namespace) -> int:
    name = check_secret_name(args.name)
    store = open_store()
    previous = _declared(get_meta(store, name)) if args.update else {}

    def option(given: str | None, key: str) -> str | None:
        return given if given is not None else previous.get(key)

    kind = Kind(args.kind or previous.get(AnnotationKey.KIND) or Kind.API_KEY.value)
    admin_secret = option(args.admin_secret, AnnotationKey.ADMIN_SECRET)
    webhook_ids = tuple(args.webhook_id) or tuple(
        p for p in (previous.get(AnnotationKey.WEBHOOK_IDS) or "").split(",") if p
    )
    scopes: tuple[str, ...] = ()
    problems = []
    if kind is Kind.API_KEY:
        if args.profile:
            scopes = get_profile(args.profile).scope_strings
        if args.scopes:
            scopes = tuple(sorted({*scopes, *(str(s) for s in parse_scopes(args.scopes))}))
        if not scopes and previous.get(AnnotationKey.SCOPES):
            scopes = tuple(previous[AnnotationKey.SCOPES].split(","))
        if not scopes:
            problems.append("an api-key secret needs --scopes or --profile")
        if "all:all" in scopes and args.environment != "development":
            problems.append(
                "all:all is full access to the workspace: refused outside --environment "
                "development (Terraform refuses it too); declare the scopes the integration "
                "needs (--profile lists them per use)"
            )
    # No --webhook-id is fine: `webhooks connect` records the webhooks once the receiver
    # is up (declaring them here is for a webhook already pointed at it).
    elif not admin_secret:
        problems.append("a webhook secret needs --admin-secret (a key with webhooks:update)")
    for flag in ("grace", "retention"):
        value = getattr(args, flag)
        if value:
            try:
                parse_duration(value)
            except ValueError as exc:
                problems.append(f"--{flag}: {exc}")
    if not problems:
        problems += _check_admin(store, name, admin_secret)
    if not problems and kind is Kind.WEBHOOK_SECRET:
        header = option(args.webhook_header, AnnotationKey.WEBHOOK_HEADER)
        problems += _check_webhooks_free(store, name, webhook_ids, header)
    if problems:
        raise ConfigError(problems)
    labels, annotations = ManagedConfig.declare(
        kind=kind,
        scopes=scopes,
        key_prefix=option(args.key_prefix, AnnotationKey.KEY_PREFIX),
        admin_secret=admin_secret,
        grace=option(args.grace, AnnotationKey.GRACE),
        retention=option(args.retention, AnnotationKey.RETENTION),
        webhook_ids=webhook_ids,
        webhook_header=option(args.webhook_header, AnnotationKey.WEBHOOK_HEADER),
    )
    if args.update:
        meta = _redeclare(store, name, annotations)
    else:
        from instantly_guard.errors import ConflictError

        try:
            meta = store.create_secret(name, labels=labels, annotations=annotations)
        except ConflictError:
            raise ConfigError(
                f"secret {name} already exists in {store_name(store)}; to change its declaration "
                f"add --update, to remove it: instantly-guard secrets undeclare {name}"
            ) from None
    ManagedConfig.parse(meta)  # the same check the rotation will make
    result = {"declared": name, "labels": dict(meta.labels), "annotations": dict(meta.annotations)}
    output.emit(
        args,
        result,
        lambda r: (
            f"declared {name} in {store_name(store)}\n"
            + output.fields([(k, v) for k, v in sorted(r["annotations"].items())])
            + ("" if args.update else "\n" + _next_step(name, kind, admin_secret))
        ),
    )
    return 0


def _next_step(name: str, kind: Kind, admin_secret: str | None) -> str:
    """What to run next, true for this declaration: a secret that mints its own keys has no
    key to mint with until one made by hand is stored."""
    if kind is Kind.API_KEY and admin_secret in (None, name):
        return (
            f"next: it mints its own keys, so store a first one made by hand: "
            f"instantly-guard secrets set {name} --key-id ID < key.txt  (or declare it again "
            "with --admin-secret ADMIN, a secret holding a key with api_keys:create)"
        )
    return f"next: instantly-guard rotate {name}  (mints and stores its first key)"


def _redeclare(store: SecretStore, name: str, declared: Mapping[str, str]) -> SecretMetadata:
    """Replace the declared annotations of `name`, keeping its rotation state and aliases."""
    meta = get_meta(store, name)
    state = RotationState.read(meta)
    if meta.labels.get("instantly_guard_kind") not in (None, declared.get(f"{PREFIX}kind")):
        raise ConfigError(
            f"secret {name} is a {meta.labels.get('instantly_guard_kind')}; its kind cannot change "
            f"(undeclare it and declare it again)"
        )
    return store.update(
        name,
        aliases=dict(meta.aliases),
        annotations=state.annotations(declared),
        etag=meta.etag,
    )


def undeclare_secret(args: argparse.Namespace) -> int:
    store = open_store()
    meta = get_meta(store, args.name)
    versions = store.list_versions(meta.name)
    live = [v.version for v in versions if v.state.value != "DESTROYED"]
    keys = _key_ids(meta)
    if live and not (args.force or args.revoke_key):
        held = f" (Instantly key {', '.join(keys)})" if keys else ""
        raise ConfigError(
            f"secret {meta.name} holds version(s) {', '.join(live)}{held}, a key that may be in "
            "use: run again with --revoke-key to delete the key in Instantly too, or revoke it "
            "yourself and run again with --force"
        )
    revoked = _revoke_keys(store, meta, keys) if args.revoke_key else []
    store.delete_secret(meta.name, etag=meta.etag)
    left = [k for k in keys if k not in revoked]
    result: dict[str, Any] = {
        "undeclared": meta.name,
        "deleted_versions": [v.version for v in versions],
        "revoked_key_ids": revoked,
        "left_key_ids": left,
    }

    def text(r: dict[str, Any]) -> str:
        lines = [f"undeclared {meta.name}: deleted from {store_name(store)}"]
        lines += [f"revoked Instantly key {k}" for k in revoked]
        lines += [
            f"left in Instantly: key {k}; revoke it there (DELETE /api-keys/{k}) once nothing "
            "uses it"
            for k in left
        ]
        return "\n".join(lines)

    output.emit(args, result, text)
    return 0


def _key_ids(meta: SecretMetadata) -> list[str]:
    """The Instantly key ids an api-key secret records: current, pending, queued revocations."""
    try:
        config = ManagedConfig.parse(meta)
        state = RotationState.read(meta)
    except GuardError:  # a broken declaration or state: `secrets show` reports it
        return []
    if config.kind is not Kind.API_KEY:
        return []
    ids = [state.current_key_id, state.pending_key_id, *(r.key_id for r in state.revocations)]
    return list(dict.fromkeys(i for i in ids if i))


def _revoke_keys(store: SecretStore, meta: SecretMetadata, keys: list[str]) -> list[str]:
    """Delete `keys` in Instantly with the secret's admin key (already gone counts)."""
    if not keys:
        return []
    from instantly_guard.rotation.admin import admin_client, delete_key
    from instantly_guard.rotation.builder import client_factory

    config = ManagedConfig.parse(meta)
    common = CommonSettings.read(Reader(os.environ))
    admin = admin_client(store, client_factory(common), config)
    try:
        for key_id in keys:
            delete_key(admin, key_id)
    finally:
        admin.close()
    return keys


def set_secret(args: argparse.Namespace) -> int:
    from instantly_guard.rotation.engine import set_current

    if sys.stdin.isatty():
        # Typed by a person: prompt, and never echo the key onto the screen (or a recording).
        import getpass

        value = getpass.getpass(f"value for {args.name} (input hidden): ").strip()
    else:
        value = sys.stdin.read().strip()
    if not value:
        raise ConfigError("no value given" if sys.stdin.isatty() else "no value on stdin")
    store = open_store()
    get_meta(store, args.name)
    version = set_current(store, args.name, Secret(value), key_id=args.key_id)
    result: dict[str, Any] = {"secret": args.name, "version": version, "alias": "current"}
    if not args.key_id:
        result["note"] = (
            "no --key-id given: the first rotation cannot revoke this key; delete it in "
            "Instantly by hand after that rotation"
        )
    output.emit(
        args,
        result,
        lambda r: (
            f"stored {args.name} version {version} as current"
            + (f"\nnote: {r['note']}" if "note" in r else "")
        ),
    )
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
    output.emit(args, describe(get_meta(store, args.name, managed=False), store), _show_text)
    return 0


def _show_text(d: Mapping[str, Any]) -> str:
    lines = [
        output.fields(
            [
                ("name", d["name"]),
                ("managed", "yes" if d["managed"] else "no"),
                ("phase", d["phase"]),
                ("aliases", ", ".join(f"{k}={v}" for k, v in sorted(d["aliases"].items())) or None),
                ("lease", d["lease"]),
                ("last error", d["last_error"]),
                ("revocations", len(d["revocations"])),
                ("destructions", len(d["destructions"])),
            ]
        ),
        "",
        "annotations:",
        *(f"  {k} = {v}" for k, v in sorted(d["annotations"].items())),
    ]
    if d["versions"]:
        rows = [[v["version"], v["state"], v["created"]] for v in d["versions"]]
        lines += ["", output.table(["version", "state", "created"], rows)]
    else:
        lines += ["", "no versions yet (the first rotation stores one)"]
    return "\n".join(lines)


def list_secrets(args: argparse.Namespace) -> int:
    store = open_store()
    root = getattr(store, "root", None)
    if isinstance(root, Path) and not root.is_dir():
        # An empty listing would read as "no managed secrets" when nothing was read at all.
        raise ConfigError(
            f"no local secret store at {root}: set GUARD_STATE_DIR to the state directory that "
            "holds it (`make run` uses .guard), or declare a secret first"
        )
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
    output.emit(args, rows, lambda r: _list_text(r, store))
    return 0


def _list_text(rows: list[dict[str, Any]], store: SecretStore) -> str:
    if not rows:
        return f"no managed secrets in {store_name(store)}"
    headers = ["name", "kind", "current", "phase", "last rotated", "pending", "last error"]
    cells = [
        [
            r["name"],
            r["kind"],
            r["current"],
            r["phase"],
            r["last_rotated"],
            r["pending_revocations"] or None,
            r["last_error"],
        ]
        for r in rows
    ]
    return output.table(headers, cells)
