# Reconciliation (docs/reconcile.md): a scheduled function that reads Instantly's delivery log
# (GET /webhook-events) for our webhooks and publishes the events Instantly failed to deliver to
# the webhook events topic, with the receiver's event id; optionally it resumes a webhook
# Instantly disabled. Everything it needs sits in this file: identity, grants, function,
# schedule, alerts, variables and outputs. Its name and entry point are in main.tf's locals with
# the other functions (the bundles and the build follow from them).

variable "reconcile" {
  description = "Reconciliation of missed webhook deliveries: cron schedule and time zone, which managed key it uses (webhook_events:read; plus webhooks:update when resume is on), whether it resumes webhooks Instantly disabled, the receiver URLs Instantly delivers to (default: the receiver function's URL), first-run look-back and retry grace, the alert threshold (runs finding missing events per hour) and the function timeout (seconds)."
  type = object({
    schedule          = optional(string, "*/10 * * * *")
    time_zone         = optional(string, "Etc/UTC")
    api_key           = optional(string, "webhook-reconciler")
    resume            = optional(bool, false)
    webhook_urls      = optional(list(string), [])
    lookback          = optional(string, "3d")
    retry_grace       = optional(string, "1h")
    alert_runs        = optional(number, 2)
    timeout_seconds   = optional(number, 300)
    checkpoint_object = optional(string, "reconcile/checkpoint.json")
  })
  default = {}

  validation {
    condition     = length(split(" ", trimspace(var.reconcile.schedule))) == 5
    error_message = "reconcile.schedule must be a five-field cron expression such as */10 * * * *."
  }

  validation {
    condition = anytrue([
      for scope in try(var.managed_keys[var.reconcile.api_key].scopes, []) :
      contains(["webhook_events:read", "webhook_events:all", "all:read"], scope)
    ])
    error_message = "reconcile.api_key must name a managed key with webhook_events:read (by default webhook-reconciler)."
  }

  validation {
    condition = !var.reconcile.resume || anytrue([
      for scope in try(var.managed_keys[var.reconcile.api_key].scopes, []) :
      contains(["webhooks:update", "webhooks:all", "all:update"], scope)
    ])
    error_message = "reconcile.resume = true needs webhooks:update on reconcile.api_key (POST /webhooks/{id}/resume)."
  }

  validation {
    condition     = alltrue([for url in var.reconcile.webhook_urls : can(regex("^https://", url))])
    error_message = "reconcile.webhook_urls must be https:// URLs, exactly as the webhooks' target_hook_url."
  }

  validation {
    condition     = can(regex("^[0-9]+[mhd]$", var.reconcile.lookback)) && can(regex("^[0-9]+[smhd]$", var.reconcile.retry_grace))
    error_message = "reconcile.lookback must be a duration such as 3d; reconcile.retry_grace such as 30m."
  }

  validation {
    condition     = var.reconcile.alert_runs >= 1 && var.reconcile.alert_runs <= 100
    error_message = "reconcile.alert_runs must be between 1 and 100."
  }

  validation {
    # Below the run lease (15 minutes): a run still working is never taken for a crashed one.
    condition     = var.reconcile.timeout_seconds >= 60 && var.reconcile.timeout_seconds <= 840
    error_message = "reconcile.timeout_seconds must be between 60 and 840."
  }

  validation {
    condition     = can(regex("^[A-Za-z0-9_./-]{1,200}\\.json$", var.reconcile.checkpoint_object))
    error_message = "reconcile.checkpoint_object must be an object name ending in .json."
  }
}

locals {
  reconcile_webhook_urls = length(var.reconcile.webhook_urls) > 0 ? var.reconcile.webhook_urls : [google_cloudfunctions2_function.webhook.service_config[0].uri]
  reconcile_log_filter   = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.function_names.reconcile}\""
}

# --- Identities --------------------------------------------------------------------------------

resource "google_service_account" "reconcile" {
  account_id   = "${var.name_prefix}-reconcile"
  display_name = "instantly-guard reconciler"
  description  = "Runs ${local.function_names.reconcile}: reads the reconciler key and the webhook secret's webhook list (metadata), publishes to the webhook events topic, writes its checkpoint object."
  depends_on   = [time_sleep.services_enabled]
}

resource "google_service_account" "reconcile_scheduler" {
  account_id   = "${var.name_prefix}-rsched"
  display_name = "instantly-guard reconcile invoker"
  description  = "Identity in the OIDC token Cloud Scheduler presents to ${local.function_names.reconcile}. Can invoke that function and nothing else."
  depends_on   = [time_sleep.services_enabled]
}

# --- Grants, each on the one resource it needs --------------------------------------------------

# Its own key (through the alias `current`), nothing else.
resource "google_secret_manager_secret_iam_member" "reconcile_reader" {
  secret_id = google_secret_manager_secret.managed[var.reconcile.api_key].id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.reconcile.member
}

# Which webhooks are ours: the list `instantly-guard webhooks connect` records on the webhook
# secret (annotation instantly-guard.webhook-ids), read at every run. The viewer role reads a
# secret's metadata and lists its versions; it has no secretmanager.versions.access, so the
# reconciler can never read the webhook secret's value.
resource "google_secret_manager_secret_iam_member" "reconcile_webhook_list" {
  secret_id = google_secret_manager_secret.managed["webhook-secret"].id
  role      = "roles/secretmanager.viewer"
  member    = google_service_account.reconcile.member
}

# Republished events go to the receiver's topic, so consumers see one stream.
resource "google_pubsub_topic_iam_member" "reconcile_publisher" {
  topic  = google_pubsub_topic.webhook_events.id
  role   = "roles/pubsub.publisher"
  member = google_service_account.reconcile.member
}

# Its checkpoint lives in the checkpoint bucket, under its own prefix; the condition keeps it off
# the audit export's object (uniform bucket-level access makes IAM conditions possible).
resource "google_storage_bucket_iam_member" "reconcile_checkpoints" {
  bucket = google_storage_bucket.checkpoints.name
  role   = "roles/storage.objectUser"
  member = google_service_account.reconcile.member

  condition {
    title       = "reconcile-checkpoint-only"
    description = "Objects under the reconciler's prefix only."
    expression  = "resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.checkpoints.name}/objects/${dirname(var.reconcile.checkpoint_object)}/\")"
  }
}

# --- The function: internal, invoked by Cloud Scheduler only -----------------------------------

resource "google_cloudfunctions2_function" "reconcile" {
  name        = local.function_names.reconcile
  location    = var.region
  description = "Publishes webhook events Instantly failed to deliver; called by Cloud Scheduler."

  build_config {
    runtime           = var.python_runtime
    entry_point       = local.entry_points.reconcile
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.bundle["reconcile"].name
      }
    }
  }

  service_config {
    service_account_email          = google_service_account.reconcile.email
    ingress_settings               = "ALLOW_INTERNAL_ONLY" # Cloud Scheduler in the same project counts as internal
    all_traffic_on_latest_revision = true
    min_instance_count             = 0
    # One run at a time is the normal case; the checkpoint's lease and compare-and-swap cover
    # the rest.
    max_instance_count               = 1
    max_instance_request_concurrency = 1
    available_memory                 = "512Mi"
    timeout_seconds                  = var.reconcile.timeout_seconds

    environment_variables = merge(local.common_env, {
      RECONCILE_WEBHOOK_URLS      = join(",", local.reconcile_webhook_urls)
      RECONCILE_WEBHOOK_SECRET    = google_secret_manager_secret.managed["webhook-secret"].id
      RECONCILE_API_KEY_SECRET    = google_secret_manager_secret.managed[var.reconcile.api_key].id
      WEBHOOK_PUBSUB_TOPIC        = google_pubsub_topic.webhook_events.id
      RECONCILE_CHECKPOINT_BUCKET = google_storage_bucket.checkpoints.name
      RECONCILE_CHECKPOINT_OBJECT = var.reconcile.checkpoint_object
      RECONCILE_LOOKBACK          = var.reconcile.lookback
      RECONCILE_TIME_BUDGET       = "${max(var.reconcile.timeout_seconds - 60, 30)}s"
      RECONCILE_MAX_BODY_BYTES    = tostring(var.webhook.max_body_bytes)
      RECONCILE_RETRY_GRACE       = var.reconcile.retry_grace
      RECONCILE_RESUME            = tostring(var.reconcile.resume)
    })
  }

  depends_on = [
    # The build account's grants must exist (and have propagated) before Cloud Build runs as it.
    time_sleep.build_grants,
    google_project_iam_member.build_log_writer,
    google_project_iam_member.build_source_reader,
    google_artifact_registry_repository_iam_member.build_writer,
    google_secret_manager_secret_iam_member.reconcile_reader,
    google_secret_manager_secret_iam_member.reconcile_webhook_list,
    google_storage_bucket_iam_member.reconcile_checkpoints,
    google_pubsub_topic_iam_member.reconcile_publisher,
  ]
}

resource "google_cloud_run_v2_service_iam_member" "reconcile_invoker" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.reconcile.service_config[0].service
  role     = "roles/run.invoker"
  member   = google_service_account.reconcile_scheduler.member
}

# --- Schedule ----------------------------------------------------------------------------------

# Delivered at least once: a redelivered run (same X-CloudScheduler-JobName + ScheduleTime) is
# recognised in the checkpoint and does nothing.
resource "google_cloud_scheduler_job" "reconcile" {
  name             = "${var.name_prefix}-reconcile"
  region           = var.region
  description      = "Runs ${local.function_names.reconcile}: republishes webhook events Instantly failed to deliver."
  schedule         = var.reconcile.schedule
  time_zone        = var.reconcile.time_zone
  attempt_deadline = "${var.reconcile.timeout_seconds + 30}s"

  retry_config {
    retry_count          = 2
    min_backoff_duration = "30s"
    max_backoff_duration = "300s"
  }

  http_target {
    uri         = google_cloudfunctions2_function.reconcile.service_config[0].uri
    http_method = "POST"
    headers = {
      "Content-Type" = "application/json"
    }
    body = base64encode("{}")

    oidc_token {
      service_account_email = google_service_account.reconcile_scheduler.email
      audience              = google_cloudfunctions2_function.reconcile.service_config[0].uri
    }
  }

  depends_on = [google_cloud_run_v2_service_iam_member.reconcile_invoker]
}

# --- Metrics and alerts ------------------------------------------------------------------------

# Runs that found events Instantly failed to deliver (the run's summary line, `missing` > 0).
# One such run after an outage is expected (the events are republished); runs that keep finding
# new ones mean deliveries keep failing: a receiver down, a secret out of step, a bad deploy.
resource "google_logging_metric" "reconcile_missing" {
  name        = "${var.name_prefix}/reconcile_missing"
  description = "Reconcile runs that found missing webhook events."
  filter      = "${local.reconcile_log_filter} AND jsonPayload.logger=\"instantly_guard.reconcile\" AND jsonPayload.missing>0"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
  }

  depends_on = [time_sleep.services_enabled]
}

# What the reconciler did on its own: resumed a webhook (or left one off), found an event it
# cannot recover (no payload in the log), found a configured URL that is no webhook's target, or
# failed (ERROR). Every one is worth a person's look.
resource "google_logging_metric" "reconcile_actions" {
  name        = "${var.name_prefix}/reconcile_actions"
  description = "Webhooks resumed, unrecoverable events and errors of the reconciler."
  filter      = "${local.reconcile_log_filter} AND (jsonPayload.action=\"resumed\" OR jsonPayload.action=\"resume_skipped\" OR jsonPayload.action=\"unmatched_urls\" OR severity>=ERROR)"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
  }

  depends_on = [time_sleep.services_enabled]
}

# A webhook that is not one of ours (the webhook secret's list) aimed at our receiver: every run logs
# one ERROR line per such webhook (action foreign_webhook). Its deliveries are refused (401) and
# never republished, but someone in the workspace is probing the receiver (issue 18).
resource "google_logging_metric" "reconcile_foreign_webhooks" {
  name        = "${var.name_prefix}/reconcile_foreign_webhooks"
  description = "Reconcile runs that found a webhook that is not ours delivering to the receiver."
  filter      = "${local.reconcile_log_filter} AND jsonPayload.logger=\"instantly_guard.reconcile\" AND jsonPayload.action=\"foreign_webhook\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
  }

  depends_on = [time_sleep.services_enabled]
}

# Monitoring finds a new log-based metric only minutes after it is created (see
# time_sleep.log_metrics in monitoring.tf): the reconcile alerts wait the same way.
resource "time_sleep" "reconcile_log_metrics" {
  create_duration = var.apply_waits.log_metrics

  triggers = {
    reconcile_missing = google_logging_metric.reconcile_missing.id
    reconcile_actions = google_logging_metric.reconcile_actions.id
    reconcile_foreign = google_logging_metric.reconcile_foreign_webhooks.id
  }
}

resource "google_monitoring_alert_policy" "reconcile_missing" {
  display_name          = "instantly-guard: webhook deliveries keep failing"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels

  conditions {
    display_name = "Reconcile runs keep finding missing events"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.reconcile_missing.name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.reconcile.alert_runs - 1
      duration        = "0s"

      aggregations {
        alignment_period     = "3600s"
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
    subject   = "instantly-guard: Instantly keeps failing to deliver webhook events"
    content   = "At least ${var.reconcile.alert_runs} reconcile runs within an hour found events Instantly could not deliver to the receiver. They were republished to `${google_pubsub_topic.webhook_events.name}` (attribute reconciled=true), but deliveries are still failing: check the receiver (`${local.function_names.webhook}`), its secret against the webhook's header, and whether Instantly disabled the webhook. Runbook: README, Operations, \"missed webhook events\"."
  }

  depends_on = [time_sleep.reconcile_log_metrics]
}

resource "google_monitoring_alert_policy" "reconcile_actions" {
  display_name          = "instantly-guard: reconciler acted or failed"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels

  conditions {
    display_name = "Webhook resumed or not, event unrecoverable, or reconcile error"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.reconcile_actions.name}\" AND resource.type=\"cloud_run_revision\""
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
    subject   = "instantly-guard: the reconciler resumed a webhook, lost an event or failed"
    content   = "The reconcile function (`${local.function_names.reconcile}`) resumed a webhook Instantly had disabled, left one disabled because the receiver failed its probe, found a failed delivery without a payload (that event is lost), found a configured receiver URL that is no webhook's target, or logged an error. Its log lines say which. Runbook: README, Operations, \"missed webhook events\"."
  }

  depends_on = [time_sleep.reconcile_log_metrics]
}

resource "google_monitoring_alert_policy" "reconcile_foreign_webhooks" {
  display_name          = "instantly-guard: a foreign webhook delivers to the receiver"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "A webhook that is not ours targets the receiver"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.reconcile_foreign_webhooks.name}\" AND resource.type=\"cloud_run_revision\""
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
    subject   = "instantly-guard: a webhook that is not ours delivers to the receiver"
    content   = "The reconcile function (`${local.function_names.reconcile}`) found an Instantly webhook whose id is not one of ours (the list `instantly-guard webhooks connect` records on the webhook secret, `${google_secret_manager_secret.managed["webhook-secret"].secret_id}`) aimed at the receiver's URL. Its deliveries are refused (401) and never republished, but someone who can create webhooks is probing the receiver. The log line names the webhook id; the audit log says who created it. Delete it (`DELETE /webhooks/{id}`), or, if it is ours, connect it (`instantly-guard webhooks connect --webhook-id ID`): the next run follows it. `instantly-guard check` reports it as `webhooks.foreign-to-receiver`. Runbook: docs/reconcile.md, \"Whose delivery is it\"."
  }

  depends_on = [time_sleep.reconcile_log_metrics]
}

# --- Outputs -----------------------------------------------------------------------------------

output "reconcile" {
  description = "The reconcile function, its identities and its checkpoint object."
  value = {
    function          = local.function_names.reconcile
    service_account   = google_service_account.reconcile.email
    scheduler_account = google_service_account.reconcile_scheduler.email
    checkpoint        = "gs://${google_storage_bucket.checkpoints.name}/${var.reconcile.checkpoint_object}"
    webhook_urls      = local.reconcile_webhook_urls
    webhook_secret    = google_secret_manager_secret.managed["webhook-secret"].id
    api_key_secret    = google_secret_manager_secret.managed[var.reconcile.api_key].id
  }
}
