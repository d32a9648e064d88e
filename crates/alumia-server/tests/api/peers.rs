//! Agents talking to agents (spec 03 §1 peers and messages, §6 tools),
//! driven through `dev/echo` tool directives.

use alumia_testkit::TestApp;
use serde_json::{Value, json};

use crate::chat::{chat, get, messages, parse_sse, post, session};
use crate::chat_lifecycle::eventually;
use crate::{add_user, app_with_owner, assert_error, read};

/// Runs a turn to its end: `(sessionId, chunks)`.
async fn turn(app: &TestApp, key: &str, body: Value) -> (String, Vec<(String, Value)>) {
    let res = chat(app, key, body).await;
    assert_eq!(res.status(), 200);
    let sid = res.headers()["x-alumia-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    (sid, parse_sse(&res.text().await.unwrap()))
}

async fn tell(app: &TestApp, key: &str, agent: &str, text: &str) -> (String, Vec<(String, Value)>) {
    turn(
        app,
        key,
        json!({"agentId": agent, "messages": [{"role": "user", "content": text}]}),
    )
    .await
}

/// The output of a tool call, or its error text.
fn result(chunks: &[(String, Value)], call: &str) -> Result<Value, String> {
    for (_, c) in chunks {
        if c["toolCallId"] != call {
            continue;
        }
        match c["type"].as_str() {
            Some("tool-output-available") => return Ok(c["output"].clone()),
            Some("tool-output-error") => return Err(c["errorText"].as_str().unwrap().into()),
            _ => {}
        }
    }
    panic!("no result for {call}: {chunks:?}");
}

async fn agent(app: &TestApp, key: &str, name: &str) -> Value {
    let (status, body) = post(app, key, "/api/v1/agents", json!({"name": name})).await;
    assert_eq!(status, 201, "{body}");
    body["data"].clone()
}

async fn agent_id(app: &TestApp, key: &str, slug: &str) -> String {
    let (status, body) = get(app, key, &format!("/api/v1/agents/{slug}")).await;
    assert_eq!(status, 200, "{body}");
    body["data"]["id"].as_str().unwrap().to_string()
}

async fn peer_slugs(app: &TestApp, key: &str, agent: &str) -> Vec<String> {
    let (status, body) = get(app, key, &format!("/api/v1/agents/{agent}/peers")).await;
    assert_eq!(status, 200, "{body}");
    let mut slugs: Vec<String> = body["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["slug"].as_str().unwrap().to_string())
        .collect();
    slugs.sort();
    slugs
}

#[tokio::test]
async fn peers_are_the_agents_allowed_peers_admit() {
    let (app, owner, key) = app_with_owner().await;
    let writer = agent(&app, &key, "Writer").await;
    agent(&app, &key, "Editor").await;
    assert_eq!(peer_slugs(&app, &key, "ala").await, ["editor", "writer"]);
    assert_eq!(peer_slugs(&app, &key, "writer").await, ["ala", "editor"]);
    let (_, body) = get(&app, &key, "/api/v1/agents/ala/peers").await;
    let item = body["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["slug"] == "writer")
        .unwrap()
        .clone();
    assert_eq!(item["id"], writer["id"]);
    assert_eq!(item["name"], "Writer");
    assert_eq!(item["isActive"], true);
    assert!(item.get("avatar").is_some(), "{item}");

    // Restrictions (browser, step-up) narrow the list, by slug or id.
    let (status, scout) = read(
        owner
            .post(
                "/api/v1/agents",
                json!({"name": "Scout", "allowedPeers": ["editor"]}),
            )
            .await,
    )
    .await;
    assert_eq!(status, 201, "{scout}");
    assert_eq!(peer_slugs(&app, &key, "scout").await, ["editor"]);
    let ala = agent_id(&app, &key, "ala").await;
    let res = owner
        .send(
            reqwest::Method::PATCH,
            "/api/v1/agents/writer",
            Some(json!({"allowedPeers": [ala]})),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(peer_slugs(&app, &key, "writer").await, ["ala"]);
    let res = owner
        .send(
            reqwest::Method::PATCH,
            "/api/v1/agents/writer",
            Some(json!({"allowedPeers": []})),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert!(peer_slugs(&app, &key, "writer").await.is_empty());
    // Peers are listed for everyone else unchanged.
    assert_eq!(
        peer_slugs(&app, &key, "ala").await,
        ["editor", "scout", "writer"]
    );

    let eve = add_user(&app, "eve@example.com", "evil", None).await;
    let (eve_key, _) = eve.mint_key("eve", None).await;
    let (status, body) = get(&app, &eve_key, "/api/v1/agents/writer/peers").await;
    assert_error(status, &body, 404, "NOT_FOUND", "not_found");
    assert!(peer_slugs(&app, &eve_key, "ala").await.is_empty());
}

#[tokio::test]
async fn message_agent_delivers_and_runs_a_turn_for_the_peer() {
    let (app, _owner, key) = app_with_owner().await;
    let writer = agent(&app, &key, "Writer").await;
    let writer_id = writer["id"].as_str().unwrap().to_string();
    let ala = agent_id(&app, &key, "ala").await;

    let (_, chunks) = turn(
        &app,
        &key,
        json!({"messages": [{"role": "user", "content": "/tool list_agents"}]}),
    )
    .await;
    let listed = result(&chunks, "call_1").unwrap();
    let slugs: Vec<&str> = listed["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["writer"]);

    let (sender, chunks) = turn(
        &app,
        &key,
        json!({"messages": [{"role": "user", "content": "/tool message_agent {\"agent\":\"writer\",\"message\":\"hi\"}"}]}),
    )
    .await;
    let out = result(&chunks, "call_1").unwrap();
    assert_eq!(out["delivered"], true, "{out}");
    assert_eq!(out["agentId"], writer_id.as_str());
    let peer_sid = out["sessionId"].as_str().unwrap().to_string();
    assert_eq!(chunks.last().unwrap().1["finishReason"], "stop");

    // The target's peer session holds the message …
    let peer = session(&app, &key, &peer_sid).await;
    assert_eq!(peer["relationship"], "peer");
    assert_eq!(peer["agentId"], writer_id.as_str());
    let (_, body) = get(&app, &key, "/api/v1/agents/writer/messages").await;
    let items = body["data"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{body}");
    assert_eq!(items[0]["fromAgentId"], ala.as_str());
    assert_eq!(items[0]["toAgentId"], writer_id.as_str());
    assert_eq!(items[0]["text"], "hi");
    assert_eq!(items[0]["sessionId"], peer_sid.as_str());
    let (_, sent) = get(&app, &key, "/api/v1/agents/ala/messages").await;
    assert_eq!(sent["data"]["items"][0]["id"], items[0]["id"]);

    // … and a turn runs for it there.
    let reply = eventually("the peer's reply", || async {
        let items = messages(&app, &key, &peer_sid).await;
        items
            .iter()
            .find(|m| m["role"] == "assistant" && m["status"] == "complete")
            .cloned()
            .map(|reply| (items, reply))
    })
    .await;
    let (items, reply) = reply;
    assert_eq!(items[0]["role"], "user");
    assert_eq!(items[0]["text"], "hi");
    assert_eq!(items[0]["author"], json!({"kind": "agent", "id": ala}));
    assert_eq!(reply["author"]["id"], writer_id.as_str());
    assert!(
        reply["text"].as_str().unwrap().starts_with("echo: "),
        "{reply}"
    );

    // The sender waits for its peer; with no reply yet there is nothing to resume.
    assert_eq!(
        session(&app, &key, &sender).await["status"],
        "awaiting_peer"
    );
    let (status, body) = post(
        &app,
        &key,
        &format!("/api/v1/chat/{sender}/resume"),
        json!({}),
    )
    .await;
    assert_error(status, &body, 409, "CONFLICT", "not_resumable");

    // The target reads its unread messages once.
    let (_, chunks) = tell(&app, &key, "writer", "/tool check_messages").await;
    let unread = result(&chunks, "call_1").unwrap();
    let list = unread["messages"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{unread}");
    assert_eq!(list[0]["fromAgentId"], ala.as_str());
    assert_eq!(list[0]["text"], "hi");
    let (_, chunks) = tell(&app, &key, "writer", "/tool check_messages").await;
    assert_eq!(result(&chunks, "call_1").unwrap(), json!({"messages": []}));
    let (_, body) = get(&app, &key, "/api/v1/agents/writer/messages").await;
    assert!(body["data"]["items"][0]["readAt"].is_string(), "{body}");
}

#[tokio::test]
async fn spawn_agent_makes_a_peer_and_stops_at_five_per_turn() {
    let (app, _owner, key) = app_with_owner().await;
    let ala = agent_id(&app, &key, "ala").await;
    let (_, chunks) = turn(
        &app,
        &key,
        json!({"messages": [{"role": "user", "content": "/tool spawn_agent {\"name\":\"Helper\",\"systemPrompt\":\"x\"}"}]}),
    )
    .await;
    let out = result(&chunks, "call_1").unwrap();
    assert_eq!(out["agent"]["slug"], "helper", "{out}");
    let (status, helper) = get(&app, &key, "/api/v1/agents/helper").await;
    assert_eq!(status, 200, "{helper}");
    assert_eq!(helper["data"]["settings"]["spawnedBy"], ala.as_str());
    assert_eq!(helper["data"]["systemPrompt"], "x");
    assert_eq!(helper["data"]["id"], out["agent"]["id"]);
    let sid = out["sessionId"].as_str().unwrap();
    let peer = session(&app, &key, sid).await;
    assert_eq!(peer["relationship"], "peer");
    assert_eq!(peer["agentId"], helper["data"]["id"]);

    let (_, before) = get(&app, &key, "/api/v1/agents").await;
    let before = before["data"]["items"].as_array().unwrap().len();
    let lines: Vec<String> = (1..=6)
        .map(|i| format!("/tool spawn_agent {{\"name\":\"Sub {i}\",\"systemPrompt\":\"x\"}}"))
        .collect();
    let (_, chunks) = turn(
        &app,
        &key,
        json!({"messages": [{"role": "user", "content": lines.join("\n")}]}),
    )
    .await;
    for i in 1..=5 {
        let out = result(&chunks, &format!("call_{i}"));
        assert!(out.is_ok(), "call_{i}: {out:?}");
    }
    let sixth = result(&chunks, "call_6").unwrap_err();
    assert!(sixth.contains("at most 5"), "{sixth}");
    let (_, after) = get(&app, &key, "/api/v1/agents").await;
    let after = after["data"]["items"].as_array().unwrap();
    assert_eq!(after.len(), before + 5);
    assert!(after.iter().all(|a| a["slug"] != "sub-6"));
}

#[tokio::test]
async fn disallowed_peers_and_alas_model_are_refused() {
    let (app, owner, key) = app_with_owner().await;
    agent(&app, &key, "Writer").await;
    agent(&app, &key, "Editor").await;
    let (status, body) = read(
        owner
            .post(
                "/api/v1/agents",
                json!({"name": "Scout", "allowedPeers": ["editor"]}),
            )
            .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");

    let (sid, chunks) = tell(
        &app,
        &key,
        "scout",
        "/tool message_agent {\"agent\":\"writer\",\"message\":\"psst\"}",
    )
    .await;
    let err = result(&chunks, "call_1").unwrap_err();
    assert!(err.contains("not an allowed peer"), "{err}");
    let (_, body) = get(&app, &key, "/api/v1/agents/writer/messages").await;
    assert_eq!(body["data"]["items"], json!([]), "nothing delivered");
    let (_, body) = get(&app, &key, "/api/v1/agents/writer/sessions").await;
    assert_eq!(body["data"]["items"], json!([]), "no peer session");
    assert_eq!(session(&app, &key, &sid).await["status"], "active");
    // The allowed one goes through.
    let (_, chunks) = tell(
        &app,
        &key,
        "scout",
        "/tool message_agent {\"agent\":\"editor\",\"message\":\"ok\"}",
    )
    .await;
    assert_eq!(result(&chunks, "call_1").unwrap()["delivered"], true);

    // Ala's model is the org default.
    let (_, chunks) = turn(
        &app,
        &key,
        json!({"messages": [{"role": "user", "content": "/tool set_agent_model {\"model\":\"dev/echo\"}"}]}),
    )
    .await;
    let err = result(&chunks, "call_1").unwrap_err();
    assert!(err.contains("Ala"), "{err}");
    let (_, chunks) = tell(
        &app,
        &key,
        "writer",
        "/tool set_agent_model {\"model\":\"dev/echo\"}",
    )
    .await;
    assert_eq!(
        result(&chunks, "call_1").unwrap(),
        json!({"model": "dev/echo"})
    );
}

/// `dev/echo` answers `echo: E`, E being the last user message's text
/// (spec 03 §4); a peer message's text is what the sender wrote.
#[tokio::test]
async fn a_peer_turn_echoes_the_delivered_text() {
    let (app, _owner, key) = app_with_owner().await;
    agent(&app, &key, "Writer").await;
    let (_, chunks) = turn(
        &app,
        &key,
        json!({"messages": [{"role": "user", "content": "/tool message_agent {\"agent\":\"writer\",\"message\":\"hi\"}"}]}),
    )
    .await;
    let peer_sid = result(&chunks, "call_1").unwrap()["sessionId"]
        .as_str()
        .unwrap()
        .to_string();
    let reply = eventually("the peer's reply", || async {
        messages(&app, &key, &peer_sid)
            .await
            .into_iter()
            .find(|m| m["role"] == "assistant" && m["status"] == "complete")
    })
    .await;
    assert_eq!(reply["text"], "echo: hi");
}

/// A peer's reply lands in the session awaiting it, and the runtime
/// resumes that session by itself (spec 03 §5.4).
#[tokio::test]
async fn a_reply_resumes_the_session_awaiting_it() {
    let (app, _owner, key) = app_with_owner().await;
    let writer = agent(&app, &key, "Writer").await;
    let (sender, _) = turn(
        &app,
        &key,
        json!({"messages": [{"role": "user", "content": "/tool message_agent {\"agent\":\"writer\",\"message\":\"draft it\"}"}]}),
    )
    .await;
    assert_eq!(
        session(&app, &key, &sender).await["status"],
        "awaiting_peer"
    );

    let (_, chunks) = tell(
        &app,
        &key,
        "writer",
        "/tool message_agent {\"agent\":\"ala\",\"message\":\"done\"}",
    )
    .await;
    let out = result(&chunks, "call_1").unwrap();
    assert_eq!(
        out["sessionId"],
        sender.as_str(),
        "into the awaiting session"
    );

    let items = eventually("Ala's follow-up turn", || async {
        let items = messages(&app, &key, &sender).await;
        (items.len() == 4 && items[3]["status"] == "complete").then_some(items)
    })
    .await;
    assert_eq!(items[2]["role"], "user");
    assert_eq!(items[2]["text"], "done");
    assert_eq!(items[2]["author"]["id"], writer["id"]);
    assert_eq!(items[3]["role"], "assistant");
    let data = eventually("the session to settle", || async {
        let data = session(&app, &key, &sender).await;
        data["runningTurn"].is_null().then_some(data)
    })
    .await;
    assert_eq!(data["status"], "active");
}
