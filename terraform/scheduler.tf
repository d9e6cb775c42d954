# Cloud Scheduler delivers at least once; both targets are idempotent (the exporter dedupes on
# X-CloudScheduler-JobName + X-CloudScheduler-ScheduleTime and a compare-and-swap checkpoint, the
# sweep only finishes revocations that are due).

resource "google_cloud_scheduler_job" "audit_export" {
  name             = "${var.name_prefix}-audit-export"
  region           = var.region
  description      = "Runs ${local.function_names.audit_export}: ships new Instantly audit entries to Cloud Logging."
  schedule         = var.audit_export.schedule
  time_zone        = var.audit_export.time_zone
  attempt_deadline = "${var.audit_export.timeout_seconds + 30}s"

  # A failed run is retried a couple of times; the next scheduled run resumes from the
  # checkpoint anyway.
  retry_config {
    retry_count          = 2
    min_backoff_duration = "30s"
    max_backoff_duration = "300s"
  }

  http_target {
    uri         = google_cloudfunctions2_function.audit_export.service_config[0].uri
    http_method = "POST"
    headers = {
      "Content-Type" = "application/json"
    }
    body = base64encode("{}")

    # Authenticated call: a Google-signed ID token for the scheduler account, which holds
    # run.invoker on this function's service and on nothing else.
    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = google_cloudfunctions2_function.audit_export.service_config[0].uri
    }
  }

  depends_on = [google_cloud_run_v2_service_iam_member.audit_export_invoker]
}

# The sweep finishes revocations whose grace period has passed. It goes through the rotation
# topic, so it is retried and dead-lettered like every other rotation event. Published by Cloud
# Scheduler's own service agent, which holds roles/cloudscheduler.serviceAgent (Pub/Sub publish
# included) from the moment the API is enabled.
resource "google_cloud_scheduler_job" "rotation_sweep" {
  name        = "${var.name_prefix}-rotation-sweep"
  region      = var.region
  description = "Asks ${local.function_names.key_rotation} to revoke old keys whose grace period is over."
  schedule    = var.rotation.sweep_schedule
  time_zone   = var.rotation.time_zone

  pubsub_target {
    topic_name = google_pubsub_topic.rotation.id
    # Either marker is enough for instantly_guard.rotation.events; both are sent.
    data = base64encode(jsonencode({ action = "sweep" }))
    attributes = {
      instantlyGuard = "sweep"
    }
  }

  depends_on = [google_pubsub_subscription.rotation_push]
}
