# instantly-guard on Google Cloud: three Cloud Run functions (2nd gen) and what they need, each
# identity granted on the one resource it uses. The files split by concern:
#   iam.tf         service accounts, custom roles (secret rotator, lister), project-level roles
#   secrets.tf     managed secrets (rotation, topics, label, annotations) and write-only bootstrap
#   pubsub.tf      webhook events, rotation events, dead letters, the service agents' publish rights
#   storage.tf     source bucket (content-addressed bundles), checkpoint bucket, image repository
#   functions.tf   the functions and who may invoke them
#   scheduler.tf   audit export (HTTP + OIDC) and rotation sweep (Pub/Sub)
#   logging.tf     audit log bucket with retention and the sink that fills it
#   monitoring.tf  log-based metrics and alert policies
# Design notes: docs/deploy.md.

locals {
  bundle_dir = coalesce(var.bundle_dir, "${path.module}/../dist")

  labels = merge(var.labels, { app = "instantly-guard" })

  # The labels that make a secret "managed" for the rotation function (LABEL and KIND_LABEL in
  # instantly_guard.rotation.model): underscores, so a `labels.KEY=VALUE` filter needs no quotes.
  managed_label = { instantly_guard = "managed" }
  kind_label    = "instantly_guard_kind"

  # Names -----------------------------------------------------------------------------------
  function_names = {
    webhook      = "${var.name_prefix}-webhook"
    audit_export = "${var.name_prefix}-audit-export"
    key_rotation = "${var.name_prefix}-key-rotation"
    reconcile    = "${var.name_prefix}-reconcile"
    inventory    = "${var.name_prefix}-inventory"
  }

  entry_points = {
    webhook      = "receive_webhook"
    audit_export = "export_audit_logs"
    key_rotation = "rotate_api_key"
    reconcile    = "reconcile_webhooks"
    inventory    = "run_inventory"
  }

  bundles = { for fn in keys(local.function_names) : fn => "${local.bundle_dir}/${fn}.zip" }

  admin_secret_id = "${var.name_prefix}-admin-key"

  # Secrets ---------------------------------------------------------------------------------
  # Annotation keys the rotation function reads: instantly_guard.rotation.model, class A (the
  # declared ones; the function adds its own state keys next to them, which Terraform leaves be).
  annotation_keys = {
    kind            = "instantly-guard.kind"
    scopes          = "instantly-guard.scopes"
    key_name_prefix = "instantly-guard.key-prefix"
    grace           = "instantly-guard.grace"
    retention       = "instantly-guard.retention"
    admin_secret    = "instantly-guard.admin-secret"
    webhook_ids     = "instantly-guard.webhook-ids"
    webhook_header  = "instantly-guard.webhook-header"
  }

  admin_scopes = ["api_keys:create", "api_keys:read", "api_keys:delete"]

  # Every secret the rotation function manages, by logical name.
  secrets = merge(
    {
      admin = {
        secret_id       = local.admin_secret_id
        kind            = "api-key"
        scopes          = local.admin_scopes
        rotation_period = var.admin_key.rotation_period
        grace           = var.admin_key.grace
        retention       = var.admin_key.retention
        key_name_prefix = var.admin_key.key_name_prefix
        admin_secret    = local.admin_secret_id # it rotates itself
        webhook_ids     = []
        readers         = []
        # Supplied by hand (bootstrap), so the first rotation is one full period away.
        first_rotation = var.admin_key.rotation_period
      }
      "webhook-secret" = {
        secret_id       = "${var.name_prefix}-webhook-secret"
        kind            = "webhook-secret"
        scopes          = []
        rotation_period = var.webhook.rotation_period
        grace           = var.webhook.grace
        retention       = var.webhook.retention
        key_name_prefix = ""
        admin_secret    = "${var.name_prefix}-${var.webhook.api_key}"
        webhook_ids     = var.webhook.instantly_webhook_ids
        readers         = []
        first_rotation  = var.first_rotation_delay
      }
    },
    {
      for name, key in var.managed_keys : name => {
        secret_id       = "${var.name_prefix}-${name}"
        kind            = "api-key"
        scopes          = key.scopes
        rotation_period = key.rotation_period
        grace           = key.grace
        retention       = key.retention
        key_name_prefix = key.key_name_prefix
        admin_secret    = local.admin_secret_id
        webhook_ids     = []
        readers         = key.readers
        # No version yet: the first rotation mints, tests and stores the key.
        first_rotation = var.first_rotation_delay
      }
    },
  )

  secret_annotations = {
    for name, s in local.secrets : name => merge(
      {
        (local.annotation_keys.kind)         = s.kind
        (local.annotation_keys.grace)        = s.grace
        (local.annotation_keys.retention)    = s.retention
        (local.annotation_keys.admin_secret) = s.admin_secret
      },
      s.kind == "api-key" ? {
        (local.annotation_keys.scopes)          = join(",", s.scopes)
        (local.annotation_keys.key_name_prefix) = s.key_name_prefix
        } : {
        (local.annotation_keys.webhook_header) = var.webhook.secret_header
      },
      length(s.webhook_ids) > 0 ? {
        (local.annotation_keys.webhook_ids) = join(",", s.webhook_ids)
      } : {},
    )
  }

  # Webhook secret as the receiver sees it: a volume on `latest`, re-read when it changes.
  webhook_secret_mount = "/etc/secrets"
  webhook_secret_file  = "webhook-secret"

  audit_checkpoint_object = "audit-export/checkpoint.json"

  common_env = {
    GUARD_BACKEND        = "gcp"
    GOOGLE_CLOUD_PROJECT = var.project_id
    INSTANTLY_API_BASE   = var.instantly_api_base
    LOG_LEVEL            = var.log_level
  }
}

data "google_project" "this" {
  project_id = var.project_id
}

# APIs the deployment uses. Left enabled on destroy: other workloads in the project may use them.
resource "google_project_service" "enabled" {
  for_each = toset([
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudscheduler.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
  ])

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

# Enabling an API returns before every part of Google knows it is on: the first calls (a custom
# role on the IAM API, a topic, a bucket) can still fail with "API not enabled" for a while.
# Everything that calls one of these APIs depends on this wait, not on the enablement alone. It
# runs again only when the list of APIs changes.
resource "time_sleep" "services_enabled" {
  create_duration = var.apply_waits.services

  triggers = {
    services = join(",", sort(keys(google_project_service.enabled)))
  }
}
