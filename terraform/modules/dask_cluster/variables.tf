variable "name" {
  description = "Name prefix; the ECS cluster is <name>-dask and the Cloud Map namespace <name>.internal."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the cluster."
  type        = string
}

variable "vpc_cidr_block" {
  description = "CIDR block of the VPC (HTTPS egress to the interface endpoints)."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the Fargate tasks."
  type        = list(string)
}

variable "notebook_security_group_id" {
  description = "Security group of the notebook host: the only source admitted to ports 8786 and 8787 besides the cluster itself."
  type        = string
}

variable "s3_prefix_list_id" {
  description = "S3 managed prefix list (HTTPS egress to S3 through the gateway endpoint)."
  type        = string
}

variable "internet_egress" {
  description = "Allow HTTPS egress to 0.0.0.0/0 (needed when ECR and CloudWatch Logs are reached through NAT instead of interface endpoints)."
  type        = bool
}

variable "kms_key_arn" {
  description = "KMS key for the ECR repository and the log group."
  type        = string
}

variable "data_access_policy_arn" {
  description = "Managed policy attached to the task role (dataset read, results read/write)."
  type        = string
}

variable "log_group_prefix" {
  description = "Prefix of this deployment's CloudWatch log group names (starts and ends with '/')."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the Dask log group, in days."
  type        = number
}

variable "image" {
  description = "Container image for scheduler and workers; null uses <this ECR repository>:<image_tag>."
  type        = string
  default     = null
}

variable "image_tag" {
  description = "Tag of the image in this configuration's ECR repository (tags are immutable: use a new tag per build)."
  type        = string
}

variable "ecr_force_delete" {
  description = "Let `terraform destroy` delete the ECR repository even when it still holds images."
  type        = bool
  default     = false
}

variable "enable_static_cluster" {
  description = "Run the long-lived scheduler and worker services (false: only what elastic clusters need)."
  type        = bool
}

variable "worker_count" {
  description = "Number of long-lived Dask workers (0 allowed)."
  type        = number
}

variable "scheduler_cpu" {
  description = "Scheduler task CPU units (1024 = 1 vCPU)."
  type        = number
}

variable "scheduler_memory" {
  description = "Scheduler task memory in MiB."
  type        = number
}

variable "worker_cpu" {
  description = "Worker task CPU units (1024 = 1 vCPU); one Dask thread per vCPU."
  type        = number
}

variable "worker_memory" {
  description = "Worker task memory in MiB."
  type        = number
}

variable "cpu_architecture" {
  description = "CPU architecture of the tasks (X86_64 or ARM64); the image must be built for it."
  type        = string
}
