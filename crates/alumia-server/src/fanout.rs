//! Cross-replica messages over Redis pub/sub. Today: key-cache invalidations,
//! so a key revoked on one replica is refused on the others without waiting
//! for the cache TTL.

use std::sync::Arc;
use std::time::Duration;

use alumia_core::identity::{Identity, KeyInvalidation, KeyInvalidationBus};
use async_trait::async_trait;
use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio_util::sync::CancellationToken;

pub struct RedisKeyBus {
    conn: ConnectionManager,
    channel: String,
}

impl RedisKeyBus {
    /// Publishes on `<prefix>keys:invalidate`; connects lazily.
    pub fn new(url: &str, prefix: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(1);
        Ok(RedisKeyBus {
            conn: ConnectionManager::new_lazy_with_config(client, config)?,
            channel: channel(prefix),
        })
    }
}

fn channel(prefix: &str) -> String {
    format!("{prefix}keys:invalidate")
}

#[async_trait]
impl KeyInvalidationBus for RedisKeyBus {
    async fn publish(&self, invalidation: KeyInvalidation) {
        let Ok(payload) = serde_json::to_string(&invalidation) else {
            return;
        };
        let mut conn = self.conn.clone();
        let sent: Result<i64, _> = redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(payload)
            .query_async(&mut conn)
            .await;
        if let Err(e) = sent {
            // The other replicas still drop the key within the cache TTL.
            tracing::warn!(error = %e, "key invalidation not published");
        }
    }
}

/// Applies invalidations published by other replicas until `stop`;
/// reconnects after a second when Redis goes away.
pub fn spawn_key_invalidation_listener(
    url: String,
    prefix: String,
    identity: Arc<Identity>,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        let channel = channel(&prefix);
        loop {
            let session = async {
                let client = redis::Client::open(url.as_str())?;
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(&channel).await?;
                let mut messages = pubsub.into_on_message();
                while let Some(msg) = messages.next().await {
                    let payload: String = msg.get_payload()?;
                    if let Ok(inv) = serde_json::from_str::<KeyInvalidation>(&payload) {
                        identity.apply_invalidation(inv);
                    }
                }
                Ok::<(), redis::RedisError>(())
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                result = session => {
                    if let Err(e) = result {
                        tracing::warn!(error = %e, "key invalidation listener disconnected; retrying");
                    }
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    });
}
