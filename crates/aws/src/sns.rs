//! The SNS alert channel: one `Publish` per alert, `MessageStructure=json`.

use crate::config::ApiCallCounter;
use aws_config::{Region, SdkConfig};
use aws_sdk_sns::error::{DisplayErrorContext, SdkError};
use aws_sdk_sns::operation::publish::PublishError;
use aws_sdk_sns::types::MessageAttributeValue;
use std::future::Future;
use tracing::instrument;
use trailwatch_core::alert::AlertMessage;
use trailwatch_core::arn::Arn;

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("{0:?} is not an SNS topic ARN")]
    BadTopic(String),
    #[error("message attribute {0} is not valid for SNS")]
    Attribute(String),
    #[error("publishing to {topic} failed: {}", DisplayErrorContext(.source))]
    Publish {
        topic: String,
        #[source]
        source: Box<SdkError<PublishError>>,
    },
}

/// The port alerts go out through; [`SnsChannel`] is the AWS adapter.
pub trait AlertChannel {
    /// Sends `alert` and returns the message id.
    fn publish(
        &self,
        alert: &AlertMessage,
    ) -> impl Future<Output = Result<String, ChannelError>> + Send;
}

pub struct SnsChannel {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl SnsChannel {
    /// A channel to `topic_arn`, whose client is pinned to the topic's own region.
    pub fn new(
        sdk: &SdkConfig,
        topic_arn: &str,
        counter: ApiCallCounter,
    ) -> Result<Self, ChannelError> {
        let arn = Arn::parse(topic_arn)
            .filter(|a| a.service == "sns" && !a.region.is_empty() && !a.resource.is_empty())
            .ok_or_else(|| ChannelError::BadTopic(topic_arn.to_string()))?;
        let client = aws_sdk_sns::Client::from_conf(
            aws_sdk_sns::config::Builder::from(sdk)
                .region(Region::new(arn.region.to_string()))
                .interceptor(counter)
                .build(),
        );
        Ok(Self {
            client,
            topic_arn: topic_arn.to_string(),
        })
    }
}

impl AlertChannel for SnsChannel {
    #[instrument(skip(self, alert), fields(topic = %self.topic_arn, subject = %alert.subject))]
    async fn publish(&self, alert: &AlertMessage) -> Result<String, ChannelError> {
        let mut request = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(&alert.subject)
            .message_structure("json")
            .message(&alert.message);
        for (name, attribute) in &alert.attributes {
            request = request.message_attributes(
                name,
                MessageAttributeValue::builder()
                    .data_type(&attribute.data_type)
                    .string_value(&attribute.value)
                    .build()
                    .map_err(|e| ChannelError::Attribute(format!("{name}: {e}")))?,
            );
        }
        let output = request
            .send()
            .await
            .map_err(|source| ChannelError::Publish {
                topic: self.topic_arn.clone(),
                source: Box::new(source),
            })?;
        Ok(output.message_id().unwrap_or_default().to_string())
    }
}
