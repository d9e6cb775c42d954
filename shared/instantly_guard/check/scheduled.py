"""The posture check on a schedule: the audit export runs it and logs each finding as a warning.

Enabled on the audit export function by environment (read once per instance):

    AUDIT_RUN_CHECK          true to run the check after an export (default false)
    AUDIT_CHECK_KEY_SECRET   secret holding the check's read-only key (profile posture_check),
                             read at alias `current`: Secret Manager `NAME` or
                             `projects/P/secrets/NAME` with GUARD_BACKEND=gcp, the local store
                             otherwise. Without it, INSTANTLY_API_KEY(_FILE) is used.
    AUDIT_CHECK_POLICY       path of a TOML policy file (default: the built-in defaults)
    AUDIT_CHECK_INTERVAL     at most one check per instance per interval (default 1h): the
                             export runs every few minutes, the workspace changes more slowly

Each failed or skipped finding becomes one WARNING record (`log_findings`): filter on
`jsonPayload.check_rule` / `check_severity` for metrics and alerts. A failure of the check itself
is logged and never changes the export's answer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from instantly_guard.check.engine import log_findings, run_check
from instantly_guard.check.managed import ManagedKeys, read_managed_keys
from instantly_guard.check.policy import Policy
from instantly_guard.check.report.table import summary
from instantly_guard.errors import ConfigError, GuardError
from instantly_guard.instantly import InstantlyClient, KeyProvider, RateLimiter, StaticKey
from instantly_guard.lazy import BuildFailedError, Lazy
from instantly_guard.secrets.base import SecretStore
from instantly_guard.secrets.factory import open_store, parse_secret_reference
from instantly_guard.settings import CommonSettings, Reader

_log = logging.getLogger("instantly_guard.check")


@dataclass(frozen=True, slots=True)
class ScheduledCheckSettings:
    enabled: bool
    common: CommonSettings
    key_secret: str | None
    key_project: str | None
    policy_path: Path | None
    interval: timedelta

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ScheduledCheckSettings:
        reader = Reader(env)
        common = CommonSettings.read(reader)
        enabled = reader.flag("AUDIT_RUN_CHECK", False)
        resource = reader.text("AUDIT_CHECK_KEY_SECRET")
        name = project = None
        if resource:
            reference = parse_secret_reference(resource)
            if reference is None:
                reader.problems.append(
                    "AUDIT_CHECK_KEY_SECRET must be projects/PROJECT/secrets/NAME or NAME"
                )
            else:
                name, project = reference[0], reference[1] or common.project
        policy = reader.text("AUDIT_CHECK_POLICY")
        interval = reader.duration("AUDIT_CHECK_INTERVAL", timedelta(hours=1))
        reader.finish()
        return cls(enabled, common, name, project, Path(policy) if policy else None, interval)


class ScheduledCheck:
    """Runs the check at most once per `interval`, thread-safe, never raising."""

    def __init__(
        self,
        client: InstantlyClient,
        policy: Policy,
        interval: timedelta,
        *,
        logger: logging.Logger = _log,
        clock: Callable[[], float] = time.monotonic,
        store: SecretStore | None = None,
    ) -> None:
        self.client, self.policy, self.interval = client, policy, interval
        self.store = store  # read for the managed secrets' key ids, when there is one
        self._logger, self._clock = logger, clock
        self._lock = threading.Lock()
        self._last: float | None = None

    def maybe_run(self) -> int | None:
        """Run if due; the number of findings logged as warnings, or None when not run."""
        if not self._lock.acquire(blocking=False):
            return None  # another request of this instance is running it
        try:
            now = self._clock()
            if self._last is not None and now - self._last < self.interval.total_seconds():
                return None
            self._last = now
            try:
                report = run_check(self.client, self.policy, managed=self._managed())
            except GuardError as exc:
                self._logger.error(
                    "scheduled posture check failed: %s",
                    exc,
                    extra={"fields": {"check_error": type(exc).__name__}},
                )
                return None
            warned = log_findings(report, self._logger)
            counts = report.counts() | report.rule_counts()
            self._logger.info(
                "scheduled posture check: %s",
                summary(report),
                extra={"fields": {"check_summary": counts}},
            )
            return warned
        finally:
            self._lock.release()

    def _managed(self) -> ManagedKeys | None:
        if self.store is None:
            return None
        try:
            return read_managed_keys(self.store)
        except GuardError as exc:
            # Without them the rule falls back to names and rotation_keys: worth one warning.
            self._logger.warning("posture check: cannot list the managed secrets: %s", exc)
            return None

    def close(self) -> None:
        self.client.close()


def build_scheduled_check(env: Mapping[str, str]) -> ScheduledCheck | None:
    """None when AUDIT_RUN_CHECK is off; raises ConfigError for a bad configuration."""
    settings = ScheduledCheckSettings.from_env(env)
    if not settings.enabled:
        return None
    policy = Policy.load(settings.policy_path)
    common = settings.common
    provider: KeyProvider
    store: SecretStore | None = None
    if settings.key_secret is not None:
        from instantly_guard.secrets.provider import secret_key_provider

        store = open_store(common, project=settings.key_project)
        provider = secret_key_provider(store, settings.key_secret)
    else:
        reader = Reader(env)
        key = reader.secret("INSTANTLY_API_KEY")
        reader.finish()
        if key is None:
            raise ConfigError(
                "AUDIT_RUN_CHECK=true needs AUDIT_CHECK_KEY_SECRET (a read-only posture_check "
                "key) or INSTANTLY_API_KEY"
            )
        provider = StaticKey(key)
    # A small share of the workspace budget: the check makes about ten calls.
    client = InstantlyClient(provider, common.api_base, rate_limiter=RateLimiter(5, 300))
    return ScheduledCheck(client, policy, settings.interval, store=store)


def run_scheduled_check(check: Lazy[ScheduledCheck | None]) -> int | None:
    """Run the instance's check if enabled and due. Never raises: the export's answer must not
    depend on the check. A failed build is logged once by `Lazy` and tried again on a later
    export (the Lazy policy); a failed run is logged here."""
    try:
        instance = check.get()
    except BuildFailedError:
        return None
    try:
        return instance.maybe_run() if instance is not None else None
    except Exception as exc:
        _log.error("scheduled posture check failed: %s", type(exc).__name__)
        return None
