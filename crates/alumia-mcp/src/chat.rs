//! `chat_send`: runs a turn through `POST /api/v1/chat` and reads its UI
//! message stream until `finish`, or answers "running" when the timeout
//! passes first (the turn goes on; spec 04 §3).

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Map, Value, json};

use crate::args::str_arg;
use crate::{Caller, Rest, rest_result, tool_error, tool_ok, unreachable_api};

const DEFAULT_TIMEOUT: u64 = 120;

/// What the stream said so far.
#[derive(Default)]
struct Turn {
    message_id: Option<String>,
    text: String,
    tool_calls: Vec<(String, String, Option<bool>)>,
    finish_reason: Option<String>,
    usage: Option<Value>,
    error: Option<String>,
}

impl Turn {
    fn apply(&mut self, chunk: &Value) {
        let s = |k: &str| chunk.get(k).and_then(Value::as_str).map(str::to_string);
        match chunk
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
        {
            "start" => self.message_id = s("messageId"),
            "text-delta" => self.text.push_str(&s("delta").unwrap_or_default()),
            "tool-input-available" | "tool-input-error" => {
                let id = s("toolCallId").unwrap_or_default();
                if !self.tool_calls.iter().any(|c| c.0 == id) {
                    self.tool_calls
                        .push((id, s("toolName").unwrap_or_default(), None));
                }
            }
            kind @ ("tool-output-available" | "tool-output-error") => {
                let id = s("toolCallId").unwrap_or_default();
                if let Some(call) = self.tool_calls.iter_mut().find(|c| c.0 == id) {
                    call.2 = Some(kind == "tool-output-error");
                }
            }
            "error" => self.error = s("errorText"),
            "finish" => {
                self.finish_reason = s("finishReason");
                self.usage = chunk
                    .get("messageMetadata")
                    .and_then(|m| m.get("usage"))
                    .cloned();
            }
            _ => {}
        }
    }
}

/// Splits SSE `data:` payloads out of a byte buffer, keeping a partial
/// frame for the next read.
fn take_frames(buf: &mut Vec<u8>) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
        let frame: Vec<u8> = buf.drain(..end + 2).collect();
        let text = String::from_utf8_lossy(&frame);
        let data: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim_start)
            .collect();
        if !data.is_empty() {
            out.push(data.join("\n"));
        }
    }
    out
}

pub(crate) async fn send(
    rest: &dyn Rest,
    caller: &Caller,
    args: &Map<String, Value>,
) -> rmcp::model::CallToolResult {
    let timeout = Duration::from_secs(
        args.get("timeoutSeconds")
            .and_then(Value::as_u64)
            .unwrap_or(DEFAULT_TIMEOUT),
    );
    let mut body = json!({
        "messages": [{"role": "user", "content": str_arg(args, "message").unwrap_or_default()}],
    });
    for (arg, field) in [
        ("sessionId", "sessionId"),
        ("agentId", "agentId"),
        ("model", "model"),
        ("projectId", "projectId"),
    ] {
        if let Some(v) = str_arg(args, arg) {
            body[field] = json!(v);
        }
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let reply = match tokio::time::timeout_at(
        deadline,
        rest.send(caller, "POST", "/api/v1/chat", Some(body), true),
    )
    .await
    {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => return unreachable_api(&e),
        Err(_) => {
            return tool_error(
                "the turn did not start before the timeout".into(),
                json!({"error": {"code": "TIMEOUT", "message": "no answer before timeoutSeconds"}}),
            );
        }
    };
    if !(200..300).contains(&reply.status) {
        let status = reply.status;
        return rest_result(status, reply.json().await);
    }
    let session_id = reply.session_id.clone();
    let turn_id = reply.turn_id.clone();
    let mut stream = reply.body;
    let mut turn = Turn::default();
    let mut buf = Vec::new();
    loop {
        let next = match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => {
                return tool_ok(
                    json!({"sessionId": session_id, "turnId": turn_id, "status": "running"}),
                );
            }
            Ok(next) => next,
        };
        match next {
            Some(Ok(bytes)) => {
                buf.extend_from_slice(&bytes);
                for data in take_frames(&mut buf) {
                    if data == "[DONE]" {
                        continue;
                    }
                    if let Ok(chunk) = serde_json::from_str::<Value>(&data) {
                        turn.apply(&chunk);
                    }
                }
            }
            Some(Err(e)) => return unreachable_api(&e),
            None => break,
        }
    }
    let tool_calls: Vec<Value> = turn
        .tool_calls
        .iter()
        .map(|(_, name, is_error)| json!({"name": name, "isError": is_error.unwrap_or(false)}))
        .collect();
    let data = json!({
        "sessionId": session_id,
        "messageId": turn.message_id,
        "text": turn.text,
        "finishReason": turn.finish_reason,
        "toolCalls": tool_calls,
        "usage": turn.usage,
    });
    if let Some(error) = turn.error {
        // The turn failed: an error result that still carries what it said.
        return tool_error(
            format!("the turn failed: {error}"),
            json!({"error": {"code": "TURN_FAILED", "message": error}, "turn": data}),
        );
    }
    tool_ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_across_reads_are_joined() {
        let mut buf = b"id: t:0\ndata: {\"type\":\"start\"}\n\nid: t:1\ndata: {\"ty".to_vec();
        assert_eq!(take_frames(&mut buf), vec!["{\"type\":\"start\"}"]);
        buf.extend_from_slice(b"pe\":\"text-delta\",\"delta\":\"hi\"}\n\ndata: [DONE]\n\n");
        let frames = take_frames(&mut buf);
        assert_eq!(
            frames,
            vec!["{\"type\":\"text-delta\",\"delta\":\"hi\"}", "[DONE]"]
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn the_turn_collects_text_tools_and_the_finish() {
        let mut turn = Turn::default();
        for chunk in [
            json!({"type": "start", "messageId": "m1"}),
            json!({"type": "text-delta", "delta": "a "}),
            json!({"type": "tool-input-available", "toolCallId": "c1", "toolName": "echo"}),
            json!({"type": "tool-output-error", "toolCallId": "c1", "errorText": "no"}),
            json!({"type": "text-delta", "delta": "b"}),
            json!({"type": "finish", "finishReason": "stop", "messageMetadata": {"usage": {"outputTokens": 2}}}),
        ] {
            turn.apply(&chunk);
        }
        assert_eq!(turn.message_id.as_deref(), Some("m1"));
        assert_eq!(turn.text, "a b");
        assert_eq!(
            turn.tool_calls,
            vec![("c1".into(), "echo".into(), Some(true))]
        );
        assert_eq!(turn.finish_reason.as_deref(), Some("stop"));
        assert_eq!(turn.usage, Some(json!({"outputTokens": 2})));
    }
}
