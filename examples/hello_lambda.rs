//! The cold-start baseline: a bare Lambda hello-world, built with the same release profile as
//! payout-bridge (`cargo build --release --examples`), measured by `examples/coldstart.rs`.
//!
//! - default: `lambda_http::run` (the adapter payout-bridge uses: API Gateway v2 event in,
//!   HTTP response out), answering 200 "hello";
//! - `HELLO_RAW=1`: plain `lambda_runtime::run` on a JSON event (no HTTP adapter), answering a
//!   minimal API Gateway response.
//!
//! No logging set-up, no configuration, no I/O besides the Runtime API.

use lambda_http::lambda_runtime::{self, LambdaEvent};
use lambda_http::{service_fn, Body, Error, Request, Response};
use serde_json::{json, Value};

async fn hello_http(_req: Request) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body(Body::from("hello"))?)
}

async fn hello_raw(_event: LambdaEvent<Value>) -> Result<Value, Error> {
    Ok(json!({ "statusCode": 200, "body": "hello" }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    if std::env::var_os("HELLO_RAW").is_some() {
        lambda_runtime::run(lambda_runtime::service_fn(hello_raw)).await
    } else {
        lambda_http::run(service_fn(hello_http)).await
    }
}
