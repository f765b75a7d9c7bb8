output "security_group_id" {
  description = "Security group of the notebook (no ingress); the Dask security group admits it."
  value       = aws_security_group.notebook.id
}

output "role_arn" {
  description = "ARN of the notebook's IAM role (null when kind is none)."
  value       = local.enabled ? aws_iam_role.notebook[0].arn : null
}

output "ec2_instance_id" {
  description = "Instance ID of the EC2 Jupyter host (null unless kind is ec2)."
  value       = local.ec2 ? aws_instance.jupyter[0].id : null
}

output "sagemaker_notebook_name" {
  description = "Name of the SageMaker notebook instance (null unless kind is sagemaker)."
  value       = local.sagemaker ? aws_sagemaker_notebook_instance.notebook[0].name : null
}
