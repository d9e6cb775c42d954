output "webhook_url" {
  description = "Paste into Instantly as the webhook target URL (with the x-webhook-secret header that the rotation function keeps in step)."
  value       = google_cloudfunctions2_function.webhook.service_config[0].uri
}

output "functions" {
  description = "Function names, as shown by `gcloud functions describe`."
  value       = local.function_names
}

output "webhook_events_topic" {
  description = "Topic that receives every accepted webhook event."
  value       = google_pubsub_topic.webhook_events.id
}

output "webhook_events_subscription" {
  description = "Pull subscription for consumers of webhook events."
  value       = google_pubsub_subscription.webhook_events.id
}

output "rotation_topic" {
  description = "Topic Secret Manager notifies when a managed secret is due, and the sweep publishes to."
  value       = google_pubsub_topic.rotation.id
}

output "rotation_dead_letter_topic" {
  description = "Where rotation events go after the last delivery attempt."
  value       = google_pubsub_topic.rotation_dead_letter.id
}

output "rotation_dead_letter_subscription" {
  description = "Pull from here to inspect dead-lettered rotation events."
  value       = google_pubsub_subscription.rotation_dead_letter.id
}

output "checkpoint_bucket" {
  description = "Bucket holding the audit export checkpoint."
  value       = google_storage_bucket.checkpoints.name
}

output "source_bucket" {
  description = "Bucket holding the content-addressed function bundles."
  value       = google_storage_bucket.sources.name
}

output "audit_log_bucket" {
  description = "Log bucket that keeps the exported Instantly audit log."
  value       = google_logging_project_bucket_config.audit.id
}

output "secrets" {
  description = "Managed secrets by logical name (secret resource names; values are never output)."
  value       = { for name, secret in google_secret_manager_secret.managed : name => secret.id }
}

output "service_accounts" {
  description = "One identity per job."
  value = {
    webhook       = google_service_account.webhook.email
    audit_export  = google_service_account.audit_export.email
    key_rotation  = google_service_account.key_rotation.email
    scheduler     = google_service_account.scheduler.email
    rotation_push = google_service_account.rotation_push.email
    build         = google_service_account.build.email
  }
}
