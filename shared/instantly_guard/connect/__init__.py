"""Connecting Instantly's webhooks to a deployed receiver (`instantly-guard webhooks connect`).

See `instantly_guard.connect.webhooks` for the order of the steps and why it leaves no window
in which Instantly delivers with a header the receiver refuses.
"""

from instantly_guard.connect.webhooks import (
    Connected,
    ConnectReport,
    NewWebhook,
    connect_webhooks,
)

__all__ = ["ConnectReport", "Connected", "NewWebhook", "connect_webhooks"]
