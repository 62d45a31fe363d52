//! The `trail-change` Lambda function: wiring only. The handler lives in `handler.rs`.

mod handler;

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let services = trailwatch_lambda::cold_start(handler::FUNCTION).await?;
    let services = &services;
    // The payload stays a `Value` until the handler parses it leniently: a typed payload would
    // make the runtime reject an odd event before the handler could log its id.
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        handler::handle(services, event).await
    }))
    .await
}
