output "alerts_topic_arn" {
  description = "Subscribe email, SQS, or Amazon Q Developer in chat applications here."
  value       = aws_sns_topic.alerts.arn
}

output "guard_topic_arn" {
  description = "Pages when someone changes trailwatch itself, on a path that does not depend on the alerts topic or its key."
  value       = aws_sns_topic.guard.arn
}

output "alerts_key_arn" {
  description = "The KMS key of the topic, the dead-letter queues, the alert ledger and the function logs."
  value       = aws_kms_key.alerts.arn
}

output "alert_ledger_table_name" {
  description = "The DynamoDB table that keeps overlapping runs from alerting twice."
  value       = aws_dynamodb_table.alert_ledger.name
}

output "function_names" {
  value = { for k, f in aws_lambda_function.function : k => f.function_name }
}

output "dead_letter_queue_urls" {
  description = "Events that could not be handled. Replay a trail-change one with `trailwatch replay`."
  value = merge(
    {
      "scheduled-scan" = aws_sqs_queue.scan_dead_letters.url
      "trail-change"   = aws_sqs_queue.change_dead_letters.url
    },
    # Organisation accounts the account worker gave up on.
    local.org_mode ? { "account-worker" = aws_sqs_queue.account_dead_letters[0].url } : {},
  )
}

output "central_event_bus_arn" {
  description = "Give this region to the region-forwarder module in every other region."
  value       = "arn:${local.partition}:events:${local.region}:${local.account}:event-bus/default"
}

output "dashboard_url" {
  description = "trailwatch's own CloudWatch dashboard."
  value       = "https://${local.region}.console.aws.amazon.com/cloudwatch/home?region=${local.region}#dashboards/dashboard/${aws_cloudwatch_dashboard.monitor.dashboard_name}"
}
