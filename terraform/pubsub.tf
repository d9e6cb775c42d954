# Pub/Sub: accepted webhook events out, rotation events in, rotation failures parked.
#
# Rotation delivery: the rotation function is fed by a push subscription that this module owns,
# not by a Cloud Functions event trigger. An event trigger's subscription is created and owned by
# Eventarc; its name is output-only, so Terraform cannot give it a dead-letter policy (it can
# only be patched by hand after each deployment). Owning the subscription gives, declaratively:
# retries with exponential backoff, a dead-letter topic after max_delivery_attempts, an OIDC
# identity that may invoke this one function, and the ack deadline matched to the function's
# timeout. The function is an HTTP one and reads every push shape itself, an attribute-only
# message (TOPIC_CONFIGURED, no `data`) included.
# See docs/deploy.md, "Rotation events and dead letters".

# --- Service agents ----------------------------------------------------------------------------

# Secret Manager publishes rotation notifications as its service agent, which exists only once
# the API has been used or the identity requested; request it so that it can be granted below.
resource "google_project_service_identity" "secretmanager" {
  provider = google-beta
  project  = var.project_id
  service  = "secretmanager.googleapis.com"

  depends_on = [time_sleep.services_enabled]
}

# Pub/Sub forwards undeliverable messages to the dead-letter topic as its service agent.
resource "google_project_service_identity" "pubsub" {
  provider = google-beta
  project  = var.project_id
  service  = "pubsub.googleapis.com"

  depends_on = [time_sleep.services_enabled]
}

# A service agent requested a moment ago may not be known to IAM yet ("service account does not
# exist" on the first grant): grants to the two agents wait for this.
resource "time_sleep" "service_agents" {
  create_duration = var.apply_waits.services

  triggers = {
    secretmanager = google_project_service_identity.secretmanager.email
    pubsub        = google_project_service_identity.pubsub.email
  }
}

# --- Webhook events ----------------------------------------------------------------------------

resource "google_pubsub_topic" "webhook_events" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption at rest, access limited by IAM (only the receiver publishes). Events carry lead data but never a secret; a CMEK needs a KMS key and agent grants, an organisation-level decision this module does not impose.
  name                       = "${var.name_prefix}-webhook-events"
  message_retention_duration = var.webhook.events_retention

  depends_on = [time_sleep.services_enabled]
}

resource "google_pubsub_topic_iam_member" "webhook_events_publisher" {
  topic  = google_pubsub_topic.webhook_events.id
  role   = "roles/pubsub.publisher"
  member = google_service_account.webhook.member
}

# A pull subscription for downstream consumers (grant them roles/pubsub.subscriber on it). Events
# wait here for up to events_retention; nothing acknowledged by the receiver is lost meanwhile.
resource "google_pubsub_subscription" "webhook_events" {
  name                       = "${var.name_prefix}-webhook-events"
  topic                      = google_pubsub_topic.webhook_events.id
  ack_deadline_seconds       = 60
  message_retention_duration = var.webhook.events_retention

  expiration_policy {
    ttl = "" # never expires, even while no consumer is attached
  }
}

# --- Rotation events ---------------------------------------------------------------------------

# Receives SECRET_ROTATE / SECRET_VERSION_ADD / TOPIC_CONFIGURED from Secret Manager and the
# scheduled sweep message from Cloud Scheduler.
resource "google_pubsub_topic" "rotation" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption at rest. Secret Manager notifications carry secret names and event types, never values; the sweep message carries nothing secret.
  name = "${var.name_prefix}-rotation-events"

  depends_on = [time_sleep.services_enabled]
}

# Whoever can publish here can ask for a rotation, so the topic's publishers are exactly the two
# senders: Secret Manager's agent and Cloud Scheduler's agent (the sweep job publishes as it).
# Within this module these two are the topic's only publishers (a test holds that). The
# providers' authoritative google_pubsub_topic_iam_binding/_policy would also strip a publisher
# added by hand, but the plan tests serve only the types vendored in
# spec/terraform-provider-schemas (no topic binding there), so the grants are members
# (`gcloud pubsub topics get-iam-policy` shows any other publisher). Project-level grants (Owner, Editor,
# roles/pubsub.publisher on the project) still reach the topic; the function checks every event
# (docs/rotation.md, "Forged events") and what an insider can still do is listed there.
resource "google_pubsub_topic_iam_member" "rotation_publishers" {
  for_each = {
    notifications = "serviceAccount:${google_project_service_identity.secretmanager.email}"
    sweep         = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-cloudscheduler.iam.gserviceaccount.com"
  }

  topic  = google_pubsub_topic.rotation.id
  role   = "roles/pubsub.publisher"
  member = each.value

  depends_on = [time_sleep.service_agents]
}

resource "google_pubsub_topic" "rotation_dead_letter" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption at rest. Dead-lettered messages are rotation notifications: secret names and event types, never values.
  name                       = "${var.name_prefix}-rotation-dead-letter"
  message_retention_duration = "604800s"

  depends_on = [time_sleep.services_enabled]
}

resource "google_pubsub_subscription" "rotation_push" {
  name  = "${var.name_prefix}-rotation-push"
  topic = google_pubsub_topic.rotation.id

  # Pub/Sub waits this long for the function's answer before it counts a failed attempt; the
  # function's own timeout (at most 540 s) stays below it, so a slow rotation is never
  # redelivered while it is still running.
  ack_deadline_seconds       = 600
  message_retention_duration = "604800s"

  push_config {
    # The run.app URL: pushes from Pub/Sub in the same project count as internal traffic, so the
    # function can keep ingress ALLOW_INTERNAL_ONLY.
    push_endpoint = google_cloudfunctions2_function.key_rotation.service_config[0].uri

    oidc_token {
      service_account_email = google_service_account.rotation_push.email
      audience              = google_cloudfunctions2_function.key_rotation.service_config[0].uri
    }
  }

  # Retries on: a failed rotation (non-2xx answer) is redelivered with exponential backoff ...
  retry_policy {
    minimum_backoff = var.rotation.minimum_backoff
    maximum_backoff = var.rotation.maximum_backoff
  }

  # ... and after max_delivery_attempts it is parked on the dead-letter topic and alerted on
  # (monitoring.tf), instead of being retried until the retention runs out.
  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.rotation_dead_letter.id
    max_delivery_attempts = var.rotation.max_delivery_attempts
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [
    google_pubsub_topic_iam_member.rotation_dead_letter_publisher,
    google_cloud_run_v2_service_iam_member.key_rotation_invoker,
  ]
}

# Dead lettering is done by the Pub/Sub service agent: it publishes to the dead-letter topic and
# acknowledges on the source subscription.
resource "google_pubsub_topic_iam_member" "rotation_dead_letter_publisher" {
  topic  = google_pubsub_topic.rotation_dead_letter.id
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${google_project_service_identity.pubsub.email}"

  depends_on = [time_sleep.service_agents]
}

resource "google_pubsub_subscription_iam_member" "rotation_push_dead_letter_subscriber" {
  subscription = google_pubsub_subscription.rotation_push.id
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:${google_project_service_identity.pubsub.email}"

  depends_on = [time_sleep.service_agents]
}

# Projects created before April 2021 need the Pub/Sub service agent to mint the push OIDC token
# for this account; granted on this one account, not the project.
resource "google_service_account_iam_member" "rotation_push_token_creator" {
  service_account_id = google_service_account.rotation_push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${google_project_service_identity.pubsub.email}"

  depends_on = [time_sleep.service_agents]
}

# Dead-lettered rotations stay here for a week, for an operator to inspect and replay
# (`gcloud pubsub subscriptions pull`, then `instantly-guard rotate NAME`).
resource "google_pubsub_subscription" "rotation_dead_letter" {
  name                       = "${var.name_prefix}-rotation-dead-letter"
  topic                      = google_pubsub_topic.rotation_dead_letter.id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"

  expiration_policy {
    ttl = ""
  }
}
