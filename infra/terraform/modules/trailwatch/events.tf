resource "aws_cloudwatch_event_rule" "schedule" {
  name                = "${var.name}-schedule"
  description         = "trailwatch hourly scan"
  schedule_expression = "rate(1 hour)"
  tags                = var.tags
}

resource "aws_cloudwatch_event_target" "schedule" {
  rule      = aws_cloudwatch_event_rule.schedule.name
  target_id = "scheduled-scan"
  arn       = aws_lambda_function.function["scheduled-scan"].arn
  retry_policy {
    maximum_retry_attempts       = 4
    maximum_event_age_in_seconds = 3600
  }
  dead_letter_config {
    arn = aws_sqs_queue.scan_dead_letters.arn
  }
}

resource "aws_lambda_permission" "schedule" {
  statement_id   = "ScheduleInvokesScan"
  action         = "lambda:InvokeFunction"
  function_name  = aws_lambda_function.function["scheduled-scan"].function_name
  principal      = "events.amazonaws.com"
  source_account = local.account
  source_arn     = aws_cloudwatch_event_rule.schedule.arn
}

module "change_pattern" {
  source = "../change-pattern"
}

resource "aws_cloudwatch_event_rule" "change" {
  name          = "${var.name}-change"
  description   = "trailwatch re-check on trail, log group and delivery role changes"
  event_pattern = module.change_pattern.json
  tags          = var.tags
}

resource "aws_cloudwatch_event_target" "change" {
  rule      = aws_cloudwatch_event_rule.change.name
  target_id = "trail-change"
  arn       = aws_lambda_function.function["trail-change"].arn
  retry_policy {
    maximum_retry_attempts       = 185
    maximum_event_age_in_seconds = 86400
  }
  dead_letter_config {
    arn = aws_sqs_queue.change_dead_letters.arn
  }
}

resource "aws_lambda_permission" "change" {
  statement_id   = "ChangeRuleInvokesTrailChange"
  action         = "lambda:InvokeFunction"
  function_name  = aws_lambda_function.function["trail-change"].function_name
  principal      = "events.amazonaws.com"
  source_account = local.account
  source_arn     = aws_cloudwatch_event_rule.change.arn
}

# Member accounts forward their trail changes here (infra/member-account.yaml); only accounts
# of this organisation may put events on the bus.
data "aws_iam_policy_document" "organisation_forwards_changes" {
  statement {
    sid = "trailwatch-organisation-forwards-changes"
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    actions   = ["events:PutEvents"]
    resources = ["arn:${local.partition}:events:${local.region}:${local.account}:event-bus/default"]
    condition {
      test     = "StringEquals"
      variable = "aws:PrincipalOrgID"
      values   = [var.organization_id]
    }
  }
}

resource "aws_cloudwatch_event_bus_policy" "organisation_forwards_changes" {
  count          = var.organization_id == "" ? 0 : 1
  event_bus_name = "default"
  policy         = data.aws_iam_policy_document.organisation_forwards_changes.json
}
