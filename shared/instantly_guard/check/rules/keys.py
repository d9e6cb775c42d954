"""API key rules: wildcard scopes, age, management by instantly-guard, who can mint keys."""

from __future__ import annotations

from datetime import timedelta

from instantly_guard import scopes
from instantly_guard.check.model import ApiKeyInfo, Section, Severity, Snapshot
from instantly_guard.check.policy import Environment, Policy
from instantly_guard.check.rules.base import Failure, Outcome, plural, rule
from instantly_guard.detections.rules.keys import is_managed_name

__all__ = ["CREATE_KEY_OPERATION", "RULES", "describe", "is_managed_name", "subject"]

CREATE_KEY_OPERATION = "POST /api-keys"


def describe(key: ApiKeyInfo) -> str:
    return f"key {key.name!r} (id {key.id})"


def subject(key: ApiKeyInfo) -> str:
    return f"api-key/{key.id}"


def _keys(snapshot: Snapshot) -> tuple[ApiKeyInfo, ...]:
    return snapshot.keys or ()


@rule(
    "keys.all-resource-scope",
    title="Keys with an all:<action> scope",
    severity=Severity.CRITICAL,
    section=Section.KEYS,
    fix=(
        "Replace the key with one holding only the resource scopes it needs "
        "(scopes.minimal_scopes), e.g. campaigns:read instead of all:read, then delete it."
    ),
    help=(
        "A scope on the resource `all` (all:read, all:create, all:update, all:delete) reaches "
        "every resource of the workspace, API keys and leads included. If such a key leaks, the "
        "whole workspace is exposed."
    ),
)
def all_resource_scope(snapshot: Snapshot, policy: Policy) -> Outcome:
    failures = [
        Failure(
            f"{describe(key)} holds {', '.join(wild)}",
            subject=subject(key),
        )
        for key in _keys(snapshot)
        for wild in [sorted(s for s in key.scopes if s.startswith("all:") and s != "all:all")]
        if wild
    ]
    return Outcome(failures, f"{plural(len(_keys(snapshot)), 'key')}, none with all:<action>")


@rule(
    "keys.full-access",
    title="Keys with all:all outside development",
    severity=Severity.CRITICAL,
    section=Section.KEYS,
    fix=(
        "Create a least-privilege key for each integration (or let instantly-guard mint and "
        "rotate one: `instantly-guard secrets declare NAME --scopes ...`), move the integration "
        "to it, then delete the all:all key."
    ),
    help=(
        "An all:all key can do anything the workspace owner can do through the API, including "
        "minting more all:all keys. Tolerated only when the policy's environment is development."
    ),
)
def full_access(snapshot: Snapshot, policy: Policy) -> Outcome:
    holders = [key for key in _keys(snapshot) if "all:all" in key.scopes]
    if policy.environment is Environment.DEVELOPMENT:
        return Outcome(
            [], f"{plural(len(holders), 'all:all key')}, tolerated: environment is development"
        )
    failures = [Failure(f"{describe(key)} holds all:all", subject=subject(key)) for key in holders]
    return Outcome(failures, f"{plural(len(_keys(snapshot)), 'key')}, none with all:all")


@rule(
    "keys.max-age",
    title="Keys older than the maximum age",
    severity=Severity.MEDIUM,
    section=Section.KEYS,
    fix=(
        "Rotate the key (`instantly-guard rotate NAME` for a managed key; for another, create a "
        "replacement, switch the integration, delete the old key)."
    ),
    help=(
        "A long-lived key has had more chances to leak (laptops, CI logs, former staff). Rotate "
        "keys at least every key_max_age_days (default 90)."
    ),
)
def max_age(snapshot: Snapshot, policy: Policy) -> Outcome:
    limit = timedelta(days=policy.key_max_age_days)
    failures = []
    for key in _keys(snapshot):
        if key.created is None:
            continue
        age = snapshot.taken_at - key.created
        if age > limit:
            failures.append(
                Failure(
                    f"{describe(key)} is {age.days} days old "
                    f"(limit {policy.key_max_age_days} days, created {key.created:%Y-%m-%d})",
                    subject=subject(key),
                )
            )
    return Outcome(
        failures,
        f"{plural(len(_keys(snapshot)), 'key')}, none older than {policy.key_max_age_days} days",
    )


@rule(
    "keys.unmanaged",
    title="Keys not managed by instantly-guard",
    severity=Severity.LOW,
    section=Section.KEYS,
    fix=(
        "Declare a managed secret for the integration (`instantly-guard secrets declare NAME "
        "--scopes ...`), let the first rotation mint its key, move the integration to the secret, "
        "then delete the hand-made key."
    ),
    help=(
        "Keys minted by instantly-guard are named <prefix>/<secret>/<rotation id>, hold "
        "least-privilege scopes, live in Secret Manager and are rotated on schedule. Any other "
        "key was made by hand and is rotated by nobody."
    ),
)
def unmanaged(snapshot: Snapshot, policy: Policy) -> Outcome:
    prefix = policy.managed_key_prefix
    failures = [
        Failure(
            f"{describe(key)} does not follow {prefix}/<secret>/<rotation id>",
            subject=subject(key),
        )
        for key in _keys(snapshot)
        if not is_managed_name(key.name, prefix)
    ]
    return Outcome(failures, f"{plural(len(_keys(snapshot)), 'key')}, all managed by {prefix}")


@rule(
    "keys.leftover",
    title="Live keys named like ours that no managed secret records",
    severity=Severity.HIGH,
    section=Section.KEYS,
    fix=(
        "Delete the key in Instantly (Settings > Integrations > API keys, or "
        "`DELETE /api-keys/{id}`) once nothing uses it: `secrets undeclare NAME` prints the id "
        "of the key it leaves, and `--revoke-key` deletes it."
    ),
    help=(
        "A key named <prefix>/<secret>/<rotation id> was minted by a rotation. When no managed "
        "secret holds it or has it queued for revocation (the secret was undeclared, or deleted "
        "by hand), nothing will ever rotate or revoke it: a live key nobody watches. A rotation "
        "stopped between minting its key and recording it shows here until it resumes. Needs "
        "the managed secrets (GUARD_BACKEND and its settings); skipped without them."
    ),
)
def leftover(snapshot: Snapshot, policy: Policy) -> Outcome:
    if not snapshot.managed_read:
        return Outcome(
            skip="the managed secrets were not read (set GUARD_BACKEND and its settings)"
        )
    prefix = policy.managed_key_prefix
    named = [key for key in _keys(snapshot) if is_managed_name(key.name, prefix)]
    failures = [
        Failure(
            f"{describe(key)} is named like a rotation's key, but no managed secret records it",
            subject=subject(key),
        )
        for key in named
        if key.id not in snapshot.managed_key_ids
    ]
    return Outcome(
        failures, f"{plural(len(named), 'key')} named {prefix}/..., each held by a managed secret"
    )


@rule(
    "keys.multiple-key-creators",
    title="More than one key able to create keys",
    severity=Severity.HIGH,
    section=Section.KEYS,
    fix=(
        "Keep a single key-admin key (api_keys:create, api_keys:read, api_keys:delete) held by "
        "the rotation function; replace every other key that can create keys with a narrower one."
    ),
    help=(
        "A key that can call POST /api-keys can mint a key with any scope, all:all included: it "
        "is as powerful as the workspace owner. Only the rotation engine's admin key should."
    ),
)
def multiple_key_creators(snapshot: Snapshot, policy: Policy) -> Outcome:
    creators = [key for key in _keys(snapshot) if _can_create_keys(key)]
    if len(creators) <= policy.max_key_creators:
        return Outcome(
            [], f"{plural(len(creators), 'key')} can create keys (limit {policy.max_key_creators})"
        )
    names = ", ".join(describe(key) for key in creators)
    return Outcome(
        [
            Failure(
                f"{len(creators)} keys can create keys (limit {policy.max_key_creators}): {names}",
                subject="api-keys",
            )
        ]
    )


def _can_create_keys(key: ApiKeyInfo) -> bool:
    try:
        return scopes.allows(key.scopes, CREATE_KEY_OPERATION)
    except scopes.ScopeParseError:
        # A scope this version does not know (Instantly added one): judge by the wildcards only.
        return any(
            s in {"all:all", "all:create", "api_keys:all", "api_keys:create"} for s in key.scopes
        )


RULES = (all_resource_scope, full_access, max_age, unmanaged, leftover, multiple_key_creators)
