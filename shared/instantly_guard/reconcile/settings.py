"""Configuration of the reconciliation, read once at cold start from an environment mapping.

Besides `CommonSettings` (GUARD_BACKEND, GUARD_STATE_DIR, INSTANTLY_API_BASE, GOOGLE_CLOUD_PROJECT,
LOG_LEVEL, INSTANTLY_RATE_PER_SECOND / _PER_MINUTE):

    RECONCILE_WEBHOOK_SECRET     the managed webhook secret, `projects/P/secrets/S` or `S`: the
                                 webhook ids `webhooks connect` recorded on it (annotation
                                 `instantly-guard.webhook-ids`) are ours, read again at every run
                                 (metadata only, never its value)
    RECONCILE_WEBHOOK_IDS        more webhook ids that are ours, comma-separated (added to the
                                 secret's). One of the two is required: only our webhooks'
                                 targets are read, only what they subscribe to is republished,
                                 only they are resumed
    RECONCILE_WEBHOOK_URLS       optional: read only those of our webhooks' target URLs (exact)
    RECONCILE_API_KEY_SECRET     secret holding the reconciler's Instantly key (alias `current`),
                                 `projects/P/secrets/S` or `S`; or INSTANTLY_API_KEY[_FILE]
    WEBHOOK_PUBSUB_TOPIC         the receiver's topic (required with gcp), `projects/P/topics/T`
                                 or `T`; PUBSUB_EMULATOR_HOST for a stand-in. With
                                 GUARD_BACKEND=local events go to the receiver's outbox
    RECONCILE_CHECKPOINT_BUCKET  Cloud Storage bucket of the checkpoint (required with gcp)
    RECONCILE_CHECKPOINT_OBJECT  its object (default instantly-reconcile/checkpoint.json)
    RECONCILE_LOOKBACK           how far back the first run reads (default 3d)
    RECONCILE_RETRY_GRACE        how long a failure Instantly will retry is left to Instantly
                                 (default 1h, at most 1d)
    RECONCILE_TIME_BUDGET        a run stops between pages after this long (default 240s; keep it
                                 a minute below the function's timeout); the next run goes on
    RECONCILE_MAX_BODY_BYTES     the receiver's body limit (WEBHOOK_MAX_BODY_BYTES, default
                                 262144): a missed payload over it is refused, not republished
    RECONCILE_DAY_MARGIN         days read before the checkpoint's day (default 1): the API's
                                 `from` day boundary is undocumented
    RECONCILE_RESUME             resume our webhooks Instantly disabled, once the receiver
                                 answers the probe (default false; needs `webhooks:update`)
    STORAGE_EMULATOR_HOST        http://host:port of a Cloud Storage stand-in (tests)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from instantly_guard.audit.settings import KeySource
from instantly_guard.audit.settings import _key_source as key_source
from instantly_guard.secrets.factory import parse_secret_reference
from instantly_guard.settings import Backend, CommonSettings, Reader
from instantly_guard.webhook.settings import DEFAULT_MAX_BODY, MAX_BODY_LIMIT
from instantly_guard.webhook.settings import _topic as read_topic

REQUIRED_SCOPE = "webhook_events:read"
RESUME_SCOPE = "webhooks:update"


@dataclass(frozen=True, slots=True)
class SecretRef:
    """A secret by name, in `project` (None: the settings' project)."""

    name: str
    project: str | None


@dataclass(frozen=True, slots=True)
class ReconcileSettings:
    common: CommonSettings
    webhook_ids: tuple[str, ...]
    webhook_secret: SecretRef | None
    webhook_urls: tuple[str, ...]
    key: KeySource
    topic: str | None
    pubsub_emulator_host: str | None
    checkpoint_bucket: str | None
    checkpoint_object: str
    lookback: timedelta
    retry_grace: timedelta
    day_margin: int
    resume: bool
    time_budget: timedelta
    max_body_bytes: int
    storage_emulator_host: str | None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ReconcileSettings:
        reader = Reader(env)
        common = CommonSettings.read(reader)
        gcp = common.backend is Backend.GCP
        ids = reader.csv("RECONCILE_WEBHOOK_IDS")
        secret = _webhook_secret(reader, common)
        if not ids and not reader.text("RECONCILE_WEBHOOK_SECRET"):
            reader.problems.append(
                "RECONCILE_WEBHOOK_SECRET (the managed webhook secret, whose webhook list "
                "`webhooks connect` keeps) or RECONCILE_WEBHOOK_IDS is required: only the "
                "deliveries of our webhooks are republished"
            )
        urls = reader.csv("RECONCILE_WEBHOOK_URLS")
        for url in urls:
            if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
                reader.problems.append(f"RECONCILE_WEBHOOK_URLS: {url!r} is not an http(s) URL")
        bucket = reader.text("RECONCILE_CHECKPOINT_BUCKET")
        if gcp and not bucket:
            reader.problems.append("RECONCILE_CHECKPOINT_BUCKET is required with GUARD_BACKEND=gcp")
        grace = reader.duration("RECONCILE_RETRY_GRACE", timedelta(hours=1))
        if not timedelta(0) <= grace <= timedelta(days=1):
            reader.problems.append("RECONCILE_RETRY_GRACE must be between 0s and 1d")
        budget = reader.duration("RECONCILE_TIME_BUDGET", timedelta(seconds=240))
        if not timedelta(0) < budget <= timedelta(seconds=3600):
            reader.problems.append("RECONCILE_TIME_BUDGET must be between 1s and 3600s")
        lookback = reader.duration("RECONCILE_LOOKBACK", timedelta(days=3))
        if lookback <= timedelta(0):
            reader.problems.append("RECONCILE_LOOKBACK must be positive")
        settings = cls(
            common=common,
            webhook_ids=ids,
            webhook_secret=secret,
            webhook_urls=urls,
            key=key_source(reader, common, "RECONCILE_API_KEY_SECRET"),
            topic=read_topic(reader, common.project) if gcp else None,
            pubsub_emulator_host=reader.text("PUBSUB_EMULATOR_HOST"),
            checkpoint_bucket=bucket,
            checkpoint_object=reader.text(
                "RECONCILE_CHECKPOINT_OBJECT", "instantly-reconcile/checkpoint.json"
            )
            or "instantly-reconcile/checkpoint.json",
            lookback=lookback,
            retry_grace=grace,
            day_margin=reader.integer("RECONCILE_DAY_MARGIN", 1, minimum=0, maximum=7),
            resume=reader.flag("RECONCILE_RESUME", False),
            time_budget=budget,
            max_body_bytes=reader.integer(
                "RECONCILE_MAX_BODY_BYTES", DEFAULT_MAX_BODY, minimum=1024, maximum=MAX_BODY_LIMIT
            ),
            storage_emulator_host=reader.text("STORAGE_EMULATOR_HOST"),
        )
        reader.finish()
        return settings


def _webhook_secret(reader: Reader, common: CommonSettings) -> SecretRef | None:
    text = reader.text("RECONCILE_WEBHOOK_SECRET")
    if not text:
        return None
    reference = parse_secret_reference(text)
    if reference is None:
        reader.problems.append(
            f"RECONCILE_WEBHOOK_SECRET must be projects/PROJECT/secrets/NAME or NAME, not {text!r}"
        )
        return None
    return SecretRef(reference[0], reference[1] or common.project)
