# Organisation fan-out: past var.org_fan_out_above accounts, the hourly scan puts one message
# per account on the account queue, and the account worker scans them (README, "An
# organisation past one invocation"). Everything here exists in organisation mode only.

locals {
  # Receives of a message before SQS moves it to the dead-letter queue.
  account_max_receives = 3
}

# Lambda asks for a visibility timeout of six times the function's timeout, to ride out
# throttled invocations; the worker's reserved concurrency equals the event source's maximum,
# so none are throttled, and twice the timeout lets three receives of a failing account end
# before the scan's 13-minute window does.
resource "aws_sqs_queue" "accounts" {
  count                      = local.org_mode ? 1 : 0
  name                       = "${var.name}-accounts"
  visibility_timeout_seconds = 240
  # A message the hour has not seen through is superseded by the next scan.
  message_retention_seconds = 3600
  kms_master_key_id         = aws_kms_key.alerts.arn
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.account_dead_letters[0].arn
    maxReceiveCount     = local.account_max_receives
  })
  tags = var.tags
}

# An account whose every receive failed (the scan's summary names it), kept 14 days.
resource "aws_sqs_queue" "account_dead_letters" {
  count                     = local.org_mode ? 1 : 0
  name                      = "${var.name}-accounts-dlq"
  message_retention_seconds = 1209600
  kms_master_key_id         = aws_kms_key.alerts.arn
  tags                      = var.tags
}

data "aws_iam_policy_document" "account_queues" {
  for_each = local.org_mode ? {
    accounts     = aws_sqs_queue.accounts[0].arn
    dead_letters = aws_sqs_queue.account_dead_letters[0].arn
  } : {}
  statement {
    sid    = "OnlyOverTls"
    effect = "Deny"
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    actions   = ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage"]
    resources = [each.value]
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sqs_queue_policy" "account_queues" {
  for_each = data.aws_iam_policy_document.account_queues
  queue_url = {
    accounts     = aws_sqs_queue.accounts[0].id
    dead_letters = aws_sqs_queue.account_dead_letters[0].id
  }[each.key]
  policy = each.value.json
}

# The scan hands accounts out; it reads their reports with the ledger's BatchGetItem.
data "aws_iam_policy_document" "hand_out_accounts" {
  count = local.org_mode ? 1 : 0
  statement {
    sid       = "QueueAccounts"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.accounts[0].arn]
  }
}

resource "aws_iam_role_policy" "hand_out_accounts" {
  count  = local.org_mode ? 1 : 0
  name   = "hand-out-accounts"
  role   = aws_iam_role.function["scheduled-scan"].id
  policy = data.aws_iam_policy_document.hand_out_accounts[0].json
}

# Named, so that the member accounts' read role can trust it beside the other two.
resource "aws_iam_role" "account_worker" {
  count              = local.org_mode ? 1 : 0
  name               = "${var.name}-account-worker"
  description        = "trailwatch account worker"
  assume_role_policy = data.aws_iam_policy_document.lambda_trust.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "account_worker" {
  for_each = local.org_mode ? {
    evaluate     = aws_iam_policy.evaluate.arn
    organization = aws_iam_policy.organization[0].arn
  } : {}
  role       = aws_iam_role.account_worker[0].name
  policy_arn = each.value
}

data "aws_iam_policy_document" "account_worker" {
  count = local.org_mode ? 1 : 0
  statement {
    sid       = "OwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.account_worker[0].arn}:*"]
  }
  # What Lambda's SQS event source does as the function's role.
  statement {
    sid       = "TakeAccounts"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
    resources = [aws_sqs_queue.accounts[0].arn]
  }
  # Each account's report, written once; the count is an UpdateItem.
  statement {
    sid       = "ReportAccounts"
    actions   = ["dynamodb:PutItem"]
    resources = [aws_dynamodb_table.alert_ledger.arn]
  }
}

resource "aws_iam_role_policy" "account_worker" {
  count  = local.org_mode ? 1 : 0
  name   = "own-logs-queue-and-reports"
  role   = aws_iam_role.account_worker[0].id
  policy = data.aws_iam_policy_document.account_worker[0].json
}

resource "aws_cloudwatch_log_group" "account_worker" {
  count             = local.org_mode ? 1 : 0
  name              = "/aws/lambda/${var.name}-account-worker"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.alerts.arn
  tags              = var.tags
}

resource "aws_lambda_function" "account_worker" {
  #checkov:skip=CKV_AWS_117:No VPC. The function only calls public AWS APIs in every scanned region; inside a VPC it would need a NAT gateway or interface endpoints for seven services in each region, and it reaches no private resource.
  #checkov:skip=CKV_AWS_173:The variables hold a topic ARN, a region list and flags, no secret. Lambda already encrypts them at rest with an AWS managed key.
  #checkov:skip=CKV_AWS_50:The functions carry no X-Ray SDK, so active tracing would record only Lambda's own invoke segments, which the Duration and Errors metrics and the EMF line already give, at the price of xray:Put* on "*".
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile that the deployer owns, and the zip is built from source by the deployer (make build). Add code_signing_config_arn where such a profile exists.
  #checkov:skip=CKV_AWS_116:Only the SQS event source invokes it, synchronously; a function's dead-letter queue catches asynchronous invocations only. The account queue's redrive policy moves a failing account to its dead-letter queue after three receives.
  count            = local.org_mode ? 1 : 0
  function_name    = "${var.name}-account-worker"
  description      = "Scans the organisation's accounts the hourly scan put on the account queue"
  role             = aws_iam_role.account_worker[0].arn
  filename         = local.account_worker_zip
  source_code_hash = filebase64sha256(local.account_worker_zip)
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.architecture]
  memory_size      = 256
  # Ten accounts, eight at a time, take seconds. The worker stops scanning 15 s before the
  # deadline and settles every message, so a hung call fails its own message, not the batch.
  timeout                        = 120
  reserved_concurrent_executions = var.org_worker_concurrency

  environment {
    variables = local.environment
  }

  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.account_worker[0].name
    application_log_level = var.log_level
    system_log_level      = "WARN"
  }

  tags = var.tags

  depends_on = [
    aws_iam_role_policy.account_worker,
    aws_iam_role_policy_attachment.account_worker,
  ]
}

resource "aws_lambda_event_source_mapping" "accounts" {
  count            = local.org_mode ? 1 : 0
  event_source_arn = aws_sqs_queue.accounts[0].arn
  function_name    = aws_lambda_function.account_worker[0].arn
  batch_size       = 10
  # The answer names the messages to deliver again; the rest are done.
  function_response_types = ["ReportBatchItemFailures"]
  scaling_config {
    maximum_concurrency = var.org_worker_concurrency
  }
}

resource "aws_cloudwatch_metric_alarm" "account_dead_letters" {
  count               = local.org_mode ? 1 : 0
  alarm_name          = "${var.name}-account-dead-letters"
  alarm_description   = "An organisation account failed every receive of the account worker; the hourly scan's summary names it, and its message waits in ${aws_sqs_queue.account_dead_letters[0].name}."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.account_dead_letters[0].name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
  tags                = var.tags
}
