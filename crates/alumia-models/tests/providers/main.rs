//! The HTTP provider adapters against fake providers on loopback that speak
//! the real wire formats (spec 11 §5: the real client code is what is tested).

mod anthropic;
mod fake;
mod openai;

use alumia_models::openai::OpenAiClient;
use alumia_models::{ApiSecret, ModelClient, ModelError, ModelRequest, ProviderEndpoint};
use tokio::io::AsyncReadExt;

/// An `https://` base URL gets a TLS handshake: the crate was built with
/// reqwest's rustls feature (without it the request never leaves).
#[tokio::test]
async fn https_base_urls_speak_tls() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let first_bytes = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 3];
        socket.read_exact(&mut buf).await.unwrap();
        buf
    });
    let endpoint = ProviderEndpoint {
        base_url: format!("https://{addr}/v1"),
        api_key: Some(ApiSecret::new(fake::KEY)),
        policy: alumia_models::CallPolicy {
            max_retries: 0,
            ..fake::policy()
        },
    };
    let error = OpenAiClient::new(reqwest::Client::new(), endpoint)
        .stream(ModelRequest::default())
        .await
        .err()
        .unwrap();
    // A TLS record of type handshake (0x16), protocol version 3.x.
    let bytes = first_bytes.await.unwrap();
    assert_eq!(bytes[..2], [0x16, 0x03], "not a TLS ClientHello: {bytes:?}");
    assert!(matches!(error, ModelError::Unavailable { .. }), "{error:?}");
}
