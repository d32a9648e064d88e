//! Live turns across replicas: every chunk is published on the turn's Redis
//! channel (`<prefix>turn:<id>`), so a reader attached to another replica
//! follows a turn it does not run. The database event log fills anything a
//! subscriber missed before it subscribed.

use std::time::Duration;

use futures::{Stream, StreamExt};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

enum Publish {
    Chunk { channel: String, payload: String },
    Flush(oneshot::Sender<()>),
}

pub struct RedisFanout {
    client: redis::Client,
    prefix: String,
    queue: mpsc::UnboundedSender<Publish>,
}

impl RedisFanout {
    /// Connects lazily; publishing never blocks a turn (a queue feeds one
    /// publisher task, which keeps the order of chunks).
    pub fn new(url: &str, prefix: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(publisher(conn, rx));
        Ok(RedisFanout {
            client,
            prefix: prefix.to_string(),
            queue,
        })
    }

    fn channel(&self, turn: Uuid) -> String {
        format!("{}turn:{turn}", self.prefix)
    }

    pub fn publish(&self, turn: Uuid, seq: i64, data: &str) {
        let _ = self.queue.send(Publish::Chunk {
            channel: self.channel(turn),
            payload: format!("{seq}\n{data}"),
        });
    }

    /// Waits until everything queued so far was sent (or failed).
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.queue.send(Publish::Flush(tx)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), rx).await;
        }
    }

    /// Chunks `(seq, data)` published on the turn's channel from now on.
    pub async fn follow(
        &self,
        turn: Uuid,
    ) -> Result<impl Stream<Item = (i64, String)> + Send + 'static, redis::RedisError> {
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(self.channel(turn)).await?;
        Ok(pubsub.into_on_message().filter_map(|msg| async move {
            let payload: String = msg.get_payload().ok()?;
            let (seq, data) = payload.split_once('\n')?;
            Some((seq.parse().ok()?, data.to_string()))
        }))
    }
}

async fn publisher(mut conn: ConnectionManager, mut rx: mpsc::UnboundedReceiver<Publish>) {
    while let Some(item) = rx.recv().await {
        match item {
            Publish::Chunk { channel, payload } => {
                let sent: Result<i64, _> = redis::cmd("PUBLISH")
                    .arg(&channel)
                    .arg(payload)
                    .query_async(&mut conn)
                    .await;
                if let Err(e) = sent {
                    // Remote readers fall back to the database log.
                    tracing::debug!(error = %e, "turn chunk not published");
                }
            }
            Publish::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}
