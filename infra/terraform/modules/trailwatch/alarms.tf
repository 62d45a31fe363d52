# The monitor watches itself; every alarm notifies the alerts topic.

resource "aws_cloudwatch_metric_alarm" "errors" {
  for_each            = local.functions
  alarm_name          = "${var.name}-${each.key}-errors"
  alarm_description   = "trailwatch ${each.key} failed; see its logs."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.function[each.key].function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
  ok_actions          = [aws_sns_topic.alerts.arn]
  tags                = var.tags
}

# trailwatch's own Errors metric (its EMF line): evaluations it could not complete, and findings
# or pages it could not record or send. Lambda's Errors count only invocations that failed.
resource "aws_cloudwatch_metric_alarm" "blind_spots" {
  for_each = {
    "scheduled-scan" = { statistic = "Maximum", period = 3600 }
    "trail-change"   = { statistic = "Sum", period = 300 }
  }
  alarm_name          = "${var.name}-${each.key}-blind-spots"
  alarm_description   = "trailwatch ${each.key} could not verify something or could not record or page it; see its logs."
  namespace           = "trailwatch"
  metric_name         = "Errors"
  dimensions          = { Function = each.key }
  statistic           = each.value.statistic
  period              = each.value.period
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
  ok_actions          = [aws_sns_topic.alerts.arn]
  tags                = var.tags
}

# An attacker who disables the schedule silences the monitor; so does a broken deployment.
resource "aws_cloudwatch_metric_alarm" "scan_silent" {
  alarm_name          = "${var.name}-scheduled-scan-silent"
  alarm_description   = "The hourly scan has not run for three hours."
  namespace           = "AWS/Lambda"
  metric_name         = "Invocations"
  dimensions          = { FunctionName = aws_lambda_function.function["scheduled-scan"].function_name }
  statistic           = "Sum"
  period              = 3600
  evaluation_periods  = 3
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
  ok_actions          = [aws_sns_topic.alerts.arn]
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  for_each = {
    "scheduled-scan" = aws_sqs_queue.scan_dead_letters.name
    "trail-change"   = aws_sqs_queue.change_dead_letters.name
  }
  alarm_name          = "${var.name}-${each.key}-dead-letters"
  alarm_description   = "A ${each.key} event was given up on; it waits in ${each.value}."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = each.value }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
  tags                = var.tags
}

# Organisation mode: an account whose read role cannot be assumed is a blind spot. The scan
# reports it on every run (AccountsUnreachable, from the function's metrics line).
resource "aws_cloudwatch_metric_alarm" "accounts_unreachable" {
  count               = var.org_role_name == "" ? 0 : 1
  alarm_name          = "${var.name}-accounts-unreachable"
  alarm_description   = "The hourly scan could not read at least one account of the organisation; its log and answer name each account and why."
  namespace           = "trailwatch"
  metric_name         = "AccountsUnreachable"
  dimensions          = { Function = "scheduled-scan" }
  statistic           = "Maximum"
  period              = 3600
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
  ok_actions          = [aws_sns_topic.alerts.arn]
  tags                = var.tags
}
