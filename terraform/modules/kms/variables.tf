variable "name" {
  description = "Name prefix of the deployment; the key alias is alias/<name>."
  type        = string
}

variable "log_group_prefix" {
  description = "CloudWatch Logs group-name prefix (e.g. /s3ecephys/) whose groups may encrypt with the key."
  type        = string

  validation {
    condition     = startswith(var.log_group_prefix, "/") && endswith(var.log_group_prefix, "/")
    error_message = "log_group_prefix must start and end with '/'."
  }
}

variable "deletion_window_in_days" {
  description = "Waiting period before a destroyed key is deleted (7-30 days)."
  type        = number
  default     = 30

  validation {
    condition     = var.deletion_window_in_days >= 7 && var.deletion_window_in_days <= 30
    error_message = "deletion_window_in_days must be between 7 and 30."
  }
}
