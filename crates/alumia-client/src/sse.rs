//! The chat stream (spec 03 §5.2): SSE events `id: <turnId>:<seq>` +
//! `data: <json>`, `: keep-alive` comments, and a final `data: [DONE]`.
//! Framing is eventsource-stream's; this module gives the frames meaning.

use std::pin::Pin;
use std::task::{Context, Poll};

use eventsource_stream::{EventStreamError, Eventsource};
use futures::stream::{BoxStream, Stream, StreamExt};
use serde_json::Value;

use crate::ClientError;

/// One UI-message-stream chunk: its JSON and its SSE id (`<turnId>:<seq>`).
#[derive(Debug, Clone, PartialEq)]
pub struct ChatChunk {
    pub id: Option<String>,
    pub data: Value,
}

impl ChatChunk {
    /// The chunk's `type`, e.g. `text-delta`; `""` when missing.
    pub fn kind(&self) -> &str {
        self.data["type"].as_str().unwrap_or_default()
    }

    /// A string field of the chunk, e.g. `delta` or `errorText`.
    pub fn str(&self, field: &str) -> Option<&str> {
        self.data[field].as_str()
    }
}

/// A running chat turn: the ids from the response headers, and the chunks
/// until `[DONE]`. A body that ends before `[DONE]` yields one
/// [`ClientError::Network`] last.
pub struct ChatStream {
    /// `X-Alumia-Session-Id`.
    pub session_id: Option<String>,
    /// `X-Alumia-Turn-Id`.
    pub turn_id: Option<String>,
    pub(crate) chunks: BoxStream<'static, Result<ChatChunk, ClientError>>,
}

impl std::fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatStream")
            .field("session_id", &self.session_id)
            .field("turn_id", &self.turn_id)
            .finish_non_exhaustive()
    }
}

impl Stream for ChatStream {
    type Item = Result<ChatChunk, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.chunks.poll_next_unpin(cx)
    }
}

/// Parses a byte stream (split anywhere, even inside a UTF-8 character)
/// into chunks. The stream ends at `[DONE]`, or after its first error.
pub(crate) fn chunks<S, B>(body: S) -> BoxStream<'static, Result<ChatChunk, ClientError>>
where
    S: Stream<Item = Result<B, ClientError>> + Send + 'static,
    B: AsRef<[u8]> + Send + 'static,
{
    let events = body.eventsource().boxed();
    futures::stream::unfold(Some(events), |state| async move {
        let mut events = state?;
        let item = match events.next().await {
            None => Err(ClientError::Network(
                "the chat stream ended before the turn finished".into(),
            )),
            Some(Err(EventStreamError::Transport(e))) => Err(e),
            Some(Err(EventStreamError::Utf8(e))) => Err(ClientError::Decode(format!(
                "the chat stream is not UTF-8: {e}"
            ))),
            Some(Err(EventStreamError::Parser(e))) => Err(ClientError::Decode(format!(
                "the chat stream is not SSE: {e}"
            ))),
            Some(Ok(event)) if event.data == "[DONE]" => return None,
            Some(Ok(event)) => match serde_json::from_str::<Value>(&event.data) {
                Ok(data) => {
                    let id = (!event.id.is_empty()).then_some(event.id);
                    return Some((Ok(ChatChunk { id, data }), Some(events)));
                }
                Err(e) => Err(ClientError::Decode(format!(
                    "a chat chunk is not JSON ({e}): {}",
                    event.data.chars().take(120).collect::<String>()
                ))),
            },
        };
        Some((item, None))
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    const TRANSCRIPT: &str = concat!(
        "id: t1:0\ndata: {\"type\":\"start\",\"messageId\":\"m1\"}\n\n",
        ": keep-alive\n\n",
        "id: t1:1\ndata: {\"type\":\"text-delta\",\"id\":\"txt_1\",\"delta\":\"héllo \"}\n\n",
        "id: t1:2\r\ndata: {\"type\":\"text-delta\",\"id\":\"txt_1\",\"delta\":\"wörld\"}\r\n\r\n",
        "id: t1:3\ndata: {\"type\":\"finish\",\"finishReason\":\"stop\"}\n\n",
        "data: [DONE]\n\n",
    );

    async fn parse(parts: Vec<Vec<u8>>) -> Vec<Result<ChatChunk, String>> {
        let body = futures::stream::iter(parts.into_iter().map(Ok::<_, ClientError>));
        chunks(body)
            .map(|r| r.map_err(|e| e.to_string()))
            .collect()
            .await
    }

    fn expected() -> Vec<ChatChunk> {
        vec![
            ChatChunk {
                id: Some("t1:0".into()),
                data: serde_json::json!({"type": "start", "messageId": "m1"}),
            },
            ChatChunk {
                id: Some("t1:1".into()),
                data: serde_json::json!({"type": "text-delta", "id": "txt_1", "delta": "héllo "}),
            },
            ChatChunk {
                id: Some("t1:2".into()),
                data: serde_json::json!({"type": "text-delta", "id": "txt_1", "delta": "wörld"}),
            },
            ChatChunk {
                id: Some("t1:3".into()),
                data: serde_json::json!({"type": "finish", "finishReason": "stop"}),
            },
        ]
    }

    #[tokio::test]
    async fn frames_parse_whole() {
        let got = parse(vec![TRANSCRIPT.as_bytes().to_vec()]).await;
        let got: Vec<ChatChunk> = got.into_iter().map(Result::unwrap).collect();
        assert_eq!(got, expected());
        assert_eq!(got[1].kind(), "text-delta");
        assert_eq!(got[1].str("delta"), Some("héllo "));
    }

    #[tokio::test]
    async fn frames_parse_split_at_every_byte_boundary() {
        let bytes = TRANSCRIPT.as_bytes();
        // Every split point once (inside field names, between \r and \n,
        // inside multi-byte characters), then one byte per read.
        for cut in 1..bytes.len() {
            let got = parse(vec![bytes[..cut].to_vec(), bytes[cut..].to_vec()]).await;
            let got: Vec<ChatChunk> = got.into_iter().map(Result::unwrap).collect();
            assert_eq!(got, expected(), "split at byte {cut}");
        }
        let single: Vec<Vec<u8>> = bytes.iter().map(|b| vec![*b]).collect();
        let got: Vec<ChatChunk> = parse(single)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, expected());
    }

    #[tokio::test]
    async fn nothing_after_done_is_read() {
        let text = format!("{TRANSCRIPT}id: t1:9\ndata: {{\"type\":\"late\"}}\n\n");
        let got = parse(vec![text.into_bytes()]).await;
        assert_eq!(got.len(), 4);
    }

    #[tokio::test]
    async fn a_body_that_ends_before_done_is_an_error() {
        let cut = TRANSCRIPT.find("data: [DONE]").unwrap();
        let got = parse(vec![TRANSCRIPT.as_bytes()[..cut].to_vec()]).await;
        assert_eq!(got.len(), 5);
        let last = got.last().unwrap().as_ref().unwrap_err();
        assert!(last.contains("ended before the turn finished"), "{last}");
    }

    #[tokio::test]
    async fn a_chunk_that_is_not_json_is_a_decode_error() {
        let body = futures::stream::iter([Ok::<_, ClientError>(b"data: {nope\n\n".to_vec())]);
        let got: Result<Vec<ChatChunk>, ClientError> = chunks(body).try_collect().await;
        assert!(matches!(got, Err(ClientError::Decode(_))), "{got:?}");
    }

    #[tokio::test]
    async fn a_transport_error_ends_the_stream_with_it() {
        let body = futures::stream::iter([
            Ok(b"id: t:0\ndata: {\"type\":\"start\"}\n\n".to_vec()),
            Err(ClientError::Network("connection reset".into())),
            Ok(b"data: [DONE]\n\n".to_vec()),
        ]);
        let got: Vec<_> = chunks(body).collect().await;
        assert_eq!(got.len(), 2);
        assert!(matches!(&got[1], Err(ClientError::Network(m)) if m == "connection reset"));
    }
}
