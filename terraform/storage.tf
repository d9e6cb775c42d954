locals {
  # Bucket names are global: the project ID keeps them unique.
  source_bucket_name     = "${var.project_id}-${var.name_prefix}-sources"
  checkpoint_bucket_name = "${var.project_id}-${var.name_prefix}-checkpoints"
  # Where Cloud Functions copies the sources it builds (one bucket per project and region).
  gcf_source_bucket = "gcf-v2-sources-${data.google_project.this.number}-${var.region}"
}

# --- Function sources --------------------------------------------------------------------------

resource "google_storage_bucket" "sources" {
  #checkov:skip=CKV_GCP_62:Access logs would go to yet another bucket that would itself need access logs. Reads of these objects are recorded by Cloud Audit Logs (Data Access for Cloud Storage), which is where an organisation enables that trail.
  name                        = local.source_bucket_name
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = !var.deletion_protection

  versioning {
    enabled = true
  }

  # Objects are content-addressed and small; the current ones stay (a function may be rebuilt
  # from its object), overwritten generations go after a week.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 7
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [time_sleep.services_enabled]
}

# Named by content hash: the object (and so the function) changes exactly when the bundle's bytes
# do, and `make bundle` makes those bytes reproducible.
resource "google_storage_bucket_object" "bundle" {
  for_each = local.bundles

  bucket       = google_storage_bucket.sources.name
  name         = "${each.key}/${filesha256(each.value)}.zip"
  source       = each.value
  content_type = "application/zip"
}

# --- Image repository --------------------------------------------------------------------------

# The functions' images go to a repository this module owns, so that the build identity can be
# granted write access on it alone (Cloud Functions' default gcf-artifacts repository does not
# exist before the first deployment and could only be granted project-wide).
resource "google_artifact_registry_repository" "functions" {
  #checkov:skip=CKV_GCP_84:Google-managed encryption at rest. The images hold the function code and its public dependencies, no secret; a CMEK is an organisation policy decision this module does not impose.
  repository_id = "${var.name_prefix}-functions"
  location      = var.region
  format        = "DOCKER"
  description   = "Images built by Cloud Build for the instantly-guard functions."

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 10
    }
  }

  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "2592000s"
    }
  }

  depends_on = [time_sleep.services_enabled]
}

resource "google_artifact_registry_repository_iam_member" "build_writer" {
  repository = google_artifact_registry_repository.functions.id
  location   = google_artifact_registry_repository.functions.location
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.build.member
}

# --- Audit export checkpoint ---------------------------------------------------------------------

resource "google_storage_bucket" "checkpoints" {
  #checkov:skip=CKV_GCP_62:Access logs would go to yet another bucket that would itself need access logs. The only writer is the audit exporter, whose every run is logged; Cloud Audit Logs (Data Access) record object access where an organisation enables them.
  name                        = local.checkpoint_bucket_name
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = !var.deletion_protection

  # Every checkpoint write is a compare-and-swap on the object generation; versioning keeps the
  # previous checkpoints, so a bad one can be rolled back by hand.
  versioning {
    enabled = true
  }

  # One write every few minutes: keep a month of history, not years.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [time_sleep.services_enabled]
}

# Read and replace objects, nothing else: roles/storage.objectUser covers get/create/delete/list
# of objects (a generation-matched overwrite needs create and delete) without objectAdmin's object
# IAM permissions. Bucket-level, this bucket only, and held by the condition to the exporter's
# own prefix: each function's state object is writable by that function alone (the reconciler's
# grant, reconcile.tf, is held to its prefix the same way). docs/hardening.md says why one bucket
# with conditions rather than one bucket per function.
resource "google_storage_bucket_iam_member" "audit_export_checkpoints" {
  bucket = google_storage_bucket.checkpoints.name
  role   = "roles/storage.objectUser"
  member = google_service_account.audit_export.member

  condition {
    title       = "audit-export-checkpoint-only"
    description = "Objects under the audit exporter's prefix only."
    expression  = "resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.checkpoints.name}/objects/${dirname(local.audit_checkpoint_object)}/\")"
  }
}
