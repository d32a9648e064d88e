//! Stored messages → the provider-neutral prompt. Stored history is
//! authoritative (spec 03 §5.1); tool parts become an assistant tool-call
//! message followed by one result per call, step by step.

use alumia_core::chat_store::ChatMessage;
use alumia_models::{PromptMessage, ToolCall};
use serde_json::Value;

/// Tool names sent to providers replace `.` with `__` (spec 03 §6).
pub fn provider_tool_name(name: &str) -> String {
    name.replace('.', "__")
}

pub fn our_tool_name(provider_name: &str) -> String {
    provider_name.replace("__", ".")
}

/// `name_senders`: prefix messages other agents sent with who sent them,
/// so a real model can tell peers apart (dev/echo echoes the bare text).
pub fn history(messages: &[ChatMessage], name_senders: bool) -> Vec<PromptMessage> {
    let mut out = Vec::new();
    for m in messages {
        match m.role.as_str() {
            "user" => {
                let text = if name_senders && m.author_kind == "agent" {
                    format!(
                        "[message from agent {}]\n{}",
                        m.author_id.map(|a| a.to_string()).unwrap_or_default(),
                        m.text
                    )
                } else {
                    m.text.clone()
                };
                out.push(PromptMessage::User { text });
            }
            "assistant" => assistant(m, &mut out),
            // System messages are folded into the system prompt by the caller.
            _ => {}
        }
    }
    out
}

fn assistant(m: &ChatMessage, out: &mut Vec<PromptMessage>) {
    let empty = Vec::new();
    let parts = m.parts.as_array().unwrap_or(&empty);
    // Split at step-start: each step is one model call.
    let mut steps: Vec<Vec<&Value>> = vec![Vec::new()];
    for p in parts {
        if p["type"] == "step-start" {
            if !steps.last().is_some_and(Vec::is_empty) {
                steps.push(Vec::new());
            }
        } else {
            steps.last_mut().expect("one step at least").push(p);
        }
    }
    for step in steps.into_iter().filter(|s| !s.is_empty()) {
        let text = step
            .iter()
            .filter(|p| p["type"] == "text")
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("");
        let mut calls = Vec::new();
        let mut results = Vec::new();
        for p in step
            .iter()
            .filter(|p| p["type"].as_str().is_some_and(|t| t.starts_with("tool-")))
        {
            let name = provider_tool_name(&p["type"].as_str().unwrap_or_default()["tool-".len()..]);
            let id = p["toolCallId"].as_str().unwrap_or_default().to_string();
            let (output, is_error) = match p["state"].as_str() {
                Some("output-available") => (p["output"].to_string(), false),
                Some("output-error") => (
                    p["errorText"].as_str().unwrap_or("tool failed").to_string(),
                    true,
                ),
                // A call without a result (a stopped turn) is not replayed.
                _ => continue,
            };
            let arguments = match &p["input"] {
                Value::Object(_) => p["input"].clone(),
                _ => Value::Object(Default::default()),
            };
            calls.push(ToolCall {
                id: id.clone(),
                name: name.clone(),
                arguments,
            });
            results.push(PromptMessage::ToolResult {
                call_id: id,
                name,
                output,
                is_error,
            });
        }
        if text.is_empty() && calls.is_empty() {
            continue;
        }
        out.push(PromptMessage::Assistant {
            text,
            tool_calls: calls,
        });
        out.extend(results);
    }
}

/// A rough token count (4 bytes a token): enough to keep a prompt inside
/// the context window without a tokenizer per provider.
fn estimate(m: &PromptMessage) -> usize {
    let bytes = match m {
        PromptMessage::User { text } => text.len(),
        PromptMessage::Assistant { text, tool_calls } => {
            text.len()
                + tool_calls
                    .iter()
                    .map(|c| c.name.len() + c.arguments.to_string().len())
                    .sum::<usize>()
        }
        PromptMessage::ToolResult { output, .. } => output.len(),
    };
    bytes / 4 + 4
}

/// Drops the oldest messages until the estimate fits `budget` tokens
/// (spec 03 §5.3: from the prompt, never from storage). The prompt never
/// starts with orphaned tool results, and the newest message always stays.
pub fn fit(messages: &mut Vec<PromptMessage>, budget: usize) {
    let mut total: usize = messages.iter().map(estimate).sum();
    let mut drop = 0;
    while total > budget && drop + 1 < messages.len() {
        total -= estimate(&messages[drop]);
        drop += 1;
    }
    while drop + 1 < messages.len() && matches!(messages[drop], PromptMessage::ToolResult { .. }) {
        drop += 1;
    }
    messages.drain(..drop);
}

#[cfg(test)]
mod tests {
    #[test]
    fn fit_drops_the_oldest_and_never_leaves_orphaned_results() {
        let big = |t: &str| PromptMessage::User {
            text: t.repeat(400),
        };
        let mut m = vec![
            big("a"),
            PromptMessage::Assistant {
                text: String::new(),
                tool_calls: vec![],
            },
            PromptMessage::ToolResult {
                call_id: "c".into(),
                name: "echo".into(),
                output: "x".repeat(400),
                is_error: false,
            },
            big("b"),
        ];
        fit(&mut m, 150);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0], big("b"));
        let mut small = vec![PromptMessage::User { text: "hi".into() }];
        fit(&mut small, 1);
        assert_eq!(small.len(), 1, "the newest message always stays");
    }

    use super::*;
    use serde_json::json;

    fn message(role: &str, parts: Value) -> ChatMessage {
        ChatMessage {
            id: "m".into(),
            session_id: uuid::Uuid::nil(),
            seq: 1,
            role: role.into(),
            text: crate::assembly::text_of(parts.as_array().unwrap()),
            parts,
            author_kind: "user".into(),
            author_id: None,
            status: "complete".into(),
            model: None,
            finish_reason: None,
            usage: None,
            metadata: json!({}),
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn tool_steps_become_calls_then_results() {
        let history = history(
            &[
                message("user", json!([{"type": "text", "text": "hi"}])),
                message(
                    "assistant",
                    json!([
                        {"type": "step-start"},
                        {"type": "tool-conn.op", "toolCallId": "c1", "state": "output-available", "input": {"a": 1}, "output": {"ok": true}},
                        {"type": "tool-echo", "toolCallId": "c2", "state": "output-error", "input": {}, "errorText": "nope"},
                        {"type": "step-start"},
                        {"type": "text", "text": "done"}
                    ]),
                ),
            ],
            true,
        );
        assert_eq!(history.len(), 5);
        assert_eq!(history[0], PromptMessage::User { text: "hi".into() });
        match &history[1] {
            PromptMessage::Assistant { text, tool_calls } => {
                assert!(text.is_empty());
                assert_eq!(tool_calls[0].name, "conn__op");
                assert_eq!(tool_calls[0].arguments, json!({"a": 1}));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            history[3],
            PromptMessage::ToolResult {
                call_id: "c2".into(),
                name: "echo".into(),
                output: "nope".into(),
                is_error: true
            }
        );
        assert_eq!(
            history[4],
            PromptMessage::Assistant {
                text: "done".into(),
                tool_calls: vec![]
            }
        );
    }
}
