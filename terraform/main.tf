# s3ecephys on AWS: a private network beside the dataset (us-west-2), a notebook, a Dask cluster on
# Fargate, and least-privilege access to s3://allen-brain-observatory plus one results bucket.
# Each part is a small module; this file only wires them together. See README.md.

provider "aws" {
  region = var.region

  default_tags {
    tags = merge({ Project = "s3ecephys", ManagedBy = "terraform" }, var.tags)
  }
}

locals {
  log_group_prefix = "/${var.name}/"

  # Buckets reachable through a restricted S3 gateway endpoint besides the dataset and results:
  # ECR image layers, Amazon Linux 2023 packages (dnf), and the SSM agent's buckets.
  aws_service_buckets = [
    "prod-${var.region}-starport-layer-bucket",
    "al2023-repos-${var.region}-de612dc2",
    "amazon-ssm-${var.region}",
    "amazon-ssm-packages-${var.region}",
    "${var.region}-birdwatcher-prod",
    "aws-ssm-document-attachments-${var.region}",
    "aws-ssm-${var.region}",
  ]
}

module "kms" {
  source = "./modules/kms"

  name                    = var.name
  log_group_prefix        = local.log_group_prefix
  deletion_window_in_days = var.kms_deletion_window_days
}

module "iam" {
  source = "./modules/iam"

  name                    = var.name
  kms_key_arn             = module.kms.key_arn
  force_destroy           = var.results_bucket_force_destroy
  noncurrent_version_days = var.results_noncurrent_version_days
  access_log_bucket       = var.results_access_log_bucket
}

module "network" {
  source = "./modules/network"

  name                             = var.name
  vpc_id                           = var.vpc_id
  existing_private_subnet_ids      = var.existing_private_subnet_ids
  existing_private_route_table_ids = var.existing_private_route_table_ids
  vpc_cidr                         = var.vpc_cidr
  az_count                         = var.az_count
  enable_nat_gateway               = var.enable_nat_gateway
  enable_interface_endpoints       = var.enable_interface_endpoints
  interface_endpoint_services      = var.interface_endpoint_services
  kms_key_arn                      = module.kms.key_arn
  log_group_prefix                 = local.log_group_prefix
  log_retention_days               = var.log_retention_days

  s3_endpoint_policy_buckets = var.restrict_s3_endpoint ? {
    read      = concat(["allen-brain-observatory"], local.aws_service_buckets, var.s3_endpoint_extra_read_buckets)
    readwrite = [module.iam.results_bucket_name]
  } : null
}

module "dask_cluster" {
  source = "./modules/dask_cluster"

  name                       = var.name
  vpc_id                     = module.network.vpc_id
  vpc_cidr_block             = module.network.vpc_cidr_block
  subnet_ids                 = module.network.private_subnet_ids
  notebook_security_group_id = module.notebook.security_group_id
  s3_prefix_list_id          = module.network.s3_prefix_list_id
  internet_egress            = !var.enable_interface_endpoints
  kms_key_arn                = module.kms.key_arn
  data_access_policy_arn     = module.iam.data_access_policy_arn
  log_group_prefix           = local.log_group_prefix
  log_retention_days         = var.log_retention_days
  image                      = var.dask_image
  image_tag                  = var.dask_image_tag
  ecr_force_delete           = var.ecr_force_delete
  enable_static_cluster      = var.enable_static_cluster
  worker_count               = var.dask_worker_count
  scheduler_cpu              = var.dask_scheduler_cpu
  scheduler_memory           = var.dask_scheduler_memory
  worker_cpu                 = var.dask_worker_cpu
  worker_memory              = var.dask_worker_memory
  cpu_architecture           = var.dask_cpu_architecture
}

module "notebook" {
  source = "./modules/notebook"

  name                    = var.name
  kind                    = var.notebook_kind
  vpc_id                  = module.network.vpc_id
  vpc_cidr_block          = module.network.vpc_cidr_block
  subnet_id               = module.network.private_subnet_ids[0]
  kms_key_arn             = module.kms.key_arn
  data_access_policy_arn  = module.iam.data_access_policy_arn
  ec2_instance_type       = var.ec2_instance_type
  sagemaker_instance_type = var.sagemaker_instance_type
  sagemaker_root_access   = var.sagemaker_root_access
  volume_size_gb          = var.notebook_volume_size_gb
  pip_requirements        = var.notebook_pip_requirements
  results_bucket_name     = module.iam.results_bucket_name
  dask_scheduler_address  = module.dask_cluster.scheduler_address # fixed name, even while stopped
  fargate_cluster_kwargs  = module.dask_cluster.fargate_cluster_kwargs

  elastic_clusters = var.allow_elastic_dask_clusters ? {
    cluster_arn    = module.dask_cluster.cluster_arn
    cluster_name   = module.dask_cluster.cluster_name
    pass_role_arns = [module.dask_cluster.task_role_arn, module.dask_cluster.execution_role_arn]
    log_group_arn  = module.dask_cluster.log_group_arn
  } : null
}
