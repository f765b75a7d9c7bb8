# The notebook: either JupyterLab on a private EC2 host (no public IP, IMDSv2 only, reached through
# SSM port forwarding to 127.0.0.1:8888) or a SageMaker notebook instance without direct internet
# access in the private subnet. Both install s3ecephys[notebook,distributed] at boot, know the
# Dask scheduler address and the FargateCluster settings, and carry the data-access policy.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  ec2       = var.kind == "ec2"
  sagemaker = var.kind == "sagemaker"
  enabled   = local.ec2 || local.sagemaker
  partition = data.aws_partition.current.partition
  region    = data.aws_region.current.name
  account   = data.aws_caller_identity.current.account_id

  environment = merge(
    {
      AWS_REGION               = local.region
      AWS_DEFAULT_REGION       = local.region
      S3ECEPHYS_RESULTS_BUCKET = var.results_bucket_name
    },
    var.dask_scheduler_address == null ? {} : { DASK_SCHEDULER_ADDRESS = var.dask_scheduler_address },
  )
  fargate_cluster_json = jsonencode(var.fargate_cluster_kwargs)
}

# --- Security group ------------------------------------------------------------------------------
# No ingress at all: the notebook is reached through SSM Session Manager (EC2: an outbound
# connection of the agent) or the SageMaker console (presigned URL), never through an open port.
# The Dask security group admits this group on 8786/8787; attach it to any other host of yours
# that should reach the cluster (e.g. with notebook kind "none").

resource "aws_security_group" "notebook" {
  name_prefix = "${var.name}-notebook-"
  description = "Notebook: no inbound; HTTPS out, Dask ports inside the VPC"
  vpc_id      = var.vpc_id

  tags = { Name = "${var.name}-notebook" }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_egress_rule" "notebook_https" {
  security_group_id = aws_security_group.notebook.id
  description       = "HTTPS out: AWS endpoints, S3 and (through NAT) PyPI"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "notebook_dask" {
  security_group_id = aws_security_group.notebook.id
  description       = "Dask scheduler (8786) and dashboard (8787) inside the VPC"
  ip_protocol       = "tcp"
  from_port         = 8786
  to_port           = 8787
  cidr_ipv4         = var.vpc_cidr_block
}

# --- Role ----------------------------------------------------------------------------------------

data "aws_iam_policy_document" "assume" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = [local.sagemaker ? "sagemaker.amazonaws.com" : "ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "notebook" {
  count              = local.enabled ? 1 : 0
  name_prefix        = "${var.name}-notebook-"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

resource "aws_iam_role_policy_attachment" "data_access" {
  count      = local.enabled ? 1 : 0
  role       = aws_iam_role.notebook[0].name
  policy_arn = var.data_access_policy_arn
}

resource "aws_iam_role_policy_attachment" "ssm_core" {
  count      = local.ec2 ? 1 : 0
  role       = aws_iam_role.notebook[0].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

# SageMaker writes the notebook instance's own logs under /aws/sagemaker/NotebookInstances.
data "aws_iam_policy_document" "sagemaker_logs" {
  statement {
    effect = "Allow"
    actions = [
      "logs:CreateLogGroup",
      "logs:CreateLogStream",
      "logs:DescribeLogStreams",
      "logs:PutLogEvents",
    ]
    resources = [
      "arn:${local.partition}:logs:${local.region}:${local.account}:log-group:/aws/sagemaker/NotebookInstances",
      "arn:${local.partition}:logs:${local.region}:${local.account}:log-group:/aws/sagemaker/NotebookInstances:log-stream:*",
    ]
  }
}

resource "aws_iam_role_policy" "sagemaker_logs" {
  count  = local.sagemaker ? 1 : 0
  name   = "sagemaker-notebook-logs"
  role   = aws_iam_role.notebook[0].id
  policy = data.aws_iam_policy_document.sagemaker_logs.json
}

# Starting elastic Dask clusters with dask-cloudprovider's FargateCluster: register and run task
# definitions in this one ECS cluster, pass only its two roles, read its logs.
data "aws_iam_policy_document" "elastic_clusters" {
  count = var.elastic_clusters == null ? 0 : 1

  statement {
    sid    = "TaskDefinitionsHaveNoResourceLevelPermissions"
    effect = "Allow"
    actions = [
      "ecs:DeregisterTaskDefinition",
      "ecs:ListAccountSettings",
      "ecs:RegisterTaskDefinition",
    ]
    resources = ["*"]
  }

  statement {
    sid       = "TagNewTaskDefinitionsAndTasks"
    effect    = "Allow"
    actions   = ["ecs:TagResource"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "ecs:CreateAction"
      values   = ["RegisterTaskDefinition", "RunTask"]
    }
  }

  statement {
    sid       = "RunTasksInThisClusterOnly"
    effect    = "Allow"
    actions   = ["ecs:RunTask"]
    resources = ["arn:${local.partition}:ecs:${local.region}:${local.account}:task-definition/${var.elastic_clusters.cluster_name}-*"]
    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [var.elastic_clusters.cluster_arn]
    }
  }

  statement {
    sid       = "ManageTasksInThisCluster"
    effect    = "Allow"
    actions   = ["ecs:DescribeTasks", "ecs:StopTask"]
    resources = ["arn:${local.partition}:ecs:${local.region}:${local.account}:task/${var.elastic_clusters.cluster_name}/*"]
  }

  statement {
    sid       = "DescribeThisCluster"
    effect    = "Allow"
    actions   = ["ecs:DescribeClusters"]
    resources = [var.elastic_clusters.cluster_arn]
  }

  statement {
    sid       = "FindTaskAddresses"
    effect    = "Allow"
    actions   = ["ec2:DescribeNetworkInterfaces"] # has no resource-level permissions
    resources = ["*"]
  }

  statement {
    sid       = "PassOnlyTheDaskRoles"
    effect    = "Allow"
    actions   = ["iam:PassRole"]
    resources = var.elastic_clusters.pass_role_arns
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }

  statement {
    sid       = "ReadClusterLogs"
    effect    = "Allow"
    actions   = ["logs:GetLogEvents"]
    resources = ["${var.elastic_clusters.log_group_arn}:log-stream:*"]
  }
}

resource "aws_iam_role_policy" "elastic_clusters" {
  count  = local.enabled && var.elastic_clusters != null ? 1 : 0
  name   = "start-elastic-dask-clusters"
  role   = aws_iam_role.notebook[0].id
  policy = data.aws_iam_policy_document.elastic_clusters[0].json
}

# --- EC2 Jupyter host ----------------------------------------------------------------------------

data "aws_ssm_parameter" "ami" {
  count = local.ec2 ? 1 : 0
  name  = var.ec2_ami_ssm_parameter
}

resource "aws_iam_instance_profile" "notebook" {
  count       = local.ec2 ? 1 : 0
  name_prefix = "${var.name}-notebook-"
  role        = aws_iam_role.notebook[0].name
}

resource "aws_instance" "jupyter" {
  count                       = local.ec2 ? 1 : 0
  ami                         = data.aws_ssm_parameter.ami[0].value
  instance_type               = var.ec2_instance_type
  subnet_id                   = var.subnet_id
  vpc_security_group_ids      = [aws_security_group.notebook.id]
  iam_instance_profile        = aws_iam_instance_profile.notebook[0].name
  associate_public_ip_address = false
  monitoring                  = true # detailed (1-minute) CloudWatch metrics
  ebs_optimized               = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required" # IMDSv2 only
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  root_block_device {
    encrypted             = true
    kms_key_id            = var.kms_key_arn
    volume_type           = "gp3"
    volume_size           = var.volume_size_gb
    delete_on_termination = true
  }

  user_data = templatefile("${path.module}/templates/ec2_user_data.sh.tftpl", {
    pip_requirements     = join("\n", var.pip_requirements)
    environment          = local.environment
    fargate_cluster_json = local.fargate_cluster_json
  })
  # User data runs once, at first boot. Later changes (e.g. a new image tag in the FargateCluster
  # settings) must not replace the host and its notebooks: edit /etc/s3ecephys/ on the host, or
  # replace it deliberately with `terraform apply -replace=module.notebook.aws_instance.jupyter[0]`.
  user_data_replace_on_change = false

  tags = { Name = "${var.name}-jupyter" }

  lifecycle {
    ignore_changes = [ami, user_data] # nor may a newer AMI in the SSM parameter
  }
}

# --- SageMaker notebook instance -----------------------------------------------------------------

resource "aws_sagemaker_notebook_instance_lifecycle_configuration" "notebook" {
  count = local.sagemaker ? 1 : 0
  name  = "${var.name}-s3ecephys"
  on_start = base64encode(templatefile("${path.module}/templates/sagemaker_on_start.sh.tftpl", {
    pip_requirements     = join("\n", var.pip_requirements)
    environment          = local.environment
    fargate_cluster_json = local.fargate_cluster_json
  }))
}

resource "aws_sagemaker_notebook_instance" "notebook" {
  count                  = local.sagemaker ? 1 : 0
  name                   = "${var.name}-notebook"
  role_arn               = aws_iam_role.notebook[0].arn
  instance_type          = var.sagemaker_instance_type
  platform_identifier    = "notebook-al2-v3"
  subnet_id              = var.subnet_id
  security_groups        = [aws_security_group.notebook.id]
  direct_internet_access = "Disabled"
  root_access            = var.sagemaker_root_access
  kms_key_id             = var.kms_key_arn
  volume_size            = var.volume_size_gb
  lifecycle_config_name  = aws_sagemaker_notebook_instance_lifecycle_configuration.notebook[0].name

  instance_metadata_service_configuration {
    minimum_instance_metadata_service_version = "2"
  }
}
