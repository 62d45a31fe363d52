# The same settings as the parameters of infra/template.yaml.

variable "name" {
  description = "Prefix of every named resource (functions, topic, queues, log groups, alarms)."
  type        = string
  default     = "trailwatch"
  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9-]{0,40}$", var.name))
    error_message = "Use letters, digits and hyphens, starting with a letter, at most 41 characters."
  }
}

variable "scheduled_scan_zip" {
  description = "The scheduled-scan zip from `make build`."
  type        = string
  default     = null
}

variable "trail_change_zip" {
  description = "The trail-change zip from `make build`."
  type        = string
  default     = null
}

variable "account_worker_zip" {
  description = "The account-worker zip from `make build` (organisation mode only)."
  type        = string
  default     = null
}

variable "architecture" {
  description = "CPU of both functions: x86_64 (tested) or arm64 (build with `cargo lambda build --arm64`)."
  type        = string
  default     = "x86_64"
  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture is x86_64 or arm64."
  }
}

variable "regions" {
  description = "`all` enabled regions (account:ListRegions), or a comma-separated list."
  type        = string
  default     = "all"
  validation {
    condition     = can(regex("^(all|[a-z]{2}(-[a-z]+)+-[0-9](,[a-z]{2}(-[a-z]+)+-[0-9])*)$", var.regions))
    error_message = "regions is `all` or a comma-separated list such as us-east-1,eu-west-1."
  }
}

variable "max_delivery_age_hours" {
  description = "A trail, or a region of its log group, with no CloudWatch Logs delivery for longer than this fails (warns for a write-only trail)."
  type        = number
  default     = 4
  validation {
    condition     = var.max_delivery_age_hours >= 1 && var.max_delivery_age_hours <= 2160
    error_message = "max_delivery_age_hours is from 1 to 2160."
  }
}

variable "warnings" {
  description = "Report WARNING reasons (retention, tamper alarm, selectors, validation)."
  type        = bool
  default     = true
}

variable "security_hub" {
  description = "Import findings into Security Hub, which is also trailwatch's memory of past verdicts."
  type        = bool
  default     = true
}

variable "alert_email" {
  description = "Optional address to subscribe to the alerts topic (it must confirm by email)."
  type        = string
  default     = ""
}

variable "log_retention_days" {
  description = "How long the functions' own logs are kept."
  type        = number
  default     = 365
  validation {
    condition     = contains([30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch Logs retention of at least 30 days."
  }
}

variable "log_level" {
  description = "Application log level of both functions."
  type        = string
  default     = "INFO"
  validation {
    condition     = contains(["TRACE", "DEBUG", "INFO", "WARN", "ERROR"], var.log_level)
    error_message = "log_level is TRACE, DEBUG, INFO, WARN or ERROR."
  }
}

variable "tags" {
  description = "Tags for every resource that takes them."
  type        = map(string)
  default     = {}
}

variable "org_role_name" {
  description = "Organisation mode: the read role's name in every member account (modules of infra/member-account.yaml create it). Empty scans this account only."
  type        = string
  default     = ""
  validation {
    condition     = can(regex("^[\\w+=,.@-]{0,64}$", var.org_role_name))
    error_message = "An IAM role name: up to 64 of letters, digits and +=,.@_-."
  }
}

variable "org_fan_out_above" {
  description = "Organisation mode: above this many accounts, the hourly scan puts each account on the account queue for the account worker instead of scanning them itself. 0 always hands them out."
  type        = number
  default     = 500
  validation {
    condition     = var.org_fan_out_above >= 0 && floor(var.org_fan_out_above) == var.org_fan_out_above
    error_message = "A whole number of accounts, 0 or more."
  }
}

variable "org_worker_concurrency" {
  description = "Organisation mode: account-worker invocations at once (the SQS event source's maximum concurrency, and the function's reserved concurrency). Each takes up to 10 accounts."
  type        = number
  default     = 20
  validation {
    condition     = var.org_worker_concurrency >= 2 && var.org_worker_concurrency <= 1000
    error_message = "From 2 to 1000, the range of an SQS event source's maximum concurrency."
  }
}

variable "org_external_id" {
  description = "The external id the member accounts' read role asks for, if any."
  type        = string
  default     = ""
  sensitive   = true
}

variable "organization_id" {
  description = "Lets every account of this organisation (o-...) forward its trail changes to this region's default bus. Empty accepts no other account."
  type        = string
  default     = ""
  validation {
    condition     = can(regex("^(o-[a-z0-9]{10,32})?$", var.organization_id))
    error_message = "An organisation id such as o-abcdefghij, or empty."
  }
}

variable "auto_remediate" {
  description = "start-logging lets trail-change start again, within seconds, a trail that someone outside auto_remediate_exempt stopped; the page says so. Only then is cloudtrail:StartLogging granted."
  type        = string
  default     = "off"
  validation {
    condition     = contains(["off", "start-logging"], var.auto_remediate)
    error_message = "off or start-logging."
  }
}

variable "auto_remediate_exempt" {
  description = "Principals allowed to stop trails, as ARN patterns (* and ? wildcards), such as arn:aws:iam::*:role/SecurityAdmin. An assumed role matches by its role's ARN."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for p in var.auto_remediate_exempt : startswith(p, "arn:") && !strcontains(p, ",")])
    error_message = "Each entry is one ARN or ARN pattern."
  }
}
