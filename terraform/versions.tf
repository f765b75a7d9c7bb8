# Versions are pinned: Terraform to the 1.x line from 1.9 (cross-variable validation), the AWS
# provider to the 5.100 patch line. Run `terraform init` once with network access to write
# .terraform.lock.hcl, and commit it with any change of these constraints.
terraform {
  required_version = "~> 1.9"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100.0"
    }
  }
}
