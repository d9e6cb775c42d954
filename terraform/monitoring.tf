# Log-based metrics and the alerts on them. Log-based metrics count entries as the Log Router
# receives them, whichever bucket the entries are then routed to.
#
# Two kinds of alert: security findings (the detection rule base, evaluated by the export on every
# batch it writes, one finding per incident in log `instantly-guard-findings`), and pipeline health
# (the export stopped, lags, or fails; a managed secret stopped rotating; the receiver refuses or
# cannot publish; rotations dead-lettered). Each policy's documentation is its runbook entry, the
# same as the README's Operations section. The reconciler's alerts are in reconcile.tf.

locals {
  rotation_log_filter     = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.function_names.key_rotation}\""
  audit_export_log_filter = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.function_names.audit_export}\" AND jsonPayload.logger=\"instantly_guard.audit\""
  findings_log_filter     = "logName=\"projects/${var.project_id}/logs/${urlencode(var.detections.findings_log)}\""
  # Cloud Run's request log of the receiver: every answer, whoever produced it (our handler, a
  # cold start that failed, the platform).
  webhook_requests_filter = "logName=\"projects/${var.project_id}/logs/run.googleapis.com%2Frequests\" AND resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.function_names.webhook}\""
  # A successful run's summary line (stopped complete, or at its time budget with more to do).
  audit_export_success_filter = "${local.audit_export_log_filter} AND severity<WARNING AND (jsonPayload.stopped_reason=\"complete\" OR jsonPayload.stopped_reason=\"time_budget\")"

  # Findings -> alert policy severity (Cloud Monitoring knows CRITICAL, ERROR, WARNING).
  finding_policy_severity = { critical = "CRITICAL", high = "ERROR", medium = "WARNING", low = "WARNING", info = "WARNING" }

  alert_strategy_auto_close = "604800s"
  runbook                   = "Runbook: README, Operations"
}

# --- Security findings ----------------------------------------------------------------------------

# One count per finding: the rule base writes each incident once (a stable insertId besides).
resource "google_logging_metric" "findings" {
  name        = "${var.name_prefix}/findings"
  description = "Findings of the detection rules (log ${var.detections.findings_log}), by severity and rule."
  filter      = local.findings_log_filter

  label_extractors = {
    severity = "EXTRACT(labels.severity)"
    rule     = "EXTRACT(labels.rule)"
  }

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"

    labels {
      key         = "severity"
      value_type  = "STRING"
      description = "critical, high, medium, low or info"
    }

    labels {
      key         = "rule"
      value_type  = "STRING"
      description = "The rule id, e.g. audit.mfa-failures"
    }
  }

  depends_on = [time_sleep.services_enabled]
}

# --- Pipeline health ------------------------------------------------------------------------------

# Successful export runs: their absence is the alert (a revoked key, a paused Scheduler job, a
# function that no longer deploys all look the same from here: nothing arrives).
resource "google_logging_metric" "audit_export_runs" {
  name        = "${var.name_prefix}/audit_export_runs"
  description = "Successful runs of ${local.function_names.audit_export}."
  filter      = local.audit_export_success_filter

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
  }

  depends_on = [time_sleep.services_enabled]
}

# Export lag: each successful run logs `lag_seconds`, the age of the newest exported entry.
resource "google_logging_metric" "audit_export_lag" {
  name            = "${var.name_prefix}/audit_export_lag"
  description     = "Age of the newest exported audit entry at the end of each run."
  filter          = "${local.audit_export_success_filter} AND jsonPayload.lag_seconds>=0"
  value_extractor = "EXTRACT(jsonPayload.lag_seconds)"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "s"
  }

  bucket_options {
    exponential_buckets {
      num_finite_buckets = 16
      growth_factor      = 2
      scale              = 60
    }
  }

  depends_on = [time_sleep.services_enabled]
}

# Permanent export failures (a key without audit_logs:read, revoked or invalid; no paid plan; a
# sink refusing for good) and defects of the detections: everything the exporter logs at ERROR.
resource "google_logging_metric" "audit_export_failures" {
  name        = "${var.name_prefix}/audit_export_failures"
  description = "Errors logged by ${local.function_names.audit_export}."
  filter      = "${local.audit_export_log_filter} AND severity>=ERROR"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
  }

  depends_on = [time_sleep.services_enabled]
}

# Each sweep logs every managed secret's time since its last rotation.
resource "google_logging_metric" "rotation_age" {
  name            = "${var.name_prefix}/rotation_age"
  description     = "Time since each managed secret last rotated, logged by every sweep."
  filter          = "${local.rotation_log_filter} AND jsonPayload.message=\"rotation age\" AND jsonPayload.rotation_age_seconds>=0"
  value_extractor = "EXTRACT(jsonPayload.rotation_age_seconds)"

  label_extractors = {
    secret = "EXTRACT(jsonPayload.secret)" # pragma: allowlist secret
  }

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "s"

    labels {
      key         = "secret"
      value_type  = "STRING"
      description = "The managed secret"
    }
  }

  bucket_options {
    exponential_buckets {
      num_finite_buckets = 24
      growth_factor      = 2
      scale              = 60
    }
  }

  depends_on = [time_sleep.services_enabled]
}

# The receiver's 401s (a secret out of step with the webhook's header, or someone probing) and
# 503s (it cannot publish to Pub/Sub, or cannot start).
resource "google_logging_metric" "webhook_refusals" {
  name        = "${var.name_prefix}/webhook_refusals"
  description = "401 and 503 answers of ${local.function_names.webhook}, by status."
  filter      = "${local.webhook_requests_filter} AND (httpRequest.status=401 OR httpRequest.status=503)"

  label_extractors = {
    status = "EXTRACT(httpRequest.status)"
  }

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"

    labels {
      key         = "status"
      value_type  = "STRING"
      description = "401 or 503"
    }
  }

  depends_on = [time_sleep.services_enabled]
}

# Rotation errors: anything the rotation function logs at ERROR or above (a failed step, a key
# that did not test, a store that failed). Every failed attempt counts, retries included.
resource "google_logging_metric" "rotation_failures" {
  name        = "${var.name_prefix}/rotation_failures"
  description = "Errors logged by ${local.function_names.key_rotation}."
  filter      = "${local.rotation_log_filter} AND severity>=ERROR"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
  }

  depends_on = [time_sleep.services_enabled]
}

# Cloud Monitoring may not find a log-based metric created moments ago: an alert policy filtering
# on it fails with "Cannot find metric(s) that match type" for up to about ten minutes (the google
# provider's known issue). The alert policies wait this long after the metrics are created; the
# wait overlaps the function builds, and runs again only when a metric is re-created.
resource "time_sleep" "log_metrics" {
  create_duration = var.apply_waits.log_metrics

  triggers = {
    findings              = google_logging_metric.findings.id
    audit_export_runs     = google_logging_metric.audit_export_runs.id
    audit_export_lag      = google_logging_metric.audit_export_lag.id
    audit_export_failures = google_logging_metric.audit_export_failures.id
    rotation_age          = google_logging_metric.rotation_age.id
    webhook_refusals      = google_logging_metric.webhook_refusals.id
    rotation_failures     = google_logging_metric.rotation_failures.id
  }
}

# One policy per finding severity that pages (var.alerts.finding_severities), one incident per rule.
resource "google_monitoring_alert_policy" "findings" {
  for_each = toset(var.alerts.finding_severities)

  display_name          = "instantly-guard: ${each.value} security finding"
  combiner              = "OR"
  severity              = local.finding_policy_severity[each.value]
  notification_channels = var.notification_channels

  conditions {
    display_name = "A detection rule found a ${each.value} incident"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.findings.name}\" AND metric.label.severity=\"${each.value}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.rule"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "instantly-guard: ${each.value} finding ($${metric.label.rule})"
    content   = "Detection rule `$${metric.label.rule}` found a ${each.value}-severity incident in Instantly's audit trail. Each finding is one entry of log `${var.detections.findings_log}` (bucket `${google_logging_project_bucket_config.audit.bucket_id}`): its message, the audit entry ids it rests on, the ATT&CK technique and the fix. Read them with `gcloud logging read 'logName=\"projects/${var.project_id}/logs/${var.detections.findings_log}\" AND labels.rule=\"$${metric.label.rule}\"'`, then follow the finding's fix. A rotation's own key changes never make a finding (their audit entries carry label managed_rotation=true). ${local.runbook}, \"a security finding\"."
  }

  depends_on = [time_sleep.log_metrics]
}

resource "google_monitoring_alert_policy" "audit_export_stalled" {
  display_name          = "instantly-guard: audit export stopped"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "No successful export run"
    condition_absent {
      filter   = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.audit_export_runs.name}\" AND resource.type=\"cloud_run_revision\""
      duration = var.alerts.export_absent_after

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = local.alert_strategy_auto_close
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "instantly-guard: the audit export has not succeeded for ${var.alerts.export_absent_after}"
    content   = "No run of `${local.function_names.audit_export}` succeeded for ${var.alerts.export_absent_after}: Instantly's audit trail is not being collected and no detection runs. Check, in order: the Scheduler job `${google_cloud_scheduler_job.audit_export.name}` (paused? failing to invoke?), the function's logs (`audit export failed: ...` says what to do: a revoked or unscoped key, no paid plan, a sink refusing), and its deployment. The checkpoint keeps everything: once fixed, the next run catches up. ${local.runbook}, \"the audit export stopped\"."
  }

  depends_on = [time_sleep.log_metrics]
}

resource "google_monitoring_alert_policy" "audit_export_lag" {
  display_name          = "instantly-guard: audit export lagging"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels

  conditions {
    display_name = "Newest exported entry older than the threshold"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.audit_export_lag.name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alerts.export_lag_seconds
      duration        = "0s"

      aggregations {
        alignment_period   = "900s"
        per_series_aligner = "ALIGN_PERCENTILE_99"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = local.alert_strategy_auto_close
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "instantly-guard: the exported audit log is behind Instantly"
    content   = "Runs succeed but the newest exported entry is more than ${var.alerts.export_lag_seconds}s old: runs stop at their time budget before catching up (a large backlog, Instantly rate limits), or the workspace is quiet (no new entries: nothing to fix; raise alerts.export_lag_seconds above the quiet periods). Check `jsonPayload.stopped_reason` and `lag_seconds` of the runs' summary lines; raise audit_export.rate_share or the timeout if runs keep stopping at `time_budget`. ${local.runbook}, \"the audit export lags\"."
  }

  depends_on = [time_sleep.log_metrics]
}

resource "google_monitoring_alert_policy" "audit_export_failing" {
  display_name          = "instantly-guard: audit export failing"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "Export errors logged"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.audit_export_failures.name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = local.alert_strategy_auto_close
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "instantly-guard: the audit export fails"
    content   = "`${local.function_names.audit_export}` logged an error: a failure retrying cannot fix (the key lacks audit_logs:read, was revoked or is invalid; no paid plan; a sink or store refusing for good) or a detection defect. The log line says what to do. ${local.runbook}, \"the audit export stopped\"."
  }

  depends_on = [time_sleep.log_metrics]
}

resource "google_monitoring_alert_policy" "rotation_overdue" {
  display_name          = "instantly-guard: managed secret rotation overdue"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "A managed secret has not rotated in time"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.rotation_age.name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alerts.rotation_overdue_days * 86400
      duration        = "0s"

      aggregations {
        alignment_period   = "3600s"
        per_series_aligner = "ALIGN_PERCENTILE_99"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = local.alert_strategy_auto_close
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "instantly-guard: a managed secret has not rotated for ${var.alerts.rotation_overdue_days} days ($${metric.label.secret})"
    content   = "Secret `$${metric.label.secret}` last rotated more than ${var.alerts.rotation_overdue_days} days ago: Secret Manager no longer publishes SECRET_ROTATE to topic `${google_pubsub_topic.rotation.name}` for it (rotation settings or the topic's publisher grant changed), or every rotation fails (see the rotation alert). Rotate it now with `instantly-guard secrets rotate`, then check the secret's `rotation` settings and the topic. ${local.runbook}, \"a rotation is overdue\"."
  }

  depends_on = [time_sleep.log_metrics]
}

resource "google_monitoring_alert_policy" "webhook_unauthorized" {
  display_name          = "instantly-guard: webhook receiver refusing deliveries (401)"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels

  conditions {
    display_name = "Burst of 401 answers"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.webhook_refusals.name}\" AND resource.type=\"cloud_run_revision\" AND metric.label.status=\"401\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alerts.webhook_401_per_5m
      duration        = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = local.alert_strategy_auto_close
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "instantly-guard: the webhook receiver answers 401 to many deliveries"
    content   = "More than ${var.alerts.webhook_401_per_5m} deliveries in 5 minutes were refused with 401 by `${local.function_names.webhook}`. Either the webhook's header secret is out of step with the receiver's (a rotation half done, a webhook edited by hand: run `instantly-guard verify`, rotate the webhook secret), or someone is probing the URL (check `jsonPayload.reason` and `client` of the receiver's `webhook unauthorized` lines). Instantly retries and then disables the webhook; the reconciler republishes missed events once deliveries work. ${local.runbook}, \"the receiver refuses deliveries\"."
  }

  depends_on = [time_sleep.log_metrics]
}

resource "google_monitoring_alert_policy" "webhook_unavailable" {
  display_name          = "instantly-guard: webhook receiver unavailable (503)"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "503 answers"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.webhook_refusals.name}\" AND resource.type=\"cloud_run_revision\" AND metric.label.status=\"503\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alerts.webhook_503_per_5m
      duration        = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = local.alert_strategy_auto_close
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "instantly-guard: the webhook receiver answers 503"
    content   = "`${local.function_names.webhook}` answered 503 more than ${var.alerts.webhook_503_per_5m} times in 5 minutes: it could not publish to `${google_pubsub_topic.webhook_events.name}` (Pub/Sub unavailable, the publisher grant removed) or cannot start (its secret unreadable, a bad setting: the log says which). Nothing was lost yet: Instantly retries, and the reconciler republishes what it gives up on. ${local.runbook}, \"the receiver refuses deliveries\"."
  }

  depends_on = [time_sleep.log_metrics]
}

resource "google_monitoring_alert_policy" "rotation_failures" {
  display_name          = "instantly-guard: key rotation failing"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "Rotation function logged errors"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.rotation_failures.name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  # A rotation that exhausted its retries sits on the dead-letter subscription: the secret still
  # works (the protocol never leaves `current` broken) but it did not rotate.
  conditions {
    display_name = "Rotation events dead-lettered"
    condition_threshold {
      filter          = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${google_pubsub_subscription.rotation_dead_letter.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = local.alert_strategy_auto_close
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "instantly-guard: a key rotation is failing"
    content   = "The rotation function logs errors or has dead-lettered events (subscription `${google_pubsub_subscription.rotation_dead_letter.name}`). Current keys keep working; rotation is stalled. Runbook: README, Operations, \"a rotation failed\"."
  }

  depends_on = [time_sleep.log_metrics]
}
