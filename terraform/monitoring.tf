# Log-based metrics and the alerts on them. Log-based metrics count entries as the Log Router
# receives them, whichever bucket the entries are then routed to.

locals {
  audit_log_filter    = "logName=\"projects/${var.project_id}/logs/${urlencode(var.audit_export.log_name)}\""
  rotation_log_filter = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.function_names.key_rotation}\""

  alert_strategy_auto_close = "604800s"
}

# High-severity Instantly activity (the alert accepts the monitored-resource types the exporter may
# write its entries under): API keys created or deleted, webhooks disabled, TOTP
# disabled, repeated MFA failures, lead exports (the exporter's severity mapping, issue 4).
resource "google_logging_metric" "audit_high_severity" {
  name        = "${var.name_prefix}/audit_high_severity"
  description = "Instantly audit entries at or above ${var.alert_min_severity}."
  filter      = "${local.audit_log_filter} AND severity>=${var.alert_min_severity}"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
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
    audit_high_severity = google_logging_metric.audit_high_severity.id
    rotation_failures   = google_logging_metric.rotation_failures.id
  }
}

resource "google_monitoring_alert_policy" "audit_high_severity" {
  display_name          = "instantly-guard: high-severity Instantly audit event"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels

  conditions {
    display_name = "High-severity audit entries exported"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.audit_high_severity.name}\" AND resource.type=one_of(\"global\", \"cloud_run_revision\", \"generic_task\")"
      comparison      = "COMPARISON_GT"
      threshold_value = 0
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
    subject   = "Instantly: high-severity audit activity"
    content   = "Instantly's audit log shows activity at or above ${var.alert_min_severity} (API keys created or deleted, a webhook disabled, TOTP disabled, repeated MFA failures, lead exports). Query log `${var.audit_export.log_name}` in bucket `${google_logging_project_bucket_config.audit.bucket_id}`. Runbook: README, Operations."
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
