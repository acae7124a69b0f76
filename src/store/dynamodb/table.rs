//! Creating the bridge table (tests, local use; production creates it from the SAM template).

use std::time::Duration;

use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_dynamodb::Client;

use super::{OPEN_ATTR, OPEN_AT_ATTR, OPEN_INDEX, PK, TTL_ATTR};
use crate::aws::sdk_error;
use crate::ports::StoreError;

/// How long to wait for a new table to become ACTIVE (moto: at once; AWS: seconds).
const ACTIVE_WAIT: Duration = Duration::from_secs(60);

fn bug(e: impl std::fmt::Display) -> StoreError {
    StoreError::Refused(format!("create_table: bug: {e}"))
}

/// Creates the bridge table if it does not exist: on-demand billing, partition key `pk` (S),
/// the sparse GSI `open-index` (`open` S HASH, `open_at` N RANGE, projection ALL), then waits for
/// ACTIVE and enables TTL on `ttl`. Idempotent: an existing table (and TTL already enabled) is
/// fine. Calls: CreateTable, DescribeTable until ACTIVE (1 on moto), DescribeTimeToLive, and
/// UpdateTimeToLive when TTL is not on yet.
pub async fn create_table(client: &Client, name: &str) -> Result<(), StoreError> {
    let attr = |name: &str, kind: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
            .map_err(bug)
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(bug)
    };
    let gsi = GlobalSecondaryIndex::builder()
        .index_name(OPEN_INDEX)
        .key_schema(key(OPEN_ATTR, KeyType::Hash)?)
        .key_schema(key(OPEN_AT_ATTR, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(bug)?;
    let created = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr(PK, ScalarAttributeType::S)?)
        .attribute_definitions(attr(OPEN_ATTR, ScalarAttributeType::S)?)
        .attribute_definitions(attr(OPEN_AT_ATTR, ScalarAttributeType::N)?)
        .key_schema(key(PK, KeyType::Hash)?)
        .global_secondary_indexes(gsi)
        .send()
        .await;
    match created {
        Ok(_) => tracing::info!(table = name, "created DynamoDB table"),
        Err(err) => match err.as_service_error() {
            Some(CreateTableError::ResourceInUseException(_)) => {
                tracing::debug!(table = name, "DynamoDB table exists")
            }
            _ => return Err(sdk_error("CreateTable", err)),
        },
    }

    let started = tokio::time::Instant::now();
    loop {
        let described = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeTable", e))?;
        let status = described.table().and_then(|t| t.table_status());
        if status == Some(&TableStatus::Active) {
            break;
        }
        if started.elapsed() > ACTIVE_WAIT {
            return Err(StoreError::Unavailable(format!(
                "table {name} not ACTIVE after {}s (status {status:?})",
                ACTIVE_WAIT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let ttl = client
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .map_err(|e| sdk_error("DescribeTimeToLive", e))?;
    let ttl_on = ttl.time_to_live_description().is_some_and(|d| {
        matches!(
            d.time_to_live_status(),
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
        ) && d.attribute_name() == Some(TTL_ATTR)
    });
    if !ttl_on {
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(TTL_ATTR)
                    .build()
                    .map_err(bug)?,
            )
            .send()
            .await
            .map_err(|e| sdk_error("UpdateTimeToLive", e))?;
    }
    Ok(())
}
