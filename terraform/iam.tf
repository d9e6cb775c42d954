# One identity per job, each granted on the single resource it touches. The bindings themselves sit
# next to the resource they grant on (secrets.tf, pubsub.tf, storage.tf, functions.tf); this file
# holds the identities, the two custom roles, and the only project-level grants, each with why.

resource "google_service_account" "webhook" {
  account_id   = "${var.name_prefix}-webhook"
  display_name = "instantly-guard webhook receiver"
  description  = "Runs ${local.function_names.webhook}: reads the webhook secret, publishes to the webhook events topic."
  depends_on   = [time_sleep.services_enabled]
}

resource "google_service_account" "audit_export" {
  account_id   = "${var.name_prefix}-audit"
  display_name = "instantly-guard audit exporter"
  description  = "Runs ${local.function_names.audit_export}: reads the audit-exporter key, writes the checkpoint object and the audit log."
  depends_on   = [time_sleep.services_enabled]
}

resource "google_service_account" "key_rotation" {
  account_id   = "${var.name_prefix}-rotation"
  display_name = "instantly-guard key rotation"
  description  = "Runs ${local.function_names.key_rotation}: rotates the managed secrets, and only those."
  depends_on   = [time_sleep.services_enabled]
}

resource "google_service_account" "scheduler" {
  account_id   = "${var.name_prefix}-sched"
  display_name = "instantly-guard scheduler invoker"
  description  = "Identity in the OIDC token Cloud Scheduler presents to ${local.function_names.audit_export}. Can invoke that function and nothing else."
  depends_on   = [time_sleep.services_enabled]
}

resource "google_service_account" "rotation_push" {
  account_id   = "${var.name_prefix}-push"
  display_name = "instantly-guard rotation push invoker"
  description  = "Identity in the OIDC token Pub/Sub presents when it pushes rotation events to ${local.function_names.key_rotation}. Can invoke that function and nothing else."
  depends_on   = [time_sleep.services_enabled]
}

resource "google_service_account" "build" {
  account_id   = "${var.name_prefix}-build"
  display_name = "instantly-guard function builds"
  description  = "Cloud Build identity for the three functions: reads their sources, pushes their images, writes build logs."
  depends_on   = [time_sleep.services_enabled]
}

# Rotating a secret means reading it, adding a version, moving aliases and annotations (an update of
# the secret itself, guarded by its etag) and disabling or destroying old versions. No predefined
# role has `secretmanager.secrets.update` without also creating, deleting and re-permissioning
# secrets (roles/secretmanager.admin), so this role holds exactly the list below. It is *defined*
# in the project (custom roles live there) but *granted* only on each managed secret (secrets.tf).
resource "google_project_iam_custom_role" "secret_rotator" {
  project     = var.project_id
  role_id     = "${replace(var.name_prefix, "-", "_")}_secret_rotator"
  title       = "instantly-guard secret rotator"
  description = "Rotate one Secret Manager secret in place: read, add and retire versions, move aliases. Granted per secret, never on the project."
  permissions = [
    "secretmanager.secrets.get",
    "secretmanager.secrets.update",
    "secretmanager.versions.access",
    "secretmanager.versions.add",
    "secretmanager.versions.destroy",
    "secretmanager.versions.disable",
    "secretmanager.versions.enable",
    "secretmanager.versions.get",
    "secretmanager.versions.list",
  ]

  # Custom roles are created through the IAM API, which this apply may have just enabled.
  depends_on = [time_sleep.services_enabled]
}

# --- The project-level grants, and why none of them can be narrower (the secret lister below too) -

# Writing entries through the Logging API (entries.write) is authorised on the project: Cloud
# Logging has no per-log or per-bucket IAM for writers. Only the exporter writes through the API;
# the other functions log to stdout, which Cloud Run collects without any grant.
resource "google_project_iam_member" "audit_export_log_writer" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.audit_export.member
}

# Cloud Build writes the build log of each function deployment the same way.
resource "google_project_iam_member" "build_log_writer" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.build.member
}

# Cloud Functions copies each source zip into a bucket it creates itself
# (gcf-v2-sources-<project number>-<region>, one per region, shared by every function of the
# project), which does not exist before the first deployment and so cannot carry a bucket-level
# binding. The condition limits the read to this module's source bucket and, in Google's bucket,
# to the objects of this module's functions (`<function name>/...`): not other functions' sources.
resource "google_project_iam_member" "build_source_reader" {
  project = var.project_id
  role    = "roles/storage.objectViewer"
  member  = google_service_account.build.member

  condition {
    title       = "this-module-sources-only"
    description = "This module's source bucket, and this module's functions' objects in gcf-v2-sources."
    expression = join(" || ", concat(
      [
        "resource.name == \"projects/_/buckets/${local.source_bucket_name}\"",
        "resource.name.startsWith(\"projects/_/buckets/${local.source_bucket_name}/objects/\")",
        "resource.name == \"projects/_/buckets/${local.gcf_source_bucket}\"",
      ],
      [
        for name in values(local.function_names) :
        "resource.name.startsWith(\"projects/_/buckets/${local.gcf_source_bucket}/objects/${name}/\")"
      ],
    ))
  }
}

# The rotation sweep finds the managed secrets by listing the project's secrets filtered on our
# label (instantly_guard.rotation.engine: Rotator.sweep). `secretmanager.secrets.list` is checked
# on the project only, so this one permission is granted there, alone, in a role of its own. It
# shows secret names, labels and annotations; values stay behind versions.access, which the
# rotation function holds on the managed secrets only (secrets.tf).
resource "google_project_iam_custom_role" "secret_lister" {
  project     = var.project_id
  role_id     = "${replace(var.name_prefix, "-", "_")}_secret_lister"
  title       = "instantly-guard secret lister"
  description = "List Secret Manager secrets (metadata only, no values) to find the managed ones."
  permissions = ["secretmanager.secrets.list"]

  depends_on = [time_sleep.services_enabled]
}

resource "google_project_iam_member" "key_rotation_secret_lister" {
  project = var.project_id
  role    = google_project_iam_custom_role.secret_lister.id
  member  = google_service_account.key_rotation.member
}
