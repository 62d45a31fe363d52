//! The `scheduled-scan` Lambda function: wiring only. The handler lives in `handler.rs`.

mod handler;

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let services = trailwatch_lambda::cold_start("scheduled scan").await?;
    let services = &services;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        handler::handle(services, event).await
    }))
    .await
}
