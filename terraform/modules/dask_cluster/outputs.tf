output "scheduler_address" {
  description = "Address of the long-lived scheduler, for distributed.Client()."
  value       = "tcp://${local.scheduler_host}:8786"
}

output "dashboard_url" {
  description = "Dask dashboard of the long-lived scheduler (reachable from inside the VPC)."
  value       = "http://${local.scheduler_host}:8787/status"
}

output "scheduler_host" {
  description = "DNS name of the long-lived scheduler in the Cloud Map namespace."
  value       = local.scheduler_host
}

output "cluster_arn" {
  description = "ARN of the ECS cluster."
  value       = aws_ecs_cluster.this.arn
}

output "cluster_name" {
  description = "Name of the ECS cluster; task-definition families of elastic clusters start with it."
  value       = aws_ecs_cluster.this.name
}

output "ecr_repository_url" {
  description = "URL of the ECR repository for the Dask image."
  value       = aws_ecr_repository.dask.repository_url
}

output "image" {
  description = "Image run by scheduler and workers."
  value       = local.image
}

output "security_group_id" {
  description = "Security group of the Dask tasks (long-lived and elastic)."
  value       = aws_security_group.dask.id
}

output "task_role_arn" {
  description = "Role assumed by Dask task code."
  value       = aws_iam_role.task.arn
}

output "execution_role_arn" {
  description = "Role ECS uses to pull the image and write logs."
  value       = aws_iam_role.execution.arn
}

output "log_group_name" {
  description = "CloudWatch log group of the Dask tasks."
  value       = aws_cloudwatch_log_group.dask.name
}

output "log_group_arn" {
  description = "ARN of that log group."
  value       = aws_cloudwatch_log_group.dask.arn
}

output "fargate_cluster_kwargs" {
  description = "Keyword arguments for dask_cloudprovider.aws.FargateCluster that reuse this cluster's network, roles, logs and image."
  value = {
    cluster_arn            = aws_ecs_cluster.this.arn
    vpc                    = var.vpc_id
    subnets                = var.subnet_ids
    security_groups        = [aws_security_group.dask.id]
    execution_role_arn     = aws_iam_role.execution.arn
    task_role_arn          = aws_iam_role.task.arn
    image                  = local.image
    cloudwatch_logs_group  = aws_cloudwatch_log_group.dask.name
    region_name            = local.region
    fargate_use_private_ip = true
    skip_cleanup           = true
  }
}
