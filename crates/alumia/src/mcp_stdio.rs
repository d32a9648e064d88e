//! `alumia mcp --stdio` (spec 04 §4): the MCP tool catalogue over stdin and
//! stdout, each tool a REST call made with the CLI's credential through the
//! typed client. No MCP-scope gating: the full catalogue, plus the stdio-only
//! tools; the server still applies every REST rule. Logs go to stderr only
//! (stdout carries the protocol).

use std::process::ExitCode;
use std::sync::Arc;

use alumia_client::{Client, ClientError};
use alumia_mcp::{AlumiaMcp, Caller, Exec, Rest, RestReply};
use alumia_types::dto::ChatRequest;
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use rmcp::ServiceExt;
use serde_json::Value;

/// REST through the typed client.
struct ClientRest {
    client: Client,
}

/// `%XX` escapes back to text (the catalogue encodes query values).
fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = raw.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn api_error_reply(e: ClientError) -> Result<RestReply, String> {
    match e {
        ClientError::Api { status, body, .. } => Ok(RestReply {
            status: status.as_u16(),
            session_id: None,
            turn_id: None,
            body: futures::stream::once(async move { Ok(Bytes::from(body.to_string())) }).boxed(),
        }),
        other => Err(other.to_string()),
    }
}

#[async_trait]
impl Rest for ClientRest {
    async fn send(
        &self,
        _caller: &Caller,
        method: &str,
        path: &str,
        body: Option<Value>,
        sse: bool,
    ) -> Result<RestReply, String> {
        if sse {
            let request: ChatRequest = serde_json::from_value(body.unwrap_or_default())
                .map_err(|e| format!("chat request: {e}"))?;
            let stream = match self.client.chat_stream(&request).await {
                Ok(s) => s,
                Err(e) => return api_error_reply(e),
            };
            let (session_id, turn_id) = (stream.session_id.clone(), stream.turn_id.clone());
            // Back to SSE frames, as the catalogue reads any transport's stream.
            let frames = stream
                .map(|chunk| match chunk {
                    Ok(c) => Ok(Bytes::from(format!("data: {}\n\n", c.data))),
                    Err(e) => Err(e.to_string()),
                })
                .chain(futures::stream::once(async {
                    Ok(Bytes::from_static(b"data: [DONE]\n\n"))
                }));
            return Ok(RestReply {
                status: 200,
                session_id,
                turn_id,
                body: frames.boxed(),
            });
        }
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let pairs: Vec<(String, String)> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect();
        let pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let method =
            alumia_client::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let (status, value) = self
            .client
            .raw(method, path, &pairs, body)
            .await
            .map_err(|e| e.to_string())?;
        Ok(RestReply {
            status: status.as_u16(),
            session_id: None,
            turn_id: None,
            body: futures::stream::once(async move { Ok(Bytes::from(value.to_string())) }).boxed(),
        })
    }
}

/// `alumia_exec`: this binary as a child process (no shell), with the same
/// environment and server URL, so it uses the same credential; stdin is closed.
struct ChildExec {
    url: String,
}

/// A command that runs longer is killed.
const EXEC_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

#[async_trait]
impl Exec for ChildExec {
    async fn exec(&self, args: Vec<String>) -> Result<Value, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let child = tokio::process::Command::new(exe)
            .args(&args)
            .env("ALUMIA_URL", &self.url)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(EXEC_TIMEOUT, child)
            .await
            .map_err(|_| format!("timed out after {} s", EXEC_TIMEOUT.as_secs()))?
            .map_err(|e| e.to_string())?;
        Ok(serde_json::json!({
            "exitCode": out.status.code().unwrap_or(1),
            "stdout": String::from_utf8_lossy(&out.stdout),
            "stderr": String::from_utf8_lossy(&out.stderr),
        }))
    }
}

pub async fn run(client: Client) -> ExitCode {
    let exec = ChildExec {
        url: client.base_url().to_string(),
    };
    let handler = AlumiaMcp::stdio(Arc::new(ClientRest { client }), Arc::new(exec));
    let running = match handler.serve(rmcp::transport::stdio()).await {
        Ok(running) => running,
        Err(e) => {
            eprintln!("alumia mcp: the client did not start an MCP session: {e}");
            return ExitCode::from(1);
        }
    };
    match running.waiting().await {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("alumia mcp: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn query_values_decode() {
        assert_eq!(percent_decode("a%26b%3D"), "a&b=");
        assert_eq!(percent_decode("plain"), "plain");
        assert_eq!(percent_decode("bad%zz%4"), "bad%zz%4");
    }
}
