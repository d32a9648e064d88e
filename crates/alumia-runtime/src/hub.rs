//! Live turns of this process: every chunk a turn emits, kept in order as a
//! rendered SSE frame, so any number of readers can replay from any seq and
//! then follow live without a gap or a duplicate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::Stream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// `id: <turnId>:<seq>` + `data: <json>` + blank line.
pub fn frame(turn: Uuid, seq: i64, data: &str) -> Bytes {
    Bytes::from(format!("id: {turn}:{seq}\ndata: {data}\n\n"))
}

pub const DONE_FRAME: &[u8] = b"data: [DONE]\n\n";
pub const KEEPALIVE_FRAME: &[u8] = b": keep-alive\n\n";

pub struct LiveTurn {
    pub turn_id: Uuid,
    pub session_id: Uuid,
    pub org_id: Uuid,
    /// Fired by `stop`, session delete or shutdown.
    pub cancel: CancellationToken,
    frames: Mutex<Vec<Bytes>>,
    /// (frames written, turn over).
    progress: watch::Sender<(usize, bool)>,
}

impl LiveTurn {
    pub fn new(turn_id: Uuid, session_id: Uuid, org_id: Uuid) -> Arc<Self> {
        Arc::new(LiveTurn {
            turn_id,
            session_id,
            org_id,
            cancel: CancellationToken::new(),
            frames: Mutex::new(Vec::with_capacity(64)),
            progress: watch::channel((0, false)).0,
        })
    }

    /// Appends the frame for the next seq.
    pub fn push(&self, frame: Bytes) {
        let len = {
            let mut frames = self.frames.lock().unwrap_or_else(|e| e.into_inner());
            frames.push(frame);
            frames.len()
        };
        self.progress.send_modify(|p| p.0 = len);
    }

    pub fn close(&self) {
        self.progress.send_modify(|p| p.1 = true);
    }

    pub fn is_closed(&self) -> bool {
        self.progress.borrow().1
    }

    /// Frames with seq > `after` (all with `None`), then live ones, ending
    /// after the last frame once the turn is over.
    pub fn subscribe(
        self: &Arc<Self>,
        after: Option<i64>,
    ) -> impl Stream<Item = Bytes> + Send + 'static {
        let start = after.map_or(0, |a| (a + 1).max(0) as usize);
        let rx = self.progress.subscribe();
        futures::stream::unfold(
            (self.clone(), start, rx, Vec::<Bytes>::new()),
            |(turn, mut next, mut rx, mut buffered)| async move {
                loop {
                    if let Some(frame) = buffered.pop() {
                        return Some((frame, (turn, next, rx, buffered)));
                    }
                    let (len, closed) = *rx.borrow_and_update();
                    if next < len {
                        let frames = turn.frames.lock().unwrap_or_else(|e| e.into_inner());
                        buffered = frames[next..len].iter().rev().cloned().collect();
                        next = len;
                        continue;
                    }
                    if closed || rx.changed().await.is_err() {
                        return None;
                    }
                }
            },
        )
    }
}

/// The live turns of this process, by session.
#[derive(Default)]
pub struct Hub {
    by_session: Mutex<HashMap<Uuid, Arc<LiveTurn>>>,
}

impl Hub {
    pub fn insert(&self, turn: Arc<LiveTurn>) {
        self.lock().insert(turn.session_id, turn);
    }

    pub fn remove(&self, turn: &LiveTurn) {
        let mut map = self.lock();
        if map
            .get(&turn.session_id)
            .is_some_and(|t| t.turn_id == turn.turn_id)
        {
            map.remove(&turn.session_id);
        }
    }

    pub fn by_session(&self, org: Uuid, session: Uuid) -> Option<Arc<LiveTurn>> {
        self.lock()
            .get(&session)
            .filter(|t| t.org_id == org)
            .cloned()
    }

    pub fn by_turn(&self, org: Uuid, turn: Uuid) -> Option<Arc<LiveTurn>> {
        self.lock()
            .values()
            .find(|t| t.turn_id == turn && t.org_id == org)
            .cloned()
    }

    pub fn all(&self) -> Vec<Arc<LiveTurn>> {
        self.lock().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Arc<LiveTurn>>> {
        self.by_session.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn readers_replay_then_follow_without_gaps_or_duplicates() {
        let turn = LiveTurn::new(Uuid::nil(), Uuid::nil(), Uuid::nil());
        turn.push(Bytes::from_static(b"0"));
        turn.push(Bytes::from_static(b"1"));
        let all = turn.subscribe(None);
        let tail = turn.subscribe(Some(0));
        let writer = {
            let turn = turn.clone();
            tokio::spawn(async move {
                for i in 2..50 {
                    turn.push(Bytes::from(i.to_string()));
                    if i % 7 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                turn.close();
            })
        };
        let all: Vec<String> = all
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
            .collect()
            .await;
        let tail: Vec<String> = tail
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
            .collect()
            .await;
        writer.await.unwrap();
        let expected: Vec<String> = (0..50).map(|i| i.to_string()).collect();
        assert_eq!(all, expected);
        assert_eq!(tail, expected[1..]);
        // A reader arriving after the end gets the remainder and stops.
        let late: Vec<Bytes> = turn.subscribe(Some(47)).collect().await;
        assert_eq!(late.len(), 2);
    }
}
