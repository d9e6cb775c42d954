# Managed secrets: the admin key, the webhook secret and every least-privilege key.
#
# Secret Manager only notifies: at next_rotation_time it publishes SECRET_ROTATE to the secret's
# topic, and the rotation function does the work. The service then moves next_rotation_time
# forward by rotation_period, hence ignore_changes on it. Our label marks the secret as managed;
# the annotations are the rotation function's instructions (kind, scopes, key-name prefix, grace,
# admin secret, webhook IDs).

# IAM is eventually consistent: Google documents that a grant usually takes effect within two
# minutes and can take seven or more. Secret Manager checks the publisher grant when a secret with
# a topic is created, so the first secret waits this long after the grant.
resource "time_sleep" "secret_publisher_grant" {
  create_duration = var.apply_waits.iam

  triggers = {
    topic   = google_pubsub_topic.rotation.id
    members = join(",", [for grant in google_pubsub_topic_iam_member.rotation_publishers : grant.member])
  }
}

resource "google_secret_manager_secret" "managed" {
  for_each = local.secrets

  secret_id = each.value.secret_id
  labels    = merge(local.labels, local.managed_label, { (local.kind_label) = each.value.kind })
  # Non-authoritative in the google provider (>= 5): Terraform manages only the keys it declares
  # (effective_annotations holds the rest), so the rotation function's own state annotations
  # (phase, lease, revocations, ...) survive every apply. The two key sets are disjoint by test.
  annotations = local.secret_annotations[each.key]

  replication {
    auto {}
  }

  rotation {
    rotation_period    = each.value.rotation_period
    next_rotation_time = timeadd(plantimestamp(), each.value.first_rotation)
  }

  topics {
    name = google_pubsub_topic.rotation.id
  }

  deletion_protection = var.deletion_protection

  lifecycle {
    ignore_changes = [
      # Secret Manager advances it after every notification; plantimestamp() changes every plan.
      rotation[0].next_rotation_time,
      # The aliases (current, pending, previous) belong to the rotation function: consumers read
      # `current`, so Terraform must never reset them.
      version_aliases,
      # The webhook list belongs to `instantly-guard webhooks connect` (docs/deploy.md,
      # "Connecting Instantly"): webhook.instantly_webhook_ids only seeds it when the secret
      # is created, and a later plan never reverts what the command recorded.
      annotations["instantly-guard.webhook-ids"],
    ]
  }

  depends_on = [
    # Secret Manager checks that its service agent may publish to the topic when the secret is
    # created: the grant has to exist first, and to have propagated (the wait below).
    google_pubsub_topic_iam_member.rotation_publishers,
    time_sleep.secret_publisher_grant,
    # The first SECRET_ROTATE must find a subscriber: a message published to a topic without
    # subscriptions is dropped.
    google_pubsub_subscription.rotation_push,
  ]
}

# First values, write-only: sent to Secret Manager, never stored in plan or state. One entry per
# name in var.bootstrap_secret_versions (typically "admin" for the hand-made admin key, and
# "webhook-secret" so that the receiver has a secret to mount at its first deployment). Once the
# rotation function has taken a secret over, drop its entry: with deletion_policy ABANDON the
# version is left exactly as the rotation function left it.
#
# The version is keyed by bootstrap_secret_versions, which holds no value; the value is read only
# when a version is created (an entry added, or its number bumped: secret_data_wo_version). For
# the weeks between the seeding apply and the first rotation, TF_VAR_bootstrap_secret_values is
# unset (README) while the entries stay, and the provider still requires exactly one of
# secret_data / secret_data_wo on every plan: an absent value reads as local.bootstrap_value_absent,
# which the provider ignores while the version number stands, and which Secret Manager refuses
# should it ever be sent (larger than a version's 64 KiB payload), so a forgotten value fails the
# apply instead of seeding a known string. Values supplied at all must cover every entry (the
# variable's validation).
locals {
  # Secret Manager's limit on one version's payload (quotas: 64 KiB).
  secret_payload_limit   = 65536
  bootstrap_value_absent = format("%-${local.secret_payload_limit + 1}s", "instantly-guard: no bootstrap value supplied for this secret (TF_VAR_bootstrap_secret_values); Secret Manager refuses this oversized stand-in.")
}

resource "google_secret_manager_secret_version" "bootstrap" {
  for_each = var.bootstrap_secret_versions

  secret                 = google_secret_manager_secret.managed[each.key].id
  secret_data_wo         = lookup(var.bootstrap_secret_values, each.key, local.bootstrap_value_absent)
  secret_data_wo_version = each.value
  deletion_policy        = "ABANDON"

  lifecycle {
    # The rotation function disables superseded versions; that is not drift to undo.
    ignore_changes = [enabled]
  }
}

# --- Who may touch which secret ---------------------------------------------------------------

# The rotation function: the custom rotator role, on each managed secret and on nothing else.
resource "google_secret_manager_secret_iam_member" "rotator" {
  for_each = local.secrets

  secret_id = google_secret_manager_secret.managed[each.key].id
  role      = google_project_iam_custom_role.secret_rotator.id
  member    = google_service_account.key_rotation.member
}

# The webhook receiver reads the webhook secret (its volume mount), nothing else.
resource "google_secret_manager_secret_iam_member" "webhook_reader" {
  secret_id = google_secret_manager_secret.managed["webhook-secret"].id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.webhook.member
}

# The audit exporter reads its own key (through the alias `current`), nothing else.
resource "google_secret_manager_secret_iam_member" "audit_export_reader" {
  secret_id = google_secret_manager_secret.managed[var.audit_export.api_key].id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.audit_export.member
}

# Other consumers of a managed key, as declared in var.managed_keys[*].readers.
resource "google_secret_manager_secret_iam_member" "readers" {
  for_each = merge({}, [
    for name, key in var.managed_keys : {
      for member in key.readers : "${name}/${member}" => { secret = name, member = member }
    }
  ]...)

  secret_id = google_secret_manager_secret.managed[each.value.secret].id
  role      = "roles/secretmanager.secretAccessor"
  member    = each.value.member
}
