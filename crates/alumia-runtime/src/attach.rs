//! Reading a turn's stream from anywhere (spec 03 §5.4): from this
//! replica's hub when the turn runs here; else from the database event log,
//! followed live through Redis (or by polling every 250 ms without it);
//! and, once the log is pruned, rebuilt from the stored message.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use alumia_core::Principal;
use alumia_core::chat_store::{ChatMessage, Turn};
use alumia_core::error::DomainResult;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::Runtime;
use crate::hub::frame;

pub type FrameStream = Pin<Box<dyn Stream<Item = Bytes> + Send>>;

/// `(seq, data)` chunks of a turn followed through Redis.
type LiveChunks = Pin<Box<dyn Stream<Item = (i64, String)> + Send>>;

/// How often a reader without Redis looks for new log events.
const POLL: Duration = Duration::from_millis(250);

fn is_finish(data: &str) -> bool {
    serde_json::from_str::<Value>(data).is_ok_and(|v| v["type"] == "finish")
}

struct Follow {
    rt: Arc<Runtime>,
    p: Principal,
    turn_id: Uuid,
    last: i64,
    live: Option<LiveChunks>,
    /// Frames to hand out, last first.
    out: Vec<Bytes>,
    done: bool,
    read_log: bool,
}

impl Runtime {
    /// Frames of the turn with seq > `after`, live until its `finish`.
    /// `None` when the turn is unknown to this org or its log is gone.
    pub async fn attach(
        self: &Arc<Self>,
        p: &Principal,
        turn_id: Uuid,
        after: Option<i64>,
    ) -> DomainResult<Option<FrameStream>> {
        if let Some(live) = self.hub.by_turn(p.org.org_id(), turn_id) {
            return Ok(Some(Box::pin(live.subscribe(after))));
        }
        let Some(turn) = self.store.get_turn(&p.org, turn_id).await? else {
            return Ok(None);
        };
        let after = after.unwrap_or(-1);
        if turn.status != "running" {
            let events = self.store.turn_events(&p.org, turn_id, after).await?;
            if events.is_empty() && turn.last_seq > after {
                return Ok(None); // pruned
            }
            let frames: Vec<Bytes> = events
                .iter()
                .map(|e| frame(turn_id, e.seq, &e.data))
                .collect();
            return Ok(Some(Box::pin(futures::stream::iter(frames))));
        }
        Ok(Some(self.follow_remote(p.clone(), turn, after).await))
    }

    /// A turn running on another replica: the log, then live chunks.
    async fn follow_remote(self: &Arc<Self>, p: Principal, turn: Turn, after: i64) -> FrameStream {
        // Subscribe before reading the log, so nothing falls between the two.
        let live = match &self.fanout {
            Some(f) => match f.follow(turn.id).await {
                Ok(s) => Some(Box::pin(s) as LiveChunks),
                Err(e) => {
                    tracing::warn!(error = %e, "Redis follow failed; polling the log");
                    None
                }
            },
            None => None,
        };
        let rt = self.clone();
        let state = Follow {
            rt,
            p,
            turn_id: turn.id,
            last: after,
            live,
            out: Vec::new(),
            done: false,
            read_log: true,
        };
        Box::pin(futures::stream::unfold(state, |mut f| async move {
            loop {
                if let Some(frame) = f.out.pop() {
                    return Some((frame, f));
                }
                if f.done {
                    return None;
                }
                if f.read_log {
                    // Whatever the log holds past `last`.
                    let events =
                        f.rt.store
                            .turn_events(&f.p.org, f.turn_id, f.last)
                            .await
                            .unwrap_or_default();
                    if !events.is_empty() {
                        for e in &events {
                            f.done |= is_finish(&e.data);
                        }
                        f.last = events.last().map_or(f.last, |e| e.seq);
                        f.out = events
                            .iter()
                            .rev()
                            .map(|e| frame(f.turn_id, e.seq, &e.data))
                            .collect();
                        continue;
                    }
                    // Ended without a finish chunk (its process died)?
                    match f.rt.store.get_turn(&f.p.org, f.turn_id).await {
                        Ok(Some(t)) if t.status == "running" => {}
                        _ => return None,
                    }
                    f.read_log = false;
                }
                // Live chunks in order; a gap or a quiet spell goes back to the log.
                match f.live.as_mut() {
                    Some(stream) => match tokio::time::timeout(POLL, stream.next()).await {
                        Ok(Some((seq, data))) if seq == f.last + 1 => {
                            f.done = is_finish(&data);
                            f.last = seq;
                            f.out.push(frame(f.turn_id, seq, &data));
                        }
                        Ok(Some((seq, _))) if seq <= f.last => {}
                        Ok(Some(_)) => {
                            // The log is written every flush interval; let it catch up.
                            tokio::time::sleep(POLL / 2).await;
                            f.read_log = true;
                        }
                        Ok(None) => {
                            f.live = None;
                            f.read_log = true;
                        }
                        Err(_) => f.read_log = true,
                    },
                    None => {
                        tokio::time::sleep(POLL).await;
                        f.read_log = true;
                    }
                }
            }
        }))
    }

    /// A finished turn rebuilt from its stored message (the log is gone):
    /// `start`, one step with the stored parts, `finish`.
    pub fn rebuild(
        &self,
        turn_id: Uuid,
        message: &ChatMessage,
        agent_id: Option<Uuid>,
    ) -> FrameStream {
        let mut chunks = vec![
            json!({"type": "start", "messageId": message.id, "messageMetadata": {
                "sessionId": message.session_id, "turnId": turn_id, "agentId": agent_id, "model": message.model}}),
            json!({"type": "start-step"}),
        ];
        let (mut texts, mut reasonings) = (0, 0);
        for part in message.parts.as_array().into_iter().flatten() {
            let kind = part["type"].as_str().unwrap_or_default();
            match kind {
                "text" | "reasoning" => {
                    let (prefix, n) = if kind == "text" {
                        texts += 1;
                        ("text", format!("txt_{texts}"))
                    } else {
                        reasonings += 1;
                        ("reasoning", format!("rsn_{reasonings}"))
                    };
                    chunks.push(json!({"type": format!("{prefix}-start"), "id": n}));
                    chunks.push(
                        json!({"type": format!("{prefix}-delta"), "id": n, "delta": part["text"]}),
                    );
                    chunks.push(json!({"type": format!("{prefix}-end"), "id": n}));
                }
                t if t.starts_with("tool-") => {
                    let id = &part["toolCallId"];
                    let name = &t["tool-".len()..];
                    chunks.push(
                        json!({"type": "tool-input-start", "toolCallId": id, "toolName": name}),
                    );
                    chunks.push(json!({"type": "tool-input-available", "toolCallId": id, "toolName": name, "input": part["input"]}));
                    match part["state"].as_str() {
                        Some("output-available") => chunks.push(json!({"type": "tool-output-available", "toolCallId": id, "output": part["output"]})),
                        Some("output-error") => chunks.push(json!({"type": "tool-output-error", "toolCallId": id, "errorText": part["errorText"]})),
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        chunks.push(json!({"type": "finish-step"}));
        let reason = message
            .finish_reason
            .clone()
            .unwrap_or_else(|| "stop".into());
        chunks.push(json!({"type": "finish", "finishReason": reason, "messageMetadata": {"usage": message.usage}}));
        let frames: Vec<Bytes> = chunks
            .iter()
            .enumerate()
            .map(|(i, c)| frame(turn_id, i as i64, &c.to_string()))
            .collect();
        Box::pin(futures::stream::iter(frames))
    }
}
