//! The `scheduled-scan` Lambda function: wiring only. The handler lives in `handler.rs`.

mod handler;

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;
use trailwatch_aws::{load_sdk_config, Config};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env().map_err(|e| format!("configuration: {e}"))?;
    let sdk = load_sdk_config(None).await;
    let scan = handler::ScheduledScan::new(&sdk, &config)?;
    let scan = &scan;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        scan.handle(event).await
    }))
    .await
}
