"""A local stand-in for Instantly API v2, for tests and the local stack. Never bundled.

`Sandbox` serves a seeded workspace over real HTTP on loopback; see its module for the controls.
"""

from instantly_sandbox.delivery import DeliveryError, build_event_payload
from instantly_sandbox.delivery_log import DeliveryLogOptions
from instantly_sandbox.faults import Fault, FaultMode, Faults
from instantly_sandbox.recorder import RecordedResponse, ResponseLog
from instantly_sandbox.sandbox import Sandbox
from instantly_sandbox.seed import SeededKey

__all__ = [
    "DeliveryError",
    "DeliveryLogOptions",
    "Fault",
    "FaultMode",
    "Faults",
    "RecordedResponse",
    "ResponseLog",
    "Sandbox",
    "SeededKey",
    "build_event_payload",
]
