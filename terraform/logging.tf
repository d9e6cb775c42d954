# The exported Instantly audit trail gets its own log bucket, with the retention the security team
# chose, instead of the _Default bucket's 30 days.

resource "google_logging_project_bucket_config" "audit" {
  project        = var.project_id
  location       = var.log_bucket_location
  bucket_id      = "${var.name_prefix}-audit"
  description    = "Instantly audit log exported by instantly-guard (${var.audit_export.log_name})."
  retention_days = var.audit_log_retention_days
  locked         = var.audit_log_bucket_locked

  depends_on = [time_sleep.services_enabled]
}

# Routes the audit log into that bucket. The destination is a log bucket in the sink's own project,
# so the sink has no writer identity and needs no grant: Cloud Logging documents that such sinks
# "do not have a writer_identity and no additional permissions are required" (a grant to an empty
# member would fail).
resource "google_logging_project_sink" "audit" {
  #checkov:skip=CKV2_GCP_4:The destination is a Cloud Logging bucket, not a Cloud Storage bucket. Its retention can be locked with var.audit_log_bucket_locked; it is off by default because a lock is irreversible.
  name        = "${var.name_prefix}-audit-log"
  description = "Instantly audit entries and findings written by ${local.function_names.audit_export}."
  destination = "logging.googleapis.com/${google_logging_project_bucket_config.audit.id}"
  # The trail, its digest chain (the seals the exporter writes after each batch, to a log of
  # their own: instantly_guard/audit/integrity.py) and the findings of the detection rules share
  # the bucket, its retention and its lock, and are queried together.
  filter = join(" OR ", [
    for log in [var.audit_export.log_name, "${var.audit_export.log_name}-chain", var.detections.findings_log] :
    "logName=\"projects/${var.project_id}/logs/${urlencode(log)}\""
  ])

  unique_writer_identity = true
}

# Keep the trail out of the _Default bucket: without this, the _Default sink (which takes every
# log not excluded) stores a second copy there, outside the audit bucket's retention and lock,
# where anyone with the project's ordinary log access reads it. A project-level exclusion applies
# to the _Default sink only; our sink above still routes the entries to the audit bucket.
resource "google_logging_project_exclusion" "audit_from_default" {
  name        = "${var.name_prefix}-audit-log-not-in-default"
  description = "Instantly audit entries go to ${google_logging_project_bucket_config.audit.bucket_id} only, not to _Default."
  filter      = google_logging_project_sink.audit.filter
}
