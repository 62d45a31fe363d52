output "rule_arn" {
  value = aws_cloudwatch_event_rule.forward.arn
}

output "dead_letter_queue_url" {
  description = "Events that could not be forwarded. Replay one with `trailwatch replay`."
  value       = aws_sqs_queue.dead_letters.url
}
