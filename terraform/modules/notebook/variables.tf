variable "name" {
  description = "Name prefix of the notebook resources."
  type        = string
}

variable "kind" {
  description = "Notebook flavour: ec2 (JupyterLab on an EC2 host reached by SSM), sagemaker (notebook instance) or none."
  type        = string

  validation {
    condition     = contains(["ec2", "sagemaker", "none"], var.kind)
    error_message = "kind must be one of ec2, sagemaker, none."
  }
}

variable "subnet_id" {
  description = "Private subnet of the notebook."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the notebook's security group."
  type        = string
}

variable "vpc_cidr_block" {
  description = "CIDR block of the VPC (egress to the Dask ports inside it)."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the EC2 root volume or the SageMaker ML storage volume."
  type        = string
}

variable "data_access_policy_arn" {
  description = "Managed policy attached to the notebook role (dataset read, results read/write)."
  type        = string
}

variable "ec2_instance_type" {
  description = "EC2 instance type of the Jupyter host (x86_64; EBS-optimized types only)."
  type        = string
}

variable "ec2_ami_ssm_parameter" {
  description = "Public SSM parameter holding the AMI ID of the Jupyter host (Amazon Linux 2023, x86_64, SSM agent preinstalled)."
  type        = string
  default     = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
}

variable "sagemaker_instance_type" {
  description = "SageMaker notebook instance type (ml.*)."
  type        = string
}

variable "sagemaker_root_access" {
  description = "Root access for notebook users on the SageMaker instance: Enabled or Disabled."
  type        = string

  validation {
    condition     = contains(["Enabled", "Disabled"], var.sagemaker_root_access)
    error_message = "sagemaker_root_access must be Enabled or Disabled."
  }
}

variable "volume_size_gb" {
  description = "Size of the notebook's disk (EC2 root volume or SageMaker ML storage), in GiB."
  type        = number
}

variable "pip_requirements" {
  description = "pip requirement lines installed on the notebook at boot, e.g. [\"s3ecephys[notebook,distributed]==0.1.0\"]."
  type        = list(string)
}

variable "results_bucket_name" {
  description = "Results bucket, exported to notebooks as S3ECEPHYS_RESULTS_BUCKET."
  type        = string
}

variable "dask_scheduler_address" {
  description = "Address of the long-lived Dask scheduler, exported as DASK_SCHEDULER_ADDRESS; null exports nothing."
  type        = string
  default     = null
}

variable "fargate_cluster_kwargs" {
  description = "FargateCluster keyword arguments written to a JSON file on the notebook (path in S3ECEPHYS_FARGATE_CLUSTER_KWARGS)."
  type        = any
}

variable "elastic_clusters" {
  description = "Lets the notebook role start FargateCluster tasks in this ECS cluster; null grants nothing."
  type = object({
    cluster_arn    = string
    cluster_name   = string
    pass_role_arns = list(string)
    log_group_arn  = string
  })
  default = null
}
