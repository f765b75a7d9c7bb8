# A Dask cluster on ECS Fargate: one scheduler service registered in Cloud Map as
# scheduler.<namespace>, a worker service of N tasks that join it, and everything a notebook needs
# to start further, elastic clusters with dask-cloudprovider's FargateCluster (cluster, roles,
# security group, log group, image). Tasks run in private subnets without public IPs.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  cluster_name   = "${var.name}-dask"
  namespace      = "${var.name}.internal"
  scheduler_host = "scheduler.${local.namespace}"
  image          = coalesce(var.image, "${aws_ecr_repository.dask.repository_url}:${var.image_tag}")
  region         = data.aws_region.current.name

  worker_threads       = max(1, floor(var.worker_cpu / 1024))
  worker_memory_limit  = "${floor(var.worker_memory * 0.9)}MiB" # headroom for the process itself
  health_check_command = ["CMD", "python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8787/health', timeout=5)"]

  # What both containers share: read-only root file system, scratch space, logs, open-file limit.
  container_common = {
    image                  = local.image
    essential              = true
    readonlyRootFilesystem = true
    mountPoints            = [{ sourceVolume = "scratch", containerPath = "/scratch", readOnly = false }]
    environment = [
      { name = "DASK_TEMPORARY_DIRECTORY", value = "/scratch" },
      { name = "HOME", value = "/scratch" },
      { name = "TMPDIR", value = "/scratch" },
      { name = "AWS_REGION", value = local.region },
    ]
    ulimits = [{ name = "nofile", softLimit = 65535, hardLimit = 65535 }]
    healthCheck = {
      command     = local.health_check_command
      interval    = 30
      timeout     = 10
      retries     = 3
      startPeriod = 60
    }
  }
}

# --- Image repository ----------------------------------------------------------------------------

resource "aws_ecr_repository" "dask" {
  name                 = "${var.name}/dask"
  image_tag_mutability = "IMMUTABLE"
  force_delete         = var.ecr_force_delete

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = var.kms_key_arn
  }
}

resource "aws_ecr_lifecycle_policy" "dask" {
  repository = aws_ecr_repository.dask.name
  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Drop untagged images after 7 days"
        selection    = { tagStatus = "untagged", countType = "sinceImagePushed", countUnit = "days", countNumber = 7 }
        action       = { type = "expire" }
      },
      {
        rulePriority = 2
        description  = "Keep the 20 newest images"
        selection    = { tagStatus = "any", countType = "imageCountMoreThan", countNumber = 20 }
        action       = { type = "expire" }
      },
    ]
  })
}

# --- Logs ----------------------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "dask" {
  name              = "${var.log_group_prefix}dask"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

# --- Roles ---------------------------------------------------------------------------------------

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

# Execution role: used by ECS itself to pull the image and ship logs, never by task code.
resource "aws_iam_role" "execution" {
  name_prefix        = "${var.name}-dask-exec-"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "EcrLogin"
    effect    = "Allow"
    actions   = ["ecr:GetAuthorizationToken"] # has no resource-level permissions
    resources = ["*"]
  }

  statement {
    sid    = "PullImage"
    effect = "Allow"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
    ]
    resources = [aws_ecr_repository.dask.arn]
  }

  statement {
    sid    = "WriteLogs"
    effect = "Allow"
    actions = [
      "logs:CreateLogGroup", # FargateCluster's task definitions set awslogs-create-group
      "logs:CreateLogStream",
      "logs:PutLogEvents",
    ]
    resources = [aws_cloudwatch_log_group.dask.arn, "${aws_cloudwatch_log_group.dask.arn}:log-stream:*"]
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "pull-image-write-logs"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# Task role: what scheduler and worker code may do (the data-access policy, nothing else).
resource "aws_iam_role" "task" {
  name_prefix        = "${var.name}-dask-task-"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy_attachment" "task_data_access" {
  role       = aws_iam_role.task.name
  policy_arn = var.data_access_policy_arn
}

# --- Security group ------------------------------------------------------------------------------

resource "aws_security_group" "dask" {
  name_prefix = "${var.name}-dask-"
  description = "Dask scheduler and workers: Dask ports from the notebook and within the cluster only"
  vpc_id      = var.vpc_id

  tags = { Name = "${var.name}-dask" }

  lifecycle {
    create_before_destroy = true
  }
}

# Dask listens on 8786 (scheduler) and 8787 (dashboards); workers and nannies on ports the kernel
# picks from the Linux ephemeral range. Nothing else is open, not even inside the cluster.
# (One rule over 0-65535 would also do, but would include 22, 80 and 3389 for nothing.)
locals {
  dask_port_ranges = {
    scheduler = { from = 8786, to = 8787, what = "Dask scheduler (8786) and dashboard (8787)" }
    workers   = { from = 32768, to = 65535, what = "Dask worker and nanny ports (Linux ephemeral range)" }
  }
}

# The notebook (a Dask client) talks to the scheduler only: distributed.Client gathers and scatters
# through the scheduler unless direct_to_workers=True is asked for.
resource "aws_vpc_security_group_ingress_rule" "dask_from_notebook" {
  security_group_id            = aws_security_group.dask.id
  description                  = "Dask scheduler (8786) and dashboard (8787) from the notebook"
  ip_protocol                  = "tcp"
  from_port                    = 8786
  to_port                      = 8787
  referenced_security_group_id = var.notebook_security_group_id
}

resource "aws_vpc_security_group_ingress_rule" "dask_intra_cluster" {
  for_each                     = local.dask_port_ranges
  security_group_id            = aws_security_group.dask.id
  description                  = "${each.value.what} between cluster members"
  ip_protocol                  = "tcp"
  from_port                    = each.value.from
  to_port                      = each.value.to
  referenced_security_group_id = aws_security_group.dask.id
}

resource "aws_vpc_security_group_egress_rule" "dask_intra_cluster" {
  for_each                     = local.dask_port_ranges
  security_group_id            = aws_security_group.dask.id
  description                  = "${each.value.what} between cluster members"
  ip_protocol                  = "tcp"
  from_port                    = each.value.from
  to_port                      = each.value.to
  referenced_security_group_id = aws_security_group.dask.id
}

resource "aws_vpc_security_group_egress_rule" "dask_s3" {
  security_group_id = aws_security_group.dask.id
  description       = "HTTPS to S3 through the gateway endpoint (dataset, results, image layers)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = var.s3_prefix_list_id
}

resource "aws_vpc_security_group_egress_rule" "dask_endpoints" {
  security_group_id = aws_security_group.dask.id
  description       = "HTTPS to the interface endpoints in the VPC (ECR, CloudWatch Logs)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = var.vpc_cidr_block
}

resource "aws_vpc_security_group_egress_rule" "dask_internet_https" {
  count             = var.internet_egress ? 1 : 0
  security_group_id = aws_security_group.dask.id
  description       = "HTTPS through NAT (ECR and CloudWatch Logs without interface endpoints)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

# --- Cluster, service discovery ------------------------------------------------------------------

resource "aws_ecs_cluster" "this" {
  name = local.cluster_name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  configuration {
    execute_command_configuration {
      kms_key_id = var.kms_key_arn
      logging    = "OVERRIDE"
      log_configuration {
        cloud_watch_encryption_enabled = true
        cloud_watch_log_group_name     = aws_cloudwatch_log_group.dask.name
      }
    }
  }
}

resource "aws_ecs_cluster_capacity_providers" "this" {
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = ["FARGATE", "FARGATE_SPOT"] # FargateCluster(fargate_spot=True) needs both

  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    weight            = 1
  }
}

resource "aws_service_discovery_private_dns_namespace" "this" {
  name        = local.namespace
  description = "Dask service discovery for ${var.name}"
  vpc         = var.vpc_id
}

resource "aws_service_discovery_service" "scheduler" {
  name = "scheduler"

  dns_config {
    namespace_id   = aws_service_discovery_private_dns_namespace.this.id
    routing_policy = "MULTIVALUE"
    dns_records {
      ttl  = 10
      type = "A"
    }
  }

  health_check_custom_config {
    failure_threshold = 1 # deprecated by AWS (always 1) but still required for ECS registration
  }
}

# --- Task definitions ----------------------------------------------------------------------------

resource "aws_ecs_task_definition" "scheduler" {
  family                   = "${local.cluster_name}-scheduler"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = tostring(var.scheduler_cpu)
  memory                   = tostring(var.scheduler_memory)
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  volume {
    name = "scratch"
  }

  container_definitions = jsonencode([merge(local.container_common, {
    name    = "dask-scheduler"
    command = ["dask", "scheduler", "--port", "8786", "--dashboard-address", ":8787"]
    portMappings = [
      { containerPort = 8786, protocol = "tcp" },
      { containerPort = 8787, protocol = "tcp" },
    ]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.dask.name
        awslogs-region        = local.region
        awslogs-stream-prefix = "scheduler"
      }
    }
  })])
}

resource "aws_ecs_task_definition" "worker" {
  family                   = "${local.cluster_name}-worker"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = tostring(var.worker_cpu)
  memory                   = tostring(var.worker_memory)
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  volume {
    name = "scratch"
  }

  container_definitions = jsonencode([merge(local.container_common, {
    name = "dask-worker"
    command = [
      "dask", "worker", "tcp://${local.scheduler_host}:8786",
      "--nthreads", tostring(local.worker_threads),
      "--memory-limit", local.worker_memory_limit,
      "--local-directory", "/scratch",
      "--dashboard-address", ":8787",
      "--death-timeout", "300",
    ]
    portMappings = [{ containerPort = 8787, protocol = "tcp" }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.dask.name
        awslogs-region        = local.region
        awslogs-stream-prefix = "worker"
      }
    }
  })])
}

# --- Services ------------------------------------------------------------------------------------

resource "aws_ecs_service" "scheduler" {
  name             = "dask-scheduler"
  cluster          = aws_ecs_cluster.this.id
  task_definition  = aws_ecs_task_definition.scheduler.arn
  desired_count    = var.enable_static_cluster ? 1 : 0
  launch_type      = "FARGATE"
  platform_version = "LATEST"
  propagate_tags   = "SERVICE"

  # Never two schedulers at once: they would split the workers between them.
  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 100

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.dask.id]
    assign_public_ip = false
  }

  service_registries {
    registry_arn = aws_service_discovery_service.scheduler.arn
  }
}

resource "aws_ecs_service" "worker" {
  name             = "dask-worker"
  cluster          = aws_ecs_cluster.this.id
  task_definition  = aws_ecs_task_definition.worker.arn
  desired_count    = var.enable_static_cluster ? var.worker_count : 0
  launch_type      = "FARGATE"
  platform_version = "LATEST"
  propagate_tags   = "SERVICE"

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.dask.id]
    assign_public_ip = false
  }

  depends_on = [aws_ecs_service.scheduler]
}
