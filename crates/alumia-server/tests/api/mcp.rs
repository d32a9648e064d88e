//! Hosted MCP at `/mcp` (spec 04 §1–3), spoken as JSON-RPC over real HTTP:
//! the guards, stateless answers, scope-filtered tools, tool errors, and
//! tools that run through REST with REST's rules.

use alumia_testkit::TestApp;
use serde_json::{Value, json};

use crate::{add_user, app_with_owner};

const PROTOCOL: &str = "2025-06-18";

async fn rpc_raw(app: &TestApp, key: Option<&str>, body: String) -> reqwest::Response {
    rpc_with(app, key, &[], body).await
}

/// A POST to /mcp with the usual headers, `headers` added or replacing them.
async fn rpc_with(
    app: &TestApp,
    key: Option<&str>,
    headers: &[(&str, &str)],
    body: String,
) -> reqwest::Response {
    let defaults = [
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", PROTOCOL),
    ];
    let mut req = app.http.post(app.at("/mcp")).body(body);
    for (name, value) in defaults {
        if !headers.iter().any(|(n, _)| *n == name) {
            req = req.header(name, value);
        }
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    req.send().await.unwrap()
}

/// One JSON-RPC request; returns the HTTP status and the JSON body.
async fn rpc(app: &TestApp, key: &str, method: &str, params: Value) -> (u16, Value) {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let res = rpc_raw(app, Some(key), body.to_string()).await;
    let status = res.status().as_u16();
    assert!(
        res.headers().get("mcp-session-id").is_none(),
        "a stateless server issues no session id"
    );
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn tool_names(app: &TestApp, key: &str) -> Vec<String> {
    let (status, body) = rpc(app, key, "tools/list", json!({})).await;
    assert_eq!(status, 200, "{body}");
    body["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

async fn call(app: &TestApp, key: &str, name: &str, args: Value) -> Value {
    let (status, body) = rpc(
        app,
        key,
        "tools/call",
        json!({"name": name, "arguments": args}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn initialize_is_stateless_and_names_the_server() {
    let (app, _owner, key) = app_with_owner().await;
    let params = json!({
        "protocolVersion": PROTOCOL,
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    });
    let (status, body) = rpc(&app, &key, "initialize", params).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["serverInfo"]["name"], "alumia");
    assert_eq!(body["result"]["protocolVersion"], PROTOCOL);
    assert!(
        body["result"]["capabilities"]["tools"].is_object(),
        "{body}"
    );
    // A client-sent session id authenticates nothing and changes nothing.
    let res = rpc_with(
        &app,
        None,
        &[("mcp-session-id", "made-up")],
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).to_string(),
    )
    .await;
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn guards_answer_in_the_envelope() {
    let (app, _owner, key) = app_with_owner().await;
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();

    let res = rpc_raw(&app, None, ping.clone()).await;
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers()["www-authenticate"],
        "Bearer realm=\"alumia-mcp\", error=\"invalid_token\""
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["success"], false);

    let res = rpc_raw(&app, Some("alm_test_notakey"), ping.clone()).await;
    assert_eq!(res.status(), 401);
    assert!(res.headers().contains_key("www-authenticate"));

    // A session cookie is not a credential here.
    let mut browser = app.browser();
    browser
        .login("owner@example.com", alumia_testkit::TEST_PASSWORD)
        .await;
    let res = browser
        .post("/mcp", serde_json::from_str(&ping).unwrap())
        .await;
    assert_eq!(res.status(), 401);

    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let res = app
            .http
            .request(method, app.at("/mcp"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 405);
        assert_eq!(res.headers()["allow"], "POST");
    }

    let res = rpc_with(
        &app,
        Some(&key),
        &[("origin", "https://evil.example")],
        ping.clone(),
    )
    .await;
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["reason"], "origin_not_allowed");

    let res = rpc_with(
        &app,
        Some(&key),
        &[("host", "rebound.example")],
        ping.clone(),
    )
    .await;
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["reason"], "host_not_allowed");

    // One request, one token of the key's api-key bucket: tools/call's
    // in-process REST call takes none.
    let remaining = |res: &reqwest::Response| -> i64 {
        let v = res.headers()["ratelimit"].to_str().unwrap().to_string();
        v.split(";r=")
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}});
    let first = rpc_raw(&app, Some(&key), call.to_string()).await;
    let second = rpc_raw(&app, Some(&key), call.to_string()).await;
    assert_eq!(remaining(&first) - remaining(&second), 1);

    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"whoami","arguments":{{"pad":"{}"}}}}}}"#,
        "x".repeat(1024 * 1024)
    );
    let res = rpc_raw(&app, Some(&key), big).await;
    assert_eq!(res.status(), 413);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "PAYLOAD_TOO_LARGE");

    let res = rpc_with(
        &app,
        Some(&key),
        &[("mcp-protocol-version", "1999-01-01")],
        ping,
    )
    .await;
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn malformed_json_rpc_gets_a_json_rpc_error() {
    let (app, _owner, key) = app_with_owner().await;
    let res = rpc_raw(&app, Some(&key), "{not json".into()).await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32700, "{body}");
    assert_eq!(body["id"], Value::Null);
    // JSON, but not a JSON-RPC message.
    let res = rpc_raw(&app, Some(&key), "[1, 2]".into()).await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32600, "{body}");
    let (_, body) = rpc(&app, &key, "no/such/method", json!({})).await;
    assert_eq!(body["error"]["code"], -32601, "{body}");
}

#[tokio::test]
async fn tools_list_follows_the_keys_scopes_with_annotations() {
    let (app, owner, _key) = app_with_owner().await;
    let (none, _) = owner.mint_key("none", Some(vec!["models:read"])).await;
    assert_eq!(tool_names(&app, &none).await, vec!["whoami"]);

    let (read, _) = owner.mint_key("read", Some(vec!["mcp:read"])).await;
    let names = tool_names(&app, &read).await;
    assert!(names.contains(&"agents_list".to_string()), "{names:?}");
    assert!(
        !names.contains(&"models_list".to_string()),
        "needs models:read too"
    );
    assert!(
        !names
            .iter()
            .any(|n| n == "agents_create" || n == "chat_send")
    );
    assert!(!names.iter().any(|n| n.starts_with("keys_")), "stdio only");

    let (both, _) = owner
        .mint_key("both", Some(vec!["mcp:read", "mcp:write", "models:read"]))
        .await;
    let (_, body) = rpc(&app, &both, "tools/list", json!({})).await;
    let tools = body["result"]["tools"].as_array().unwrap();
    let tool = |name: &str| {
        tools
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    assert!(tools.iter().any(|t| t["name"] == "models_list"));
    assert_eq!(tool("agents_list")["annotations"]["readOnlyHint"], true);
    assert_eq!(
        tool("agents_create")["annotations"]["destructiveHint"],
        false
    );
    assert_eq!(
        tool("agents_delete")["annotations"]["destructiveHint"],
        true
    );
    assert_eq!(tool("agents_delete")["annotations"]["idempotentHint"], true);
    assert_eq!(tool("chat_send")["annotations"]["openWorldHint"], true);
    assert_eq!(
        tool("chat_send")["inputSchema"]["required"],
        json!(["message"])
    );
}

#[tokio::test]
async fn a_call_beyond_the_keys_scopes_is_refused_and_changes_nothing() {
    let (app, owner, key) = app_with_owner().await;
    let (read, _) = owner.mint_key("read", Some(vec!["mcp:read"])).await;
    let body = call(&app, &read, "agents_create", json!({"name": "Sneaky"})).await;
    let result = &body["result"];
    assert_eq!(result["isError"], true, "{body}");
    assert_eq!(
        result["content"][0]["text"],
        "insufficient_scope: agents_create requires mcp:write"
    );
    assert_eq!(
        result["structuredContent"],
        json!({"error": {"code": "FORBIDDEN", "reason": "insufficient_scope", "requiredScope": "mcp:write"}})
    );
    let res = app.get_with_key("/api/v1/agents/sneaky", &key).await;
    assert_eq!(res.status(), 404, "nothing was created");

    let body = call(&app, &read, "models_list", json!({})).await;
    assert_eq!(
        body["result"]["structuredContent"]["error"]["requiredScope"],
        "models:read"
    );
}

#[tokio::test]
async fn tools_run_through_rest_with_its_rules() {
    let (app, owner, _key) = app_with_owner().await;
    let (key, _) = owner
        .mint_key("mcp", Some(vec!["mcp:read", "mcp:write", "models:read"]))
        .await;

    let me = call(&app, &key, "whoami", json!({})).await;
    assert_eq!(me["result"]["isError"], false, "{me}");
    assert_eq!(
        me["result"]["structuredContent"]["user"]["email"],
        "owner@example.com"
    );

    let created = call(
        &app,
        &key,
        "agents_create",
        json!({"name": "Researcher", "systemPrompt": "find things"}),
    )
    .await;
    let agent = &created["result"]["structuredContent"];
    assert_eq!(agent["slug"], "researcher", "{created}");
    // The text content repeats the structured result as JSON.
    let text: Value =
        serde_json::from_str(created["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(&text, agent);

    let got = call(&app, &key, "agents_get", json!({"id": "researcher"})).await;
    assert_eq!(got["result"]["structuredContent"]["id"], agent["id"]);
    let list = call(&app, &key, "agents_list", json!({"limit": 1})).await;
    assert_eq!(
        list["result"]["structuredContent"]["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(list["result"]["structuredContent"]["hasMore"], true);

    // REST failures come back as tool errors with their code and reason.
    let ala = call(&app, &key, "agents_delete", json!({"id": "ala"})).await;
    assert_eq!(ala["result"]["isError"], true, "{ala}");
    assert_eq!(ala["result"]["structuredContent"]["status"], 403);
    assert_eq!(
        ala["result"]["structuredContent"]["error"]["code"],
        "FORBIDDEN"
    );
    let missing = call(&app, &key, "agents_get", json!({"id": "../api-keys"})).await;
    assert_eq!(
        missing["result"]["structuredContent"]["error"]["code"],
        "NOT_FOUND"
    );

    // Arguments that fail the schema: a tool error, not a dropped call.
    let bad = call(&app, &key, "agents_get", json!({})).await;
    assert_eq!(bad["result"]["isError"], true);
    assert!(
        bad["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("`id` is required")
    );
    let bad = call(&app, &key, "agents_list", json!({"limit": "ten"})).await;
    assert_eq!(bad["result"]["isError"], true);

    // Unknown tools, and stdio-only tools on the hosted server: -32602.
    let (_, body) = rpc(
        &app,
        &key,
        "tools/call",
        json!({"name": "nope", "arguments": {}}),
    )
    .await;
    assert_eq!(body["error"]["code"], -32602, "{body}");
    let (_, body) = rpc(
        &app,
        &key,
        "tools/call",
        json!({"name": "keys_list", "arguments": {}}),
    )
    .await;
    assert_eq!(body["error"]["code"], -32602, "{body}");

    let deleted = call(&app, &key, "agents_delete", json!({"id": "researcher"})).await;
    assert_eq!(deleted["result"]["isError"], false, "{deleted}");
}

#[tokio::test]
async fn chat_send_runs_a_turn_or_reports_it_running() {
    let (app, owner, _key) = app_with_owner().await;
    let (key, _) = owner
        .mint_key("mcp", Some(vec!["mcp:read", "mcp:write"]))
        .await;
    let body = call(
        &app,
        &key,
        "chat_send",
        json!({"message": "/tool echo {\"text\": \"x\"}\nhello there"}),
    )
    .await;
    let out = &body["result"]["structuredContent"];
    assert_eq!(body["result"]["isError"], false, "{body}");
    let text = out["text"].as_str().unwrap();
    assert!(text.starts_with("echo: hello there"), "{text}");
    assert_eq!(out["finishReason"], "stop");
    assert_eq!(
        out["toolCalls"],
        json!([{"name": "echo", "isError": false}])
    );
    let session_id = out["sessionId"].as_str().unwrap().to_string();
    let messages = call(&app, &key, "session_messages", json!({"id": session_id})).await;
    let items = messages["result"]["structuredContent"]["items"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(items.len(), 2, "{messages}");
    assert_eq!(items[1]["id"], out["messageId"]);

    // The timeout passes first: "running", and the turn goes on.
    let body = call(
        &app,
        &key,
        "chat_send",
        json!({"message": "/delay 1500\nslow words here", "sessionId": session_id, "timeoutSeconds": 1}),
    )
    .await;
    let out = &body["result"]["structuredContent"];
    assert_eq!(out["status"], "running", "{body}");
    assert_eq!(out["sessionId"], session_id.as_str());
    assert!(out["turnId"].is_string());
    let stopped = call(&app, &key, "chat_stop", json!({"sessionId": session_id})).await;
    assert_eq!(stopped["result"]["isError"], false, "{stopped}");
}

#[tokio::test]
async fn another_orgs_objects_are_not_found_and_a_revoked_key_stops_working() {
    let (app, owner, _key) = app_with_owner().await;
    let (key, key_view) = owner
        .mint_key("mcp", Some(vec!["mcp:read", "mcp:write"]))
        .await;
    let other = add_user(&app, "eve@example.com", "eve-org", None).await;
    let (eve_key, _) = other
        .mint_key("eve", Some(vec!["mcp:read", "mcp:write"]))
        .await;
    let theirs = call(&app, &eve_key, "agents_create", json!({"name": "Private"})).await;
    let their_id = theirs["result"]["structuredContent"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let got = call(&app, &key, "agents_get", json!({"id": their_id})).await;
    assert_eq!(
        got["result"]["structuredContent"]["error"]["code"], "NOT_FOUND",
        "{got}"
    );

    assert!(tool_names(&app, &key).await.len() > 1);
    let res = owner
        .delete(&format!(
            "/api/v1/api-keys/{}",
            key_view["id"].as_str().unwrap()
        ))
        .await;
    assert!(res.status().is_success());
    let res = rpc_raw(
        &app,
        Some(&key),
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string(),
    )
    .await;
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn project_and_canvas_tools_read_and_write_through_rest() {
    let (app, owner, _key) = app_with_owner().await;
    let (read, _) = owner.mint_key("read", Some(vec!["mcp:read"])).await;
    let (write, _) = owner
        .mint_key("write", Some(vec!["mcp:read", "mcp:write"]))
        .await;
    let names = tool_names(&app, &read).await;
    for tool in ["projects_list", "project_get", "canvas_get", "blocks_list"] {
        assert!(names.iter().any(|n| n == tool), "{tool}: {names:?}");
    }
    for tool in ["projects_create", "blocks_create", "blocks_update"] {
        assert!(!names.iter().any(|n| n == tool), "{tool} needs mcp:write");
    }

    let created = call(&app, &write, "projects_create", json!({"name": "Launch"})).await;
    let project = created["result"]["structuredContent"].clone();
    assert_eq!(project["slug"], "launch", "{created}");
    let pid = project["id"].as_str().unwrap().to_string();
    let made = call(
        &app,
        &write,
        "blocks_create",
        json!({"projectId": pid, "type": "data", "title": "Notes",
               "data": {"type": "markdown", "markdown": "hello"}}),
    )
    .await;
    let block = made["result"]["structuredContent"].clone();
    assert_eq!(made["result"]["isError"], false, "{made}");
    let bid = block["id"].as_str().unwrap().to_string();

    // expectedUpdatedAt: the first write wins, a second with the same
    // revision is refused with the current one.
    let first = call(
        &app,
        &write,
        "blocks_update",
        json!({"id": bid, "title": "Notes 2", "expectedUpdatedAt": block["updatedAt"]}),
    )
    .await;
    assert_eq!(first["result"]["isError"], false, "{first}");
    let stale = call(
        &app,
        &write,
        "blocks_update",
        json!({"id": bid, "title": "Lost", "expectedUpdatedAt": block["updatedAt"]}),
    )
    .await;
    assert_eq!(stale["result"]["isError"], true, "{stale}");
    assert_eq!(stale["result"]["structuredContent"]["status"], 409);
    assert_eq!(
        stale["result"]["structuredContent"]["error"]["reason"],
        "stale_revision"
    );

    let canvas = call(&app, &read, "canvas_get", json!({"id": "launch"})).await;
    let canvas = &canvas["result"]["structuredContent"];
    assert_eq!(canvas["blocks"][0]["title"], "Notes 2", "{canvas}");
    let blocks = call(&app, &read, "blocks_list", json!({"projectId": "launch"})).await;
    assert_eq!(
        blocks["result"]["structuredContent"]["items"][0]["data"]["markdown"], "hello",
        "{blocks}"
    );
    let list = call(&app, &read, "projects_list", json!({"q": "laun"})).await;
    assert_eq!(
        list["result"]["structuredContent"]["items"][0]["id"],
        pid.as_str()
    );
    let got = call(&app, &read, "project_get", json!({"id": pid})).await;
    assert_eq!(got["result"]["structuredContent"]["name"], "Launch");
    let refused = call(&app, &read, "blocks_list", json!({"projectId": ".."})).await;
    assert_eq!(refused["result"]["isError"], true, "{refused}");
}
