"""Audit-log export: Instantly's audit trail into Cloud Logging, no gaps, no duplicates.

Modules: `exporter` (one run: day windows, checkpoint, time budget), `readahead` (fetch the next
window while writing), `windows` (an ascending backfill listed as concurrent day windows),
`entries` (audit record -> log entry, truncation), `severity` (activity type -> name and
severity), `batching` (1,000 entries / ~9 MB writes), `checkpoint/` (the
compare-and-swap stores: gcs, local, memory), `sinks/` (gcp Cloud Logging, local JSONL),
`settings` (AUDIT_* variables), `service` (building from configuration, HTTP status mapping).
See docs/audit-export.md.
"""
