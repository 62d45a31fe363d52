//! Test harness for trailwatch against the moto AWS emulator: fresh isolated accounts, and
//! seeding helpers that build trails, log groups, roles and alarms with the real AWS SDK.
//!
//! Every test gets its own AWS account: moto files the keys that `sts:AssumeRole` returns under
//! the role's account, so assuming `arn:aws:iam::<random>:role/...` gives a clean account in
//! the shared emulator. The harness refuses to run unless `AWS_ENDPOINT_URL` points at
//! loopback, so a test can never touch a real AWS account.

pub mod fault;
pub mod lambda;

use anyhow::{bail, Context, Result};
use aws_config::SdkConfig;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use rand::Rng;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use trailwatch_aws::{
    load_sdk_config, ApiCallCounter, CloudTrailInventory, Config, Outcome, PublishOptions,
    RegionSelection, ScanOptions, Scope, SecurityHubSink, Services, SnsChannel,
};
use trailwatch_core::ScanReport;

/// The emulator's endpoint, checked to be on this machine.
pub fn endpoint() -> Result<String> {
    let url = std::env::var("AWS_ENDPOINT_URL").context(
        "AWS_ENDPOINT_URL is not set: these tests need the moto emulator; run them with `make test`",
    )?;
    let host = url
        .trim_start_matches("http://")
        .split([':', '/'])
        .next()
        .unwrap_or_default();
    if !matches!(host, "127.0.0.1" | "localhost" | "[") {
        bail!("AWS_ENDPOINT_URL={url} is not a loopback address; refusing to run against it");
    }
    Ok(url)
}

/// One isolated account in the emulator, with the credentials that select it.
#[derive(Clone)]
pub struct Account {
    pub id: String,
    pub sdk: SdkConfig,
    pub credentials: Credentials,
    pub bucket: String,
}

/// A trail set up the healthy way, with the names a test may want to break.
pub struct HealthyTrail {
    pub arn: String,
    pub name: String,
    pub log_group_name: String,
    pub log_group_arn: String,
    pub role_name: String,
    pub role_arn: String,
}

/// How to create a trail; builder-style so tests state only what differs.
#[derive(Default, Clone)]
pub struct TrailSpec {
    pub name: String,
    pub region: String,
    pub multi_region: bool,
    pub log_group_arn: Option<String>,
    pub role_arn: Option<String>,
    pub validation: bool,
    pub logging: bool,
    pub organization: bool,
}

impl TrailSpec {
    pub fn new(name: &str, region: &str) -> Self {
        Self {
            name: name.into(),
            region: region.into(),
            validation: true,
            logging: true,
            ..Self::default()
        }
    }
    pub fn multi_region(mut self) -> Self {
        self.multi_region = true;
        self
    }
    pub fn log_group(mut self, arn: &str) -> Self {
        self.log_group_arn = Some(arn.into());
        self
    }
    pub fn role(mut self, arn: &str) -> Self {
        self.role_arn = Some(arn.into());
        self
    }
    pub fn without_validation(mut self) -> Self {
        self.validation = false;
        self
    }
    pub fn stopped(mut self) -> Self {
        self.logging = false;
        self
    }
    /// An organisation trail (the account must manage an organisation).
    pub fn organization(mut self) -> Self {
        self.organization = true;
        self
    }
}

/// The trust policy CloudTrail needs, scoped to the account as AWS recommends.
pub fn cloudtrail_trust(account: &str) -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "cloudtrail.amazonaws.com"}, "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceAccount": account}}}]})
}

/// A delivery policy on `resource`; pass the group ARN with `:*` for a working one.
pub fn delivery_policy(resource: &str) -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Sid": "CloudTrailDelivery", "Effect": "Allow",
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": resource}]})
}

impl Account {
    /// A brand-new account with an S3 bucket ready for trails (CreateTrail needs one).
    pub async fn fresh() -> Result<Self> {
        let id = format!(
            "{}",
            rand::rng().random_range(100_000_000_000u64..999_999_999_999)
        );
        Self::existing(&id).await
    }

    /// Account `id` (one that `organizations:CreateAccount` made, say), reached as the tests
    /// reach every account: by assuming a role in it.
    pub async fn existing(id: &str) -> Result<Self> {
        endpoint()?;
        let id = id.to_string();
        let base = load_sdk_config(Some("us-east-1".into())).await;
        let assumed = aws_sdk_sts::Client::new(&base)
            .assume_role()
            .role_arn(format!("arn:aws:iam::{id}:role/trailwatch-test"))
            .role_session_name("trailwatch-test")
            .send()
            .await
            .context("sts:AssumeRole against the emulator")?;
        let c = assumed.credentials().context("no credentials")?;
        let credentials = Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            None,
            "moto-assumed-role",
        );
        Self::with_credentials(id, credentials).await
    }

    /// Makes this account an organisation's management account, with one new member account
    /// for each of `names`, and returns the members in that order.
    pub async fn create_organization(&self, names: &[&str]) -> Result<Vec<Account>> {
        use aws_sdk_organizations::types::OrganizationFeatureSet;
        let organizations = aws_sdk_organizations::Client::new(&self.sdk);
        organizations
            .create_organization()
            .feature_set(OrganizationFeatureSet::All)
            .send()
            .await?;
        let mut members = Vec::new();
        for name in names {
            let created = organizations
                .create_account()
                .account_name(*name)
                .email(format!("{name}@example.com"))
                .send()
                .await?;
            let id = created
                .create_account_status()
                .and_then(|s| s.account_id())
                .context("CreateAccount returned no id")?;
            members.push(Account::existing(id).await?);
        }
        Ok(members)
    }

    /// The emulator's default account, with the environment's credentials (the demo's).
    pub async fn from_environment() -> Result<Self> {
        endpoint()?;
        let base = load_sdk_config(Some("us-east-1".into())).await;
        let identity = aws_sdk_sts::Client::new(&base)
            .get_caller_identity()
            .send()
            .await?;
        let id = identity.account().context("no account")?.to_string();
        let credentials = Credentials::new(
            std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_else(|_| "testing".into()),
            std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|_| "testing".into()),
            None,
            None,
            "environment",
        );
        Self::with_credentials(id, credentials).await
    }

    async fn with_credentials(id: String, credentials: Credentials) -> Result<Self> {
        let sdk = load_sdk_config(Some("us-east-1".into()))
            .await
            .into_builder()
            .credentials_provider(SharedCredentialsProvider::new(credentials.clone()))
            .build();
        let bucket = format!("trailwatch-logs-{id}");
        let account = Self {
            id,
            sdk,
            credentials,
            bucket,
        };
        account
            .s3()
            .create_bucket()
            .bucket(&account.bucket)
            .send()
            .await
            .context("creating the trail bucket")?;
        Ok(account)
    }

    /// The same account reached through another endpoint, such as a [`fault::FaultProxy`].
    ///
    /// Built through the loader, not `to_builder()`: service clients prefer the environment's
    /// `AWS_ENDPOINT_URL` unless the endpoint was set as client configuration.
    pub async fn via(&self, endpoint: &str) -> Account {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(self.sdk.region().cloned())
            .credentials_provider(SharedCredentialsProvider::new(self.credentials.clone()))
            .endpoint_url(endpoint);
        if let Some(retry) = self.sdk.retry_config() {
            loader = loader.retry_config(retry.clone());
        }
        if let Some(timeouts) = self.sdk.timeout_config() {
            loader = loader.timeout_config(timeouts.clone());
        }
        Account {
            sdk: loader.load().await,
            ..self.clone()
        }
    }

    /// The same account with SDK timeouts short enough for a test to wait them out (the
    /// production ones allow 20 s an attempt and 90 s an operation). Keep it through
    /// [`Account::via`], which copies the timeouts.
    pub fn with_timeouts(&self, attempt: Duration, operation: Duration) -> Account {
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(attempt)
            .operation_attempt_timeout(attempt)
            .operation_timeout(operation)
            .build();
        Account {
            sdk: self.sdk.to_builder().timeout_config(timeouts).build(),
            ..self.clone()
        }
    }

    pub fn regional(&self, region: &str) -> SdkConfig {
        self.sdk
            .to_builder()
            .region(aws_config::Region::new(region.to_string()))
            .build()
    }

    pub fn cloudtrail(&self, region: &str) -> aws_sdk_cloudtrail::Client {
        aws_sdk_cloudtrail::Client::new(&self.regional(region))
    }
    pub fn logs(&self, region: &str) -> aws_sdk_cloudwatchlogs::Client {
        aws_sdk_cloudwatchlogs::Client::new(&self.regional(region))
    }
    pub fn cloudwatch(&self, region: &str) -> aws_sdk_cloudwatch::Client {
        aws_sdk_cloudwatch::Client::new(&self.regional(region))
    }
    pub fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.sdk)
    }
    fn s3(&self) -> aws_sdk_s3::Client {
        // moto serves buckets by path; virtual-host style would ask DNS for bucket.127.0.0.1.
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&self.sdk)
                .force_path_style(true)
                .build(),
        )
    }

    /// Creates a log group and returns its ARN the way CloudTrail stores it (with `:*`).
    pub async fn log_group(
        &self,
        region: &str,
        name: &str,
        retention_days: Option<i32>,
    ) -> Result<String> {
        let logs = self.logs(region);
        logs.create_log_group().log_group_name(name).send().await?;
        if let Some(days) = retention_days {
            logs.put_retention_policy()
                .log_group_name(name)
                .retention_in_days(days)
                .send()
                .await?;
        }
        Ok(format!(
            "arn:aws:logs:{region}:{}:log-group:{name}:*",
            self.id
        ))
    }

    /// A log group with a year's retention, encrypted with a new KMS key whose policy is the
    /// one the CloudWatch Logs user guide gives ("Encrypt log data in CloudWatch Logs using
    /// AWS KMS"). Returns the group's ARN and the key's.
    pub async fn encrypted_log_group(&self, region: &str, name: &str) -> Result<(String, String)> {
        let group = format!("arn:aws:logs:{region}:{}:log-group:{name}", self.id);
        let policy = json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
             "Principal": {"AWS": format!("arn:aws:iam::{}:root", self.id)},
             "Action": "kms:*", "Resource": "*"},
            {"Effect": "Allow", "Principal": {"Service": format!("logs.{region}.amazonaws.com")},
             "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
             "Resource": "*",
             "Condition": {"ArnEquals": {"kms:EncryptionContext:aws:logs:arn": group}}}]});
        let key = aws_sdk_kms::Client::new(&self.regional(region))
            .create_key()
            .policy(policy.to_string())
            .send()
            .await?;
        let key_arn = key
            .key_metadata()
            .and_then(|k| k.arn())
            .context("CreateKey returned no ARN")?
            .to_string();
        let logs = self.logs(region);
        logs.create_log_group()
            .log_group_name(name)
            .kms_key_id(&key_arn)
            .send()
            .await?;
        logs.put_retention_policy()
            .log_group_name(name)
            .retention_in_days(365)
            .send()
            .await?;
        Ok((format!("{group}:*"), key_arn))
    }

    /// Creates a role with `trust` and one inline policy per `(name, document)`.
    pub async fn role(
        &self,
        name: &str,
        trust: &Value,
        inline: &[(&str, Value)],
    ) -> Result<String> {
        let iam = self.iam();
        let created = iam
            .create_role()
            .role_name(name)
            .assume_role_policy_document(trust.to_string())
            .send()
            .await?;
        for (policy_name, document) in inline {
            iam.put_role_policy()
                .role_name(name)
                .policy_name(*policy_name)
                .policy_document(document.to_string())
                .send()
                .await?;
        }
        Ok(created.role().context("no role")?.arn().to_string())
    }

    /// Creates a customer-managed policy and attaches it to `role`.
    pub async fn attach_managed(&self, role: &str, name: &str, document: &Value) -> Result<String> {
        let iam = self.iam();
        let policy = iam
            .create_policy()
            .policy_name(name)
            .policy_document(document.to_string())
            .send()
            .await?;
        let arn = policy
            .policy()
            .and_then(|p| p.arn())
            .context("no policy ARN")?
            .to_string();
        iam.attach_role_policy()
            .role_name(role)
            .policy_arn(&arn)
            .send()
            .await?;
        Ok(arn)
    }

    pub async fn trail(&self, spec: TrailSpec) -> Result<String> {
        let cloudtrail = self.cloudtrail(&spec.region);
        let created = cloudtrail
            .create_trail()
            .name(&spec.name)
            .s3_bucket_name(&self.bucket)
            .is_multi_region_trail(spec.multi_region)
            .is_organization_trail(spec.organization)
            .enable_log_file_validation(spec.validation)
            .set_cloud_watch_logs_log_group_arn(spec.log_group_arn.clone())
            .set_cloud_watch_logs_role_arn(spec.role_arn.clone())
            .send()
            .await
            .with_context(|| format!("creating trail {}", spec.name))?;
        if spec.logging {
            cloudtrail.start_logging().name(&spec.name).send().await?;
        }
        Ok(created.trail_arn().context("no trail ARN")?.to_string())
    }

    /// A metric filter for StopLogging/DeleteTrail on `group` and an alarm with an SNS action.
    pub async fn tamper_alarm(&self, region: &str, group: &str) -> Result<()> {
        use aws_sdk_cloudwatch::types::{ComparisonOperator, Statistic};
        use aws_sdk_cloudwatchlogs::types::MetricTransformation;
        self.logs(region)
            .put_metric_filter()
            .log_group_name(group)
            .filter_name("cloudtrail-tampering")
            .filter_pattern("{ ($.eventName = StopLogging) || ($.eventName = DeleteTrail) || ($.eventName = UpdateTrail) }")
            .metric_transformations(
                MetricTransformation::builder()
                    .metric_name("CloudTrailTampering")
                    .metric_namespace("Security")
                    .metric_value("1")
                    .build()?,
            )
            .send()
            .await?;
        // The alarm pages someone: its topic exists and has a confirmed subscription (moto
        // confirms email subscriptions at once).
        let sns = aws_sdk_sns::Client::new(&self.regional(region));
        let topic = sns.create_topic().name("security-alerts").send().await?;
        sns.subscribe()
            .topic_arn(topic.topic_arn().context("CreateTopic returned no ARN")?)
            .protocol("email")
            .endpoint("secops@example.com")
            .send()
            .await?;
        self.cloudwatch(region)
            .put_metric_alarm()
            .alarm_name(format!("cloudtrail-tampering-{group}"))
            .metric_name("CloudTrailTampering")
            .namespace("Security")
            .statistic(Statistic::Sum)
            .period(300)
            .evaluation_periods(1)
            .threshold(1.0)
            .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
            .alarm_actions(format!("arn:aws:sns:{region}:{}:security-alerts", self.id))
            .send()
            .await?;
        Ok(())
    }

    /// A trail with everything right: log group with retention, a delivery role with the
    /// right trust and `:*` policy, a tamper alarm, log file validation, and logging on.
    pub async fn healthy_trail(
        &self,
        name: &str,
        region: &str,
        multi_region: bool,
    ) -> Result<HealthyTrail> {
        let log_group_name = format!("cloudtrail/{name}");
        let log_group_arn = self.log_group(region, &log_group_name, Some(365)).await?;
        self.healthy_trail_on(name, region, multi_region, &log_group_name, log_group_arn)
            .await
    }

    /// [`Account::healthy_trail`] delivering to an existing log group.
    pub async fn healthy_trail_on(
        &self,
        name: &str,
        region: &str,
        multi_region: bool,
        log_group_name: &str,
        log_group_arn: String,
    ) -> Result<HealthyTrail> {
        let log_group_name = log_group_name.to_string();
        let role_name = format!("CloudTrailToCloudWatch-{name}");
        let role_arn = self
            .role(
                &role_name,
                &cloudtrail_trust(&self.id),
                &[("delivery", delivery_policy(&log_group_arn))],
            )
            .await?;
        self.tamper_alarm(region, &log_group_name).await?;
        let mut spec = TrailSpec::new(name, region)
            .log_group(&log_group_arn)
            .role(&role_arn);
        if multi_region {
            spec = spec.multi_region();
        }
        let arn = self.trail(spec).await?;
        Ok(HealthyTrail {
            arn,
            name: name.into(),
            log_group_name,
            log_group_arn,
            role_name,
            role_arn,
        })
    }

    pub fn security_hub(&self, region: &str) -> aws_sdk_securityhub::Client {
        aws_sdk_securityhub::Client::new(&self.regional(region))
    }

    pub async fn enable_security_hub(&self, region: &str) -> Result<()> {
        self.security_hub(region)
            .enable_security_hub()
            .enable_default_standards(false)
            .send()
            .await?;
        Ok(())
    }

    /// Every finding Security Hub holds in `region`, archived ones included, by Id.
    pub async fn findings(
        &self,
        region: &str,
    ) -> Result<BTreeMap<String, aws_sdk_securityhub::types::AwsSecurityFinding>> {
        let found = self
            .security_hub(region)
            .get_findings()
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await?;
        Ok(found
            .into_iter()
            .filter_map(|f| Some((f.id()?.to_string(), f)))
            .collect())
    }

    /// Tags the trail `trail_arn` (in its home `region`, the only one that may tag it).
    pub async fn tag_trail(
        &self,
        region: &str,
        trail_arn: &str,
        key: &str,
        value: &str,
    ) -> Result<()> {
        self.cloudtrail(region)
            .add_tags()
            .resource_id(trail_arn)
            .tags_list(
                aws_sdk_cloudtrail::types::Tag::builder()
                    .key(key)
                    .value(value)
                    .build()?,
            )
            .send()
            .await?;
        Ok(())
    }

    /// Removes the tag `key` from the trail `trail_arn`.
    pub async fn untag_trail(&self, region: &str, trail_arn: &str, key: &str) -> Result<()> {
        self.cloudtrail(region)
            .remove_tags()
            .resource_id(trail_arn)
            .tags_list(aws_sdk_cloudtrail::types::Tag::builder().key(key).build()?)
            .send()
            .await?;
        Ok(())
    }

    /// The finding Security Hub holds in `region` for the trail named `name`.
    pub async fn trail_finding(
        &self,
        region: &str,
        name: &str,
    ) -> Result<aws_sdk_securityhub::types::AwsSecurityFinding> {
        let suffix = format!("trail/{name}");
        self.findings(region)
            .await?
            .into_iter()
            .find(|(id, _)| id.ends_with(&suffix))
            .map(|(_, finding)| finding)
            .with_context(|| format!("no finding for trail {name} in {region}"))
    }

    /// The alert ledger's DynamoDB table, as the templates create it (key `finding_id`, on
    /// demand, TTL on `expires_at`); returns its name.
    pub async fn ledger_table(&self, region: &str, name: &str) -> Result<String> {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
            TimeToLiveSpecification,
        };
        let dynamodb = aws_sdk_dynamodb::Client::new(&self.regional(region));
        dynamodb
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("finding_id")
                    .key_type(KeyType::Hash)
                    .build()?,
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("finding_id")
                    .attribute_type(ScalarAttributeType::S)
                    .build()?,
            )
            .send()
            .await?;
        dynamodb
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name("expires_at")
                    .enabled(true)
                    .build()?,
            )
            .send()
            .await?;
        Ok(name.to_string())
    }

    /// An SNS topic with an SQS queue subscribed, as the demo and the tests read alerts.
    pub async fn topic_with_queue(&self, region: &str, name: &str) -> Result<(String, String)> {
        let sns = aws_sdk_sns::Client::new(&self.regional(region));
        let sqs = aws_sdk_sqs::Client::new(&self.regional(region));
        let topic = sns.create_topic().name(name).send().await?;
        let topic_arn = topic.topic_arn().context("no topic ARN")?.to_string();
        let queue = sqs.create_queue().queue_name(name).send().await?;
        let queue_url = queue.queue_url().context("no queue URL")?.to_string();
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await?;
        let queue_arn = attributes
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
            .context("no queue ARN")?
            .clone();
        sns.subscribe()
            .topic_arn(&topic_arn)
            .protocol("sqs")
            .endpoint(queue_arn)
            .send()
            .await?;
        Ok((topic_arn, queue_url))
    }

    /// Drains `queue_url` and returns the SNS envelopes delivered to it, oldest first.
    pub async fn alerts(&self, region: &str, queue_url: &str) -> Result<Vec<Value>> {
        let sqs = aws_sdk_sqs::Client::new(&self.regional(region));
        let mut envelopes = Vec::new();
        loop {
            let received = sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .send()
                .await?;
            if received.messages().is_empty() {
                break;
            }
            for message in received.messages() {
                envelopes.push(serde_json::from_str(message.body().unwrap_or("null"))?);
                if let Some(handle) = message.receipt_handle() {
                    sqs.delete_message()
                        .queue_url(queue_url)
                        .receipt_handle(handle)
                        .send()
                        .await?;
                }
            }
        }
        Ok(envelopes)
    }

    /// Runs the publish flow (scan, Security Hub, SNS) against this account.
    pub async fn publish(
        &self,
        regions: &[&str],
        topic_arn: Option<&str>,
        security_hub: bool,
    ) -> Result<Outcome> {
        let inventory = CloudTrailInventory::new(&self.sdk, 8);
        let sink = security_hub.then(|| SecurityHubSink::new(&self.sdk, ApiCallCounter::default()));
        let channel = topic_arn
            .map(|t| SnsChannel::new(&self.sdk, t, ApiCallCounter::default()))
            .transpose()?;
        let options = full_scan(regions);
        let publish = PublishOptions {
            docs_url: trailwatch_core::finding::DEFAULT_DOCS_URL.into(),
            trigger: "integration test".into(),
        };
        let destinations = trailwatch_aws::Destinations {
            sink: sink.as_ref(),
            channel: channel.as_ref(),
            ledger: None::<&trailwatch_aws::DynamoDbLedger>,
        };
        Ok(trailwatch_aws::flow::run(&inventory, destinations, &options, &publish).await?)
    }

    /// Environment variables that point a `trailwatch` process at this account.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut vars = vec![
            (
                "AWS_ACCESS_KEY_ID",
                self.credentials.access_key_id().to_string(),
            ),
            (
                "AWS_SECRET_ACCESS_KEY",
                self.credentials.secret_access_key().to_string(),
            ),
            ("AWS_REGION", "us-east-1".to_string()),
        ];
        if let Some(token) = self.credentials.session_token() {
            vars.push(("AWS_SESSION_TOKEN", token.to_string()));
        }
        vars
    }

    /// The `trailwatch` binary with this account's credentials and region, and no profile.
    pub fn trailwatch(&self) -> std::process::Command {
        let mut command = std::process::Command::new(trailwatch_binary());
        command.env_remove("AWS_PROFILE").envs(self.env());
        command
    }

    /// Runs the library scan flow against this account.
    pub async fn scan(&self, regions: &[&str]) -> Result<(ScanReport, CloudTrailInventory)> {
        self.scan_reading_roles(regions, trailwatch_aws::IamReads::Auto)
            .await
    }

    /// The library scan flow, with delivery roles read as `reads` says.
    pub async fn scan_reading_roles(
        &self,
        regions: &[&str],
        reads: trailwatch_aws::IamReads,
    ) -> Result<(ScanReport, CloudTrailInventory)> {
        let inventory = CloudTrailInventory::new(&self.sdk, 8).with_iam_reads(reads);
        let options = full_scan(regions);
        let report = trailwatch_aws::scan(&inventory, &options).await?;
        Ok((report, inventory))
    }
}

/// A full scan of `regions` with the default rule settings, as both test flows run it.
fn full_scan(regions: &[&str]) -> ScanOptions {
    ScanOptions {
        scope: Scope {
            regions: RegionSelection::List(regions.iter().map(|r| r.to_string()).collect()),
            trail: None,
        },
        max_delivery_age: chrono::Duration::hours(
            trailwatch_core::Settings::DEFAULT_MAX_DELIVERY_AGE_HOURS,
        ),
        gap_window: chrono::Duration::hours(24),
        warnings: true,
    }
}

/// The `trailwatch` binary built next to the test executables (`make test` builds it first).
pub fn trailwatch_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target directory");
    let binary = dir.join("trailwatch");
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build -p trailwatch-cli` (make test does)",
        binary.display()
    );
    binary
}

/// The repository's root, where `Cargo.toml` of the workspace lives.
pub fn workspace_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// The project virtualenv (`make venv`), or `$VENV`.
pub fn venv_dir() -> PathBuf {
    std::env::var_os("VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_dir().join(".venv"))
}

/// The account the event fixtures are written for; tests put their own in its place.
pub const FIXTURE_ACCOUNT: &str = "123456789012";

/// Where the shared event fixtures live.
pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/events")
        .join(name)
}

/// An event fixture from `tests/fixtures/events`, moved into `account`.
pub fn fixture_event(name: &str, account: &str) -> Result<Value> {
    let text = std::fs::read_to_string(fixture_path(name))
        .with_context(|| format!("reading fixture {name}"))?;
    Ok(serde_json::from_str(
        &text.replace(FIXTURE_ACCOUNT, account),
    )?)
}

/// The region the deployments of the race and attack tests run in, and their one trail.
pub const HOME: &str = "us-east-1";
pub const TRAIL: &str = "audit";
pub const LEDGER: &str = "trailwatch-alert-ledger";

/// A deployment as the templates make it, in a fresh account: Security Hub, an alerts topic
/// with a queue subscribed, optionally the alert ledger, and one healthy multi-region trail
/// `audit` already recorded as passing, as after an hourly scan.
pub struct Deployment {
    pub account: Account,
    pub topic: String,
    pub queue: String,
    /// The alert ledger's table, when the deployment has one.
    pub ledger: Option<String>,
}

impl Deployment {
    pub async fn new(with_ledger: bool) -> Result<Self> {
        let account = Account::fresh().await?;
        account.enable_security_hub(HOME).await?;
        let (topic, queue) = account.topic_with_queue(HOME, "trailwatch-alerts").await?;
        account.healthy_trail(TRAIL, HOME, true).await?;
        let ledger = match with_ledger {
            true => Some(account.ledger_table(HOME, LEDGER).await?),
            false => None,
        };
        let deployment = Self {
            account,
            topic,
            queue,
            ledger,
        };
        let first = deployment.services(&deployment.account, "scheduled scan")?;
        let outcome = first.run().await?;
        anyhow::ensure!(
            outcome.alert.is_none() && outcome.imported == 2,
            "the first scan should record two passing findings: {:?}",
            outcome.summary()
        );
        Ok(deployment)
    }

    /// The functions' services, configured as the template configures them, reaching AWS
    /// through `via` (the account itself, or the account through a proxy).
    pub fn services(&self, via: &Account, trigger: &str) -> Result<Services> {
        self.services_with(via, trigger, &[])
    }

    /// [`Deployment::services`] with more `TRAILWATCH_` variables set.
    pub fn services_with(
        &self,
        via: &Account,
        trigger: &str,
        more: &[(&str, &str)],
    ) -> Result<Services> {
        let config = Config::from_lookup(|name| match name {
            "TRAILWATCH_REGIONS" => Some(HOME.into()),
            "TRAILWATCH_SNS_TOPIC_ARN" => Some(self.topic.clone()),
            "TRAILWATCH_LEDGER_TABLE" => self.ledger.clone(),
            _ => more
                .iter()
                .find(|(variable, _)| *variable == name)
                .map(|(_, value)| value.to_string()),
        })?;
        Ok(Services::new(&via.sdk, &config, trigger)?)
    }

    /// Stops the trail and returns the StopLogging event EventBridge delivers for it, timed
    /// when CloudTrail recorded the stop, as a real event is.
    pub async fn stop_logging(&self) -> Result<trailwatch_core::event::Change> {
        let cloudtrail = self.account.cloudtrail(HOME);
        cloudtrail.stop_logging().name(TRAIL).send().await?;
        let stopped = cloudtrail
            .get_trail_status()
            .name(TRAIL)
            .send()
            .await?
            .stop_logging_time()
            .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), 0))
            .context("a stop time")?;
        let mut event = fixture_event("stop_logging.json", &self.account.id)?;
        event["detail"]["eventTime"] = stopped
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            .into();
        Ok(trailwatch_core::event::parse(event.to_string().as_bytes())?)
    }

    /// The machine-readable records of every page sent since the last look, oldest first.
    pub async fn pages(&self) -> Result<Vec<Value>> {
        self.account
            .alerts(HOME, &self.queue)
            .await?
            .iter()
            .map(|envelope| {
                let message = envelope["Message"].as_str().context("an SNS Message")?;
                Ok(serde_json::from_str(message)?)
            })
            .collect()
    }

    /// Stops the trail and starts it again; returns the stop time CloudTrail recorded. When
    /// `after` is given, repeats until the stop time is later than it: the emulator keeps
    /// whole seconds, so two stops within one second share a time.
    pub async fn stop_and_start(
        &self,
        after: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<chrono::DateTime<chrono::Utc>> {
        let cloudtrail = self.account.cloudtrail(HOME);
        // Bounded: each round takes milliseconds, and a new second comes within one.
        for _ in 0..10_000 {
            cloudtrail.stop_logging().name(TRAIL).send().await?;
            cloudtrail.start_logging().name(TRAIL).send().await?;
            let status = cloudtrail.get_trail_status().name(TRAIL).send().await?;
            let stopped = status
                .stop_logging_time()
                .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), 0))
                .context("a stop time")?;
            if after.is_none_or(|earlier| stopped > earlier) {
                return Ok(stopped);
            }
        }
        bail!("the emulator never recorded a later stop time")
    }

    /// How many times each finding was paged, over every alert sent so far.
    pub async fn paged(&self) -> Result<BTreeMap<String, usize>> {
        Ok(self.paged_in_detail().await?.0)
    }

    /// [`Deployment::paged`], with each page's transitions as (what sent it, kind, finding):
    /// what a failed race test prints to show who paged what.
    pub async fn paged_in_detail(&self) -> Result<(BTreeMap<String, usize>, Vec<String>)> {
        let mut counts = BTreeMap::new();
        let mut detail = Vec::new();
        for envelope in self.account.alerts(HOME, &self.queue).await? {
            let records: Value =
                serde_json::from_str(envelope["Message"].as_str().context("an SNS Message")?)?;
            for transition in records["transitions"].as_array().into_iter().flatten() {
                let id = transition["finding_id"].as_str().context("finding_id")?;
                *counts.entry(id.to_string()).or_insert(0) += 1;
                let codes: Vec<&str> = transition["evaluation"]["reasons"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r["code"].as_str())
                    .collect();
                detail.push(format!(
                    "{} {} {id} {codes:?}",
                    records["trigger"], transition["kind"]
                ));
            }
        }
        Ok((counts, detail))
    }

    pub async fn trail_status(&self) -> Result<String> {
        let finding = self.account.trail_finding(HOME, TRAIL).await?;
        Ok(finding
            .compliance()
            .and_then(|c| c.status())
            .map(|s| s.as_str().to_string())
            .unwrap_or_default())
    }
}

/// A finding's workflow status (`NEW`, `SUPPRESSED`, ...), if it has one.
pub fn workflow_status(finding: &aws_sdk_securityhub::types::AwsSecurityFinding) -> Option<&str> {
    finding
        .workflow()
        .and_then(|w| w.status())
        .map(|s| s.as_str())
}
