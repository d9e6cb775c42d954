"""Publisher port: hand an accepted event to durable storage before answering 2xx.

`base.Publisher` is the port. Backends sit side by side and are imported only when chosen:
`gcp.PubSubPublisher` (google-cloud-pubsub), `local.OutboxPublisher` (fsync'd files under
GUARD_STATE_DIR) and `noop.NoopPublisher` (drops everything; benchmarks only).
"""

from instantly_guard.publish.base import Publisher, PublishError

__all__ = ["PublishError", "Publisher"]
