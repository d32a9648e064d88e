//! Builds the assistant message's UIMessage parts and the UI message stream
//! chunks (spec 03 §5.2) side by side, so what is stored is exactly what
//! the stream said. Every method returns the chunks to emit, in order.

use serde_json::{Value, json};

#[derive(Default)]
pub struct Assembly {
    parts: Vec<Value>,
    /// Index in `parts` and stream id of the open text / reasoning part.
    open_text: Option<(usize, String)>,
    open_reasoning: Option<(usize, String)>,
    texts: usize,
    reasonings: usize,
    /// Set whenever `parts` changed since the last `take_dirty`.
    dirty: bool,
}

impl Assembly {
    pub fn parts(&self) -> &[Value] {
        &self.parts
    }

    /// The text parts joined (the message's `text`).
    pub fn text(&self) -> String {
        text_of(&self.parts)
    }

    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    pub fn start_step(&mut self) -> Vec<Value> {
        self.parts.push(json!({"type": "step-start"}));
        self.dirty = true;
        vec![json!({"type": "start-step"})]
    }

    pub fn finish_step(&mut self) -> Vec<Value> {
        let mut out = self.close_open();
        out.push(json!({"type": "finish-step"}));
        out
    }

    /// Closes an open text or reasoning part (before tools, steps and endings).
    pub fn close_open(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        for (open, kind) in [
            (self.open_reasoning.take(), "reasoning-end"),
            (self.open_text.take(), "text-end"),
        ] {
            if let Some((index, id)) = open {
                self.parts[index]["state"] = json!("done");
                out.push(json!({"type": kind, "id": id}));
                self.dirty = true;
            }
        }
        out
    }

    pub fn text_delta(&mut self, delta: &str) -> Vec<Value> {
        let mut out = Vec::new();
        if let Some((index, id)) = self.open_reasoning.take() {
            self.parts[index]["state"] = json!("done");
            out.push(json!({"type": "reasoning-end", "id": id}));
        }
        let (index, id) = match &self.open_text {
            Some(open) => open.clone(),
            None => {
                self.texts += 1;
                let id = format!("txt_{}", self.texts);
                self.parts
                    .push(json!({"type": "text", "text": "", "state": "streaming"}));
                out.push(json!({"type": "text-start", "id": id}));
                self.open_text = Some((self.parts.len() - 1, id.clone()));
                (self.parts.len() - 1, id)
            }
        };
        append(&mut self.parts[index], delta);
        self.dirty = true;
        out.push(json!({"type": "text-delta", "id": id, "delta": delta}));
        out
    }

    pub fn reasoning_delta(&mut self, delta: &str) -> Vec<Value> {
        let mut out = Vec::new();
        if let Some((index, id)) = self.open_text.take() {
            self.parts[index]["state"] = json!("done");
            out.push(json!({"type": "text-end", "id": id}));
        }
        let (index, id) = match &self.open_reasoning {
            Some(open) => open.clone(),
            None => {
                self.reasonings += 1;
                let id = format!("rsn_{}", self.reasonings);
                self.parts
                    .push(json!({"type": "reasoning", "text": "", "state": "streaming"}));
                out.push(json!({"type": "reasoning-start", "id": id}));
                self.open_reasoning = Some((self.parts.len() - 1, id.clone()));
                (self.parts.len() - 1, id)
            }
        };
        append(&mut self.parts[index], delta);
        self.dirty = true;
        out.push(json!({"type": "reasoning-delta", "id": id, "delta": delta}));
        out
    }

    pub fn tool_input_start(&mut self, call_id: &str, name: &str) -> Vec<Value> {
        let mut out = self.close_open();
        self.parts.push(json!({
            "type": format!("tool-{name}"),
            "toolCallId": call_id,
            "state": "input-streaming",
        }));
        self.dirty = true;
        out.push(json!({"type": "tool-input-start", "toolCallId": call_id, "toolName": name}));
        out
    }

    pub fn tool_input_delta(&mut self, call_id: &str, delta: &str) -> Vec<Value> {
        vec![json!({"type": "tool-input-delta", "toolCallId": call_id, "inputTextDelta": delta})]
    }

    fn tool_part(&mut self, call_id: &str, name: &str) -> &mut Value {
        let found = self.parts.iter().rposition(|p| p["toolCallId"] == call_id);
        let index = match found {
            Some(i) => i,
            None => {
                self.parts
                    .push(json!({"type": format!("tool-{name}"), "toolCallId": call_id}));
                self.parts.len() - 1
            }
        };
        self.dirty = true;
        &mut self.parts[index]
    }

    pub fn tool_input_available(&mut self, call_id: &str, name: &str, input: &Value) -> Vec<Value> {
        let mut out = self.close_open();
        let part = self.tool_part(call_id, name);
        part["state"] = json!("input-available");
        part["input"] = input.clone();
        out.push(json!({
            "type": "tool-input-available", "toolCallId": call_id, "toolName": name, "input": input,
        }));
        out
    }

    pub fn tool_input_error(
        &mut self,
        call_id: &str,
        name: &str,
        raw: &str,
        error: &str,
    ) -> Vec<Value> {
        let mut out = self.close_open();
        let part = self.tool_part(call_id, name);
        part["state"] = json!("output-error");
        part["input"] = json!(raw);
        part["errorText"] = json!(error);
        out.push(json!({
            "type": "tool-input-error", "toolCallId": call_id, "toolName": name,
            "input": raw, "errorText": error,
        }));
        out
    }

    pub fn tool_output(&mut self, call_id: &str, name: &str, output: &Value) -> Vec<Value> {
        let part = self.tool_part(call_id, name);
        part["state"] = json!("output-available");
        part["output"] = output.clone();
        vec![json!({"type": "tool-output-available", "toolCallId": call_id, "output": output})]
    }

    pub fn tool_output_error(&mut self, call_id: &str, name: &str, error: &str) -> Vec<Value> {
        let part = self.tool_part(call_id, name);
        part["state"] = json!("output-error");
        part["errorText"] = json!(error);
        vec![json!({"type": "tool-output-error", "toolCallId": call_id, "errorText": error})]
    }
}

fn append(part: &mut Value, delta: &str) {
    let text = part["text"].as_str().unwrap_or_default().to_string() + delta;
    part["text"] = json!(text);
}

/// The text parts of a message joined by `\n` (spec 03 §3).
pub fn text_of(parts: &[Value]) -> String {
    parts
        .iter()
        .filter(|p| p["type"] == "text")
        .filter_map(|p| p["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(chunks: &[Value]) -> Vec<&str> {
        chunks.iter().map(|c| c["type"].as_str().unwrap()).collect()
    }

    #[test]
    fn parts_open_and_close_in_stream_order() {
        let mut a = Assembly::default();
        let mut all = a.start_step();
        all.extend(a.reasoning_delta("hm "));
        all.extend(a.text_delta("hello "));
        all.extend(a.text_delta("world"));
        all.extend(a.tool_input_start("call_1", "echo"));
        all.extend(a.tool_input_available("call_1", "echo", &json!({"text": "x"})));
        all.extend(a.tool_output("call_1", "echo", &json!({"text": "x"})));
        all.extend(a.finish_step());
        assert_eq!(
            types(&all),
            [
                "start-step",
                "reasoning-start",
                "reasoning-delta",
                "reasoning-end",
                "text-start",
                "text-delta",
                "text-delta",
                "text-end",
                "tool-input-start",
                "tool-input-available",
                "tool-output-available",
                "finish-step"
            ]
        );
        assert_eq!(a.text(), "hello world");
        let parts = a.parts();
        assert_eq!(parts[1]["text"], "hm ");
        assert_eq!(parts[2]["state"], "done");
        assert_eq!(parts[3]["type"], "tool-echo");
        assert_eq!(parts[3]["state"], "output-available");
        assert_eq!(parts[3]["output"]["text"], "x");
    }

    #[test]
    fn a_new_step_gets_a_new_text_id() {
        let mut a = Assembly::default();
        a.start_step();
        let first = a.text_delta("a");
        a.finish_step();
        a.start_step();
        let second = a.text_delta("b");
        assert_eq!(first[0]["id"], "txt_1");
        assert_eq!(second[0]["id"], "txt_2");
        assert_eq!(a.text(), "a\nb");
    }
}
