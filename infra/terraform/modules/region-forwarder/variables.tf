variable "central_region" {
  description = "The region of the trailwatch module, for example us-east-1."
  type        = string
  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.central_region))
    error_message = "central_region is a region name such as us-east-1."
  }
}

variable "name" {
  description = "Prefix of the rule, role and queue; IAM role names are global, so the region is appended."
  type        = string
  default     = "trailwatch-forwarder"
}

variable "tags" {
  description = "Tags for every resource that takes them."
  type        = map(string)
  default     = {}
}
