# Private networking: private subnets only (no public IPs on any host), an S3 gateway endpoint on
# their route tables so reads of allen-brain-observatory stay in-region and free of NAT charges,
# interface endpoints for SSM, ECR and CloudWatch Logs so nothing AWS-bound needs NAT, and an
# optional single NAT gateway for PyPI. No security group here admits traffic from the internet.

data "aws_region" "current" {}
data "aws_partition" "current" {}

# Only zones named <region>a-d are candidates, so the set cannot grow by itself when AWS adds zones.
data "aws_availability_zones" "available" {
  count = local.create_vpc ? 1 : 0
  state = "available"

  filter {
    name   = "zone-name"
    values = [for letter in ["a", "b", "c", "d"] : "${data.aws_region.current.name}${letter}"]
  }
}

data "aws_vpc" "existing" {
  count = local.create_vpc ? 0 : 1
  id    = var.vpc_id
}

locals {
  create_vpc = var.vpc_id == null
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition

  vpc_id   = local.create_vpc ? aws_vpc.this[0].id : var.vpc_id
  vpc_cidr = local.create_vpc ? aws_vpc.this[0].cidr_block : data.aws_vpc.existing[0].cidr_block

  azs = local.create_vpc ? slice(data.aws_availability_zones.available[0].names, 0, var.az_count) : []

  private_subnet_ids      = local.create_vpc ? aws_subnet.private[*].id : var.existing_private_subnet_ids
  private_route_table_ids = local.create_vpc ? aws_route_table.private[*].id : var.existing_private_route_table_ids

  create_nat = local.create_vpc && var.enable_nat_gateway
}

# --- VPC -----------------------------------------------------------------------------------------

resource "aws_vpc" "this" {
  count                = local.create_vpc ? 1 : 0
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true # interface endpoints' private DNS and Cloud Map need both
  enable_dns_hostnames = true

  tags = { Name = var.name }
}

# The default security group of the new VPC: all rules removed, so nothing can use it by accident.
resource "aws_default_security_group" "this" {
  count  = local.create_vpc ? 1 : 0
  vpc_id = aws_vpc.this[0].id

  tags = { Name = "${var.name}-default-deny" }
}

resource "aws_subnet" "private" {
  count                   = local.create_vpc ? var.az_count : 0
  vpc_id                  = aws_vpc.this[0].id
  availability_zone       = local.azs[count.index]
  cidr_block              = cidrsubnet(var.vpc_cidr, 4, count.index)
  map_public_ip_on_launch = false

  tags = { Name = "${var.name}-private-${local.azs[count.index]}" }
}

resource "aws_route_table" "private" {
  count  = local.create_vpc ? 1 : 0
  vpc_id = aws_vpc.this[0].id

  tags = { Name = "${var.name}-private" }
}

resource "aws_route_table_association" "private" {
  count          = local.create_vpc ? var.az_count : 0
  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private[0].id
}

# --- VPC flow logs (created VPC only) ------------------------------------------------------------

resource "aws_cloudwatch_log_group" "flow_logs" {
  count             = local.create_vpc ? 1 : 0
  name              = "${var.log_group_prefix}vpc-flow-logs"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

data "aws_iam_policy_document" "flow_logs_assume" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["vpc-flow-logs.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "flow_logs" {
  count              = local.create_vpc ? 1 : 0
  name_prefix        = "${var.name}-flow-logs-"
  assume_role_policy = data.aws_iam_policy_document.flow_logs_assume.json
}

data "aws_iam_policy_document" "flow_logs" {
  count = local.create_vpc ? 1 : 0

  statement {
    effect = "Allow"
    actions = [
      "logs:CreateLogStream",
      "logs:DescribeLogStreams",
      "logs:PutLogEvents",
    ]
    resources = [
      aws_cloudwatch_log_group.flow_logs[0].arn,
      "${aws_cloudwatch_log_group.flow_logs[0].arn}:log-stream:*",
    ]
  }
}

resource "aws_iam_role_policy" "flow_logs" {
  count  = local.create_vpc ? 1 : 0
  name   = "write-flow-logs"
  role   = aws_iam_role.flow_logs[0].id
  policy = data.aws_iam_policy_document.flow_logs[0].json
}

resource "aws_flow_log" "this" {
  count                = local.create_vpc ? 1 : 0
  vpc_id               = aws_vpc.this[0].id
  traffic_type         = "REJECT" # rejected traffic is what a security review needs; ALL costs more
  log_destination_type = "cloud-watch-logs"
  log_destination      = aws_cloudwatch_log_group.flow_logs[0].arn
  iam_role_arn         = aws_iam_role.flow_logs[0].arn
}

# --- Optional NAT gateway (egress only, for PyPI) ------------------------------------------------

resource "aws_internet_gateway" "this" {
  count  = local.create_nat ? 1 : 0
  vpc_id = aws_vpc.this[0].id

  tags = { Name = var.name }
}

# The only public subnet holds the NAT gateway and nothing else; no host gets a public IP.
resource "aws_subnet" "public_nat" {
  count                   = local.create_nat ? 1 : 0
  vpc_id                  = aws_vpc.this[0].id
  availability_zone       = local.azs[0]
  cidr_block              = cidrsubnet(var.vpc_cidr, 8, 255)
  map_public_ip_on_launch = false

  tags = { Name = "${var.name}-nat-only" }
}

resource "aws_route_table" "public_nat" {
  count  = local.create_nat ? 1 : 0
  vpc_id = aws_vpc.this[0].id

  tags = { Name = "${var.name}-nat-only" }
}

resource "aws_route" "public_nat_internet" {
  count                  = local.create_nat ? 1 : 0
  route_table_id         = aws_route_table.public_nat[0].id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this[0].id
}

resource "aws_route_table_association" "public_nat" {
  count          = local.create_nat ? 1 : 0
  subnet_id      = aws_subnet.public_nat[0].id
  route_table_id = aws_route_table.public_nat[0].id
}

resource "aws_eip" "nat" {
  count  = local.create_nat ? 1 : 0
  domain = "vpc"

  tags = { Name = "${var.name}-nat" }
}

resource "aws_nat_gateway" "this" {
  count         = local.create_nat ? 1 : 0
  allocation_id = aws_eip.nat[0].id
  subnet_id     = aws_subnet.public_nat[0].id

  tags = { Name = var.name }

  depends_on = [aws_internet_gateway.this]
}

resource "aws_route" "private_nat" {
  count                  = local.create_nat ? 1 : 0
  route_table_id         = aws_route_table.private[0].id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.this[0].id
}

# --- S3 gateway endpoint -------------------------------------------------------------------------

data "aws_iam_policy_document" "s3_endpoint" {
  count = var.s3_endpoint_policy_buckets == null ? 0 : 1

  dynamic "statement" {
    for_each = length(lookup(var.s3_endpoint_policy_buckets, "read", [])) > 0 ? [1] : []
    content {
      sid    = "ReadThroughEndpoint"
      effect = "Allow"
      principals {
        type        = "*"
        identifiers = ["*"]
      }
      actions = ["s3:GetBucketLocation", "s3:GetObject", "s3:ListBucket"]
      resources = flatten([
        for bucket in var.s3_endpoint_policy_buckets["read"] :
        ["arn:${local.partition}:s3:::${bucket}", "arn:${local.partition}:s3:::${bucket}/*"]
      ])
    }
  }

  dynamic "statement" {
    for_each = length(lookup(var.s3_endpoint_policy_buckets, "readwrite", [])) > 0 ? [1] : []
    content {
      sid    = "ReadWriteThroughEndpoint"
      effect = "Allow"
      principals {
        type        = "*"
        identifiers = ["*"]
      }
      actions = [
        "s3:AbortMultipartUpload",
        "s3:DeleteObject",
        "s3:GetBucketLocation",
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:ListBucket",
        "s3:ListBucketMultipartUploads",
        "s3:ListMultipartUploadParts",
        "s3:PutObject",
      ]
      resources = flatten([
        for bucket in var.s3_endpoint_policy_buckets["readwrite"] :
        ["arn:${local.partition}:s3:::${bucket}", "arn:${local.partition}:s3:::${bucket}/*"]
      ])
    }
  }
}

resource "aws_vpc_endpoint" "s3" {
  vpc_id            = local.vpc_id
  service_name      = "com.amazonaws.${local.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = local.private_route_table_ids
  policy            = var.s3_endpoint_policy_buckets == null ? null : data.aws_iam_policy_document.s3_endpoint[0].json

  tags = { Name = "${var.name}-s3" }
}

# --- Interface endpoints (SSM, ECR, CloudWatch Logs, ...) ----------------------------------------

resource "aws_security_group" "endpoints" {
  count       = var.enable_interface_endpoints ? 1 : 0
  name_prefix = "${var.name}-endpoints-"
  description = "Interface VPC endpoints: HTTPS from inside the VPC only"
  vpc_id      = local.vpc_id

  tags = { Name = "${var.name}-endpoints" }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "endpoints_https_from_vpc" {
  count             = var.enable_interface_endpoints ? 1 : 0
  security_group_id = aws_security_group.endpoints[0].id
  description       = "HTTPS to the endpoints from the VPC CIDR"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = local.vpc_cidr
}

resource "aws_vpc_endpoint" "interface" {
  for_each            = var.enable_interface_endpoints ? toset(var.interface_endpoint_services) : toset([])
  vpc_id              = local.vpc_id
  service_name        = "com.amazonaws.${local.region}.${each.value}"
  vpc_endpoint_type   = "Interface"
  private_dns_enabled = true
  subnet_ids          = local.private_subnet_ids
  security_group_ids  = [aws_security_group.endpoints[0].id]

  tags = { Name = "${var.name}-${each.value}" }
}
