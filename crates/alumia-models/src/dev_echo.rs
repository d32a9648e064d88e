//! The built-in deterministic development model (spec 03 §4): no network,
//! no credits, and directives that script tool calls, reasoning, failures
//! and pacing, so every path of a turn can be driven from a chat message.

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;

use crate::{
    EventStream, FinishReason, ModelClient, ModelError, ModelEvent, ModelRequest, PromptMessage,
    Usage,
};

/// The longest `/delay` honoured, in milliseconds.
pub const MAX_DELAY_MS: u64 = 5_000;

#[derive(Debug, Default, Clone, Copy)]
pub struct DevEcho;

/// The directives and echo text of the last user message.
#[derive(Debug, Default, PartialEq)]
struct Script {
    tools: Vec<(String, String)>,
    loops: Vec<(String, String)>,
    reason: Option<String>,
    error: Option<String>,
    /// Fails the first call after tool results (a turn that wrote, then failed).
    error_after_tools: Option<String>,
    delay: Option<Duration>,
    echo: String,
}

fn parse(text: &str) -> Script {
    let mut script = Script::default();
    let mut plain = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        let (head, rest) = match trimmed.split_once(char::is_whitespace) {
            Some((head, rest)) => (head, rest.trim()),
            None => (trimmed, ""),
        };
        match head {
            "/tool" | "/loop" if !rest.is_empty() => {
                let (name, args) = match rest.split_once(char::is_whitespace) {
                    Some((name, args)) => (name, args.trim()),
                    None => (rest, ""),
                };
                let args = if args.is_empty() { "{}" } else { args };
                let target = if head == "/tool" {
                    &mut script.tools
                } else {
                    &mut script.loops
                };
                target.push((name.to_string(), args.to_string()));
            }
            "/reason" => script.reason = Some(rest.to_string()),
            "/error" => script.error = Some(rest.to_string()),
            "/error-after-tools" => script.error_after_tools = Some(rest.to_string()),
            "/delay" => {
                if let Ok(ms) = rest.parse::<u64>() {
                    script.delay = Some(Duration::from_millis(ms.min(MAX_DELAY_MS)));
                }
            }
            _ => plain.push(line),
        }
    }
    script.echo = plain.join("\n").trim().to_string();
    script
}

/// Splits into one piece per word, each with its trailing whitespace.
fn word_deltas(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut in_space = false;
    for ch in text.chars() {
        if ch.is_whitespace() {
            in_space = true;
        } else if in_space && !current.is_empty() {
            out.push(std::mem::take(&mut current));
            in_space = false;
        }
        current.push(ch);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

fn prompt_words(request: &ModelRequest) -> u64 {
    let mut n = request.system.as_deref().map(words).unwrap_or(0);
    for message in &request.messages {
        n += match message {
            PromptMessage::User { text } => words(text),
            PromptMessage::Assistant { text, .. } => words(text),
            PromptMessage::ToolResult { output, .. } => words(output),
        };
    }
    n
}

/// Compact JSON of a tool's argument text; invalid JSON is passed through so
/// the runtime reports it as `tool-input-error`.
fn compact(args: &str) -> String {
    serde_json::from_str::<Value>(args)
        .map(|v| v.to_string())
        .unwrap_or_else(|_| args.to_string())
}

impl DevEcho {
    fn plan(
        &self,
        request: &ModelRequest,
    ) -> Result<(Vec<ModelEvent>, Option<Duration>), ModelError> {
        let last_user = request
            .messages
            .iter()
            .rposition(|m| matches!(m, PromptMessage::User { .. }));
        let (text, after) = match last_user {
            Some(i) => match &request.messages[i] {
                PromptMessage::User { text } => (text.as_str(), &request.messages[i + 1..]),
                _ => unreachable!("rposition matched a user message"),
            },
            None => ("", &request.messages[..]),
        };
        let script = parse(text);
        let first_call = after.is_empty();
        if first_call && let Some(message) = &script.error {
            return Err(ModelError::Scripted(format!("dev/echo error: {message}")));
        }
        if !first_call && let Some(message) = &script.error_after_tools {
            return Err(ModelError::Scripted(format!("dev/echo error: {message}")));
        }

        let mut events = Vec::new();
        let mut output_words = 0;
        if first_call && let Some(reason) = &script.reason {
            output_words += words(reason);
            events.extend(
                word_deltas(reason)
                    .into_iter()
                    .map(ModelEvent::ReasoningDelta),
            );
        }

        let calls_so_far = after
            .iter()
            .filter(|m| matches!(m, PromptMessage::ToolResult { .. }))
            .count();
        let calls: &[(String, String)] = if !script.loops.is_empty() {
            &script.loops
        } else if first_call {
            &script.tools
        } else {
            &[]
        };
        if !calls.is_empty() {
            for (n, (name, args)) in calls.iter().enumerate() {
                let id = format!("call_{}", calls_so_far + n + 1);
                let arguments = compact(args);
                events.push(ModelEvent::ToolCallStart {
                    id: id.clone(),
                    name: name.clone(),
                });
                events.push(ModelEvent::ToolCallDelta {
                    id: id.clone(),
                    delta: arguments.clone(),
                });
                events.push(ModelEvent::ToolCallReady {
                    id,
                    name: name.clone(),
                    arguments,
                });
            }
            events.push(ModelEvent::Finish {
                reason: FinishReason::ToolCalls,
                usage: Usage {
                    input_tokens: prompt_words(request),
                    output_tokens: output_words,
                    ..Usage::default()
                },
            });
            return Ok((events, script.delay));
        }

        let mut reply = format!("echo: {}", script.echo);
        for message in after {
            if let PromptMessage::ToolResult {
                name,
                output,
                is_error,
                ..
            } = message
            {
                if *is_error {
                    reply.push_str(&format!("\ntool {name} failed: {output}"));
                } else {
                    reply.push_str(&format!("\ntool {name} returned {output}"));
                }
            }
        }
        output_words += words(&reply);
        events.extend(word_deltas(&reply).into_iter().map(ModelEvent::TextDelta));
        events.push(ModelEvent::Finish {
            reason: FinishReason::Stop,
            usage: Usage {
                input_tokens: prompt_words(request),
                output_tokens: output_words,
                ..Usage::default()
            },
        });
        Ok((events, script.delay))
    }
}

#[async_trait::async_trait]
impl ModelClient for DevEcho {
    async fn stream(&self, request: ModelRequest) -> Result<EventStream, ModelError> {
        let (events, delay) = self.plan(&request)?;
        let stream = futures::stream::iter(events.into_iter().enumerate()).then(
            move |(i, event)| async move {
                if let Some(delay) = delay
                    && i > 0
                {
                    tokio::time::sleep(delay).await;
                }
                Ok(event)
            },
        );
        Ok(Box::pin(stream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    fn user(text: &str) -> ModelRequest {
        ModelRequest {
            model: "echo".into(),
            messages: vec![PromptMessage::User { text: text.into() }],
            ..ModelRequest::default()
        }
    }

    async fn run(request: ModelRequest) -> Result<Vec<ModelEvent>, ModelError> {
        DevEcho.stream(request).await?.try_collect().await
    }

    fn text_of(events: &[ModelEvent]) -> String {
        events
            .iter()
            .filter_map(|e| match e {
                ModelEvent::TextDelta(d) => Some(d.as_str()),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn echoes_word_by_word_with_trailing_whitespace_and_counts_words() {
        let events = run(user("hello  there world")).await.unwrap();
        let deltas: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                ModelEvent::TextDelta(d) => Some(d.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(deltas, ["echo: ", "hello  ", "there ", "world"]);
        assert_eq!(
            events.last(),
            Some(&ModelEvent::Finish {
                reason: FinishReason::Stop,
                usage: Usage {
                    input_tokens: 3,
                    output_tokens: 4,
                    ..Usage::default()
                }
            })
        );
    }

    #[tokio::test]
    async fn tool_directives_make_parallel_calls_then_report_results() {
        let mut request = user("/tool echo {\"text\": \"hi\"}\nplease\n/tool list_agents");
        let step1 = run(request.clone()).await.unwrap();
        let ready: Vec<_> = step1
            .iter()
            .filter_map(|e| match e {
                ModelEvent::ToolCallReady {
                    id,
                    name,
                    arguments,
                } => Some((id.as_str(), name.as_str(), arguments.as_str())),
                _ => None,
            })
            .collect();
        assert_eq!(
            ready,
            [
                ("call_1", "echo", "{\"text\":\"hi\"}"),
                ("call_2", "list_agents", "{}")
            ]
        );
        assert!(text_of(&step1).is_empty());
        assert!(matches!(
            step1.last(),
            Some(ModelEvent::Finish {
                reason: FinishReason::ToolCalls,
                ..
            })
        ));

        request.messages.push(PromptMessage::Assistant {
            text: String::new(),
            tool_calls: vec![],
        });
        request.messages.push(PromptMessage::ToolResult {
            call_id: "call_1".into(),
            name: "echo".into(),
            output: "{\"text\":\"hi\"}".into(),
            is_error: false,
        });
        request.messages.push(PromptMessage::ToolResult {
            call_id: "call_2".into(),
            name: "list_agents".into(),
            output: "tool not allowed".into(),
            is_error: true,
        });
        let step2 = run(request).await.unwrap();
        assert_eq!(
            text_of(&step2),
            "echo: please\ntool echo returned {\"text\":\"hi\"}\ntool list_agents failed: tool not allowed"
        );
    }

    #[tokio::test]
    async fn loop_calls_every_step_with_fresh_ids() {
        let mut request = user("/loop echo");
        request.messages.push(PromptMessage::ToolResult {
            call_id: "call_1".into(),
            name: "echo".into(),
            output: "{}".into(),
            is_error: false,
        });
        let events = run(request).await.unwrap();
        assert!(
            events
                .iter()
                .any(|e| matches!(e, ModelEvent::ToolCallReady { id, .. } if id == "call_2"))
        );
    }

    #[tokio::test]
    async fn error_fails_the_first_call_only_and_reason_comes_first() {
        let err = run(user("/error boom")).await.unwrap_err();
        assert_eq!(err.user_text(), "dev/echo error: boom");

        let events = run(user("/reason thinking hard\nok")).await.unwrap();
        assert_eq!(events[0], ModelEvent::ReasoningDelta("thinking ".into()));
        assert_eq!(events[1], ModelEvent::ReasoningDelta("hard".into()));
        assert_eq!(text_of(&events), "echo: ok");
    }

    #[tokio::test]
    async fn error_after_tools_lets_the_tools_run_then_fails() {
        let mut request = user("/tool echo {}\n/error-after-tools late");
        let step1 = run(request.clone()).await.expect("the tool step runs");
        assert!(
            step1
                .iter()
                .any(|e| matches!(e, ModelEvent::ToolCallReady { .. }))
        );
        request.messages.push(PromptMessage::ToolResult {
            call_id: "call_1".into(),
            name: "echo".into(),
            output: "{}".into(),
            is_error: false,
        });
        let err = run(request).await.unwrap_err();
        assert_eq!(err.user_text(), "dev/echo error: late");
    }

    #[tokio::test]
    async fn delay_paces_deltas_and_is_capped() {
        assert_eq!(
            parse("/delay 999999").delay,
            Some(Duration::from_millis(MAX_DELAY_MS))
        );
        let started = std::time::Instant::now();
        run(user("/delay 30\na b")).await.unwrap();
        // "echo: ", "a ", "b", finish: three waits of 30 ms.
        assert!(started.elapsed() >= Duration::from_millis(90));
    }
}
