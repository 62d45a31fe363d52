# The change rule's EventBridge pattern, shared by the trailwatch and region-forwarder modules
# so that both match the same calls. It holds no resources.
#
# The calls that can break a trail's link to CloudWatch Logs, and only successful ones: a failed
# call changed nothing. The list is trailwatch_core::event::rule_pattern() (tests/tests/infra.rs
# keeps them equal, and equal to the SAM templates').

locals {
  change_event_pattern = {
    source        = ["aws.cloudtrail", "aws.iam", "aws.logs"]
    "detail-type" = ["AWS API Call via CloudTrail"]
    detail = {
      eventSource = ["cloudtrail.amazonaws.com", "iam.amazonaws.com", "logs.amazonaws.com"]
      eventName = [
        "AttachRolePolicy",
        "CreateTrail",
        "DeleteLogGroup",
        "DeleteRole",
        "DeleteRolePolicy",
        "DeleteTrail",
        "DetachRolePolicy",
        "PutEventSelectors",
        "PutRolePolicy",
        "StartLogging",
        "StopLogging",
        "UpdateAssumeRolePolicy",
        "UpdateTrail",
      ]
      errorCode = [{ exists = false }]
    }
  }
}

output "json" {
  description = "The pattern, encoded for aws_cloudwatch_event_rule.event_pattern."
  value       = jsonencode(local.change_event_pattern)
}
