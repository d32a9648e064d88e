//! The runner of one turn: the tool loop (spec 03 §5.3), its chunks, and
//! its persistence (message and event log saved every `flush_interval`,
//! finalised in one transaction at the end).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use alumia_core::Principal;
use alumia_core::chat_store::{MessageProgress, Turn, TurnEnd, TurnEvent};
use alumia_core::model::{Agent, ChatSession};
use alumia_models::{
    FinishReason, ModelClient, ModelError, ModelEvent, ModelRequest, PromptMessage, ToolCall, Usage,
};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use crate::Runtime;
use crate::assembly::Assembly;
use crate::catalog::{Byok, ModelEntry};
use crate::hub::{LiveTurn, frame};
use crate::tools::{self, ToolCtx};

pub(crate) struct TurnJob {
    pub principal: Principal,
    pub agent: Agent,
    pub session: ChatSession,
    pub entry: ModelEntry,
    pub turn: Turn,
    pub hops: u32,
    pub live: Arc<LiveTurn>,
    /// The session's messages when the caller has them (a new session).
    pub history: Option<Vec<alumia_core::chat_store::ChatMessage>>,
}

pub(crate) fn spawn(rt: Arc<Runtime>, job: TurnJob) {
    rt.running.fetch_add(1, Ordering::SeqCst);
    rt.hub.insert(job.live.clone());
    let tasks = rt.tasks.clone();
    tasks.spawn(async move {
        let live = job.live.clone();
        run(rt.clone(), job).await;
        live.close();
        rt.hub.remove(&live);
        rt.running.fetch_sub(1, Ordering::SeqCst);
    });
}

/// How the loop ended.
enum Outcome {
    Done(FinishReason),
    Limit(&'static str),
    Stopped,
    Failed(String),
    Shutdown,
}

/// Emits chunks: seq, live frame, Redis, and the batch for the event log.
struct Writer {
    rt: Arc<Runtime>,
    live: Arc<LiveTurn>,
    turn: Turn,
    seq: i64,
    pending: Vec<TurnEvent>,
    assembly: Assembly,
    last_flush: Instant,
    last_save: Instant,
    /// A part completed since the last save (spec 03 §5.1: parts are saved
    /// as they complete, and at least once a second).
    part_done: bool,
    saves: mpsc::UnboundedSender<(MessageProgress, Vec<TurnEvent>)>,
}

impl Writer {
    fn emit(&mut self, chunk: Value) {
        if chunk
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(completes_part)
        {
            self.part_done = true;
        }
        let data = chunk.to_string();
        self.live.push(frame(self.turn.id, self.seq, &data));
        if let Some(fanout) = &self.rt.fanout {
            fanout.publish(self.turn.id, self.seq, &data);
        }
        self.pending.push(TurnEvent {
            seq: self.seq,
            data,
        });
        self.seq += 1;
    }

    fn emit_all(&mut self, chunks: Vec<Value>) {
        for c in chunks {
            self.emit(c);
        }
    }

    fn progress(&self, status: &str) -> MessageProgress {
        MessageProgress {
            parts: Value::Array(self.assembly.parts().to_vec()),
            text: self.assembly.text(),
            status: status.into(),
            model: Some(self.turn.model.clone()),
            finish_reason: None,
            usage: None,
        }
    }

    /// Hands a save to the persister when one is due (never waits on the database).
    fn maybe_flush(&mut self) {
        if !self.part_done && self.last_flush.elapsed() < self.rt.limits.flush_interval {
            return;
        }
        let changed = !self.pending.is_empty() | self.assembly.take_dirty();
        // An idle turn (a slow model, a long tool) writes only a heartbeat,
        // and only every `heartbeat_interval`: held streams cost few writes.
        if !changed && self.last_save.elapsed() < self.rt.limits.heartbeat_interval {
            self.last_flush = Instant::now();
            return;
        }
        self.last_flush = Instant::now();
        self.last_save = self.last_flush;
        self.part_done = false;
        let events = std::mem::take(&mut self.pending);
        let _ = self.saves.send((self.progress("streaming"), events));
    }
}

/// Chunks that end a part of the message.
fn completes_part(kind: &str) -> bool {
    matches!(
        kind,
        "text-end"
            | "reasoning-end"
            | "tool-input-available"
            | "tool-input-error"
            | "tool-output-available"
            | "tool-output-error"
    )
}

/// Saves progress in order, merging saves that queue up; a stop requested
/// through the database (from any replica) cancels the turn.
fn spawn_persister(
    rt: Arc<Runtime>,
    principal: Principal,
    turn: Turn,
    live: Arc<LiveTurn>,
) -> (
    mpsc::UnboundedSender<(MessageProgress, Vec<TurnEvent>)>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(MessageProgress, Vec<TurnEvent>)>();
    let handle = tokio::spawn(async move {
        while let Some((mut message, mut events)) = rx.recv().await {
            while let Ok((m, more)) = rx.try_recv() {
                message = m;
                events.extend(more);
            }
            match rt
                .store
                .save_turn_progress(&principal.org, &turn, &message, &events, rt.clock.now())
                .await
            {
                Ok(true) => live.cancel.cancel(),
                Ok(false) => {}
                Err(e) => tracing::warn!(turn = %turn.id, error = %e, "turn progress not saved"),
            }
        }
    });
    (tx, handle)
}

async fn byok(rt: &Runtime, p: &Principal, provider: &str) -> Option<Byok> {
    let key = rt.store.find_provider_key(&p.org, provider).await.ok()??;
    let opened = rt.secret().open(&key.key_sealed).ok()?;
    Some(Byok {
        api_key: alumia_models::ApiSecret::new(String::from_utf8(opened).ok()?),
        base_url: key.base_url,
    })
}

async fn load_history(
    rt: &Runtime,
    p: &Principal,
    turn: &Turn,
) -> Result<Vec<alumia_core::chat_store::ChatMessage>, String> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = rt
            .store
            .list_messages(&p.org, turn.session_id, after, false, 500)
            .await
            .map_err(|e| e.to_string())?;
        let full = page.len() == 500;
        after = page.last().map(|m| m.seq);
        all.extend(page.into_iter().filter(|m| m.id != turn.message_id));
        if !full {
            return Ok(all);
        }
    }
}

fn usage_json(usage: &Usage, credits: u64) -> Value {
    let mut u = json!({
        "inputTokens": usage.input_tokens,
        "outputTokens": usage.output_tokens,
        "creditsMicrocredits": credits,
    });
    if let Some(r) = usage.reasoning_tokens {
        u["reasoningTokens"] = json!(r);
    }
    if let Some(c) = usage.cached_input_tokens {
        u["cachedInputTokens"] = json!(c);
    }
    u
}

async fn run(rt: Arc<Runtime>, job: TurnJob) {
    let TurnJob {
        principal,
        agent,
        session,
        entry,
        turn,
        hops,
        live,
        history,
    } = job;
    let (saves, persister) =
        spawn_persister(rt.clone(), principal.clone(), turn.clone(), live.clone());
    let mut w = Writer {
        rt: rt.clone(),
        live: live.clone(),
        turn: turn.clone(),
        seq: 0,
        pending: Vec::new(),
        assembly: Assembly::default(),
        last_flush: Instant::now(),
        last_save: Instant::now(),
        part_done: false,
        saves,
    };
    w.emit(json!({
        "type": "start",
        "messageId": turn.message_id,
        "messageMetadata": {"sessionId": turn.session_id, "turnId": turn.id, "agentId": agent.id, "model": entry.id},
    }));

    let byok = byok(&rt, &principal, &entry.provider).await;
    let ctx = ToolCtx {
        rt: rt.clone(),
        principal: principal.clone(),
        agent: agent.clone(),
        session: session.clone(),
        hops,
        turn_id: turn.id,
        spawned: AtomicU32::new(0),
        messaged: AtomicU32::new(0),
    };
    let mut usage = Usage::default();
    let history = match history {
        Some(history) => Ok(history),
        None => load_history(&rt, &principal, &turn).await,
    };
    let outcome = match history {
        Ok(history) => {
            let client = rt.catalog.client(&entry, byok.as_ref());
            match client {
                Some(client) => {
                    run_loop(&rt, &mut w, &ctx, &entry, client, history, &mut usage).await
                }
                None => Outcome::Failed("The model provider is unavailable".into()),
            }
        }
        Err(e) => {
            tracing::error!(turn = %turn.id, error = %e, "history not loaded");
            Outcome::Failed("The turn could not start".into())
        }
    };

    // Ending chunks (spec 03 §5.2 "Endings").
    let chunks = w.assembly.close_open();
    w.emit_all(chunks);
    let credits = if byok.is_some() {
        0
    } else {
        (usage.input_tokens * entry.spec.input_microcredits_per_mtok
            + usage.output_tokens * entry.spec.output_microcredits_per_mtok)
            / 1_000_000
    };
    let mut finish_meta =
        json!({"usage": usage_json(&usage, credits), "creditsMicrocredits": credits});
    let (finish_reason, message_status, turn_status, mut session_status) = match &outcome {
        Outcome::Done(reason) => (reason.as_str(), "complete", "complete", "active"),
        Outcome::Limit(which) => {
            finish_meta["limit"] = json!(which);
            ("length", "complete", "complete", "paused")
        }
        Outcome::Stopped => {
            w.emit(json!({"type": "abort", "reason": "stopped"}));
            ("other", "cancelled", "cancelled", "paused")
        }
        Outcome::Failed(text) => {
            w.emit(json!({"type": "error", "errorText": text}));
            ("error", "error", "error", "active")
        }
        Outcome::Shutdown => {
            w.emit(json!({"type": "error", "errorText": "server shutting down"}));
            ("error", "error", "error", "paused")
        }
    };
    if matches!(outcome, Outcome::Done(_)) && ctx.messaged.load(Ordering::SeqCst) > 0 {
        session_status = "awaiting_peer";
    }
    w.emit(
        json!({"type": "finish", "finishReason": finish_reason, "messageMetadata": finish_meta}),
    );

    // Let queued saves land first so the final write is the last one.
    drop(std::mem::replace(&mut w.saves, mpsc::unbounded_channel().0));
    let _ = persister.await;
    let mut metadata = json!({"turnId": turn.id});
    if let Outcome::Limit(which) = &outcome {
        metadata["limit"] = json!(which);
    }
    let mut message = w.progress(message_status);
    message.finish_reason = Some(finish_reason.to_string());
    message.usage = Some(usage_json(&usage, credits));
    let end = TurnEnd {
        status: turn_status.into(),
        finish_reason: finish_reason.into(),
        message,
        session_status: session_status.into(),
        events: std::mem::take(&mut w.pending),
    };
    let mut attempt: u64 = 0;
    while let Err(e) = rt
        .store
        .finish_turn(&principal.org, &turn, &end, rt.clock.now())
        .await
    {
        if matches!(e, alumia_core::StoreError::NotFound) {
            break; // the turn row is gone: nothing left to finalise
        }
        // A busy or briefly unreachable database must not lose the answer:
        // retry for about a minute. If the stale sweep ends the turn
        // meanwhile, this write still stores its real outcome.
        attempt += 1;
        let level_error = attempt.is_multiple_of(10);
        if level_error {
            tracing::error!(turn = %turn.id, attempt, error = %e, "turn end not saved yet");
        } else {
            tracing::warn!(turn = %turn.id, attempt, error = %e, "turn end not saved yet; retrying");
        }
        if attempt >= 40 {
            tracing::error!(turn = %turn.id, "turn end given up after 40 attempts");
            break;
        }
        let backoff = std::time::Duration::from_millis((100 * attempt).min(2_000));
        tokio::time::sleep(backoff).await;
    }
    if let Some(fanout) = &rt.fanout {
        fanout.flush().await;
    }

    // A peer message that arrived during the turn gets its own turn now.
    if !matches!(outcome, Outcome::Stopped | Outcome::Shutdown)
        && rt
            .has_follow_up(&principal, turn.session_id)
            .await
            .unwrap_or(false)
    {
        crate::chat::queue_peer_turn(&rt, &principal, agent, turn.session_id, hops);
    }
}

struct PendingCall {
    id: String,
    name: String,
    input: Result<Value, String>,
}

async fn run_loop(
    rt: &Arc<Runtime>,
    w: &mut Writer,
    ctx: &ToolCtx,
    entry: &ModelEntry,
    client: Arc<dyn ModelClient>,
    history: Vec<alumia_core::chat_store::ChatMessage>,
    usage: &mut Usage,
) -> Outcome {
    let limits = &rt.limits;
    let deadline = Instant::now() + limits.max_turn;
    let max_steps = ctx
        .agent
        .settings
        .get("maxSteps")
        .and_then(Value::as_u64)
        .map_or(limits.max_steps, |n| (n as u32).clamp(1, limits.max_steps));
    let mut system: Vec<String> = Vec::new();
    if !ctx.agent.system_prompt.is_empty() {
        system.push(ctx.agent.system_prompt.clone());
    }
    // The project's prompt applies to every turn in its sessions (spec 06 §1).
    if let Some(project) = ctx.session.project_id
        && let Ok(Some(project)) = rt
            .store
            .get_project(
                &ctx.principal.org,
                &alumia_core::projects::ProjectRef::Id(project),
            )
            .await
        && !project.prompt.is_empty()
    {
        system.push(project.prompt);
    }
    system.extend(
        history
            .iter()
            .filter(|m| m.role == "system")
            .map(|m| m.text.clone()),
    );
    let mut prompt = crate::prompt::history(&history, entry.provider != "dev");
    let tool_specs: Vec<_> = if entry.spec.supports_tools {
        tools::effective(&ctx.agent)
            .iter()
            .filter_map(|t| tools::spec(t))
            .collect()
    } else {
        Vec::new()
    };
    let temperature = ctx
        .agent
        .settings
        .get("temperature")
        .and_then(Value::as_f64);
    let reasoning_effort = if entry.spec.supports_reasoning {
        ctx.agent
            .settings
            .get("reasoningEffort")
            .and_then(Value::as_str)
            .map(str::to_string)
    } else {
        None
    };
    let cancel = w.live.cancel.clone();
    let shutdown = rt.shutdown.clone();
    let mut tick = tokio::time::interval(limits.flush_interval);
    // One timer for the whole turn, not one per chunk.
    let wall_clock = sleep_until(deadline);
    tokio::pin!(wall_clock);

    for _step in 0..max_steps {
        let chunks = w.assembly.start_step();
        w.emit_all(chunks);
        let max_output = entry.spec.max_output_tokens.min(
            limits
                .max_output_tokens
                .saturating_sub(usage.output_tokens)
                .max(1),
        );
        let budget = (entry.spec.context_window as usize).saturating_sub(
            max_output as usize + system.iter().map(String::len).sum::<usize>() / 4,
        );
        crate::prompt::fit(&mut prompt, budget);
        let request = ModelRequest {
            model: entry.model.clone(),
            system: (!system.is_empty()).then(|| system.join("\n\n")),
            messages: prompt.clone(),
            tools: tool_specs.clone(),
            max_output_tokens: Some(
                entry.spec.max_output_tokens.min(
                    limits
                        .max_output_tokens
                        .saturating_sub(usage.output_tokens)
                        .max(1),
                ) as u32,
            ),
            temperature,
            reasoning_effort: reasoning_effort.clone(),
        };
        // Up to the first-byte timeout: keep beating the heartbeat meanwhile.
        let open = client.stream(request);
        tokio::pin!(open);
        let opened = loop {
            tokio::select! {
                r = &mut open => break r,
                _ = cancel.cancelled() => return Outcome::Stopped,
                _ = shutdown.cancelled() => return Outcome::Shutdown,
                _ = &mut wall_clock => return Outcome::Limit("wall_clock"),
                _ = tick.tick() => w.maybe_flush(),
            }
        };
        let mut stream = match opened {
            Ok(s) => s,
            Err(e) => return failed(&e),
        };
        let mut calls: Vec<PendingCall> = Vec::new();
        let step_reason;
        let mut step_text = String::new();
        loop {
            let event = tokio::select! {
                e = stream.next() => e,
                _ = cancel.cancelled() => return Outcome::Stopped,
                _ = shutdown.cancelled() => return Outcome::Shutdown,
                _ = &mut wall_clock => return Outcome::Limit("wall_clock"),
                _ = tick.tick() => { w.maybe_flush(); continue; }
            };
            let chunks = match event {
                None => return failed(&ModelError::Interrupted),
                Some(Err(e)) => return failed(&e),
                Some(Ok(ModelEvent::TextDelta(d))) => {
                    step_text.push_str(&d);
                    w.assembly.text_delta(&d)
                }
                Some(Ok(ModelEvent::ReasoningDelta(d))) => w.assembly.reasoning_delta(&d),
                Some(Ok(ModelEvent::ToolCallStart { id, name })) => w
                    .assembly
                    .tool_input_start(&id, &crate::prompt::our_tool_name(&name)),
                Some(Ok(ModelEvent::ToolCallDelta { id, delta })) => {
                    w.assembly.tool_input_delta(&id, &delta)
                }
                Some(Ok(ModelEvent::ToolCallReady {
                    id,
                    name,
                    arguments,
                })) => {
                    let name = crate::prompt::our_tool_name(&name);
                    let parsed = if arguments.trim().is_empty() {
                        Ok(json!({}))
                    } else {
                        serde_json::from_str::<Value>(&arguments)
                            .map_err(|e| format!("Invalid JSON arguments: {e}"))
                            .and_then(|v| {
                                if v.is_object() {
                                    Ok(v)
                                } else {
                                    Err("arguments must be a JSON object".into())
                                }
                            })
                    };
                    let chunks = match &parsed {
                        Ok(input) => w.assembly.tool_input_available(&id, &name, input),
                        Err(err) => w.assembly.tool_input_error(&id, &name, &arguments, err),
                    };
                    calls.push(PendingCall {
                        id,
                        name,
                        input: parsed,
                    });
                    chunks
                }
                Some(Ok(ModelEvent::Finish {
                    reason,
                    usage: step_usage,
                })) => {
                    usage.add(&step_usage);
                    step_reason = reason;
                    break;
                }
            };
            w.emit_all(chunks);
            w.maybe_flush();
        }
        let chunks = w.assembly.close_open();
        w.emit_all(chunks);

        // Tools run concurrently, each bounded; outputs feed the next step.
        let runnable: Vec<&PendingCall> = calls.iter().filter(|c| c.input.is_ok()).collect();
        for c in &runnable {
            w.emit(json!({"type": "data-activity", "data": {"kind": "tool_started", "toolCallId": c.id, "toolName": c.name}, "transient": true}));
        }
        let results = {
            let run_all = futures::future::join_all(runnable.iter().map(|c| async {
                let input = c.input.as_ref().expect("filtered to parsed inputs");
                match tokio::time::timeout(limits.tool_timeout, tools::call(ctx, &c.name, input))
                    .await
                {
                    Ok(r) => r,
                    Err(_) => Err(format!(
                        "tool timed out after {} s",
                        limits.tool_timeout.as_secs()
                    )),
                }
            }));
            tokio::pin!(run_all);
            loop {
                tokio::select! {
                    r = &mut run_all => break r,
                    _ = cancel.cancelled() => return Outcome::Stopped,
                    _ = shutdown.cancelled() => return Outcome::Shutdown,
                    _ = &mut wall_clock => return Outcome::Limit("wall_clock"),
                    _ = tick.tick() => w.maybe_flush(),
                }
            }
        };
        let mut tool_calls = Vec::new();
        let mut tool_results = Vec::new();
        let mut results = results.into_iter();
        for c in &calls {
            let provider_name = crate::prompt::provider_tool_name(&c.name);
            let (output, is_error) = match &c.input {
                Err(e) => (e.clone(), true),
                Ok(_) => match results.next().expect("one result per runnable call") {
                    Ok(value) => {
                        let compact = value.to_string();
                        if compact.len() > limits.max_tool_output {
                            let text =
                                format!("tool output exceeds {} KB", limits.max_tool_output / 1024);
                            let chunks = w.assembly.tool_output_error(&c.id, &c.name, &text);
                            w.emit_all(chunks);
                            (text, true)
                        } else {
                            let chunks = w.assembly.tool_output(&c.id, &c.name, &value);
                            w.emit_all(chunks);
                            (compact, false)
                        }
                    }
                    Err(text) => {
                        let chunks = w.assembly.tool_output_error(&c.id, &c.name, &text);
                        w.emit_all(chunks);
                        (text, true)
                    }
                },
            };
            if c.input.is_ok() {
                w.emit(json!({"type": "data-activity", "data": {"kind": "tool_finished", "toolCallId": c.id, "toolName": c.name, "ok": !is_error}, "transient": true}));
            }
            tool_calls.push(ToolCall {
                id: c.id.clone(),
                name: provider_name.clone(),
                arguments: c.input.clone().unwrap_or_else(|_| json!({})),
            });
            tool_results.push(PromptMessage::ToolResult {
                call_id: c.id.clone(),
                name: provider_name,
                output,
                is_error,
            });
        }
        let chunks = w.assembly.finish_step();
        w.emit_all(chunks);
        if !calls.is_empty() {
            // Another step follows; the turn's end saves everything at once.
            w.maybe_flush();
        }

        prompt.push(PromptMessage::Assistant {
            text: step_text,
            tool_calls,
        });
        prompt.extend(tool_results);
        if calls.is_empty() {
            return Outcome::Done(match step_reason {
                FinishReason::ToolCalls => FinishReason::Stop,
                other => other,
            });
        }
        if usage.output_tokens >= limits.max_output_tokens {
            return Outcome::Limit("output_tokens");
        }
    }
    Outcome::Limit("steps")
}

fn failed(e: &ModelError) -> Outcome {
    tracing::warn!(error = %e, "model call failed");
    Outcome::Failed(e.user_text())
}
