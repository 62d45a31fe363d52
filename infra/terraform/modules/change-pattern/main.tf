# The change rule's EventBridge pattern, shared by the trailwatch and region-forwarder modules
# so that both match the same calls. It holds no resources.
#
# The calls that can break a trail's link to CloudWatch Logs or the alarm on it, or blind
# trailwatch itself, and only successful ones: a failed call changed nothing. The list is trailwatch_core::event::rule_pattern() (tests/tests/infra.rs
# keeps them equal, and equal to the SAM templates').

locals {
  change_event_pattern = {
    source        = [
      "aws.cloudtrail",
      "aws.events",
      "aws.iam",
      "aws.kms",
      "aws.lambda",
      "aws.logs",
      "aws.monitoring",
      "aws.sns",
    ]
    "detail-type" = ["AWS API Call via CloudTrail"]
    detail = {
      eventSource = [
        "cloudtrail.amazonaws.com",
        "events.amazonaws.com",
        "iam.amazonaws.com",
        "kms.amazonaws.com",
        "lambda.amazonaws.com",
        "logs.amazonaws.com",
        "monitoring.amazonaws.com",
        "sns.amazonaws.com",
      ]
      eventName = [
        "AddTags",
        "AssociateKmsKey",
        "AttachRolePolicy",
        "CreatePolicyVersion",
        "CreateTrail",
        "DeleteAlarms",
        "DeleteFunction20150331",
        "DeleteLogGroup",
        "DeleteMetricFilter",
        "DeletePolicyVersion",
        "DeleteRetentionPolicy",
        "DeleteRole",
        "DeleteRolePermissionsBoundary",
        "DeleteRolePolicy",
        "DeleteRule",
        "DeleteTopic",
        "DeleteTrail",
        "DetachRolePolicy",
        "DisableAlarmActions",
        "DisableKey",
        "DisableRule",
        "DisassociateKmsKey",
        "PutEventSelectors",
        "PutFunctionConcurrency20171031",
        "PutKeyPolicy",
        "PutMetricAlarm",
        "PutMetricFilter",
        "PutRolePermissionsBoundary",
        "PutRolePolicy",
        "RemoveTags",
        "RemoveTargets",
        "ScheduleKeyDeletion",
        "SetDefaultPolicyVersion",
        "SetTopicAttributes",
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
