# The three Cloud Run functions (2nd gen). Each runs as its own service account, is built by the
# dedicated build account into this module's repository, and is fed its configuration through
# the environment variables documented in the README. A new bundle (new content hash, new object
# name) is what triggers a redeployment.

# Cloud Build runs as the build account right after its grants are made, and fails while a fresh
# grant has not propagated (Google: usually under two minutes, sometimes seven): every function
# waits for it.
resource "time_sleep" "build_grants" {
  create_duration = var.apply_waits.iam

  triggers = {
    log_writer    = google_project_iam_member.build_log_writer.id
    source_reader = google_project_iam_member.build_source_reader.id
    image_writer  = google_artifact_registry_repository_iam_member.build_writer.id
  }
}

# Cloud Run checks at deployment that the webhook's account may read the secret it mounts. A wait
# of its own: the rotation function must not wait for a secret (the secrets wait for the rotation
# push subscription, which needs that function's URL).
resource "time_sleep" "webhook_secret_grant" {
  create_duration = var.apply_waits.iam

  triggers = {
    webhook_secret = google_secret_manager_secret_iam_member.webhook_reader.id
  }
}

# --- Webhook receiver: the one public endpoint ------------------------------------------------

resource "google_cloudfunctions2_function" "webhook" {
  # Instantly delivers webhooks from the public internet, from addresses it does not document, and
  # can only send static custom headers: it cannot present a Google identity or come through a
  # load balancer of ours. So the endpoint is public (ingress ALLOW_ALL, allUsers invoker below)
  # and the function authenticates every request itself, failing closed: constant-time
  # shared-secret check before the body is parsed, optional source CIDR allow list, body limit.
  #checkov:skip=CKV_GCP_124:Public ingress is required: Instantly calls this webhook from the internet and cannot authenticate to Google. The function verifies a shared secret on every request (fail closed), see docs/deploy.md.
  name        = local.function_names.webhook
  location    = var.region
  description = "Receives Instantly webhook deliveries, authenticates them, hands them to Pub/Sub."

  build_config {
    runtime           = var.python_runtime
    entry_point       = local.entry_points.webhook
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.bundle["webhook"].name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.webhook.email
    ingress_settings                 = "ALLOW_ALL"
    all_traffic_on_latest_revision   = true
    min_instance_count               = 0
    max_instance_count               = var.webhook.max_instances
    max_instance_request_concurrency = var.webhook.concurrency
    available_cpu                    = "1"
    available_memory                 = "512Mi"
    # The request waits for Pub/Sub to acknowledge the publish (bounded) before it answers.
    timeout_seconds = 60

    environment_variables = merge(
      local.common_env,
      {
        INSTANTLY_WEBHOOK_SECRET_FILE = "${local.webhook_secret_mount}/${local.webhook_secret_file}"
        WEBHOOK_SECRET_HEADER         = var.webhook.secret_header
        WEBHOOK_PUBSUB_TOPIC          = google_pubsub_topic.webhook_events.id
        WEBHOOK_MAX_BODY_BYTES        = tostring(var.webhook.max_body_bytes)
      },
      # Unset means any source address; the shared secret is checked either way.
      length(var.webhook.allowed_cidrs) > 0 ? { WEBHOOK_ALLOWED_CIDRS = join(",", var.webhook.allowed_cidrs) } : {},
    )

    # A volume on `latest`, not an environment variable: a rotation is picked up live, without a
    # new instance. Its `latest` version carries every secret Instantly may be sending right now
    # (the new one and, during the grace period, the previous one).
    secret_volumes {
      mount_path = local.webhook_secret_mount
      project_id = var.project_id
      secret     = google_secret_manager_secret.managed["webhook-secret"].secret_id

      versions {
        version = "latest"
        path    = local.webhook_secret_file
      }
    }
  }

  depends_on = [
    # The build account's grants must exist (and have propagated) before Cloud Build runs as it.
    time_sleep.build_grants,
    google_project_iam_member.build_log_writer,
    google_project_iam_member.build_source_reader,
    google_artifact_registry_repository_iam_member.build_writer,
    google_secret_manager_secret_iam_member.webhook_reader,
    time_sleep.webhook_secret_grant,
    google_pubsub_topic_iam_member.webhook_events_publisher,
    # The volume needs a version to mount at the first deployment (bootstrap "webhook-secret").
    google_secret_manager_secret_version.bootstrap,
  ]
}

resource "google_cloud_run_v2_service_iam_member" "webhook_public" {
  # Unauthenticated invocation is what lets Instantly reach the receiver at all (see the function
  # above); authentication happens in the function. This is the module's only public invoker.
  #checkov:skip=CKV_GCP_102:The webhook receiver must be callable by Instantly, which cannot present Google credentials; requests are authenticated by the function's shared-secret check.
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.webhook.service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# The detection settings the audit export and the inventory both read (the inventory evaluates
# the inventory.* rules on its change entries): one source, so their findings agree.
locals {
  detection_env = {
    AUDIT_FINDINGS_LOG   = var.detections.findings_log
    DETECT_WEBHOOK_HOSTS = join(",", var.detections.webhook_allowed_hosts)
  }
}

# --- Audit export: internal, invoked by Cloud Scheduler only ------------------------------------

resource "google_cloudfunctions2_function" "audit_export" {
  name        = local.function_names.audit_export
  location    = var.region
  description = "Copies new Instantly audit-log entries into Cloud Logging; called by Cloud Scheduler."

  build_config {
    runtime           = var.python_runtime
    entry_point       = local.entry_points.audit_export
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.bundle["audit_export"].name
      }
    }
  }

  service_config {
    service_account_email          = google_service_account.audit_export.email
    ingress_settings               = "ALLOW_INTERNAL_ONLY" # Cloud Scheduler in the same project counts as internal
    all_traffic_on_latest_revision = true
    min_instance_count             = 0
    # One run at a time is the normal case; the checkpoint's compare-and-swap covers the rest.
    max_instance_count               = 1
    max_instance_request_concurrency = 1
    available_memory                 = "512Mi"
    timeout_seconds                  = var.audit_export.timeout_seconds

    environment_variables = merge(local.common_env, local.detection_env, {
      AUDIT_LOG_NAME          = var.audit_export.log_name
      AUDIT_CHECKPOINT_BUCKET = google_storage_bucket.checkpoints.name
      AUDIT_CHECKPOINT_OBJECT = local.audit_checkpoint_object
      AUDIT_LOOKBACK          = var.audit_export.lookback
      AUDIT_API_KEY_SECRET    = google_secret_manager_secret.managed[var.audit_export.api_key].id
      AUDIT_RATE_SHARE        = tostring(var.audit_export.rate_share)
      # Entries older than the bucket keeps are accepted by Cloud Logging and silently dropped:
      # the exporter counts and warns about them, and refuses a backfill reaching past it.
      AUDIT_LOG_RETENTION = "${var.audit_log_retention_days}d"
      # Stop starting work a minute before the function is cut off, checkpoint consistent.
      AUDIT_TIME_BUDGET = "${max(var.audit_export.timeout_seconds - 60, 30)}s"
      # The detection rules run on every batch written; findings go to their own log
      # (local.detection_env names it).
      DETECT_MFA_FAILURES          = tostring(var.detections.mfa_failure_threshold)
      DETECT_LEAD_EXPORT_THRESHOLD = tostring(var.detections.lead_export_threshold)
      DETECT_ROTATION_KEYS         = join(",", var.detections.rotation_keys)
    })
  }

  depends_on = [
    # The build account's grants must exist (and have propagated) before Cloud Build runs as it.
    time_sleep.build_grants,
    google_project_iam_member.build_log_writer,
    google_project_iam_member.build_source_reader,
    google_artifact_registry_repository_iam_member.build_writer,
    google_secret_manager_secret_iam_member.audit_export_reader,
    google_storage_bucket_iam_member.audit_export_checkpoints,
    google_project_iam_member.audit_export_log_writer,
  ]
}

resource "google_cloud_run_v2_service_iam_member" "audit_export_invoker" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.audit_export.service_config[0].service
  role     = "roles/run.invoker"
  member   = google_service_account.scheduler.member
}

# --- Key rotation: internal, invoked by the rotation push subscription only ---------------------

resource "google_cloudfunctions2_function" "key_rotation" {
  # No event_trigger: the Pub/Sub subscription that feeds this function is declared in pubsub.tf,
  # so that it can carry a retry and dead-letter policy (an Eventarc-owned one cannot be managed
  # here). The entry point is a @functions_framework.http function that reads the push envelope
  # itself: Functions Framework's CloudEvent conversion refuses one without `data`
  # (TOPIC_CONFIGURED), which would be retried into the dead-letter topic.
  name        = local.function_names.key_rotation
  location    = var.region
  description = "Rotates managed Instantly keys and webhook secrets on Secret Manager's schedule."

  build_config {
    runtime           = var.python_runtime
    entry_point       = local.entry_points.key_rotation
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.bundle["key_rotation"].name
      }
    }
  }

  service_config {
    service_account_email          = google_service_account.key_rotation.email
    ingress_settings               = "ALLOW_INTERNAL_ONLY" # Pub/Sub push in the same project counts as internal
    all_traffic_on_latest_revision = true
    min_instance_count             = 0
    max_instance_count             = var.rotation.max_instances
    # One rotation per instance: the protocol is guarded by etags anyway, this keeps it simple.
    max_instance_request_concurrency = 1
    available_memory                 = "512Mi"
    timeout_seconds                  = var.rotation.timeout_seconds

    # The function finds managed secrets by their labels (fixed in the library), not by
    # configuration; ROTATION_LEASE keeps its default (10m), above the timeout as it must be.
    environment_variables = merge(local.common_env, {
      # Secret Manager may name the project by number in `secretId`: an event naming neither
      # the id nor the number is refused (instantly_guard.rotation.admission).
      ROTATION_PROJECT_NUMBER = data.google_project.this.number
    })
  }

  depends_on = [
    # The build account's grants must exist (and have propagated) before Cloud Build runs as it.
    time_sleep.build_grants,
    google_project_iam_member.build_log_writer,
    google_project_iam_member.build_source_reader,
    google_artifact_registry_repository_iam_member.build_writer,
  ]
}

resource "google_cloud_run_v2_service_iam_member" "key_rotation_invoker" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.key_rotation.service_config[0].service
  role     = "roles/run.invoker"
  member   = google_service_account.rotation_push.member
}
