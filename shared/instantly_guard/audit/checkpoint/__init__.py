"""Checkpoint stores for the audit export: `gcs` (Cloud Storage), `local` (a file), `memory`."""

from instantly_guard.audit.checkpoint.base import Checkpoint, CheckpointStore, RunRecord
from instantly_guard.audit.checkpoint.local import LocalCheckpointStore
from instantly_guard.audit.checkpoint.memory import MemoryCheckpointStore

__all__ = [
    "Checkpoint",
    "CheckpointStore",
    "LocalCheckpointStore",
    "MemoryCheckpointStore",
    "RunRecord",
]
