# What both functions do: read trails and what they point at, record verdicts, alert. Every
# action is one the code calls (tests/tests/infra.rs checks it against the calls a scan and a
# re-check make); sts:GetCallerIdentity needs no permission and is not listed.
data "aws_iam_policy_document" "evaluate" {
  statement {
    sid       = "ListEnabledRegions"
    actions   = ["account:ListRegions"]
    resources = ["arn:${local.partition}:account::${local.account}:account"]
  }
  # DescribeTrails has no resource type: AWS accepts only "*" for it.
  statement {
    sid       = "ListTrails"
    actions   = ["cloudtrail:DescribeTrails"]
    resources = ["*"]
  }
  statement {
    sid       = "ReadTrails"
    actions   = ["cloudtrail:GetEventSelectors", "cloudtrail:GetTrailStatus", "cloudtrail:ListTags"]
    resources = ["arn:${local.partition}:cloudtrail:*:${local.account}:trail/*"]
  }
  statement {
    sid       = "ReadLogGroups"
    actions   = ["logs:DescribeLogGroups", "logs:DescribeLogStreams", "logs:DescribeMetricFilters"]
    resources = ["arn:${local.partition}:logs:*:${local.account}:log-group:*"]
  }
  # A log group may be encrypted with another account's key, whose DescribeKey that account
  # may allow; GetKeyPolicy answers only in the key's own account.
  statement {
    sid       = "ReadLogGroupKeys"
    actions   = ["kms:DescribeKey"]
    resources = ["arn:${local.partition}:kms:*:*:key/*"]
  }
  statement {
    sid       = "ReadLogGroupKeyPolicies"
    actions   = ["kms:GetKeyPolicy"]
    resources = ["arn:${local.partition}:kms:*:${local.account}:key/*"]
  }
  statement {
    sid       = "ReadAlarmTopics"
    actions   = ["sns:ListSubscriptionsByTopic"]
    resources = ["arn:${local.partition}:sns:*:${local.account}:*"]
  }
  # The organisation's id names an organisation trail's member streams. DescribeOrganization
  # has no resource type: AWS accepts only "*" for it.
  statement {
    sid       = "ReadOrganization"
    actions   = ["organizations:DescribeOrganization"]
    resources = ["*"]
  }
  statement {
    sid       = "ReadAlarms"
    actions   = ["cloudwatch:DescribeAlarms"]
    resources = ["arn:${local.partition}:cloudwatch:*:${local.account}:alarm:*"]
  }
  statement {
    sid = "ReadDeliveryRoles"
    actions = [
      "iam:GetRole",
      "iam:GetRolePolicy",
      "iam:ListAttachedRolePolicies",
      "iam:ListRolePolicies",
    ]
    resources = ["arn:${local.partition}:iam::${local.account}:role/*"]
  }
  # Several delivery roles in a small account are read in one listing (README, "Where the
  # IAM reads go"). Neither action has a resource type: AWS accepts only "*". Without this
  # statement trailwatch reads each role on its own.
  statement {
    sid       = "ListDeliveryRolesAtOnce"
    actions   = ["iam:GetAccountAuthorizationDetails", "iam:GetAccountSummary"]
    resources = ["*"]
  }
  # Attached policies may be the account's own or AWS managed ones.
  statement {
    sid     = "ReadDeliveryRolePolicies"
    actions = ["iam:GetPolicy", "iam:GetPolicyVersion"]
    resources = [
      "arn:${local.partition}:iam::${local.account}:policy/*",
      "arn:${local.partition}:iam::aws:policy/*",
    ]
  }
  statement {
    sid       = "RememberVerdicts"
    actions   = ["securityhub:GetFindings"]
    resources = ["arn:${local.partition}:securityhub:*:${local.account}:hub/default"]
  }
  statement {
    sid       = "RecordVerdicts"
    actions   = ["securityhub:BatchImportFindings"]
    resources = ["arn:${local.partition}:securityhub:*:${local.account}:product/${local.account}/default"]
  }
  # An exempt trail's existing finding is suppressed, and released when the exemption ends:
  # once a finding exists, only BatchUpdateFindings changes its workflow.
  statement {
    sid       = "SuppressExemptFindings"
    actions   = ["securityhub:BatchUpdateFindings"]
    resources = ["arn:${local.partition}:securityhub:*:${local.account}:hub/default"]
  }
  statement {
    sid       = "Alert"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts.arn]
  }
  # The memory of pages: read what was paged, claim a page, confirm or give it back.
  statement {
    sid       = "ClaimTransitions"
    actions   = ["dynamodb:BatchGetItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.alert_ledger.arn]
  }
  # The topic, the dead-letter queues and the ledger are encrypted with the module's key.
  statement {
    sid       = "UseStackKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.alerts.arn]
  }
}

resource "aws_iam_policy" "evaluate" {
  name        = "${var.name}-evaluate"
  description = "trailwatch reads trails and what they deliver to, records findings, alerts"
  policy      = data.aws_iam_policy_document.evaluate.json
  tags        = var.tags
}

data "aws_iam_policy_document" "lambda_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

resource "aws_iam_role" "function" {
  for_each           = local.functions
  name               = "${var.name}-${each.key}"
  description        = "trailwatch ${each.key}"
  assume_role_policy = data.aws_iam_policy_document.lambda_trust.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "evaluate" {
  for_each   = local.functions
  role       = aws_iam_role.function[each.key].name
  policy_arn = aws_iam_policy.evaluate.arn
}

# Organisation mode: list the accounts, and read each through its read role. ListAccounts has
# no resource type; the role is the one name in every account.
data "aws_iam_policy_document" "organization" {
  statement {
    sid       = "ListAccounts"
    actions   = ["organizations:ListAccounts"]
    resources = ["*"]
  }
  statement {
    sid       = "ReadMemberAccounts"
    actions   = ["sts:AssumeRole"]
    resources = ["arn:${local.partition}:iam::*:role/${var.org_role_name}"]
  }
  # The SCPs on each account's path, for TAMPER_GUARDRAIL_MISSING. Their ARNs name the
  # management account, which a delegated administrator's deployment does not know.
  statement {
    sid = "ReadServiceControlPolicies"
    actions = [
      "organizations:DescribePolicy",
      "organizations:ListParents",
      "organizations:ListPoliciesForTarget",
    ]
    resources = ["arn:${local.partition}:organizations::*:*"]
  }
}

resource "aws_iam_policy" "organization" {
  count       = var.org_role_name == "" ? 0 : 1
  name        = "${var.name}-organization"
  description = "trailwatch lists the organisation's accounts and reads each through its role"
  policy      = data.aws_iam_policy_document.organization.json
  tags        = var.tags
}

resource "aws_iam_role_policy_attachment" "organization" {
  for_each   = var.org_role_name == "" ? {} : local.functions
  role       = aws_iam_role.function[each.key].name
  policy_arn = aws_iam_policy.organization[0].arn
}

data "aws_iam_policy_document" "own_logs_and_dead_letters" {
  for_each = local.functions
  statement {
    sid       = "OwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function[each.key].arn}:*"]
  }
  statement {
    sid       = "OwnDeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [each.value.dead_letters]
  }
}

resource "aws_iam_role_policy" "own_logs_and_dead_letters" {
  for_each = local.functions
  name     = "own-logs-and-dead-letters"
  role     = aws_iam_role.function[each.key].id
  policy   = data.aws_iam_policy_document.own_logs_and_dead_letters[each.key].json
}

# Self-healing, only when asked for: trail-change may start this account's trails again, and do
# nothing else with them.
data "aws_iam_policy_document" "auto_remediation" {
  statement {
    sid       = "StartStoppedTrails"
    actions   = ["cloudtrail:StartLogging"]
    resources = ["arn:${local.partition}:cloudtrail:*:${local.account}:trail/*"]
  }
}

resource "aws_iam_role_policy" "auto_remediation" {
  count  = var.auto_remediate == "start-logging" ? 1 : 0
  name   = "start-stopped-trails"
  role   = aws_iam_role.function["trail-change"].name
  policy = data.aws_iam_policy_document.auto_remediation.json
}
