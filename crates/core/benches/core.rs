//! Criterion benchmarks of the pure core, run by `make bench`:
//!
//! - `evaluate_account`: every rule over one account of 10,000 trails in 17 regions, each with
//!   its own log group (with its streams), tamper alarm, alarm topic and delivery role (cloned from the rule tests' fixtures),
//!   one in five stopped. No real account has that many, so the figure bounds what one scan's
//!   CPU can cost.
//! - `policy`: the IAM matcher on a delivery role at IAM's size limits (10 managed policies of
//!   about 6 KB plus 10 KB inline), on a hostile 1,000-statement document whose wildcards all
//!   nearly match, and the wildcard matcher alone on a pattern that is exponential for naive
//!   backtracking.

use chrono::{DateTime, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::hint::black_box;
use trailwatch_core::evaluate::{evaluate_account, Settings};
use trailwatch_core::policy::{self, AccessRequest, PolicyDocument};
use trailwatch_core::snapshot::{
    LogGroupSnapshot, NamedPolicy, RegionSnapshot, Role, Trail, TrailDetails,
};
use trailwatch_core::{AccountSnapshot, ReasonCode};

const TRAILS: usize = 10_000;
const REGIONS: [&str; 17] = [
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ca-central-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "ap-south-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "sa-east-1",
];

/// A fixture of the rule tests with the healthy trail's names rewritten for trail `index` in
/// `region`, parsed into `T`.
fn fixture<T: serde::de::DeserializeOwned>(text: &str, index: usize, region: &str) -> T {
    let text = text
        .replace("management-events", &format!("trail-{index}"))
        .replace(
            "aws-cloudtrail-logs-111122223333",
            &format!("group-{index}"),
        )
        .replace("us-east-1", region)
        .replace(
            "\"IsMultiRegionTrail\": true",
            "\"IsMultiRegionTrail\": false",
        );
    serde_json::from_str(&text).expect("fixture parses")
}

fn pointer<T: serde::de::DeserializeOwned>(value: &Value, path: &str) -> T {
    serde_json::from_value(value.pointer(path).cloned().expect(path)).expect(path)
}

macro_rules! text {
    ($name:literal) => {
        include_str!(concat!("../fixtures/", $name))
    };
}

fn large_account() -> AccountSnapshot {
    let mut regions: BTreeMap<&str, Vec<Trail>> = BTreeMap::new();
    let mut trail_details = BTreeMap::new();
    let mut log_groups = BTreeMap::new();
    let mut roles = BTreeMap::new();
    let mut topics = BTreeMap::new();
    for index in 0..TRAILS {
        let region = REGIONS[index % REGIONS.len()];
        let trails: Value = fixture(text!("describe_trails_us_east_1.json"), index, region);
        let trail: Trail = pointer(&trails, "/trailList/0");
        let status = match index % 5 {
            0 => fixture(text!("get_trail_status_stopped.json"), index, region),
            _ => fixture(text!("get_trail_status_healthy.json"), index, region),
        };
        trail_details.insert(
            trail.trail_arn.clone(),
            TrailDetails {
                status: Ok(status),
                event_selectors: Ok(fixture(
                    text!("get_event_selectors_default.json"),
                    index,
                    region,
                )),
                regional_status: BTreeMap::new(),
                tags: None,
            },
        );
        let groups: Value = fixture(text!("describe_log_groups.json"), index, region);
        let group_arn: String = pointer(&groups, "/logGroups/0/arn");
        let filters: Value = fixture(text!("describe_metric_filters_cis.json"), index, region);
        let alarms: Value = fixture(text!("describe_alarms_tamper.json"), index, region);
        let streams: Value = fixture(text!("describe_log_streams.json"), index, region);
        log_groups.insert(
            group_arn.trim_end_matches(":*").to_string(),
            LogGroupSnapshot {
                group: Ok(Some(pointer(&groups, "/logGroups/0"))),
                metric_filters: Ok(pointer(&filters, "/metricFilters")),
                alarms: Ok(pointer(&alarms, "/MetricAlarms")),
                streams: Ok(pointer(&streams, "/logStreams")),
                more_streams: false,
                key: None,
            },
        );
        let subscriptions: Value =
            fixture(text!("list_subscriptions_by_topic.json"), index, region);
        topics.insert(
            pointer::<String>(&alarms, "/MetricAlarms/0/AlarmActions/0"),
            Ok(Some(pointer(&subscriptions, "/Subscriptions"))),
        );
        let get_role: Value = fixture(text!("get_role.json"), index, region);
        let inline: Value = fixture(text!("get_role_policy_streams.json"), index, region);
        let role = Role {
            role_name: pointer(&get_role, "/Role/RoleName"),
            arn: pointer(&get_role, "/Role/Arn"),
            assume_role_policy_document: pointer(&get_role, "/Role/AssumeRolePolicyDocument"),
            policies: vec![NamedPolicy {
                name: pointer(&inline, "/PolicyName"),
                document: pointer(&inline, "/PolicyDocument"),
            }],
            permissions_boundary: None,
        };
        roles.insert(role.arn.clone(), Ok(Some(role)));
        regions.entry(region).or_default().push(trail);
    }
    AccountSnapshot {
        account_id: "111122223333".into(),
        partition: "aws".into(),
        home_region: "us-east-1".into(),
        regions: regions
            .into_iter()
            .map(|(region, trails)| RegionSnapshot {
                region: region.into(),
                trails: Ok(trails),
            })
            .collect(),
        trail_details,
        log_groups,
        roles,
        topics,
        organization: None,
        guardrail: None,
    }
}

fn bench_evaluate(c: &mut Criterion) {
    let snapshot = large_account();
    let now = DateTime::parse_from_rfc3339("2024-06-01T12:00:00Z")
        .expect("a time")
        .with_timezone(&Utc);
    let settings = Settings::at(now);
    // The snapshot must be what it claims to be, or the figure means nothing.
    let evaluations = evaluate_account(&snapshot, &settings);
    assert_eq!(evaluations.len(), TRAILS + 1);
    let stopped = evaluations
        .iter()
        .filter(|e| {
            e.reasons
                .iter()
                .any(|r| r.code == ReasonCode::LoggingStopped)
        })
        .count();
    assert_eq!(stopped, TRAILS / 5);

    let mut group = c.benchmark_group("evaluate_account");
    group.throughput(Throughput::Elements(TRAILS as u64));
    group.sample_size(20);
    group.bench_function("10000_trails", |b| {
        b.iter(|| evaluate_account(black_box(&snapshot), black_box(&settings)))
    });
    group.finish();
}

/// A statement that nearly matches the delivery request: same service, a resource pattern
/// that fails only at its end.
fn near_miss(index: usize) -> Value {
    json!({
        "Sid": format!("Team{index}"),
        "Effect": "Allow",
        "Action": ["logs:Create*", "logs:Put*", "logs:Describe*"],
        "Resource": format!("arn:aws:logs:*:111122223333:log-group:team-{index}-*:log-stream:*-{index}")
    })
}

fn document(statements: Vec<Value>) -> PolicyDocument {
    serde_json::from_value(json!({"Version": "2012-10-17", "Statement": statements}))
        .expect("a policy document")
}

fn bench_policy(c: &mut Criterion) {
    let request = AccessRequest {
        action: "logs:PutLogEvents",
        resource: "arn:aws:logs:us-east-1:111122223333:log-group:cloudtrail/audit:log-stream:111122223333_CloudTrail_us-east-1_2",
        principal: None,
        context: &[],
    };
    let allow_last = json!({
        "Effect": "Allow",
        "Action": "logs:PutLogEvents",
        "Resource": "arn:aws:logs:us-east-1:111122223333:log-group:cloudtrail/audit:log-stream:*"
    });
    // IAM's limits: 10 managed policies of 6,144 characters, 10,240 characters inline.
    let mut at_limits: Vec<PolicyDocument> = (0..10)
        .map(|p| document((0..30).map(|i| near_miss(p * 100 + i)).collect()))
        .collect();
    at_limits.push(document(
        (0..45)
            .map(near_miss)
            .chain(std::iter::once(allow_last.clone()))
            .collect(),
    ));
    let hostile = document(
        (0..1000)
            .map(|i| {
                json!({
                    "Effect": "Allow",
                    "Action": "l*o*g*s*:*P*u*t*L*o*g*E*v*e*n*t*s*X",
                    "Resource": format!("a*r*n*:*a*w*s*:*l*o*g*s*{i}*Z")
                })
            })
            .chain(std::iter::once(allow_last))
            .collect(),
    );
    let role: Vec<&PolicyDocument> = at_limits.iter().collect();
    assert_eq!(policy::evaluate(&role, &request), policy::Decision::Allowed);
    assert_eq!(
        policy::evaluate(&[&hostile], &request),
        policy::Decision::Allowed
    );
    let pattern = format!("{}b", "a*".repeat(200));
    let text = "a".repeat(10_000);
    assert!(!policy::glob_match(&pattern, &text, false));

    let mut group = c.benchmark_group("policy");
    group.bench_function("role_at_iam_size_limits", |b| {
        b.iter(|| policy::evaluate(black_box(&role), black_box(&request)))
    });
    group.bench_function("hostile_1000_statements", |b| {
        b.iter(|| policy::evaluate(black_box(&[&hostile]), black_box(&request)))
    });
    group.bench_function("glob_a_star_200_on_10k", |b| {
        b.iter(|| policy::glob_match(black_box(&pattern), black_box(&text), false))
    });
    group.finish();
}

criterion_group!(benches, bench_evaluate, bench_policy);
criterion_main!(benches);
