locals {
  functions = {
    "scheduled-scan" = {
      description = "Hourly check that every trail streams to CloudWatch Logs"
      zip         = local.scheduled_scan_zip
      # One account's scan takes seconds; an organisation of 1,000 accounts takes minutes
      # (README, "Scale"). Lambda's most, since a run cut short scans nobody after the cut.
      timeout = 900
      # A scan older than an hour is superseded by the next one.
      max_event_age = 3600
      dead_letters  = aws_sqs_queue.scan_dead_letters.arn
    }
    "trail-change" = {
      description = "Re-checks a trail within seconds of a call that can break its CloudWatch link"
      zip         = local.trail_change_zip
      # Above the SDK's 90 s operation timeout, so a hung call ends as a Retryable error that
      # names it, not as a Lambda timeout that names nothing.
      timeout = 120
      # A change is worth checking as long as it is news: six hours, Lambda's maximum.
      max_event_age = 21600
      dead_letters  = aws_sqs_queue.change_dead_letters.arn
    }
  }
}

resource "aws_cloudwatch_log_group" "function" {
  for_each          = local.functions
  name              = "/aws/lambda/${var.name}-${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.alerts.arn
  tags              = var.tags
}

resource "aws_lambda_function" "function" {
  #checkov:skip=CKV_AWS_117:No VPC. The function only calls public AWS APIs in every scanned region; inside a VPC it would need a NAT gateway or interface endpoints for seven services in each region, and it reaches no private resource.
  #checkov:skip=CKV_AWS_173:The variables hold a topic ARN, a region list and flags, no secret. Lambda already encrypts them at rest with an AWS managed key.
  #checkov:skip=CKV_AWS_50:The functions carry no X-Ray SDK, so active tracing would record only Lambda's own invoke segments, which the Duration and Errors metrics and the EMF line already give, at the price of xray:Put* on "*".
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile that the deployer owns, and the zip is built from source by the deployer (make build). Add code_signing_config_arn where such a profile exists.
  for_each         = local.functions
  function_name    = "${var.name}-${each.key}"
  description      = each.value.description
  role             = aws_iam_role.function[each.key].arn
  filename         = each.value.zip
  source_code_hash = filebase64sha256(each.value.zip)
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.architecture]
  memory_size      = 256
  timeout          = each.value.timeout
  # One invocation at a time per function: two overlapping scans, or two re-checks of one
  # trail, would both see the old verdict and both alert. Lambda queues the rest.
  reserved_concurrent_executions = 1

  environment {
    variables = local.environment
  }

  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.function[each.key].name
    application_log_level = var.log_level
    system_log_level      = "WARN"
  }

  dead_letter_config {
    target_arn = each.value.dead_letters
  }

  tags = var.tags

  depends_on = [
    aws_iam_role_policy.own_logs_and_dead_letters,
    aws_iam_role_policy_attachment.evaluate,
  ]
}

resource "aws_lambda_function_event_invoke_config" "function" {
  for_each                     = local.functions
  function_name                = aws_lambda_function.function[each.key].function_name
  maximum_retry_attempts       = 2
  maximum_event_age_in_seconds = each.value.max_event_age
}
