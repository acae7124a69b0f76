//! [`DynamoTokenStore`]: the shared panel token and its refresh lease.

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;

use super::item::{
    get_n, get_s, key_of, n, s, Item, EXPIRES_AT, LEASE_PK, LEASE_UNTIL, OWNER, TOKEN, TOKEN_PK,
};
use super::PK;
use crate::aws::sdk_error;
use crate::ports::{CachedToken, Secret, StoreError, TokenStore};

/// The panel token (`TOKEN#panel`) and the refresh lease (`LEASE#token`) in the bridge table.
/// Every operation is one call. Cheap to clone.
#[derive(Clone, Debug)]
pub struct DynamoTokenStore {
    client: Client,
    table: String,
}

impl DynamoTokenStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoTokenStore {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

#[async_trait]
impl TokenStore for DynamoTokenStore {
    /// 1 GetItem (ConsistentRead).
    async fn load(&self) -> Result<Option<CachedToken>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(TOKEN_PK.into())))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        Ok(Some(CachedToken {
            token: Secret::new(get_s(&item, TOKEN_PK, TOKEN)?),
            expires_at: get_n(&item, TOKEN_PK, EXPIRES_AT)?,
        }))
    }

    /// 1 PutItem, unconditional.
    async fn save(&self, token: &CachedToken) -> Result<(), StoreError> {
        let item: Item = HashMap::from([
            (PK.to_string(), s(TOKEN_PK)),
            (TOKEN.to_string(), s(token.token.expose())),
            (EXPIRES_AT.to_string(), n(token.expires_at)),
        ]);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| sdk_error("PutItem", e))?;
        Ok(())
    }

    /// 1 DeleteItem with condition `#token = :token`; a failed condition is a success (a newer
    /// token is stored, or none).
    async fn invalidate(&self, token: &Secret) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_of(TOKEN_PK.into())))
            .condition_expression("#token = :token")
            .expression_attribute_names("#token", TOKEN)
            .expression_attribute_values(":token", s(token.expose()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => match err.as_service_error() {
                Some(DeleteItemError::ConditionalCheckFailedException(_)) => Ok(()),
                _ => Err(sdk_error("DeleteItem", err)),
            },
        }
    }

    /// 1 PutItem with condition
    /// `attribute_not_exists(#pk) OR #lease_until <= :now OR #owner = :owner`:
    /// free, run out, or already ours (then it is extended).
    async fn try_lease(&self, owner: &str, now: i64, ttl_secs: i64) -> Result<bool, StoreError> {
        let item: Item = HashMap::from([
            (PK.to_string(), s(LEASE_PK)),
            (OWNER.to_string(), s(owner)),
            (LEASE_UNTIL.to_string(), n(now.saturating_add(ttl_secs))),
        ]);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(#pk) OR #lease_until <= :now OR #owner = :owner",
            )
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#lease_until", LEASE_UNTIL)
            .expression_attribute_names("#owner", OWNER)
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(_)) => Ok(false),
                _ => Err(sdk_error("PutItem", err)),
            },
        }
    }

    /// 1 DeleteItem with condition `#owner = :owner`; a failed condition is a success.
    async fn release_lease(&self, owner: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_of(LEASE_PK.into())))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", OWNER)
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => match err.as_service_error() {
                Some(DeleteItemError::ConditionalCheckFailedException(_)) => Ok(()),
                _ => Err(sdk_error("DeleteItem", err)),
            },
        }
    }
}
