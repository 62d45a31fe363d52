# One page for the people who run trailwatch, built on the metrics line each run prints
# (namespace trailwatch, dimension Function) and on Lambda's own metrics. Counts are summed over
# the hour: in organisation mode every account prints its own line. The same widgets as
# MonitorDashboard in infra/template.yaml.
locals {
  dashboard_functions = {
    scan    = aws_lambda_function.function["scheduled-scan"].function_name
    recheck = aws_lambda_function.function["trail-change"].function_name
    # Named, not referenced: the worker and its queue exist only in organisation mode, and
    # their series stay empty without it.
    worker = "${var.name}-account-worker"
  }
  dashboard_account_dead_letters = "${var.name}-accounts-dlq"
  dashboard_widget = {
    type   = "metric"
    width  = 12
    height = 6
  }
}

resource "aws_cloudwatch_dashboard" "monitor" {
  dashboard_name = "${var.name}-trailwatch"
  dashboard_body = jsonencode({
    widgets = [
      merge(local.dashboard_widget, {
        x = 0, y = 0
        properties = {
          title  = "Trails evaluated and failing (hourly scan)", region = local.region
          view   = "timeSeries", period = 3600, stat = "Sum"
          metrics = [
            ["trailwatch", "TrailsEvaluated", "Function", "scheduled-scan", { label = "evaluated" }],
            ["trailwatch", "TrailsFailing", "Function", "scheduled-scan", { label = "failing" }],
            ["trailwatch", "TrailsEvaluated", "Function", "account-worker", { label = "evaluated by account workers" }],
            ["trailwatch", "TrailsFailing", "Function", "account-worker", { label = "failing, from account workers" }],
          ]
        }
      }),
      merge(local.dashboard_widget, {
        x = 12, y = 0
        properties = {
          title  = "Blind spots: evaluations or pages trailwatch could not complete", region = local.region
          view   = "timeSeries", period = 3600, stat = "Sum"
          metrics = [
            ["trailwatch", "Errors", "Function", "scheduled-scan", { label = "hourly scan" }],
            ["trailwatch", "Errors", "Function", "trail-change", { label = "change re-check" }],
            ["trailwatch", "Errors", "Function", "account-worker", { label = "account workers" }],
          ]
        }
      }),
      merge(local.dashboard_widget, {
        x = 0, y = 6
        properties = {
          title  = "Transitions paged", region = local.region
          view   = "timeSeries", period = 3600, stat = "Sum"
          metrics = [
            ["trailwatch", "Transitions", "Function", "scheduled-scan", { label = "hourly scan" }],
            ["trailwatch", "Transitions", "Function", "trail-change", { label = "change re-check" }],
            ["trailwatch", "Transitions", "Function", "account-worker", { label = "account workers" }],
          ]
        }
      }),
      merge(local.dashboard_widget, {
        x = 12, y = 6
        properties = {
          title  = "Run duration (ms) and AWS API calls", region = local.region
          view   = "timeSeries", period = 3600, stat = "Maximum"
          metrics = [
            ["trailwatch", "Duration", "Function", "scheduled-scan", { label = "scan duration" }],
            ["trailwatch", "Duration", "Function", "trail-change", { label = "re-check duration" }],
            ["trailwatch", "Duration", "Function", "account-worker", { label = "slowest account's duration" }],
            ["trailwatch", "ApiCalls", "Function", "scheduled-scan", { label = "scan API calls", yAxis = "right" }],
            ["trailwatch", "ApiCalls", "Function", "trail-change", { label = "re-check API calls", yAxis = "right", stat = "Sum" }],
            ["trailwatch", "ApiCalls", "Function", "account-worker", { label = "most API calls of one account", yAxis = "right" }],
          ]
        }
      }),
      merge(local.dashboard_widget, {
        x = 0, y = 12
        properties = {
          title  = "Organisation mode: accounts scanned and unreachable", region = local.region
          view   = "timeSeries", period = 3600, stat = "Maximum"
          metrics = [
            ["trailwatch", "Accounts", "Function", "scheduled-scan", { label = "accounts" }],
            ["trailwatch", "AccountsScanned", "Function", "scheduled-scan", { label = "scanned" }],
            ["trailwatch", "AccountsUnreachable", "Function", "scheduled-scan", { label = "unreachable" }],
            ["trailwatch", "OrganizationDuration", "Function", "scheduled-scan", { label = "organisation run (ms)", yAxis = "right" }],
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", local.dashboard_account_dead_letters, { label = "accounts dead-lettered" }],
          ]
        }
      }),
      merge(local.dashboard_widget, {
        x = 12, y = 12
        properties = {
          title  = "The functions' own Lambda errors and throttles", region = local.region
          view   = "timeSeries", period = 3600, stat = "Sum"
          metrics = [
            ["AWS/Lambda", "Errors", "FunctionName", local.dashboard_functions.scan, { label = "scan errors" }],
            ["AWS/Lambda", "Throttles", "FunctionName", local.dashboard_functions.scan, { label = "scan throttles" }],
            ["AWS/Lambda", "Errors", "FunctionName", local.dashboard_functions.recheck, { label = "re-check errors" }],
            ["AWS/Lambda", "Throttles", "FunctionName", local.dashboard_functions.recheck, { label = "re-check throttles" }],
            ["AWS/Lambda", "Errors", "FunctionName", local.dashboard_functions.worker, { label = "account worker errors" }],
            ["AWS/Lambda", "Throttles", "FunctionName", local.dashboard_functions.worker, { label = "account worker throttles" }],
          ]
        }
      }),
    ]
  })
}
