# Least-privilege data access: read the public dataset, read and write one results bucket that this
# module creates, use the deployment's KMS key for that bucket. Every role that runs analysis code
# (notebook, Dask tasks) gets exactly this one managed policy.

data "aws_partition" "current" {}

locals {
  partition       = data.aws_partition.current.partition
  data_bucket_arn = "arn:${local.partition}:s3:::${var.data_bucket}"
}

# --- Results bucket ------------------------------------------------------------------------------

resource "aws_s3_bucket" "results" {
  #checkov:skip=CKV_AWS_144:Results are derived from a public dataset and can be recomputed; cross-region replication would double storage cost for no recovery need.
  #checkov:skip=CKV2_AWS_62:No consumer of object-created events exists; notebooks read results directly.
  #checkov:skip=CKV_AWS_18:Server access logging is opt-in (results_access_log_bucket): it needs a second bucket, and CloudTrail data events cover audits of this derived-data bucket.
  bucket_prefix = "${var.name}-results-"
  force_destroy = var.force_destroy
}

resource "aws_s3_bucket_ownership_controls" "results" {
  bucket = aws_s3_bucket.results.id
  rule {
    object_ownership = "BucketOwnerEnforced" # ACLs disabled
  }
}

resource "aws_s3_bucket_public_access_block" "results" {
  bucket                  = aws_s3_bucket.results.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "results" {
  bucket = aws_s3_bucket.results.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "results" {
  bucket = aws_s3_bucket.results.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = true # one KMS call per object instead of per request: cheaper
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "results" {
  bucket = aws_s3_bucket.results.id

  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_days
    }
    expiration {
      expired_object_delete_marker = true
    }
  }

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.results]
}

resource "aws_s3_bucket_logging" "results" {
  count         = var.access_log_bucket == null ? 0 : 1
  bucket        = aws_s3_bucket.results.id
  target_bucket = var.access_log_bucket
  target_prefix = "s3-access/${aws_s3_bucket.results.id}/"
}

data "aws_iam_policy_document" "results_bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"] # a Deny of everything: the only wildcard action in this configuration
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = [aws_s3_bucket.results.arn, "${aws_s3_bucket.results.arn}/*"]
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "results" {
  bucket = aws_s3_bucket.results.id
  policy = data.aws_iam_policy_document.results_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.results]
}

# --- Data-access policy --------------------------------------------------------------------------

data "aws_iam_policy_document" "data_access" {
  statement {
    sid       = "ListDataset"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [local.data_bucket_arn]
  }

  statement {
    sid       = "ReadDataset"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = ["${local.data_bucket_arn}/*"]
  }

  statement {
    sid    = "ListResults"
    effect = "Allow"
    actions = [
      "s3:GetBucketLocation",
      "s3:ListBucket",
      "s3:ListBucketMultipartUploads",
    ]
    resources = [aws_s3_bucket.results.arn]
  }

  statement {
    sid    = "ReadWriteResults"
    effect = "Allow"
    actions = [
      "s3:AbortMultipartUpload",
      "s3:DeleteObject",
      "s3:GetObject",
      "s3:ListMultipartUploadParts",
      "s3:PutObject",
    ]
    resources = ["${aws_s3_bucket.results.arn}/*"]
  }

  statement {
    sid    = "UseKeyForResults"
    effect = "Allow"
    actions = [
      "kms:Decrypt",
      "kms:GenerateDataKey",
    ]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_policy" "data_access" {
  name_prefix = "${var.name}-data-access-"
  description = "Read s3://${var.data_bucket}; read/write s3://${aws_s3_bucket.results.id}"
  policy      = data.aws_iam_policy_document.data_access.json
}
