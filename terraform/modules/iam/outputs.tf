output "results_bucket_name" {
  description = "Name of the results bucket."
  value       = aws_s3_bucket.results.id
}

output "results_bucket_arn" {
  description = "ARN of the results bucket."
  value       = aws_s3_bucket.results.arn
}

output "data_access_policy_arn" {
  description = "Managed policy: read the dataset, read/write the results bucket, use its KMS key."
  value       = aws_iam_policy.data_access.arn
}
