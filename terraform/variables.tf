# ---------------------------------------------------------------------------------------------
# Where
# ---------------------------------------------------------------------------------------------

variable "project_id" {
  description = "Google Cloud project that receives everything this module creates."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID (6-30 lower-case letters, digits, hyphens), not a number or name."
  }
}

variable "region" {
  description = "Region of the functions, buckets, Artifact Registry repository and scheduler jobs."
  type        = string
  default     = "europe-west1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a Google Cloud region such as europe-west1 or us-central1."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name (functions, topics, secrets, service accounts). Keep it short: service account IDs are limited to 30 characters."
  type        = string
  default     = "instantly-guard"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,14}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-16 lower-case letters, digits or hyphens, starting with a letter."
  }
}

variable "labels" {
  description = "Labels added to every resource that takes labels."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([
      for k, v in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", k)) && can(regex("^[a-z0-9_-]{0,63}$", v))
    ])
    error_message = "Label keys must start with a lower-case letter; keys and values use lower-case letters, digits, _ and - (63 characters at most)."
  }
}

variable "apply_waits" {
  description = "Pauses for Google's eventual consistency, in seconds with an s suffix: after enabling APIs or requesting service agents (services), after IAM grants that the first secret and the function deployments are checked against (iam; Google: usually under two minutes, up to seven), and between creating a log-based metric and the alert policies on it (log_metrics; Cloud Monitoring may not find a new metric for up to ten minutes). Each runs once, when what it follows is created or re-created, so they cost only the first apply; the log_metrics wait overlaps the function builds."
  type = object({
    services    = optional(string, "60s")
    iam         = optional(string, "120s")
    log_metrics = optional(string, "600s")
  })
  default = {}

  validation {
    condition     = alltrue([for d in values(var.apply_waits) : can(regex("^[0-9]+s$", d)) && try(tonumber(trimsuffix(d, "s")) <= 1800, false)])
    error_message = "apply_waits values must be seconds with an s suffix (e.g. 120s), at most 1800s."
  }
}

variable "deletion_protection" {
  description = "Protect the secrets and buckets from `terraform destroy`. Turn off only to tear down a test deployment."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------------------------------------
# What gets deployed
# ---------------------------------------------------------------------------------------------

variable "bundle_dir" {
  description = "Directory holding webhook.zip, audit_export.zip and key_rotation.zip from `make bundle`. Default: ../dist next to this module."
  type        = string
  default     = null
}

variable "python_runtime" {
  description = "Cloud Run functions runtime for all three functions."
  type        = string
  default     = "python311"

  validation {
    condition     = can(regex("^python3[0-9]{2}$", var.python_runtime))
    error_message = "python_runtime must be a Python runtime ID such as python311 or python312."
  }
}

variable "instantly_api_base" {
  description = "Instantly API v2 base URL (INSTANTLY_API_BASE)."
  type        = string
  default     = "https://api.instantly.ai/api/v2"

  validation {
    condition     = startswith(var.instantly_api_base, "https://")
    error_message = "instantly_api_base must be an https:// URL: API keys must never travel in clear text."
  }
}

variable "log_level" {
  description = "LOG_LEVEL of the functions."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING or ERROR."
  }
}

# ---------------------------------------------------------------------------------------------
# Keys and secrets
# ---------------------------------------------------------------------------------------------

variable "admin_key" {
  description = "The admin secret: holds the only key that can create and delete Instantly keys (api_keys:create, api_keys:read, api_keys:delete). The team creates that key by hand once; the rotation function rotates it like any other."
  type = object({
    rotation_period = optional(string, "2592000s")
    grace           = optional(string, "1h")
    retention       = optional(string, "7d")
    key_name_prefix = optional(string, "instantly-guard")
  })
  default = {}

  validation {
    condition     = try(tonumber(trimsuffix(var.admin_key.rotation_period, "s")) >= 3600 && can(regex("^[0-9]+s$", var.admin_key.rotation_period)), false)
    error_message = "admin_key.rotation_period must be seconds with an s suffix, at least 3600s (one hour, the Secret Manager minimum)."
  }

  validation {
    condition     = can(regex("^[0-9]+[smhd]$", var.admin_key.grace)) && can(regex("^[0-9]+[smhd]$", var.admin_key.retention))
    error_message = "admin_key.grace and admin_key.retention must be durations such as 30m, 1h or 7d."
  }
}

variable "managed_keys" {
  description = "Least-privilege Instantly keys that instantly-guard mints, stores and rotates: name -> scopes, rotation period (seconds, e.g. 2592000s = 30 days), grace before the old key is revoked, retention of a disabled version before it is destroyed, key-name prefix, and who else may read the secret (IAM members). Each is provisioned by its first rotation, minutes after apply."
  type = map(object({
    scopes          = list(string)
    rotation_period = optional(string, "2592000s")
    grace           = optional(string, "24h")
    retention       = optional(string, "7d")
    key_name_prefix = optional(string, "instantly-guard")
    readers         = optional(list(string), [])
  }))
  default = {
    "audit-exporter" = {
      scopes = ["audit_logs:read"]
    }
    "webhook-manager" = {
      scopes = ["webhooks:read", "webhooks:update"]
      grace  = "1h"
    }
    "webhook-reconciler" = {
      scopes = ["webhook_events:read"]
    }
    "inventory-reader" = {
      scopes = ["api_keys:read", "block_list_entries:read", "workspace_members:read", "workspaces:read"]
    }
  }

  validation {
    condition     = alltrue([for name in keys(var.managed_keys) : can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", name))])
    error_message = "managed_keys names must be 3-32 lower-case letters, digits or hyphens."
  }

  validation {
    condition     = length(setintersection(keys(var.managed_keys), ["admin", "admin-key", "webhook-secret"])) == 0
    error_message = "\"admin\", \"admin-key\" and \"webhook-secret\" are reserved: the admin key and the webhook secret use those names."
  }

  validation {
    condition = alltrue(flatten([
      for key in values(var.managed_keys) : [
        for scope in key.scopes : can(regex("^[a-z_]+:(all|create|read|update|delete)$", scope))
      ]
    ]))
    error_message = "Scopes are resource:action with action one of all, create, read, update, delete (e.g. audit_logs:read)."
  }

  validation {
    condition     = alltrue([for key in values(var.managed_keys) : length(key.scopes) > 0 && !contains(key.scopes, "all:all")])
    error_message = "Every managed key needs at least one scope, and never all:all: that is what least privilege rules out."
  }

  validation {
    condition = alltrue([
      for key in values(var.managed_keys) :
      can(regex("^[0-9]+s$", key.rotation_period)) && can(regex("^[0-9]+[smhd]$", key.grace)) && can(regex("^[0-9]+[smhd]$", key.retention))
    ])
    error_message = "rotation_period must be seconds with an s suffix (e.g. 2592000s); grace and retention durations such as 1h or 7d."
  }

  validation {
    condition = alltrue([
      for key in values(var.managed_keys) : try(tonumber(trimsuffix(key.rotation_period, "s")) >= 3600, false)
    ])
    error_message = "rotation_period must be at least 3600s: Secret Manager's minimum rotation period is one hour."
  }

  validation {
    condition = alltrue(flatten([
      for key in values(var.managed_keys) : [
        for member in key.readers : can(regex("^(serviceAccount|group|user):[^@\\s]+@[^@\\s]+$", member))
      ]
    ]))
    error_message = "readers are IAM members such as serviceAccount:crm@p.iam.gserviceaccount.com; allUsers and allAuthenticatedUsers are refused."
  }
}

variable "first_rotation_delay" {
  description = "How long after `terraform plan` a new managed key or the webhook secret gets its first rotation (seconds). It must still lie in the future when the secret is created, after the functions have been built: keep it well above the apply's duration."
  type        = string
  default     = "1800s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.first_rotation_delay)) && try(tonumber(trimsuffix(var.first_rotation_delay, "s")) >= 900, false)
    error_message = "first_rotation_delay must be at least 900s, with an s suffix."
  }
}

variable "bootstrap_secret_versions" {
  description = "Secrets that Terraform seeds with a value, write-only: secret name (\"admin\", \"webhook-secret\" or a managed key) -> secret_data_wo_version. Supply the values in bootstrap_secret_values. Bump a number to push a new value. Remove an entry once the rotation function owns that secret: Terraform then forgets the version (deletion_policy ABANDON) without disabling or re-adding it."
  type        = map(number)
  default     = {}

  validation {
    condition     = alltrue([for v in values(var.bootstrap_secret_versions) : v >= 1 && floor(v) == v])
    error_message = "bootstrap_secret_versions values are positive whole numbers."
  }

  validation {
    condition     = length(setsubtract(keys(var.bootstrap_secret_versions), concat(["admin", "webhook-secret"], keys(var.managed_keys)))) == 0
    error_message = "bootstrap_secret_versions keys must be \"admin\", \"webhook-secret\" or a name in managed_keys."
  }
}

variable "bootstrap_secret_values" {
  description = "The values for bootstrap_secret_versions, same keys, for the apply that seeds or replaces them; unset afterwards (the entries in bootstrap_secret_versions stay until the first rotation, and plans stay clean). Ephemeral and write-only: never in plan or state. Pass them through the environment (TF_VAR_bootstrap_secret_values='{\"admin\":\"...\"}'), never in a tfvars file."
  type        = map(string)
  default     = {}
  sensitive   = true
  ephemeral   = true

  validation {
    # All or nothing: a seeding apply with one value forgotten would try to add the stand-in.
    condition     = length(var.bootstrap_secret_values) == 0 || length(setsubtract(keys(var.bootstrap_secret_versions), keys(var.bootstrap_secret_values))) + length(setsubtract(keys(var.bootstrap_secret_values), keys(var.bootstrap_secret_versions))) == 0
    error_message = "bootstrap_secret_values must be unset, or hold a value for exactly the names in bootstrap_secret_versions."
  }

  validation {
    condition     = alltrue([for v in values(var.bootstrap_secret_values) : length(v) > 0 && length(v) <= 65536])
    error_message = "Each bootstrap secret value must be 1 to 65536 characters (Secret Manager stores at most 64 KiB per version)."
  }
}

# ---------------------------------------------------------------------------------------------
# Webhook receiver
# ---------------------------------------------------------------------------------------------

variable "webhook" {
  description = "Webhook receiver: the shared-secret header Instantly sends, optionally the Instantly webhook IDs that carry it at creation only (afterwards `instantly-guard webhooks connect` owns that list; each rotation of the webhook secret updates their header), which managed key may update those webhooks, the secret's rotation period and grace, optional source CIDRs, body limit and instance limits."
  type = object({
    secret_header         = optional(string, "x-webhook-secret")
    instantly_webhook_ids = optional(list(string), [])
    api_key               = optional(string, "webhook-manager")
    rotation_period       = optional(string, "7776000s")
    grace                 = optional(string, "1h")
    retention             = optional(string, "7d")
    allowed_cidrs         = optional(list(string), [])
    max_body_bytes        = optional(number, 262144)
    max_instances         = optional(number, 10)
    concurrency           = optional(number, 16)
    events_retention      = optional(string, "604800s")
  })
  default = {}

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{2,62}$", var.webhook.secret_header))
    error_message = "webhook.secret_header must be a lower-case HTTP header name."
  }

  validation {
    condition = anytrue([
      for scope in try(var.managed_keys[var.webhook.api_key].scopes, []) :
      contains(["webhooks:update", "webhooks:all", "all:update"], scope)
    ])
    error_message = "webhook.api_key must name a managed key with webhooks:update: rotating the webhook secret updates the header on Instantly's webhooks."
  }

  validation {
    # Kept on the topic and on the pull subscription, whose retention is at most 7 days.
    condition     = can(regex("^[0-9]+s$", var.webhook.events_retention)) && try(tonumber(trimsuffix(var.webhook.events_retention, "s")) >= 600 && tonumber(trimsuffix(var.webhook.events_retention, "s")) <= 604800, false)
    error_message = "webhook.events_retention must be between 600s and 604800s (7 days), with an s suffix."
  }

  validation {
    condition     = alltrue([for cidr in var.webhook.allowed_cidrs : can(cidrhost(cidr, 0))])
    error_message = "webhook.allowed_cidrs must be CIDR blocks such as 203.0.113.0/24."
  }

  validation {
    # The receiver's own maximum: a larger body could exceed Pub/Sub's 10 MB message limit once
    # canonicalised, so the receiver refuses the setting (and would answer 503 to everything).
    condition     = var.webhook.max_body_bytes >= 1024 && var.webhook.max_body_bytes <= 1048576
    error_message = "webhook.max_body_bytes must be between 1 KiB and 1 MiB."
  }

  validation {
    condition     = var.webhook.max_instances >= 1 && var.webhook.max_instances <= 100 && var.webhook.concurrency >= 1 && var.webhook.concurrency <= 80
    error_message = "webhook.max_instances must be 1-100 and webhook.concurrency 1-80."
  }

  validation {
    condition     = can(regex("^[0-9]+s$", var.webhook.rotation_period)) && try(tonumber(trimsuffix(var.webhook.rotation_period, "s")) >= 3600, false) && can(regex("^[0-9]+[smhd]$", var.webhook.grace)) && can(regex("^[0-9]+[smhd]$", var.webhook.retention))
    error_message = "webhook.rotation_period must be at least 3600s (with an s suffix); webhook.grace and webhook.retention durations such as 1h or 7d."
  }
}

# ---------------------------------------------------------------------------------------------
# Audit export
# ---------------------------------------------------------------------------------------------

variable "audit_export" {
  description = "Audit export: cron schedule and time zone, first-run look-back, share of the workspace rate limit, target log name, which managed key it uses, and the function timeout (seconds)."
  type = object({
    schedule        = optional(string, "*/5 * * * *")
    time_zone       = optional(string, "Etc/UTC")
    lookback        = optional(string, "7d")
    rate_share      = optional(number, 0.25)
    log_name        = optional(string, "instantly-audit")
    api_key         = optional(string, "audit-exporter")
    timeout_seconds = optional(number, 540)
  })
  default = {}

  validation {
    condition     = length(split(" ", trimspace(var.audit_export.schedule))) == 5
    error_message = "audit_export.schedule must be a five-field cron expression such as */5 * * * *."
  }

  validation {
    condition     = contains(keys(var.managed_keys), var.audit_export.api_key)
    error_message = "audit_export.api_key must name a key in managed_keys (by default audit-exporter, scope audit_logs:read)."
  }

  validation {
    condition     = can(regex("^[0-9]+[mhd]$", var.audit_export.lookback))
    error_message = "audit_export.lookback must be a duration such as 12h or 7d."
  }

  validation {
    condition     = var.audit_export.rate_share > 0 && var.audit_export.rate_share <= 1
    error_message = "audit_export.rate_share must be in (0, 1]."
  }

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{1,100}$", var.audit_export.log_name))
    error_message = "audit_export.log_name must be a plain log ID (letters, digits, _ . -)."
  }

  validation {
    # Cloud Scheduler's attempt deadline for HTTP targets is at most 30 minutes; keep 30 s spare.
    condition     = var.audit_export.timeout_seconds >= 60 && var.audit_export.timeout_seconds <= 1770
    error_message = "audit_export.timeout_seconds must be between 60 and 1770."
  }
}

# ---------------------------------------------------------------------------------------------
# Rotation
# ---------------------------------------------------------------------------------------------

variable "rotation" {
  description = "Rotation function: sweep schedule (finishes revocations whose grace has passed), delivery attempts before a message goes to the dead-letter topic, retry backoff, and instance limit."
  type = object({
    sweep_schedule        = optional(string, "*/15 * * * *")
    time_zone             = optional(string, "Etc/UTC")
    max_delivery_attempts = optional(number, 10)
    minimum_backoff       = optional(string, "10s")
    maximum_backoff       = optional(string, "600s")
    max_instances         = optional(number, 3)
    timeout_seconds       = optional(number, 540)
  })
  default = {}

  validation {
    condition     = length(split(" ", trimspace(var.rotation.sweep_schedule))) == 5
    error_message = "rotation.sweep_schedule must be a five-field cron expression."
  }

  validation {
    condition     = var.rotation.max_delivery_attempts >= 5 && var.rotation.max_delivery_attempts <= 100
    error_message = "rotation.max_delivery_attempts must be 5-100 (the Pub/Sub dead-letter policy bounds)."
  }

  validation {
    # Pub/Sub waits at most 600 s (the push subscription's ack deadline) for an answer; event
    # functions are capped at 540 s.
    condition     = var.rotation.timeout_seconds >= 60 && var.rotation.timeout_seconds <= 540
    error_message = "rotation.timeout_seconds must be between 60 and 540."
  }

  validation {
    condition     = var.rotation.max_instances >= 1 && var.rotation.max_instances <= 10
    error_message = "rotation.max_instances must be 1-10."
  }
}

# ---------------------------------------------------------------------------------------------
# Logging and alerting
# ---------------------------------------------------------------------------------------------

variable "audit_log_retention_days" {
  description = "Retention of the log bucket that keeps the exported Instantly audit log."
  type        = number
  default     = 400

  validation {
    condition     = var.audit_log_retention_days >= 1 && var.audit_log_retention_days <= 3650
    error_message = "audit_log_retention_days must be between 1 and 3650."
  }
}

variable "audit_log_bucket_locked" {
  description = "Lock the audit log bucket's retention (irreversible: the bucket can then be neither shortened nor deleted before entries expire). For compliance regimes that demand it."
  type        = bool
  default     = false
}

variable "log_bucket_location" {
  description = "Location of the audit log bucket: \"global\" or a region."
  type        = string
  default     = "global"
}

variable "detections" {
  description = "The detection rules the audit export runs on every batch (the inventory runs the inventory.* ones on its change entries, with the same findings log and allowed hosts): the findings log's name, allowed webhook hosts (fnmatch patterns; the webhook-host rules stay silent without them), failed MFA challenges per burst, leads one user may export per burst, and hand-made keys trusted to create and delete keys before their first rotation (ids or names)."
  type = object({
    findings_log          = optional(string, "instantly-guard-findings")
    webhook_allowed_hosts = optional(list(string), [])
    mfa_failure_threshold = optional(number, 3)
    lead_export_threshold = optional(number, 1000)
    rotation_keys         = optional(list(string), [])
  })
  default = {}

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{1,100}$", var.detections.findings_log))
    error_message = "detections.findings_log must be a plain log ID (letters, digits, _ . -)."
  }

  validation {
    condition     = var.detections.mfa_failure_threshold >= 1 && var.detections.lead_export_threshold >= 1
    error_message = "detections.mfa_failure_threshold and lead_export_threshold must be at least 1."
  }
}

variable "alerts" {
  description = "Alert thresholds: finding severities that page; how long without a successful export before alerting (absence, e.g. 3600s); export lag in seconds; days since a managed secret last rotated; receiver 401s and 503s per 5 minutes above which to alert."
  type = object({
    finding_severities    = optional(list(string), ["critical", "high", "medium"])
    export_absent_after   = optional(string, "3600s")
    export_lag_seconds    = optional(number, 7200)
    rotation_overdue_days = optional(number, 35)
    webhook_401_per_5m    = optional(number, 20)
    webhook_503_per_5m    = optional(number, 0)
  })
  default = {}

  validation {
    condition     = alltrue([for s in var.alerts.finding_severities : contains(["critical", "high", "medium", "low", "info"], s)])
    error_message = "alerts.finding_severities may hold critical, high, medium, low and info."
  }

  validation {
    # Cloud Monitoring's absence conditions take a duration of 2 minutes to 23.5 hours.
    condition     = can(regex("^[0-9]+s$", var.alerts.export_absent_after)) && try(tonumber(trimsuffix(var.alerts.export_absent_after, "s")) >= 120 && tonumber(trimsuffix(var.alerts.export_absent_after, "s")) <= 84600, false)
    error_message = "alerts.export_absent_after must be seconds with an s suffix, from 120s to 84600s."
  }

  validation {
    condition     = var.alerts.export_lag_seconds > 0 && var.alerts.rotation_overdue_days > 0 && var.alerts.webhook_401_per_5m >= 0 && var.alerts.webhook_503_per_5m >= 0
    error_message = "alerts thresholds must be positive (the per-5-minute counts may be 0)."
  }
}

variable "notification_channels" {
  description = "Cloud Monitoring notification channel IDs (projects/PROJECT/notificationChannels/ID) that receive every alert."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.notification_channels : can(regex("^projects/[^/]+/notificationChannels/[0-9]+$", c))])
    error_message = "notification_channels must be full IDs: projects/PROJECT/notificationChannels/NUMBER."
  }
}
