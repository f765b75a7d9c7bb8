output "vpc_id" {
  description = "ID of the VPC (created or passed in)."
  value       = local.vpc_id
}

output "vpc_cidr_block" {
  description = "CIDR block of the VPC."
  value       = local.vpc_cidr
}

output "private_subnet_ids" {
  description = "IDs of the private subnets that hold the notebook, the Dask tasks and the endpoints."
  value       = local.private_subnet_ids
}

output "private_route_table_ids" {
  description = "Route tables of the private subnets (the S3 gateway endpoint is attached to each)."
  value       = local.private_route_table_ids
}

output "s3_gateway_endpoint_id" {
  description = "ID of the S3 gateway VPC endpoint."
  value       = aws_vpc_endpoint.s3.id
}

output "s3_prefix_list_id" {
  description = "Managed prefix list of S3 in this region (for security-group egress rules)."
  value       = aws_vpc_endpoint.s3.prefix_list_id
}

output "nat_gateway_enabled" {
  description = "Whether this module created a NAT gateway for the private subnets."
  value       = local.create_nat
}
