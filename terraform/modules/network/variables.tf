variable "name" {
  description = "Name prefix for the resources of this module."
  type        = string
}

variable "vpc_id" {
  description = "ID of an existing VPC to use. null creates a new VPC (with private subnets, route table, flow logs)."
  type        = string
  default     = null
}

variable "existing_private_subnet_ids" {
  description = "Private subnets of the existing VPC (at most one per Availability Zone). Used only with vpc_id."
  type        = list(string)
  default     = []
}

variable "existing_private_route_table_ids" {
  description = "Route tables of those private subnets; the S3 gateway endpoint is attached to them. Used only with vpc_id."
  type        = list(string)
  default     = []
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC created when vpc_id is null."
  type        = string
}

variable "az_count" {
  description = "Number of Availability Zones (one private subnet each) when creating the VPC."
  type        = number
}

variable "enable_nat_gateway" {
  description = "Create one NAT gateway (and a public subnet for it) so private hosts can reach PyPI. Only when creating the VPC."
  type        = bool
}

variable "enable_interface_endpoints" {
  description = "Create interface VPC endpoints (interface_endpoint_services) in the private subnets."
  type        = bool
}

variable "interface_endpoint_services" {
  description = "Short AWS service names for interface endpoints, e.g. ssm, ecr.api, logs."
  type        = list(string)
}

variable "s3_endpoint_policy_buckets" {
  description = "Map of access level (read, readwrite) to bucket names reachable through the S3 gateway endpoint; null leaves the endpoint policy open."
  type        = map(list(string))
  default     = null
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the VPC flow-log group."
  type        = string
}

variable "log_group_prefix" {
  description = "Prefix of this deployment's CloudWatch log group names (starts and ends with '/')."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the VPC flow-log group, in days."
  type        = number
}
