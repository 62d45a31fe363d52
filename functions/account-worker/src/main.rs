//! The `account-worker` Lambda function: wiring only. The handler lives in `handler.rs`.

mod handler;

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let services = trailwatch_lambda::cold_start(handler::FUNCTION).await?;
    let services = &services;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        handler::handle(services, event).await
    }))
    .await
}
