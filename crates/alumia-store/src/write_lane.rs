//! Group commit for SQLite's hot writes: turn claims, turn progress and turn
//! ends.
//!
//! SQLite has one writer. A write transaction on the shared tokio runtime
//! pays for a connection hand-off, `BEGIN`, one round trip to the
//! connection's worker thread per statement — each resumed only when the
//! busy runtime gets to the awaiting task — and a `COMMIT` with its fsync.
//! With many turns streaming, those waits added up to a writer busy all the
//! time and claims queued behind dozens of saves. The lane runs on its own
//! thread, takes everything queued (claims first) and runs it in one
//! transaction, each job inside a `SAVEPOINT` so a failing job undoes only
//! its own writes. Results are handed back only after the `COMMIT`.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;

use alumia_core::StoreError;
use alumia_core::store::StoreResult;
use sqlx::{SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a job wants done with its writes.
pub(crate) enum Finish<R> {
    Commit(R),
    /// Undo the job's writes but answer `R` (a refused claim, say).
    Rollback(R),
}

/// Claims jump the queue: a user waits on them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Priority {
    Claim,
    Save,
}

/// Called once the batch is over: `Ok` when its `COMMIT` succeeded.
type Deliver = Box<dyn FnOnce(Result<(), String>) + Send>;
/// Runs on the lane's connection; says whether to keep its writes.
type Job =
    Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, (bool, Deliver)> + Send>;

/// Most jobs one transaction takes: bounds how long a claim that arrives
/// during a batch waits for the next one.
const MAX_BATCH: usize = 64;

pub(crate) struct WriteLane {
    claims: mpsc::UnboundedSender<Job>,
    saves: mpsc::UnboundedSender<Job>,
}

impl WriteLane {
    /// Starts the lane's thread; it writes through `writer` (the store's
    /// one write connection, which other writes share) and stops when the
    /// lane is dropped.
    pub(crate) fn start(writer: SqlitePool) -> std::io::Result<WriteLane> {
        let (claims, claims_rx) = mpsc::unbounded_channel();
        let (saves, saves_rx) = mpsc::unbounded_channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("sqlite-write-lane".into())
            .spawn(move || runtime.block_on(run(writer, claims_rx, saves_rx)))?;
        Ok(WriteLane { claims, saves })
    }

    /// Runs `job` in the next batch and returns its answer once the batch
    /// has committed (or the job rolled back).
    pub(crate) async fn run<R, F>(&self, priority: Priority, job: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, StoreResult<Finish<R>>>
            + Send
            + 'static,
    {
        let (tx, rx) = oneshot::channel::<StoreResult<R>>();
        let boxed: Job = Box::new(move |conn| {
            Box::pin(async move {
                let out = job(conn).await;
                let keep = matches!(out, Ok(Finish::Commit(_)));
                let deliver: Deliver = Box::new(move |committed| {
                    let answer = match (out, committed) {
                        (Ok(Finish::Commit(r)), Ok(())) | (Ok(Finish::Rollback(r)), _) => Ok(r),
                        (Ok(Finish::Commit(_)), Err(e)) => Err(StoreError::Unavailable(e)),
                        (Err(e), _) => Err(e),
                    };
                    let _ = tx.send(answer);
                });
                (keep, deliver)
            })
        });
        let queue = match priority {
            Priority::Claim => &self.claims,
            Priority::Save => &self.saves,
        };
        queue
            .send(boxed)
            .map_err(|_| StoreError::Unavailable("the database writer has stopped".into()))?;
        rx.await.map_err(|_| {
            StoreError::Unavailable("the database writer stopped during the write".into())
        })?
    }
}

async fn run(
    writer: SqlitePool,
    mut claims: mpsc::UnboundedReceiver<Job>,
    mut saves: mpsc::UnboundedReceiver<Job>,
) {
    let mut queued: VecDeque<Job> = VecDeque::new();
    loop {
        let first = tokio::select! {
            biased;
            Some(job) = claims.recv() => job,
            Some(job) = saves.recv() => job,
            else => return,
        };
        queued.push_back(first);
        // Claims first, then saves in arrival order.
        let mut batch: Vec<Job> = Vec::new();
        while batch.len() < MAX_BATCH {
            if let Ok(job) = claims.try_recv() {
                batch.push(job);
            } else if let Some(job) = queued.pop_front() {
                batch.push(job);
            } else if let Ok(job) = saves.try_recv() {
                batch.push(job);
            } else {
                break;
            }
        }
        // Its own task: a panicking job fails its batch, not the lane.
        let _ = tokio::spawn(run_batch(writer.clone(), batch)).await;
    }
}

async fn run_batch(writer: SqlitePool, batch: Vec<Job>) {
    let mut delivers: Vec<Deliver> = Vec::with_capacity(batch.len());
    let outcome = async {
        let mut tx = writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| e.to_string())?;
        for job in batch {
            sqlx::query("SAVEPOINT lane_job")
                .execute(&mut *tx)
                .await
                .map_err(|e| e.to_string())?;
            let (keep, deliver) = job(&mut tx).await;
            delivers.push(deliver);
            if !keep {
                sqlx::query("ROLLBACK TO lane_job")
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            sqlx::query("RELEASE lane_job")
                .execute(&mut *tx)
                .await
                .map_err(|e| e.to_string())?;
        }
        tx.commit().await.map_err(|e| e.to_string())
    }
    .await;
    if let Err(e) = &outcome {
        tracing::warn!(error = %e, jobs = delivers.len(), "write batch failed");
    }
    for deliver in delivers {
        deliver(outcome.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

    async fn lane_on_temp_file() -> (tempfile::TempDir, SqlitePool, WriteLane) {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("lane.db"))
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (n INTEGER PRIMARY KEY)")
            .execute(&writer)
            .await
            .unwrap();
        let lane = WriteLane::start(writer.clone()).unwrap();
        (dir, writer, lane)
    }

    /// Inserts `n`, then keeps it, rolls it back, or fails after writing.
    async fn job(lane: &WriteLane, n: i64) -> StoreResult<i64> {
        let priority = if n % 2 == 0 {
            Priority::Claim
        } else {
            Priority::Save
        };
        lane.run(priority, move |conn| {
            Box::pin(async move {
                sqlx::query("INSERT INTO t (n) VALUES ($1)")
                    .bind(n)
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| StoreError::Other(e.to_string()))?;
                match n % 3 {
                    0 => Ok(Finish::Commit(n)),
                    1 => Ok(Finish::Rollback(-n)),
                    _ => Err(StoreError::Conflict("refused")),
                }
            })
        })
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_job_keeps_or_undoes_only_its_own_writes() {
        let (_dir, writer, lane) = lane_on_temp_file().await;
        let lane = std::sync::Arc::new(lane);
        // Concurrent jobs land in shared batches; a failure or a rollback in
        // a batch must not undo the others' writes.
        let answers = futures_join_all((1..=300).map(|n| {
            let lane = lane.clone();
            tokio::spawn(async move { (n, job(&lane, n).await) })
        }))
        .await;
        for (n, answer) in answers {
            match n % 3 {
                0 => assert_eq!(answer.unwrap(), n),
                1 => assert_eq!(answer.unwrap(), -n),
                _ => assert!(matches!(answer, Err(StoreError::Conflict("refused")))),
            }
        }
        let kept: Vec<i64> = sqlx::query_scalar("SELECT n FROM t ORDER BY n")
            .fetch_all(&writer)
            .await
            .unwrap();
        let expected: Vec<i64> = (1..=300).filter(|n| n % 3 == 0).collect();
        assert_eq!(kept, expected);
    }

    #[tokio::test]
    async fn a_job_that_breaks_its_batch_fails_without_losing_later_batches() {
        let (_dir, writer, lane) = lane_on_temp_file().await;
        // A duplicate key fails its own statement only; the job reports it.
        assert_eq!(job(&lane, 3).await.unwrap(), 3);
        assert!(matches!(job(&lane, 3).await, Err(StoreError::Other(_))));
        assert_eq!(job(&lane, 6).await.unwrap(), 6);
        let kept: Vec<i64> = sqlx::query_scalar("SELECT n FROM t ORDER BY n")
            .fetch_all(&writer)
            .await
            .unwrap();
        assert_eq!(kept, vec![3, 6]);
    }

    async fn futures_join_all<T>(
        handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
    ) -> Vec<T> {
        let mut out = Vec::new();
        for h in handles.collect::<Vec<_>>() {
            out.push(h.await.unwrap());
        }
        out
    }
}
