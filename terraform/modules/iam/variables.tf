variable "name" {
  description = "Name prefix; the results bucket is named <name>-results-<random suffix>."
  type        = string
}

variable "data_bucket" {
  description = "Public dataset bucket that may be read (s3:GetObject, s3:ListBucket)."
  type        = string
  default     = "allen-brain-observatory"
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the results bucket (SSE-KMS)."
  type        = string
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete the results bucket even when it still holds objects."
  type        = bool
  default     = false
}

variable "noncurrent_version_days" {
  description = "Days after which overwritten or deleted (noncurrent) result versions are removed."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_days >= 1
    error_message = "noncurrent_version_days must be at least 1."
  }
}

variable "access_log_bucket" {
  description = "Existing bucket that receives S3 server access logs of the results bucket; null disables access logging."
  type        = string
  default     = null
}
