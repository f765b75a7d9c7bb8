locals {
  instance_id    = module.notebook.ec2_instance_id
  notebook_name  = module.notebook.sagemaker_notebook_name
  ecr_registry   = split("/", module.dask_cluster.ecr_repository_url)[0]
  port_forward   = "aws ssm start-session --region ${var.region} --target ${coalesce(local.instance_id, "-")} --document-name"
  jupyter_params = jsonencode({ portNumber = ["8888"], localPortNumber = ["8888"] })
  dashboard_params = jsonencode({
    host            = [module.dask_cluster.scheduler_host]
    portNumber      = ["8787"]
    localPortNumber = ["8787"]
  })
}

# --- Connecting ----------------------------------------------------------------------------------

output "jupyter_port_forward_command" {
  description = "EC2 notebook: forward localhost:8888 to JupyterLab (127.0.0.1:8888 on the host) through SSM; then open http://localhost:8888/lab?token=<token>."
  value       = local.instance_id == null ? null : "${local.port_forward} AWS-StartPortForwardingSession --parameters '${local.jupyter_params}'"
}

output "jupyter_token_command" {
  description = "EC2 notebook: print the JupyterLab token (it never leaves the host otherwise)."
  value       = local.instance_id == null ? null : "aws ssm start-session --region ${var.region} --target ${local.instance_id} --document-name AWS-StartInteractiveCommand --parameters '{\"command\":[\"sudo grep JUPYTER_TOKEN /etc/s3ecephys/jupyter.env\"]}'"
}

output "dask_dashboard_port_forward_command" {
  description = "EC2 notebook: forward localhost:8787 to the Dask dashboard of the long-lived scheduler, through the host."
  value       = local.instance_id == null ? null : "${local.port_forward} AWS-StartPortForwardingSessionToRemoteHost --parameters '${local.dashboard_params}'"
}

output "sagemaker_presigned_url_command" {
  description = "SageMaker notebook: print a short-lived URL that opens JupyterLab in the browser."
  value       = local.notebook_name == null ? null : "aws sagemaker create-presigned-notebook-instance-url --region ${var.region} --notebook-instance-name ${local.notebook_name} --query AuthorizedUrl --output text"
}

output "ec2_instance_id" {
  description = "Instance ID of the EC2 Jupyter host (null unless notebook_kind is ec2)."
  value       = local.instance_id
}

output "sagemaker_notebook_name" {
  description = "Name of the SageMaker notebook instance (null unless notebook_kind is sagemaker)."
  value       = local.notebook_name
}

output "notebook_security_group_id" {
  description = "Security group of the notebook; attach it to any other host that should reach the Dask cluster."
  value       = module.notebook.security_group_id
}

output "notebook_role_arn" {
  description = "IAM role of the notebook."
  value       = module.notebook.role_arn
}

# --- Dask ----------------------------------------------------------------------------------------

output "dask_scheduler_address" {
  description = "Address of the long-lived scheduler: distributed.Client(<this>) from the notebook (also in DASK_SCHEDULER_ADDRESS there)."
  value       = module.dask_cluster.scheduler_address
}

output "dask_dashboard_url" {
  description = "Dashboard of the long-lived scheduler, reachable inside the VPC (from outside: dask_dashboard_port_forward_command, then http://localhost:8787/status)."
  value       = module.dask_cluster.dashboard_url
}

output "fargate_cluster_kwargs" {
  description = "Keyword arguments for dask_cloudprovider.aws.FargateCluster (also written to the file named by S3ECEPHYS_FARGATE_CLUSTER_KWARGS on the notebook)."
  value       = module.dask_cluster.fargate_cluster_kwargs
}

output "dask_security_group_id" {
  description = "Security group of the Dask tasks."
  value       = module.dask_cluster.security_group_id
}

output "dask_log_group_name" {
  description = "CloudWatch log group of the Dask tasks."
  value       = module.dask_cluster.log_group_name
}

output "dask_image" {
  description = "Image run by the Dask tasks."
  value       = module.dask_cluster.image
}

output "ecr_repository_url" {
  description = "ECR repository for the Dask image."
  value       = module.dask_cluster.ecr_repository_url
}

output "image_push_commands" {
  description = "Build terraform/image/Dockerfile from the repository root and push it under dask_image_tag."
  value = [
    "aws ecr get-login-password --region ${var.region} | docker login --username AWS --password-stdin ${local.ecr_registry}",
    "docker build --platform ${var.dask_cpu_architecture == "ARM64" ? "linux/arm64" : "linux/amd64"} -f terraform/image/Dockerfile -t ${module.dask_cluster.ecr_repository_url}:${var.dask_image_tag} .",
    "docker push ${module.dask_cluster.ecr_repository_url}:${var.dask_image_tag}",
  ]
}

# --- Data, network, key --------------------------------------------------------------------------

output "results_bucket" {
  description = "Name of the results bucket (read/write for the notebook and the Dask tasks)."
  value       = module.iam.results_bucket_name
}

output "results_bucket_arn" {
  description = "ARN of the results bucket."
  value       = module.iam.results_bucket_arn
}

output "vpc_id" {
  description = "VPC of the deployment."
  value       = module.network.vpc_id
}

output "private_subnet_ids" {
  description = "Private subnets of the deployment."
  value       = module.network.private_subnet_ids
}

output "private_route_table_ids" {
  description = "Private route tables (each has the S3 gateway endpoint route)."
  value       = module.network.private_route_table_ids
}

output "s3_gateway_endpoint_id" {
  description = "S3 gateway VPC endpoint: dataset reads stay in the region and bypass NAT."
  value       = module.network.s3_gateway_endpoint_id
}

output "nat_gateway_enabled" {
  description = "Whether a NAT gateway was created."
  value       = module.network.nat_gateway_enabled
}

output "kms_key_arn" {
  description = "Customer-managed KMS key of the deployment."
  value       = module.kms.key_arn
}

output "kms_key_alias" {
  description = "Alias of the KMS key."
  value       = module.kms.alias_name
}
