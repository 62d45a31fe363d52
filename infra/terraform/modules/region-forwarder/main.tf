# As infra/region-forwarder.yaml: sends this region's trail, log group and delivery role
# changes to the central region's default event bus. Use it, with a provider for the region,
# in every enabled region except the central one. CloudTrail delivers an API call event only
# in the region where the call was made, and IAM calls only in us-east-1.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account     = data.aws_caller_identity.current.account_id
  partition   = data.aws_partition.current.partition
  region      = data.aws_region.current.name
  central_bus = "arn:${local.partition}:events:${var.central_region}:${local.account}:event-bus/default"
}

module "change_pattern" {
  source = "../change-pattern"
}

data "aws_iam_policy_document" "events_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

resource "aws_iam_role" "forward" {
  name               = "${var.name}-${local.region}"
  description        = "trailwatch forwards change events to the central region's default bus"
  assume_role_policy = data.aws_iam_policy_document.events_trust.json
  tags               = var.tags
}

data "aws_iam_policy_document" "forward" {
  statement {
    sid       = "CentralBusOnly"
    actions   = ["events:PutEvents"]
    resources = [local.central_bus]
  }
}

resource "aws_iam_role_policy" "forward" {
  name   = "put-events-on-central-bus"
  role   = aws_iam_role.forward.id
  policy = data.aws_iam_policy_document.forward.json
}

resource "aws_sqs_queue" "dead_letters" {
  #checkov:skip=CKV_AWS_27:Encrypted at rest with SSE-SQS (sqs_managed_sse_enabled), which this check does not recognise. A customer managed key would cost 1 USD a month in every region for a queue that is empty unless forwarding breaks.
  name                      = "${var.name}-dlq"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
  tags                      = var.tags
}

data "aws_iam_policy_document" "dead_letters" {
  statement {
    sid = "RuleDeadLetter"
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dead_letters.arn]
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.forward.arn]
    }
  }
  statement {
    sid    = "OnlyOverTls"
    effect = "Deny"
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dead_letters.arn]
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sqs_queue_policy" "dead_letters" {
  queue_url = aws_sqs_queue.dead_letters.id
  policy    = data.aws_iam_policy_document.dead_letters.json
}

resource "aws_cloudwatch_event_rule" "forward" {
  name          = var.name
  description   = "trailwatch forwards trail, log group and delivery role changes"
  event_pattern = module.change_pattern.json
  tags          = var.tags

  lifecycle {
    precondition {
      condition     = local.region != var.central_region
      error_message = "The central region already has the change rule; a forwarder there would send every event to its own bus a second time."
    }
  }
}

resource "aws_cloudwatch_event_target" "forward" {
  rule      = aws_cloudwatch_event_rule.forward.name
  target_id = "central-bus"
  arn       = local.central_bus
  role_arn  = aws_iam_role.forward.arn
  retry_policy {
    maximum_retry_attempts       = 185
    maximum_event_age_in_seconds = 86400
  }
  dead_letter_config {
    arn = aws_sqs_queue.dead_letters.arn
  }
}
