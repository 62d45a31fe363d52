# trailwatch, as in infra/template.yaml: two functions, the hourly schedule, the change rule,
# an encrypted alerts topic, dead-letter queues, least-privilege roles and alarms on itself.
# tests/tests/infra.rs checks that this module and the SAM template agree.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account   = data.aws_caller_identity.current.account_id
  partition = data.aws_partition.current.partition
  region    = data.aws_region.current.name

  scheduled_scan_zip = coalesce(var.scheduled_scan_zip, "${path.module}/../../../../target/lambda/scheduled-scan/bootstrap.zip")
  trail_change_zip   = coalesce(var.trail_change_zip, "${path.module}/../../../../target/lambda/trail-change/bootstrap.zip")
  account_worker_zip = coalesce(var.account_worker_zip, "${path.module}/../../../../target/lambda/account-worker/bootstrap.zip")
  org_mode           = var.org_role_name != ""

  environment = {
    TRAILWATCH_SNS_TOPIC_ARN          = aws_sns_topic.alerts.arn
    TRAILWATCH_SECURITY_HUB           = tostring(var.security_hub)
    TRAILWATCH_REGIONS                = var.regions
    TRAILWATCH_MAX_DELIVERY_AGE_HOURS = tostring(var.max_delivery_age_hours)
    TRAILWATCH_WARNINGS               = tostring(var.warnings)
    TRAILWATCH_LEDGER_TABLE           = aws_dynamodb_table.alert_ledger.name
    # Empty means "not set": organisation mode stays off.
    TRAILWATCH_ORG_ROLE_NAME   = var.org_role_name
    TRAILWATCH_ORG_EXTERNAL_ID = var.org_external_id
    # Past org_fan_out_above accounts the scan hands them to the account worker (fanout.tf).
    TRAILWATCH_ORG_QUEUE_URL     = local.org_mode ? aws_sqs_queue.accounts[0].url : ""
    TRAILWATCH_ORG_FAN_OUT_ABOVE = tostring(var.org_fan_out_above)
    # The account queue's maxReceiveCount: on a message's last receive the worker reports
    # its account dead-lettered, so the scan's summary names it at once.
    TRAILWATCH_ORG_MAX_RECEIVES = tostring(local.account_max_receives)
    # Self-healing: off unless asked for (see aws_iam_role_policy.auto_remediation).
    TRAILWATCH_AUTO_REMEDIATE        = var.auto_remediate
    TRAILWATCH_AUTO_REMEDIATE_EXEMPT = join(",", var.auto_remediate_exempt)
    # trailwatch's own rules, functions, topics and keys: a call that disables, deletes or
    # rewrites one pages HIGH (trail-change), as the guard rule does on its own path.
    TRAILWATCH_MONITOR_RESOURCES = join(",", [
      "arn:${local.partition}:events:${local.region}:${local.account}:rule/${var.name}-*",
      "arn:${local.partition}:lambda:${local.region}:${local.account}:function:${var.name}-*",
      "arn:${local.partition}:sns:${local.region}:${local.account}:${var.name}-*",
      aws_kms_key.alerts.arn,
      aws_kms_key.guard.arn,
    ])
  }
}

# --- Alerts: one KMS-encrypted topic for verdicts and for the monitor's own alarms ----------

data "aws_iam_policy_document" "key" {
  #checkov:skip=CKV_AWS_109:This document is the key's own key policy, where Resource "*" means this key and nothing else; AWS requires that form.
  #checkov:skip=CKV_AWS_111:This document is the key's own key policy, where Resource "*" means this key and nothing else; AWS requires that form.
  #checkov:skip=CKV_AWS_356:This document is the key's own key policy, where Resource "*" means this key and nothing else; AWS requires that form.
  # Administration is delegated to IAM in this account; use is not (see below).
  statement {
    sid = "AccountAdministersKey"
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account}:root"]
    }
    actions = [
      "kms:CancelKeyDeletion",
      "kms:CreateAlias",
      "kms:DeleteAlias",
      "kms:DescribeKey",
      "kms:DisableKey",
      "kms:DisableKeyRotation",
      "kms:EnableKey",
      "kms:EnableKeyRotation",
      "kms:GetKeyPolicy",
      "kms:GetKeyRotationStatus",
      "kms:ListResourceTags",
      "kms:PutKeyPolicy",
      "kms:ScheduleKeyDeletion",
      "kms:TagResource",
      "kms:UntagResource",
      "kms:UpdateAlias",
      "kms:UpdateKeyDescription",
    ]
    resources = ["*"]
  }

  # Principals of this account may use the key only through SNS and SQS.
  statement {
    sid = "AccountUsesKeyThroughSnsAndSqs"
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account}:root"]
    }
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["sns.${local.region}.amazonaws.com", "sqs.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "kms:CallerAccount"
      values   = [local.account]
    }
  }

  # The alert ledger table: DynamoDB takes a grant on the key when the table is created, then
  # encrypts and decrypts its items for the functions.
  statement {
    sid = "AccountUsesKeyThroughDynamoDb"
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account}:root"]
    }
    actions = [
      "kms:CreateGrant",
      "kms:Decrypt",
      "kms:DescribeKey",
      "kms:Encrypt",
      "kms:GenerateDataKey",
      "kms:ReEncryptFrom",
      "kms:ReEncryptTo",
    ]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["dynamodb.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "kms:CallerAccount"
      values   = [local.account]
    }
  }

  # CloudWatch alarms publish to the encrypted topic, and EventBridge writes what it could not
  # deliver into the encrypted dead-letter queues, each as its service.
  statement {
    sid = "AlarmsAndRulesUseKey"
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com", "events.amazonaws.com"]
    }
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }

  statement {
    sid = "LogsEncryptFunctionLogs"
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    actions = [
      "kms:Decrypt",
      "kms:DescribeKey",
      "kms:Encrypt",
      "kms:GenerateDataKey",
      "kms:GenerateDataKeyWithoutPlaintext",
      "kms:ReEncryptFrom",
      "kms:ReEncryptTo",
    ]
    resources = ["*"]
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account}:log-group:/aws/lambda/${var.name}-*"]
    }
  }
}

resource "aws_kms_key" "alerts" {
  description         = "trailwatch alerts topic, dead-letter queues, alert ledger and function logs"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.key.json
  tags                = var.tags
}

resource "aws_kms_alias" "alerts" {
  name          = "alias/${var.name}-alerts"
  target_key_id = aws_kms_key.alerts.key_id
}

resource "aws_sns_topic" "alerts" {
  name              = "${var.name}-alerts"
  display_name      = "trailwatch"
  kms_master_key_id = aws_kms_key.alerts.arn
  tags              = var.tags
}

data "aws_iam_policy_document" "topic" {
  statement {
    sid = "AlarmsOfThisAccountPublish"
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts.arn]
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
  statement {
    sid    = "OnlyOverTls"
    effect = "Deny"
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    actions   = ["sns:Publish", "sns:Subscribe"]
    resources = [aws_sns_topic.alerts.arn]
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sns_topic_policy" "alerts" {
  arn    = aws_sns_topic.alerts.arn
  policy = data.aws_iam_policy_document.topic.json
}

resource "aws_sns_topic_subscription" "email" {
  count     = var.alert_email == "" ? 0 : 1
  topic_arn = aws_sns_topic.alerts.arn
  protocol  = "email"
  endpoint  = var.alert_email
}

# --- Dead-letter queues: an event that could not be handled is kept for 14 days ------------

# --- Alert ledger: keeps the hourly scan and a re-check that overlap from alerting twice ----

# One small item per finding (last claimed state, when it was observed). Losing it costs at
# most one duplicate alert per finding, so it goes with the module.
resource "aws_dynamodb_table" "alert_ledger" {
  name         = "${var.name}-alert-ledger"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "finding_id"
  attribute {
    name = "finding_id"
    type = "S"
  }
  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }
  point_in_time_recovery {
    enabled = true
  }
  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.alerts.arn
  }
  tags = var.tags
}

resource "aws_sqs_queue" "scan_dead_letters" {
  name                      = "${var.name}-scheduled-scan-dlq"
  message_retention_seconds = 1209600
  kms_master_key_id         = aws_kms_key.alerts.arn
  tags                      = var.tags
}

resource "aws_sqs_queue" "change_dead_letters" {
  name                      = "${var.name}-trail-change-dlq"
  message_retention_seconds = 1209600
  kms_master_key_id         = aws_kms_key.alerts.arn
  tags                      = var.tags
}

data "aws_iam_policy_document" "dead_letters" {
  for_each = {
    scan   = { queue = aws_sqs_queue.scan_dead_letters.arn, rules = [aws_cloudwatch_event_rule.schedule.arn] }
    change = { queue = aws_sqs_queue.change_dead_letters.arn, rules = [aws_cloudwatch_event_rule.change.arn, aws_cloudwatch_event_rule.guard.arn] }
  }
  # EventBridge parks here what it could not deliver to the function.
  statement {
    sid = "RuleDeadLetter"
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    actions   = ["sqs:SendMessage"]
    resources = [each.value.queue]
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = each.value.rules
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
    resources = [each.value.queue]
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sqs_queue_policy" "scan_dead_letters" {
  queue_url = aws_sqs_queue.scan_dead_letters.id
  policy    = data.aws_iam_policy_document.dead_letters["scan"].json
}

resource "aws_sqs_queue_policy" "change_dead_letters" {
  queue_url = aws_sqs_queue.change_dead_letters.id
  policy    = data.aws_iam_policy_document.dead_letters["change"].json
}
