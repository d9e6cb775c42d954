# Terraform >= 1.11: write-only arguments (secret_data_wo) and ephemeral input variables, so that
# the first key values reach Secret Manager without ever being written to plan or state.
# Commit the .terraform.lock.hcl that `terraform init` writes: it pins the exact provider builds.
terraform {
  required_version = ">= 1.11.0, < 2.0.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 7.0"
    }
    # google_project_service_identity (the Secret Manager and Pub/Sub service agents) is beta-only.
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 7.0"
    }
    # Not used by a resource: the bundles come from `make bundle`, which pins requirements.txt to
    # uv.lock and writes byte-reproducible zips (an archive_file of functions/ could do neither).
    # Pinned so that any archive_file added later is just as reproducible.
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.7"
    }
    # time_sleep: the first apply's waits for Google's eventual consistency (docs/deploy.md,
    # "First apply: ordering and waits").
    time = {
      source  = "hashicorp/time"
      version = "~> 0.13"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region

  default_labels = local.labels
}

provider "google-beta" {
  project = var.project_id
  region  = var.region

  default_labels = local.labels
}
