# Inventory (docs/inventory.md): a scheduled function that reads the workspace's members, API
# keys, webhooks, block list and settings with a read-only key, compares them with its last
# snapshot and writes one entry per change to the exported audit log (labels source=inventory),
# beside Instantly's own entries. Everything it needs sits in this file: identities, grants,
# function, schedule, alert, variables and outputs. Its name and entry point are in main.tf's
# locals with the other functions (the bundle and the build follow from them).

variable "inventory" {
  description = "Inventory of members, keys, webhooks, block list and settings: cron schedule and time zone (the interval bounds when a change is known to have happened), which managed key it reads with (api_keys:read, block_list_entries:read, workspace_members:read, workspaces:read), the snapshot object in the checkpoint bucket, its share of Instantly's rate limit and the function timeout (seconds)."
  type = object({
    schedule        = optional(string, "*/15 * * * *")
    time_zone       = optional(string, "Etc/UTC")
    api_key         = optional(string, "inventory-reader")
    snapshot_object = optional(string, "inventory/snapshot.bin")
    rate_share      = optional(number, 0.1)
    timeout_seconds = optional(number, 540)
  })
  default = {}

  validation {
    condition     = length(split(" ", trimspace(var.inventory.schedule))) == 5
    error_message = "inventory.schedule must be a five-field cron expression such as */15 * * * *."
  }

  validation {
    condition = alltrue([
      for needed in ["api_keys", "block_list_entries", "workspace_members", "workspaces"] :
      anytrue([
        for scope in try(var.managed_keys[var.inventory.api_key].scopes, []) :
        contains(["${needed}:read", "${needed}:all", "all:read"], scope)
      ])
    ])
    error_message = "inventory.api_key must name a managed key with api_keys:read, block_list_entries:read, workspace_members:read and workspaces:read (by default inventory-reader)."
  }

  validation {
    condition = alltrue([
      for scope in try(var.managed_keys[var.inventory.api_key].scopes, []) :
      endswith(scope, ":read")
    ])
    error_message = "inventory.api_key must be read-only: every scope ending in :read."
  }

  validation {
    condition     = var.inventory.rate_share > 0 && var.inventory.rate_share <= 0.5
    error_message = "inventory.rate_share must be above 0 and at most 0.5 (the audit export and the other callers share the workspace's limit)."
  }

  validation {
    condition     = var.inventory.timeout_seconds >= 60 && var.inventory.timeout_seconds <= 3600
    error_message = "inventory.timeout_seconds must be between 60 and 3600."
  }

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$", var.inventory.snapshot_object))
    error_message = "inventory.snapshot_object must be prefix/name: the grant is held to that prefix."
  }
}

locals {
  inventory_log_filter = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.function_names.inventory}\""
}

# --- Identities --------------------------------------------------------------------------------

resource "google_service_account" "inventory" {
  account_id   = "${var.name_prefix}-inventory"
  display_name = "instantly-guard inventory"
  description  = "Runs ${local.function_names.inventory}: reads the inventory key, writes change entries to the audit log and its snapshot object."
  depends_on   = [time_sleep.services_enabled]
}

resource "google_service_account" "inventory_scheduler" {
  account_id   = "${var.name_prefix}-isched"
  display_name = "instantly-guard inventory invoker"
  description  = "Identity in the OIDC token Cloud Scheduler presents to ${local.function_names.inventory}. Can invoke that function and nothing else."
  depends_on   = [time_sleep.services_enabled]
}

# --- Grants, each on the one resource it needs --------------------------------------------------

# Its own read-only key (through the alias `current`), nothing else.
resource "google_secret_manager_secret_iam_member" "inventory_reader" {
  secret_id = google_secret_manager_secret.managed[var.inventory.api_key].id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.inventory.member
}

# Change entries join Instantly's in the exported log through the Logging API, which authorises
# writers on the project only (no per-log IAM), as for the audit exporter.
resource "google_project_iam_member" "inventory_log_writer" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.inventory.member
}

# Its snapshot lives in the checkpoint bucket under its own prefix; the condition keeps it off
# the audit export's and the reconciler's objects.
resource "google_storage_bucket_iam_member" "inventory_snapshot" {
  bucket = google_storage_bucket.checkpoints.name
  role   = "roles/storage.objectUser"
  member = google_service_account.inventory.member

  condition {
    title       = "inventory-snapshot-only"
    description = "Objects under the inventory's prefix only."
    expression  = "resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.checkpoints.name}/objects/${dirname(var.inventory.snapshot_object)}/\")"
  }
}

# --- The function: internal, invoked by Cloud Scheduler only -----------------------------------

resource "google_cloudfunctions2_function" "inventory" {
  name        = local.function_names.inventory
  location    = var.region
  description = "Records changes to members, keys, webhooks, block list and settings in the audit log; called by Cloud Scheduler."

  build_config {
    runtime           = var.python_runtime
    entry_point       = local.entry_points.inventory
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.bundle["inventory"].name
      }
    }
  }

  service_config {
    service_account_email          = google_service_account.inventory.email
    ingress_settings               = "ALLOW_INTERNAL_ONLY" # Cloud Scheduler in the same project counts as internal
    all_traffic_on_latest_revision = true
    min_instance_count             = 0
    # One run at a time; the snapshot's compare-and-swap and deterministic insertIds cover an
    # overlap all the same.
    max_instance_count               = 1
    max_instance_request_concurrency = 1
    # 100k block-list entries and 10k members hold about 30 MB of compact records (make bench).
    available_memory = "512Mi"
    timeout_seconds  = var.inventory.timeout_seconds

    # local.detection_env: the inventory.* detection rules run on the change entries written;
    # their findings go to the export's findings log, with its webhook allow list.
    environment_variables = merge(local.common_env, local.detection_env, {
      INVENTORY_API_KEY_SECRET  = google_secret_manager_secret.managed[var.inventory.api_key].id
      INVENTORY_SNAPSHOT_BUCKET = google_storage_bucket.checkpoints.name
      INVENTORY_SNAPSHOT_OBJECT = var.inventory.snapshot_object
      INVENTORY_RATE_SHARE      = tostring(var.inventory.rate_share)
      AUDIT_LOG_NAME            = var.audit_export.log_name
    })
  }

  depends_on = [
    # The build account's grants must exist (and have propagated) before Cloud Build runs as it.
    time_sleep.build_grants,
    google_project_iam_member.build_log_writer,
    google_project_iam_member.build_source_reader,
    google_artifact_registry_repository_iam_member.build_writer,
    google_secret_manager_secret_iam_member.inventory_reader,
    google_storage_bucket_iam_member.inventory_snapshot,
    google_project_iam_member.inventory_log_writer,
  ]
}

resource "google_cloud_run_v2_service_iam_member" "inventory_invoker" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.inventory.service_config[0].service
  role     = "roles/run.invoker"
  member   = google_service_account.inventory_scheduler.member
}

# --- Schedule ----------------------------------------------------------------------------------

# Delivered at least once: a repeated run finds the same differences and writes the same
# entries (same insertId and timestamp), which Cloud Logging collapses.
resource "google_cloud_scheduler_job" "inventory" {
  name             = "${var.name_prefix}-inventory"
  region           = var.region
  description      = "Runs ${local.function_names.inventory}: records changes Instantly's audit log does not."
  schedule         = var.inventory.schedule
  time_zone        = var.inventory.time_zone
  attempt_deadline = "${min(var.inventory.timeout_seconds + 30, 1800)}s"

  retry_config {
    retry_count          = 2
    min_backoff_duration = "30s"
    max_backoff_duration = "300s"
  }

  http_target {
    uri         = google_cloudfunctions2_function.inventory.service_config[0].uri
    http_method = "POST"
    headers = {
      "Content-Type" = "application/json"
    }
    body = base64encode("{}")

    oidc_token {
      service_account_email = google_service_account.inventory_scheduler.email
      audience              = google_cloudfunctions2_function.inventory.service_config[0].uri
    }
  }

  depends_on = [google_cloud_run_v2_service_iam_member.inventory_invoker]
}

# --- Metric and alert --------------------------------------------------------------------------

# A failing inventory is a blind spot: nothing it would record is recorded meanwhile.
resource "google_logging_metric" "inventory_failures" {
  name        = "${var.name_prefix}/inventory_failures"
  description = "Inventory runs that failed (missing scope, revoked key, Instantly or Google unavailable)."
  filter      = "${local.inventory_log_filter} AND jsonPayload.logger=\"instantly_guard.inventory\" AND severity>=WARNING"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
  }

  depends_on = [time_sleep.services_enabled]
}

resource "time_sleep" "inventory_log_metrics" {
  create_duration = var.apply_waits.log_metrics

  triggers = {
    inventory_failures = google_logging_metric.inventory_failures.id
  }
}

resource "google_monitoring_alert_policy" "inventory_failures" {
  display_name          = "instantly-guard: inventory is failing"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels

  conditions {
    display_name = "Inventory runs failed twice within an hour"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.inventory_failures.name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 1
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
    subject   = "instantly-guard: the inventory cannot record changes"
    content   = "The inventory function (`${local.function_names.inventory}`) failed at least twice within an hour: member, key, webhook and block-list changes are not being recorded. Its log line names the cause (missing scope, invalid key, Instantly or Google unavailable). Changes made meanwhile are recorded by the first run that succeeds, with a wider interval. Runbook: docs/inventory.md."
  }

  depends_on = [time_sleep.inventory_log_metrics]
}

# --- Outputs -----------------------------------------------------------------------------------

output "inventory" {
  description = "The inventory function, its identities and its snapshot object."
  value = {
    function          = local.function_names.inventory
    service_account   = google_service_account.inventory.email
    scheduler_account = google_service_account.inventory_scheduler.email
    snapshot          = "gs://${google_storage_bucket.checkpoints.name}/${var.inventory.snapshot_object}"
    api_key_secret    = google_secret_manager_secret.managed[var.inventory.api_key].id
  }
}
