"""Read a workspace into a `Snapshot`, its sections concurrently, with a read-only key.

The check needs the scopes of the `posture_check` profile (`REQUIRED_SCOPES`): nothing it calls
writes. Each section is read independently: a key missing the scope for one section (or a call
that keeps failing) costs that section only, recorded in `Snapshot.errors` with which scope is
missing and how to get a key that has it; the rules of that section are then reported as
skipped. A key Instantly rejects outright (401, revoked) or a workspace without a paid plan (402)
fails the whole check: nothing can be read. So does a workspace of which no section could be read
(`WorkspaceUnreadableError`): an API that does not answer (a wrong INSTANTLY_API_BASE) or a key
with none of the scopes is an error, never a run whose every rule is skipped and that passes.

The sections are independent, so they are read at the same time (one thread each): under real
latency the check costs its longest section, not the sum of all. The client's rate limiter is
shared by every thread, so together they stay within the workspace's budget.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from instantly_guard import scopes
from instantly_guard.check.model import (
    ApiKeyInfo,
    AuditEvent,
    BlockEntryInfo,
    MemberInfo,
    Section,
    SectionError,
    Snapshot,
    WebhookInfo,
)
from instantly_guard.check.policy import Policy
from instantly_guard.check.rules import audit as audit_rules
from instantly_guard.errors import (
    AuthenticationError,
    GuardError,
    InstantlyError,
    PaymentRequiredError,
    ScopeError,
    TransportError,
)

if TYPE_CHECKING:  # the client (pydantic models) is not loaded for a repository-only check
    from instantly_guard.instantly import InstantlyClient

PROFILE: Final = scopes.PROFILES["posture_check"]
REQUIRED_SCOPES: Final[tuple[str, ...]] = PROFILE.scope_strings
"""Every scope the check uses (profile `posture_check`): all reads."""

OPERATIONS: Final = MappingProxyType(
    {
        Section.KEYS: "GET /api-keys",
        Section.WEBHOOKS: "GET /webhooks",
        Section.MEMBERS: "GET /workspace-members",
        Section.BLOCKLIST: "GET /block-lists-entries",
        Section.AUDIT: "GET /audit-logs",
    }
)
"""The one Instantly operation each workspace section reads."""

AUDIT_TYPES: Final = (
    audit_rules.TOTP_DISABLED,
    audit_rules.MFA_CHALLENGE_FAILED,
    audit_rules.MFA_TOO_MANY_FAILURES,
    audit_rules.API_KEY_CREATED,
    audit_rules.API_KEY_DELETED,
)
"""Activity types the audit rules look at; each is fetched with the API's own filter."""


class WorkspaceUnreadableError(GuardError):
    """Not one workspace section could be read. `retryable`: Instantly did not answer or failed
    (exit 3, run again later); otherwise the key lacks every scope (exit 2, configuration)."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        self.retryable = retryable
        super().__init__(message)


def scope_advice() -> str:
    """How to get a key the check can use, in one paragraph."""
    wanted = ",".join(REQUIRED_SCOPES)
    return (
        f"Create a read-only key for the check with the scopes {wanted} (profile posture_check) "
        "in Instantly (Settings > Integrations > API keys > Create), or let instantly-guard mint "
        f"and rotate it: `instantly-guard secrets declare posture-check --scopes {wanted}` then "
        "`instantly-guard rotate posture-check`. Give it to the check as INSTANTLY_API_KEY or "
        "INSTANTLY_API_KEY_FILE."
    )


def explain_scope_error(section: Section, error: ScopeError) -> SectionError:
    """Which scope the key lacks for `section`, what it holds, and how to fix it."""
    operation = OPERATIONS[section]
    accepted = scopes.OPERATIONS.get(operation, ())
    required = error.required or tuple(str(s) for s in accepted[:1])
    found = f" (it holds {', '.join(error.found)})" if error.found else ""
    lacks = " or ".join(required) if required else "a scope Instantly did not name"
    return SectionError(
        message=f"cannot read {section}: the key lacks {lacks} for {operation}{found}",
        fix=scope_advice(),
        missing_scopes=tuple(required),
    )


def collect_workspace(
    client: InstantlyClient,
    policy: Policy,
    *,
    now: datetime | None = None,
) -> Snapshot:
    """Read every workspace section. Raises only when the key itself is unusable
    (`AuthenticationError`, `PaymentRequiredError`); every other failure is per section."""
    taken_at = now or datetime.now(UTC)
    readers: dict[Section, Callable[[], tuple[Any, ...]]] = {
        Section.KEYS: lambda: _keys(client),
        Section.WEBHOOKS: lambda: _webhooks(client),
        Section.MEMBERS: lambda: _members(client),
        Section.BLOCKLIST: lambda: _block_list(client),
        Section.AUDIT: lambda: _audit(client, taken_at - timedelta(days=policy.audit_window_days)),
    }
    with ThreadPoolExecutor(len(readers) + 1, thread_name_prefix="check-read") as pool:
        # Each read runs in a copy of this context, so its log lines keep the run's trace fields.
        futures = {
            section: pool.submit(contextvars.copy_context().run, read)
            for section, read in readers.items()
        }
        name = pool.submit(contextvars.copy_context().run, _workspace_name, client)
    # Every read has finished here: outcomes are taken in section order, so which error wins
    # does not depend on which thread was faster.
    values: dict[Section, tuple[Any, ...] | None] = {}
    errors: dict[Section, SectionError] = {}
    for section, future in futures.items():
        values[section], error = _outcome(client, section, future)
        if error is not None:
            errors[section] = error
    if len(errors) == len(readers):
        transient = [e for e in errors.values() if not e.missing_scopes]
        detail = "; ".join(e.message for e in errors.values())
        raise WorkspaceUnreadableError(
            f"no part of the workspace at {client.base_url} could be read: {detail}"
            + ("" if transient else f". {scope_advice()}"),
            retryable=bool(transient),
        )
    return Snapshot(
        taken_at=taken_at,
        keys=values[Section.KEYS],
        webhooks=values[Section.WEBHOOKS],
        members=values[Section.MEMBERS],
        block_list=values[Section.BLOCKLIST],
        audit=values[Section.AUDIT],
        workspace_name=name.result(),
        errors=MappingProxyType(errors),
    )


def _outcome(
    client: InstantlyClient, section: Section, future: Future[tuple[Any, ...]]
) -> tuple[tuple[Any, ...] | None, SectionError | None]:
    """A section's value, or why it could not be read. Raises for what fails the whole check."""
    try:
        return future.result(), None
    except (AuthenticationError, PaymentRequiredError):
        raise
    except ScopeError as exc:
        return None, explain_scope_error(section, exc)
    except TransportError as exc:
        # No HTTP answer even after the client's retries (the other sections retried alongside,
        # not after it): nothing else answered either.
        raise WorkspaceUnreadableError(
            f"cannot reach Instantly at {client.base_url} ({exc}); check INSTANTLY_API_BASE "
            "and your network, then run the check again",
            retryable=True,
        ) from exc
    except InstantlyError as exc:
        return None, SectionError(
            message=f"cannot read {section}: {exc}",
            fix=(
                "Run the check again; if it keeps failing, check INSTANTLY_API_BASE and "
                "Instantly's status page."
            ),
        )


def _workspace_name(client: InstantlyClient) -> str | None:
    # Only for the report's header: a key without workspaces:read still gets a full check.
    try:
        return client.get_current_workspace().name
    except (AuthenticationError, PaymentRequiredError):
        raise
    except InstantlyError:
        return None


def _keys(client: InstantlyClient) -> tuple[ApiKeyInfo, ...]:
    return tuple(
        ApiKeyInfo(id=k.id, name=k.name, scopes=tuple(k.scopes), created=_utc(k.timestamp_created))
        for k in client.list_api_keys()
    )


def _webhooks(client: InstantlyClient) -> tuple[WebhookInfo, ...]:
    return tuple(
        WebhookInfo(
            id=w.id,
            target_url=w.target_hook_url,
            name=w.name,
            event_type=w.event_type,
            # Names only: the values are the webhook's shared secret. Whether this key could
            # read a value is kept (webhooks.header-readable), never the value.
            header_names=None if w.headers is None else tuple(sorted(w.headers)),
            status=w.status,
            error_since=_utc(w.timestamp_error),
            readable_headers=tuple(
                sorted(n for n, v in (w.headers or {}).items() if header_readable(v))
            ),
        )
        for w in client.list_webhooks()
    )


_MASK = re.compile(r"[*\u2022\u25cf\u2026]{3,}|\.{3,}")


def header_readable(value: object) -> bool:
    """Whether a header value from `GET /webhooks` is the value itself, not a mask.

    Instantly does not document whether it masks header values (FACTS.md). A masked value is
    read as empty, or as holding a run of mask characters (`abcd********`, `••••`, `...`); a
    generated secret (hex, base64url) holds none, so anything else is taken as readable.
    """
    return isinstance(value, str) and bool(value.strip()) and _MASK.search(value) is None


def _members(client: InstantlyClient) -> tuple[MemberInfo, ...]:
    return tuple(
        MemberInfo(
            id=m.id,
            email=m.email or m.user_email or "",
            role=m.role,
            accepted=m.accepted,
            created=_utc(m.timestamp_created),
        )
        for m in client.list_workspace_members()
    )


def _block_list(client: InstantlyClient) -> tuple[BlockEntryInfo, ...]:
    return tuple(
        BlockEntryInfo(value=e.bl_value, is_domain=e.is_domain)
        for e in client.list_block_list_entries()
    )


def _audit(client: InstantlyClient, since: datetime) -> tuple[AuditEvent, ...]:
    events: dict[str, AuditEvent] = {}
    for activity_type in AUDIT_TYPES:
        for entry in client.iter_audit_logs(start_date=since.date(), activity_type=activity_type):
            # The filter is the API's; keep only what we asked for, in case it is ignored.
            if int(entry.activity_type) not in AUDIT_TYPES:
                continue
            events[entry.id] = AuditEvent(
                id=entry.id,
                timestamp=_utc(entry.timestamp) or since,
                activity_type=int(entry.activity_type),
                # Null for system events: then an acting key id is what says "through the API".
                from_api=(
                    entry.from_api if entry.from_api is not None else entry.api_key_id is not None
                ),
                api_key_id=entry.api_key_id,
                user_id=entry.user_id,
                user_name=entry.user_name,
                ip_address=entry.ip_address,
                metadata=MappingProxyType(dict(entry.audit_metadata or {})),
            )
    return tuple(sorted(events.values(), key=lambda e: (e.timestamp, e.id)))


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
