//! `alumia chat [MESSAGE…]` (spec 05 §5): streams a turn. Text deltas go to
//! stdout as they arrive; reasoning, tool activity and the session id go to
//! stderr. Ctrl-C stops the turn on the server and exits 130.

use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;

use alumia_client::{ChatChunk, Client};
use alumia_types::dto::ChatRequest;
use futures::StreamExt;
use serde_json::{Value, json};

use super::{CliError, CliResult, GlobalArgs, Out, with_client};

#[derive(clap::Args, Debug)]
pub struct ChatArgs {
    /// Continue this session (id).
    #[arg(long, value_name = "ID")]
    pub session: Option<String>,
    /// Agent id or slug (default: the session's agent, else Ala).
    #[arg(long)]
    pub agent: Option<String>,
    /// Model for this turn only, e.g. `dev/echo`.
    #[arg(long)]
    pub model: Option<String>,
    /// Project (id or slug) of a new session.
    #[arg(long)]
    pub project: Option<String>,
    /// The message; read from stdin when omitted.
    #[arg(value_name = "MESSAGE")]
    pub message: Vec<String>,
}

pub async fn run(args: ChatArgs, global: GlobalArgs) -> ExitCode {
    with_client(global, |client, out| chat(client, args, out)).await
}

async fn chat(client: Client, args: ChatArgs, out: Out) -> CliResult {
    let text = message(&args.message, out)?;
    let request = ChatRequest {
        messages: vec![json!({"role": "user", "content": text})],
        session_id: args.session,
        agent_id: args.agent,
        model: args.model,
        project_id: args.project,
        ..Default::default()
    };
    let mut stream = client.chat_stream(&request).await?;
    let session_id = stream.session_id.clone();
    let mut turn = Turn::default();

    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            next = stream.next() => match next {
                None => break,
                Some(Ok(chunk)) => turn.on_chunk(&chunk, out),
                Some(Err(e)) => {
                    turn.end_text(out);
                    return Err(e.into());
                }
            },
            _ = &mut ctrl_c => {
                turn.end_text(out);
                if let Some(id) = &session_id {
                    match client.chat_stop(id).await {
                        Ok(_) => out.progress(format!("Stopped. Session: {id}")),
                        Err(e) => eprintln!("alumia: could not stop the turn: {e}"),
                    }
                }
                return Ok(ExitCode::from(130));
            }
        }
    }
    turn.end_text(out);

    if out.json {
        out.json(&json!({
            "sessionId": session_id,
            "messageId": turn.message_id,
            "text": turn.text,
            "finishReason": turn.finish_reason,
            "usage": turn.usage,
        }));
    }
    if let Some(id) = &session_id {
        out.progress(format!("Session: {id}"));
    }
    Ok(if turn.error.is_some() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The arguments joined by spaces, else stdin.
fn message(words: &[String], out: Out) -> CliResult<String> {
    let text = if words.is_empty() {
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            out.progress("Type your message, then Ctrl-D:");
        }
        let mut s = String::new();
        stdin
            .lock()
            .read_to_string(&mut s)
            .map_err(|e| CliError::Failed(format!("cannot read the message from stdin: {e}")))?;
        s
    } else {
        words.join(" ")
    };
    let text = text.trim_end().to_string();
    if text.trim().is_empty() {
        return Err(CliError::Usage(
            "no message: give it as arguments or on stdin".into(),
        ));
    }
    Ok(text)
}

/// What the chunks told so far.
#[derive(Default)]
struct Turn {
    message_id: Option<String>,
    text: String,
    finish_reason: Option<String>,
    usage: Value,
    error: Option<String>,
    /// Text went to stdout and its last line is open.
    stdout_open: bool,
    /// Reasoning went to stderr and its last line is open.
    reasoning_open: bool,
}

impl Turn {
    fn on_chunk(&mut self, chunk: &ChatChunk, out: Out) {
        match chunk.kind() {
            "start" => self.message_id = chunk.str("messageId").map(str::to_string),
            "text-delta" => {
                let delta = chunk.str("delta").unwrap_or_default();
                self.text.push_str(delta);
                if !out.json && !delta.is_empty() {
                    let mut stdout = std::io::stdout().lock();
                    let _ = stdout.write_all(delta.as_bytes());
                    let _ = stdout.flush();
                    self.stdout_open = !delta.ends_with('\n');
                }
            }
            "reasoning-delta" if !out.json && !out.quiet => {
                let delta = chunk.str("delta").unwrap_or_default();
                let mut stderr = std::io::stderr().lock();
                let _ = stderr.write_all(delta.as_bytes());
                let _ = stderr.flush();
                self.reasoning_open = !delta.is_empty() && !delta.ends_with('\n');
            }
            "reasoning-end" => self.end_reasoning(),
            "tool-input-available" => {
                self.end_reasoning();
                let name = chunk.str("toolName").unwrap_or("?");
                out.progress(format!("→ tool {name}"));
            }
            "tool-output-available" => out.progress("← ok"),
            "tool-output-error" | "tool-input-error" => {
                let why = chunk.str("errorText").unwrap_or_default();
                out.progress(format!("← error: {why}"));
            }
            "error" => {
                self.end_text(out);
                let text = chunk.str("errorText").unwrap_or("the turn failed");
                eprintln!("alumia: {text}");
                self.error = Some(text.to_string());
            }
            "abort" => out.progress("(the turn was stopped)"),
            "finish" => {
                self.finish_reason = chunk.str("finishReason").map(str::to_string);
                self.usage = chunk.data["messageMetadata"]["usage"].clone();
            }
            _ => {}
        }
    }

    fn end_reasoning(&mut self) {
        if self.reasoning_open {
            eprintln!();
            self.reasoning_open = false;
        }
    }

    /// Closes the open lines, so what follows starts on its own line.
    fn end_text(&mut self, out: Out) {
        self.end_reasoning();
        if self.stdout_open && !out.json {
            println!();
            self.stdout_open = false;
        }
    }
}
