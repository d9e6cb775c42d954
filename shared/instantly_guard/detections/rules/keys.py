"""API keys created or deleted by anything other than the rotation engine.

Telling rotation from a person: Instantly records, for an API call, the id of the key that made
it (`api_key_id`). The rotation engine makes its calls with its key-admin key, whose name follows
`<prefix>/<secret>/<rotation id>` once it has rotated itself at least once; before that, the
hand-made admin key can be trusted by listing its id or name in `rotation_keys`. So a create (37)
or delete (38) is inside rotation when it came through the API from a trusted key. The actor's
name is looked up in `Config.key_names` (the check's key list; the export's names seen so far)
and, for keys deleted since, in the audit entries' metadata; an actor that can no longer be named
is trusted only when the key it created or deleted carries a managed name. Anything done in the
dashboard is outside rotation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from instantly_guard.detections.base import detection, single
from instantly_guard.detections.model import Config, Event, Hit, Severity
from instantly_guard.detections.text import when, who
from instantly_guard.vocabulary import ActivityType

API_KEY_CREATED = ActivityType.API_KEY_CREATED
API_KEY_DELETED = ActivityType.API_KEY_DELETED
KEY_CHANGES = frozenset({API_KEY_CREATED, API_KEY_DELETED})

# Where Instantly's (sanitised, schemaless) audit_metadata may name the key an entry is about.
_NAME_FIELDS = ("name", "key_name", "api_key_name")
_ID_FIELDS = ("key_id", "id", "target_api_key_id", "api_key")


def is_managed_name(name: str, prefix: str) -> bool:
    """True for `<prefix>/<secret>/<rotation id>`, the name the rotation engine gives each key."""
    return re.fullmatch(rf"{re.escape(prefix)}/[^/\s]+/[^/\s]+", name.strip()) is not None


def key_names(names: Mapping[str, str], events: Iterable[Event]) -> dict[str, str]:
    """Key id -> name: `names`, then what the audit metadata reveals about other keys (so a
    rotated-away admin key can still be named)."""
    result = dict(names)
    for event in events:
        key_id, name = affected_id(event.metadata), affected_name(event.metadata)
        if key_id and name:
            result.setdefault(key_id, name)
    return result


def outside_rotation(event: Event, names: Mapping[str, str], config: Config) -> str | None:
    """Why `event` (a 37 or 38) was not the rotation engine's doing, or None when it was.

    With the managed secrets' key ids (`config.rotation_admin_ids`), a change made by a
    rotation's admin key to a managed key (one a managed secret records, or named with the
    managed prefix) is the rotation's, whatever the admin key is called."""
    if not event.from_api:
        return f"by {who(event)} in the dashboard"
    actor = event.api_key_id
    if actor is None:
        return "through the API by an unidentified key"
    prefix = config.managed_key_prefix
    if actor in config.rotation_admin_ids:
        key_id, name = affected_id(event.metadata), affected_name(event.metadata)
        if (key_id is not None and key_id in config.managed_key_ids) or (
            name is not None and is_managed_name(name, prefix)
        ):
            return None
    actor_name = names.get(actor)
    trusted = set(config.rotation_keys)
    if actor in trusted or (actor_name is not None and actor_name in trusted):
        return None
    if actor_name is not None:
        if is_managed_name(actor_name, prefix):
            return None
        return f"by unmanaged key {actor_name!r} (id {actor})"
    affected = affected_name(event.metadata)
    if affected is not None and is_managed_name(affected, prefix):
        return None
    if config.keys_listed is False:
        # The keys could not be listed: nothing says whether the key still exists.
        return (
            f"by key {actor}, not in rotation_keys (unnamed: the check's key cannot list "
            "API keys, which needs api_keys:read)"
        )
    if config.keys_listed is None:
        return f"by key {actor}, which is neither a rotation key nor named as one"
    return f"by key {actor}, which no longer exists and is not in rotation_keys"


def affected_name(metadata: Mapping[str, Any]) -> str | None:
    return _first_text(metadata, _NAME_FIELDS)


def affected_id(metadata: Mapping[str, Any]) -> str | None:
    return _first_text(metadata, _ID_FIELDS)


def _first_text(metadata: Mapping[str, Any], fields: tuple[str, ...]) -> str | None:
    """The first of `fields` holding a non-empty string (the metadata has no schema)."""
    return next((v for f in fields if isinstance(v := metadata.get(f), str) and v), None)


@detection(
    "audit.key-change-outside-rotation",
    title="API keys created or deleted outside rotation",
    severity=Severity.HIGH,
    technique="T1098.001",
    activities=tuple(KEY_CHANGES),
    fix=(
        "Find out who made the change and why; delete keys nobody owns. Mint keys through "
        "instantly-guard (secrets declare + rotate); list a trusted hand-made admin key in the "
        "policy's rotation_keys until its first rotation."
    ),
    help=(
        "Keys should be minted and revoked only by the rotation engine. A key created in the "
        "dashboard or by another key is unmanaged, usually over-privileged, and never rotated; "
        "an unexpected deletion can break an integration or hide a leaked key's tracks."
    ),
)
def key_change_outside_rotation(events: Sequence[Event], config: Config) -> list[Hit]:
    names = key_names(config.key_names, events)
    hits = []
    for event in events:
        reason = outside_rotation(event, names, config)
        if reason is None:
            continue
        verb = "created" if event.activity_type == API_KEY_CREATED else "deleted"
        affected = affected_name(event.metadata)
        what = f"API key {affected!r}" if affected else "an API key"
        hits.append(single(event, f"{what} {verb} at {when(event)} {reason}"))
    return hits


RULES = (key_change_outside_rotation,)
