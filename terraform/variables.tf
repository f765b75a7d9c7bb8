# --- General -------------------------------------------------------------------------------------

variable "region" {
  description = "AWS region. The dataset bucket is in us-west-2: anywhere else, reads cross regions (slower, and billed as inter-region transfer)."
  type        = string
  default     = "us-west-2"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must look like an AWS region name, e.g. us-west-2."
  }
}

variable "name" {
  description = "Name prefix of every resource (lower-case letters, digits, hyphens; 3-20 characters)."
  type        = string
  default     = "s3ecephys"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,19}$", var.name))
    error_message = "name must be 3-20 characters of lower-case letters, digits and hyphens, starting with a letter."
  }
}

variable "tags" {
  description = "Tags added to every resource (on top of Project and ManagedBy)."
  type        = map(string)
  default     = {}
}

variable "log_retention_days" {
  description = "Retention of the CloudWatch log groups (Dask tasks, VPC flow logs), in days."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, ... 365, ... 3653)."
  }
}

# --- Network -------------------------------------------------------------------------------------

variable "vpc_id" {
  description = "Existing VPC to deploy into; null creates a new one. With a VPC given, also set existing_private_subnet_ids and existing_private_route_table_ids."
  type        = string
  default     = null
}

variable "existing_private_subnet_ids" {
  description = "Private subnets of the existing VPC (at most one per Availability Zone)."
  type        = list(string)
  default     = []

  validation {
    condition     = var.vpc_id == null || length(var.existing_private_subnet_ids) > 0
    error_message = "existing_private_subnet_ids must list at least one subnet when vpc_id is set."
  }
}

variable "existing_private_route_table_ids" {
  description = "Route tables of the existing private subnets; the S3 gateway endpoint is attached to them."
  type        = list(string)
  default     = []

  validation {
    condition     = var.vpc_id == null || length(var.existing_private_route_table_ids) > 0
    error_message = "existing_private_route_table_ids must list the private route tables when vpc_id is set."
  }
}

variable "vpc_cidr" {
  description = "CIDR block of the new VPC (/20 or larger; each private subnet is 1/16 of it, the NAT subnet 1/256)."
  type        = string
  default     = "10.42.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && try(tonumber(split("/", var.vpc_cidr)[1]) <= 20, false)
    error_message = "vpc_cidr must be a valid IPv4 CIDR block of size /20 or larger."
  }
}

variable "az_count" {
  description = "Availability Zones (one private subnet each) of the new VPC; each multiplies the interface-endpoint cost."
  type        = number
  default     = 2

  validation {
    condition     = var.az_count >= 1 && var.az_count <= 3
    error_message = "az_count must be 1, 2 or 3."
  }
}

variable "enable_nat_gateway" {
  description = "One NAT gateway in the new VPC, so the notebook can pip install from PyPI. Without it, provide packages another way (see README)."
  type        = bool
  default     = true
}

variable "enable_interface_endpoints" {
  description = "Interface VPC endpoints for SSM, ECR, CloudWatch Logs (and interface_endpoint_services), so AWS traffic needs no NAT."
  type        = bool
  default     = true
}

variable "interface_endpoint_services" {
  description = "Services that get an interface endpoint when enable_interface_endpoints is true."
  type        = list(string)
  default     = ["ssm", "ssmmessages", "ec2messages", "ecr.api", "ecr.dkr", "logs"]

  validation {
    condition     = alltrue([for s in var.interface_endpoint_services : can(regex("^[a-z0-9.-]+$", s))])
    error_message = "interface_endpoint_services must be short service names such as ssm or ecr.api."
  }
}

variable "restrict_s3_endpoint" {
  description = "Limit the S3 gateway endpoint to the dataset, the results bucket, and the AWS buckets that ECR, SSM and dnf need (plus s3_endpoint_extra_read_buckets)."
  type        = bool
  default     = true
}

variable "s3_endpoint_extra_read_buckets" {
  description = "Further bucket names readable through a restricted S3 gateway endpoint (e.g. other open datasets in the region)."
  type        = list(string)
  default     = []
}

# --- Data ----------------------------------------------------------------------------------------

variable "results_bucket_force_destroy" {
  description = "Let `terraform destroy` delete the results bucket with its contents."
  type        = bool
  default     = false
}

variable "results_noncurrent_version_days" {
  description = "Days after which overwritten or deleted results versions are removed."
  type        = number
  default     = 30

  validation {
    condition     = var.results_noncurrent_version_days >= 1
    error_message = "results_noncurrent_version_days must be at least 1."
  }
}

variable "results_access_log_bucket" {
  description = "Existing bucket for S3 server access logs of the results bucket; null disables them."
  type        = string
  default     = null
}

# --- Notebook ------------------------------------------------------------------------------------

variable "notebook_kind" {
  description = "ec2: JupyterLab on a private EC2 host (SSM port forwarding); sagemaker: a SageMaker notebook instance; none: no notebook."
  type        = string
  default     = "ec2"

  validation {
    condition     = contains(["ec2", "sagemaker", "none"], var.notebook_kind)
    error_message = "notebook_kind must be ec2, sagemaker or none."
  }
}

variable "ec2_instance_type" {
  description = "Instance type of the EC2 Jupyter host (x86_64, EBS-optimized)."
  type        = string
  default     = "m7i.xlarge"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", var.ec2_instance_type)) && !startswith(var.ec2_instance_type, "ml.")
    error_message = "ec2_instance_type must be an EC2 instance type such as m7i.xlarge."
  }
}

variable "sagemaker_instance_type" {
  description = "Instance type of the SageMaker notebook instance."
  type        = string
  default     = "ml.m5.xlarge"

  validation {
    condition     = startswith(var.sagemaker_instance_type, "ml.")
    error_message = "sagemaker_instance_type must start with ml."
  }
}

variable "sagemaker_root_access" {
  description = "Whether notebook users get root on the SageMaker instance (Enabled or Disabled)."
  type        = string
  default     = "Disabled"

  validation {
    condition     = contains(["Enabled", "Disabled"], var.sagemaker_root_access)
    error_message = "sagemaker_root_access must be Enabled or Disabled."
  }
}

variable "notebook_volume_size_gb" {
  description = "Disk of the notebook (EC2 root volume or SageMaker ML storage) in GiB; holds the s3ecephys index cache and any downloads."
  type        = number
  default     = 50

  validation {
    condition     = var.notebook_volume_size_gb >= 20 && var.notebook_volume_size_gb <= 16384
    error_message = "notebook_volume_size_gb must be between 20 and 16384."
  }
}

variable "notebook_pip_requirements" {
  description = "pip requirement lines installed on the notebook at boot. Pin s3ecephys to the version baked into the Dask image."
  type        = list(string)
  default     = ["s3ecephys[notebook,distributed]", "dask-cloudprovider[aws]"]

  validation {
    condition     = length(var.notebook_pip_requirements) > 0
    error_message = "notebook_pip_requirements must not be empty."
  }
}

variable "allow_elastic_dask_clusters" {
  description = "Let the notebook role start FargateCluster tasks (elastic Dask clusters) in this configuration's ECS cluster."
  type        = bool
  default     = true
}

# --- Dask cluster --------------------------------------------------------------------------------

variable "enable_static_cluster" {
  description = "Run the long-lived Dask scheduler and worker services (false: nothing runs until a notebook starts an elastic cluster)."
  type        = bool
  default     = true
}

variable "dask_worker_count" {
  description = "Number of long-lived Dask workers (0 allowed)."
  type        = number
  default     = 2

  validation {
    condition     = var.dask_worker_count >= 0 && var.dask_worker_count <= 200 && floor(var.dask_worker_count) == var.dask_worker_count
    error_message = "dask_worker_count must be a whole number from 0 to 200."
  }
}

variable "dask_image" {
  description = "Container image of scheduler and workers; null uses this configuration's ECR repository with dask_image_tag (build it from terraform/image/Dockerfile)."
  type        = string
  default     = null
}

variable "dask_image_tag" {
  description = "Tag of the image in the ECR repository (tags are immutable: push each build under a new tag)."
  type        = string
  default     = "0.1.0"

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.dask_image_tag)) && var.dask_image_tag != "latest"
    error_message = "dask_image_tag must be a valid Docker tag other than latest."
  }
}

variable "ecr_force_delete" {
  description = "Let `terraform destroy` delete the ECR repository with its images."
  type        = bool
  default     = false
}

variable "dask_cpu_architecture" {
  description = "CPU architecture of the Fargate tasks: X86_64, or ARM64 (about 20% cheaper; build the image for linux/arm64)."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.dask_cpu_architecture)
    error_message = "dask_cpu_architecture must be X86_64 or ARM64."
  }
}

variable "dask_scheduler_cpu" {
  description = "Scheduler task CPU units (1024 = 1 vCPU)."
  type        = number
  default     = 1024

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.dask_scheduler_cpu)
    error_message = "dask_scheduler_cpu must be a Fargate CPU size: 256, 512, 1024, 2048, 4096, 8192 or 16384."
  }
}

variable "dask_scheduler_memory" {
  description = "Scheduler task memory in MiB (must be valid for the CPU size on Fargate)."
  type        = number
  default     = 4096

  validation {
    condition     = var.dask_scheduler_memory >= 512 && var.dask_scheduler_memory <= 122880 && var.dask_scheduler_memory % 512 == 0
    error_message = "dask_scheduler_memory must be a multiple of 512 MiB between 512 and 122880."
  }
}

variable "dask_worker_cpu" {
  description = "Worker task CPU units (1024 = 1 vCPU); each worker runs one thread per vCPU."
  type        = number
  default     = 2048

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.dask_worker_cpu)
    error_message = "dask_worker_cpu must be a Fargate CPU size: 256, 512, 1024, 2048, 4096, 8192 or 16384."
  }
}

variable "dask_worker_memory" {
  description = "Worker task memory in MiB (must be valid for the CPU size on Fargate)."
  type        = number
  default     = 8192

  validation {
    condition     = var.dask_worker_memory >= 512 && var.dask_worker_memory <= 122880 && var.dask_worker_memory % 512 == 0
    error_message = "dask_worker_memory must be a multiple of 512 MiB between 512 and 122880."
  }
}

variable "kms_deletion_window_days" {
  description = "Waiting period (7-30 days) before the KMS key is deleted after `terraform destroy`."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be between 7 and 30."
  }
}
