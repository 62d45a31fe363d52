# The guard: a change to trailwatch itself pages on a path of its own, as in
# infra/template.yaml (see the comment on its guard resources). The guard rule publishes straight
# to a second topic under a second key, with no function in between; the change rule sends the
# same calls to trail-change, which pages on the alerts topic. Each path watches the other.

data "aws_iam_policy_document" "guard_key" {
  #checkov:skip=CKV_AWS_109:This document is the key's own key policy, where Resource "*" means this key and nothing else; AWS requires that form.
  #checkov:skip=CKV_AWS_111:This document is the key's own key policy, where Resource "*" means this key and nothing else; AWS requires that form.
  #checkov:skip=CKV_AWS_356:This document is the key's own key policy, where Resource "*" means this key and nothing else; AWS requires that form.
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
  statement {
    sid = "AccountUsesKeyThroughSns"
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account}:root"]
    }
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["sns.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "kms:CallerAccount"
      values   = [local.account]
    }
  }
  # EventBridge publishes the guard's pages to the encrypted topic as its service.
  statement {
    sid = "GuardRulePublishes"
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

resource "aws_kms_key" "guard" {
  description         = "trailwatch guard topic"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.guard_key.json
  tags                = var.tags
}

resource "aws_sns_topic" "guard" {
  name              = "${var.name}-guard"
  display_name      = "trailwatch guard"
  kms_master_key_id = aws_kms_key.guard.arn
  tags              = var.tags
}

data "aws_iam_policy_document" "guard_topic" {
  statement {
    sid = "GuardRulePublishes"
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.guard.arn]
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:events:${local.region}:${local.account}:rule/${var.name}-guard"]
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
    resources = [aws_sns_topic.guard.arn]
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sns_topic_policy" "guard" {
  arn    = aws_sns_topic.guard.arn
  policy = data.aws_iam_policy_document.guard_topic.json
}

resource "aws_sns_topic_subscription" "guard_email" {
  count     = var.alert_email == "" ? 0 : 1
  topic_arn = aws_sns_topic.guard.arn
  protocol  = "email"
  endpoint  = var.alert_email
}

locals {
  own_rules     = ["${var.name}-change", "${var.name}-guard", "${var.name}-schedule"]
  own_functions = [for f in keys(local.functions) : "${var.name}-${f}"]
  guard_event_pattern = {
    "detail-type" = ["AWS API Call via CloudTrail"]
    "$or" = [
      {
        source = ["aws.events"]
        detail = {
          eventName         = ["DeleteRule", "DisableRule"]
          requestParameters = { name = local.own_rules }
          errorCode         = [{ exists = false }]
        }
      },
      {
        source = ["aws.events"]
        detail = {
          eventName         = ["RemoveTargets"]
          requestParameters = { rule = local.own_rules }
          errorCode         = [{ exists = false }]
        }
      },
      {
        source = ["aws.lambda"]
        detail = {
          eventName = ["DeleteFunction20150331", "PutFunctionConcurrency20171031"]
          requestParameters = {
            functionName = concat(local.own_functions, [for f in local.own_functions : { suffix = ":function:${f}" }])
          }
          errorCode = [{ exists = false }]
        }
      },
      {
        source = ["aws.sns"]
        detail = {
          eventName         = ["DeleteTopic", "SetTopicAttributes"]
          requestParameters = { topicArn = [aws_sns_topic.alerts.arn, aws_sns_topic.guard.arn] }
          errorCode         = [{ exists = false }]
        }
      },
      {
        source = ["aws.kms"]
        detail = {
          eventName = ["DisableKey", "PutKeyPolicy", "ScheduleKeyDeletion"]
          requestParameters = {
            keyId = [
              aws_kms_key.alerts.key_id,
              aws_kms_key.alerts.arn,
              "alias/${var.name}-alerts",
              { suffix = ":alias/${var.name}-alerts" },
            ]
          }
          errorCode = [{ exists = false }]
        }
      },
    ]
  }
}

resource "aws_cloudwatch_event_rule" "guard" {
  name          = "${var.name}-guard"
  description   = "trailwatch pages on its own topic when someone changes trailwatch itself"
  event_pattern = jsonencode(local.guard_event_pattern)
  tags          = var.tags
}

resource "aws_cloudwatch_event_target" "guard" {
  rule      = aws_cloudwatch_event_rule.guard.name
  target_id = "guard-topic"
  arn       = aws_sns_topic.guard.arn
  # A custom notification for Slack or Teams through the AWS chat apps; the same template as
  # infra/template.yaml's (tests/tests/infra.rs compares them).
  input_transformer {
    input_paths = {
      event   = "$.detail.eventName"
      actor   = "$.detail.userIdentity.arn"
      ip      = "$.detail.sourceIPAddress"
      time    = "$.detail.eventTime"
      account = "$.account"
      region  = "$.region"
      id      = "$.id"
    }
    input_template = "{\"version\": \"1.0\", \"source\": \"custom\", \"content\": {\"textType\": \"client-markdown\", \"title\": \"trailwatch itself was changed: <event> in <account>\", \"description\": \"*<event>* by `<actor>` from <ip> at <time> in <region> (event <id>). trailwatch may no longer see changes or page anyone: undo it (redeploy the stack) and find out who did it and why.\", \"keywords\": [\"HIGH\", \"<account>\", \"trailwatch\"]}, \"metadata\": {\"threadId\": \"trailwatch-<account>\", \"eventType\": \"trailwatch.monitor_tampered\"}}"
  }
  retry_policy {
    maximum_retry_attempts       = 185
    maximum_event_age_in_seconds = 86400
  }
  dead_letter_config {
    arn = aws_sqs_queue.change_dead_letters.arn
  }
}
