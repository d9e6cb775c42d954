# Every option on, layered on terraform.tfvars.example: resume, a CIDR allow list, notification
# channels, a locked log bucket, extra managed keys, another runtime (tests/terraform/test_plan.py).
python_runtime          = "python313"
log_level               = "DEBUG"
deletion_protection     = false
audit_log_bucket_locked = true
log_bucket_location     = "europe-west1"
notification_channels = [
  "projects/my-project-id/notificationChannels/1234567890", # pragma: allowlist secret
  "projects/my-project-id/notificationChannels/2345678901", # pragma: allowlist secret
]

managed_keys = {
  "audit-exporter" = {
    scopes = ["audit_logs:read"]
  }
  "webhook-manager" = {
    scopes = ["webhooks:read", "webhooks:update"]
    grace  = "1h"
  }
  "webhook-reconciler" = {
    scopes = ["webhook_events:read", "webhooks:update"]
  }
  "inventory-reader" = {
    scopes = ["api_keys:read", "block_list_entries:read", "workspace_members:read", "workspaces:read"]
  }
  "crm-sync" = {
    scopes          = ["leads:create", "leads:read", "lead_lists:read"]
    rotation_period = "604800s"
    readers         = ["serviceAccount:crm-sync@my-project-id.iam.gserviceaccount.com"]
  }
  "analytics-reader" = {
    scopes          = ["analytics:read", "campaigns:read"]
    rotation_period = "86400s"
    grace           = "2h"
    retention       = "1d"
    key_name_prefix = "guard-analytics"
    readers = [
      "group:analytics@example.com",
      "serviceAccount:bi@my-project-id.iam.gserviceaccount.com",
    ]
  }
}

webhook = {
  instantly_webhook_ids = ["0190c1a2-1111-7222-8333-444455556666", "0190c1a2-2222-7222-8333-444455556666"]
  allowed_cidrs         = ["203.0.113.0/24", "198.51.100.7/32"]
  max_instances         = 20
  concurrency           = 32
}

reconcile = {
  resume       = true
  webhook_urls = ["https://receiver.example.com/hook"]
  alert_runs   = 5
}

apply_waits = { services = "90s", iam = "180s", log_metrics = "900s" }

inventory = {
  schedule        = "*/30 * * * *"
  time_zone       = "Europe/Paris"
  rate_share      = 0.05
  timeout_seconds = 300
}
