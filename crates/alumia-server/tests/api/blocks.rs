//! Blocks and the project canvas (spec 06 §2): CRUD, validation, tenancy,
//! the compare-and-set race, atomic positions, grid placement, the canvas
//! with derived edges, arrange, the delete cascade, and the agent tools
//! with restore-last-run driven through `dev/echo`.

use alumia_core::model::Role;
use alumia_testkit::TestApp;
use serde_json::{Value, json};

use crate::chat::{chat, get, parse_sse, post};
use crate::{add_user, app_with_owner, assert_error, read};

pub(crate) async fn patch(app: &TestApp, key: &str, path: &str, body: Value) -> (u16, Value) {
    read(
        app.http
            .patch(app.at(path))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

pub(crate) async fn delete(app: &TestApp, key: &str, path: &str) -> (u16, Value) {
    read(
        app.http
            .delete(app.at(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap(),
    )
    .await
}

pub(crate) async fn project(app: &TestApp, key: &str, name: &str) -> String {
    let (status, body) = post(app, key, "/api/v1/projects", json!({"name": name})).await;
    assert_eq!(status, 201, "{body}");
    body["data"]["id"].as_str().unwrap().to_string()
}

/// Creates a block in `project`; panics unless 201.
pub(crate) async fn block(app: &TestApp, key: &str, project: &str, body: Value) -> Value {
    let (status, body) = post(
        app,
        key,
        &format!("/api/v1/projects/{project}/blocks"),
        body,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["data"].clone()
}

fn doc(title: &str) -> Value {
    json!({"type": "document", "title": title, "data": {"content": title}})
}

fn ids(items: &Value) -> Vec<String> {
    items
        .as_array()
        .unwrap_or_else(|| panic!("an array: {items}"))
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn blocks_create_read_update_and_soft_delete() {
    let (app, _, key) = app_with_owner().await;
    let pid = project(&app, &key, "Board").await;
    let b = block(
        &app,
        &key,
        &pid,
        json!({"type": "data", "title": "MRR",
               "data": {"type": "metric", "label": "MRR", "value": 1200, "unit": "€"},
               "position": {"x": 50, "y": 13, "width": 100, "height": 200}}),
    )
    .await;
    assert_eq!(b["type"], "data");
    assert_eq!(b["projectId"], pid.as_str());
    assert_eq!(
        b["position"],
        json!({"x": 48, "y": 24, "width": 96, "height": 192}),
        "positions snap to the 24 px grid"
    );
    assert_eq!(b["createdBy"]["kind"], "user");
    assert_eq!(b["createdAt"], b["updatedAt"]);
    let id = b["id"].as_str().unwrap();
    let path = format!("/api/v1/blocks/{id}");
    let (status, read_back) = get(&app, &key, &path).await;
    assert_eq!(status, 200);
    assert_eq!(read_back["data"], b);

    // A partial PATCH keeps the rest and moves the revision.
    let (status, body) = patch(&app, &key, &path, json!({"title": "Revenue"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["title"], "Revenue");
    assert_eq!(body["data"]["data"], b["data"]);
    assert!(
        body["data"]["updatedAt"].as_str() > b["updatedAt"].as_str(),
        "updatedAt strictly increases"
    );
    let (status, body) = patch(&app, &key, &path, json!({"position": {"x": 0, "y": 0}})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["position"],
        json!({"x": 0, "y": 0, "width": 96, "height": 192}),
        "sizes left out are kept"
    );
    // A block never changes project.
    let other = project(&app, &key, "Other").await;
    let (status, body) = patch(&app, &key, &path, json!({"projectId": other})).await;
    assert_error(status, &body, 422, "VALIDATION_ERROR", "immutable_field");
    let (_, body) = get(&app, &key, &path).await;
    assert_eq!(body["data"]["projectId"], pid.as_str());

    // The org context: no project.
    let (status, body) = post(&app, &key, "/api/v1/blocks", doc("loose")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["projectId"], Value::Null);
    let (status, body) = post(
        &app,
        &key,
        "/api/v1/blocks",
        json!({"projectId": pid, "type": "code", "data": {"code": "x"}}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["projectId"], pid.as_str());

    let (status, body) = delete(&app, &key, &path).await;
    assert_eq!(status, 200, "{body}");
    for (status, body) in [
        get(&app, &key, &path).await,
        delete(&app, &key, &path).await,
    ] {
        assert_error(status, &body, 404, "NOT_FOUND", "not_found");
    }
    let (_, list) = get(&app, &key, &format!("/api/v1/projects/{pid}/blocks")).await;
    assert_eq!(
        list["data"]["items"].as_array().unwrap().len(),
        1,
        "deleted blocks are not listed"
    );
}

#[tokio::test]
async fn block_validation_refuses_bad_types_shapes_sizes_and_titles() {
    let (app, _, key) = app_with_owner().await;
    let pid = project(&app, &key, "Checks").await;
    let path = format!("/api/v1/projects/{pid}/blocks");
    let cases = [
        (
            json!({"type": "data", "data": {"type": "pie-chart"}}),
            "unknown_dataspec_type",
        ),
        (
            json!({"type": "data", "data": {"markdown": "no type"}}),
            "unknown_dataspec_type",
        ),
        (
            json!({"type": "data", "data": {"type": "markdown"}}),
            "invalid_block_data",
        ),
        (
            json!({"type": "data", "data": {"type": "metric", "value": 3}}),
            "invalid_block_data",
        ),
        (
            json!({"type": "data", "data": {"type": "table", "columns": [{"key": "a"}], "rows": []}}),
            "invalid_block_data",
        ),
        (
            json!({"type": "data", "data": {"type": "chart", "kind": "radar", "series": []}}),
            "invalid_block_data",
        ),
        (
            json!({"type": "data", "data": {"type": "chart", "kind": "bar", "series": [{"name": "s", "points": [{"x": 1}]}]}}),
            "invalid_block_data",
        ),
        (
            json!({"type": "map", "data": {"center": {"lat": 91, "lng": 0}}}),
            "invalid_block_data",
        ),
        (
            json!({"type": "app", "data": {"files": {"a.html": "x"}, "entry": "b.html"}}),
            "invalid_block_data",
        ),
        (json!({"type": "widget", "data": {}}), "unknown_block_type"),
        (
            json!({"type": "document", "data": {"content": "x".repeat(100 * 1024)}}),
            "block_data_too_large",
        ),
    ];
    for (body, reason) in cases {
        let (status, resp) = post(&app, &key, &path, body.clone()).await;
        assert_error(status, &resp, 422, "VALIDATION_ERROR", reason);
    }
    let (status, resp) = post(
        &app,
        &key,
        &path,
        json!({"type": "document", "title": "t".repeat(256), "data": {"content": "x"}}),
    )
    .await;
    assert_eq!(status, 422, "{resp}");
    assert!(
        resp["error"]["details"]["fields"]["title"].is_string(),
        "{resp}"
    );
    let (status, resp) = post(
        &app,
        &key,
        &path,
        json!({"type": "document", "data": {"content": "x"}, "position": {"x": 5e6, "y": 0}}),
    )
    .await;
    assert_eq!(status, 422, "{resp}");
    // Nothing was stored, and the 255-character title and 4 KPI types pass.
    let (_, list) = get(&app, &key, &path).await;
    assert_eq!(list["data"]["items"], json!([]));
    block(
        &app,
        &key,
        &pid,
        json!({"type": "document", "title": "t".repeat(255), "data": {"content": "x"}}),
    )
    .await;
    for spec in [
        json!({"type": "markdown", "markdown": "# hi"}),
        json!({"type": "table", "columns": [{"key": "a", "label": "A"}], "rows": [{"a": 1}]}),
        json!({"type": "chart", "kind": "pie", "series": [{"name": "s", "points": [{"x": "a", "y": 1}]}]}),
        json!({"type": "kanban", "columns": []}),
    ] {
        block(&app, &key, &pid, json!({"type": "data", "data": spec})).await;
    }
    // A PATCH is checked against the block's type too.
    let b = block(
        &app,
        &key,
        &pid,
        json!({"type": "data", "data": {"type": "markdown", "markdown": "m"}}),
    )
    .await;
    let (status, resp) = patch(
        &app,
        &key,
        &format!("/api/v1/blocks/{}", b["id"].as_str().unwrap()),
        json!({"data": {"type": "gauge"}}),
    )
    .await;
    assert_error(
        status,
        &resp,
        422,
        "VALIDATION_ERROR",
        "unknown_dataspec_type",
    );
}

#[tokio::test]
async fn another_orgs_and_invisible_projects_blocks_and_edges_are_404() {
    let (app, _, key) = app_with_owner().await;
    let pid = project(&app, &key, "Acme board").await;
    let b = block(&app, &key, &pid, doc("secret")).await;
    let bid = b["id"].as_str().unwrap();
    let (status, body) = post(
        &app,
        &key,
        &format!("/api/v1/projects/{pid}/edges"),
        json!({"from": {"kind": "block", "id": bid}, "to": {"kind": "block", "id": bid}}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let eid = body["data"]["id"].as_str().unwrap().to_string();
    let (_, org_block) = post(&app, &key, "/api/v1/blocks", doc("org")).await;
    let org_bid = org_block["data"]["id"].as_str().unwrap().to_string();

    let eve = add_user(&app, "eve@example.com", "evil", None).await;
    let (eve_key, _) = eve.mint_key("eve", None).await;
    let bob = add_user(&app, "bob@example.com", "acme", Some(Role::Member)).await;
    let (bob_key, _) = bob.mint_key("bob", None).await;
    let (status, body) = post(
        &app,
        &key,
        "/api/v1/projects",
        json!({"name": "Mine", "visibility": "private"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let private = body["data"]["id"].as_str().unwrap().to_string();
    let hidden = block(&app, &key, &private, doc("hidden")).await;

    let cases: Vec<(&str, String, &str)> = vec![
        ("eve", format!("/api/v1/blocks/{bid}"), "block"),
        ("eve", format!("/api/v1/blocks/{org_bid}"), "org block"),
        (
            "eve",
            format!("/api/v1/projects/{pid}/blocks"),
            "project blocks",
        ),
        ("eve", format!("/api/v1/projects/{pid}/canvas"), "canvas"),
        (
            "bob",
            format!("/api/v1/blocks/{}", hidden["id"].as_str().unwrap()),
            "private block",
        ),
        (
            "bob",
            format!("/api/v1/projects/{private}/blocks"),
            "private blocks",
        ),
        (
            "bob",
            format!("/api/v1/projects/{private}/canvas"),
            "private canvas",
        ),
    ];
    for (who, path, what) in &cases {
        let k = if *who == "eve" { &eve_key } else { &bob_key };
        let (status, body) = get(&app, k, path).await;
        assert_eq!(status, 404, "{who} reads {what}: {body}");
    }
    for (k, path) in [
        (&eve_key, format!("/api/v1/blocks/{bid}")),
        (
            &bob_key,
            format!("/api/v1/blocks/{}", hidden["id"].as_str().unwrap()),
        ),
    ] {
        let (status, _) = patch(&app, k, &path, json!({"title": "pwned"})).await;
        assert_eq!(status, 404);
        let (status, _) = delete(&app, k, &path).await;
        assert_eq!(status, 404);
    }
    let (status, _) = delete(
        &app,
        &eve_key,
        &format!("/api/v1/projects/{pid}/edges/{eid}"),
    )
    .await;
    assert_eq!(status, 404, "another org's edge");
    let (status, _) = post(
        &app,
        &eve_key,
        &format!("/api/v1/projects/{pid}/blocks"),
        doc("x"),
    )
    .await;
    assert_eq!(status, 404, "no block into another org's project");
    let (status, body) = post(
        &app,
        &eve_key,
        "/api/v1/blocks",
        json!({"projectId": pid, "type": "document", "data": {"content": "x"}}),
    )
    .await;
    assert_error(status, &body, 400, "BAD_REQUEST", "invalid_reference");
    let (status, _) = patch(
        &app,
        &eve_key,
        &format!("/api/v1/projects/{pid}/blocks/positions"),
        json!({"positions": [{"id": bid, "x": 0, "y": 0}]}),
    )
    .await;
    assert_eq!(status, 404);
    // Eve's own canvas does not show Acme's block, and nothing changed.
    let (_, body) = get(&app, &key, &format!("/api/v1/blocks/{bid}")).await;
    assert_eq!(body["data"]["title"], "secret");
    let (_, canvas) = get(&app, &key, &format!("/api/v1/projects/{pid}/canvas")).await;
    assert_eq!(
        canvas["data"]["edges"].as_array().unwrap().len(),
        1,
        "the edge survived"
    );
    // Bob sees the team project.
    let (status, _) = get(&app, &bob_key, &format!("/api/v1/blocks/{bid}")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn concurrent_patches_with_one_revision_give_one_200_and_one_409() {
    let (app, _, key) = app_with_owner().await;
    let pid = project(&app, &key, "Race").await;
    let b = block(&app, &key, &pid, doc("v0")).await;
    let path = format!("/api/v1/blocks/{}", b["id"].as_str().unwrap());
    let mut revision = b["updatedAt"].as_str().unwrap().to_string();
    for round in 0..4 {
        let send = |title: String| {
            let body = json!({"title": title, "expectedUpdatedAt": revision});
            let (app, key, path) = (&app, &key, &path);
            async move { patch(app, key, path, body).await }
        };
        let (a, b2) = tokio::join!(send(format!("a{round}")), send(format!("b{round}")));
        let mut statuses = [a.0, b2.0];
        statuses.sort();
        assert_eq!(
            statuses,
            [200, 409],
            "exactly one writer wins: {a:?} {b2:?}"
        );
        let (winner, loser) = if a.0 == 200 { (a, b2) } else { (b2, a) };
        assert_error(loser.0, &loser.1, 409, "CONFLICT", "stale_revision");
        assert_eq!(
            loser.1["error"]["details"]["currentUpdatedAt"], winner.1["data"]["updatedAt"],
            "the 409 carries the current revision"
        );
        let (_, now) = get(&app, &key, &path).await;
        assert_eq!(
            now["data"]["title"], winner.1["data"]["title"],
            "the loser changed nothing"
        );
        revision = winner.1["data"]["updatedAt"].as_str().unwrap().to_string();
    }
    // Millisecond integers work as the revision too; a stale one is refused.
    let (status, body) = patch(
        &app,
        &key,
        &path,
        json!({"title": "late", "expectedUpdatedAt": 0}),
    )
    .await;
    assert_error(status, &body, 409, "CONFLICT", "stale_revision");
    let (status, body) = patch(
        &app,
        &key,
        &path,
        json!({"title": "x", "expectedUpdatedAt": "yesterday"}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    // Without a revision the last write wins.
    let (status, body) = patch(&app, &key, &path, json!({"title": "blind"})).await;
    assert_eq!(
        (status, body["data"]["title"].as_str()),
        (200, Some("blind"))
    );
}

#[tokio::test]
async fn positions_move_blocks_and_sessions_atomically() {
    let (app, _, key) = app_with_owner().await;
    let pid = project(&app, &key, "Moves").await;
    let other = project(&app, &key, "Elsewhere").await;
    let a = block(&app, &key, &pid, doc("a")).await;
    let b = block(&app, &key, &pid, doc("b")).await;
    let foreign = block(&app, &key, &other, doc("f")).await;
    let (status, s) = post(&app, &key, "/api/v1/sessions", json!({"projectId": pid})).await;
    assert_eq!(status, 201, "{s}");
    let sid = s["data"]["id"].as_str().unwrap();
    let path = format!("/api/v1/projects/{pid}/blocks/positions");
    let fid = foreign["id"].as_str().unwrap();
    let (status, body) = patch(
        &app,
        &key,
        &path,
        json!({"positions": [
            {"id": a["id"], "x": 480, "y": 480},
            {"id": sid, "kind": "session", "x": 24, "y": 24},
            {"id": fid, "x": 0, "y": 0},
        ]}),
    )
    .await;
    assert_error(status, &body, 400, "BAD_REQUEST", "invalid_reference");
    assert_eq!(
        body["error"]["details"]["ids"],
        json!([fid]),
        "the block of another project is named"
    );
    let (_, canvas) = get(&app, &key, &format!("/api/v1/projects/{pid}/canvas")).await;
    let moved = canvas["data"]["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == a["id"])
        .unwrap()
        .clone();
    assert_eq!(moved["position"], a["position"], "nothing moved");
    assert_ne!(
        canvas["data"]["agentNodes"][0]["position"]["x"], 24,
        "the session did not move either"
    );
    // A session id sent as a block is refused too; bad values are 422.
    let (status, body) = patch(
        &app,
        &key,
        &path,
        json!({"positions": [{"id": sid, "x": 0, "y": 0}]}),
    )
    .await;
    assert_error(status, &body, 400, "BAD_REQUEST", "invalid_reference");
    for bad in [
        json!({"positions": []}),
        json!({"positions": [{"id": a["id"], "x": 0, "y": 0, "kind": "edge"}]}),
    ] {
        let (status, body) = patch(&app, &key, &path, bad).await;
        assert_eq!(status, 422, "{body}");
    }
    let many: Vec<Value> = (0..501)
        .map(|_| json!({"id": a["id"], "x": 0, "y": 0}))
        .collect();
    let (status, _) = patch(&app, &key, &path, json!({"positions": many})).await;
    assert_eq!(status, 422, "at most 500 items");

    let (status, body) = patch(
        &app,
        &key,
        &path,
        json!({"positions": [
            {"id": a["id"], "x": 481, "y": 470, "width": 240},
            {"id": b["id"], "kind": "block", "x": 0, "y": 960},
            {"id": sid, "kind": "session", "x": -290, "y": 24},
        ]}),
    )
    .await;
    assert_eq!(
        (status, &body["data"]["updated"]),
        (200, &json!(3)),
        "{body}"
    );
    let (_, canvas) = get(&app, &key, &format!("/api/v1/projects/{pid}/canvas")).await;
    let pos = |id: &Value| {
        canvas["data"]["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| &x["id"] == id)
            .unwrap()["position"]
            .clone()
    };
    assert_eq!(
        pos(&a["id"]),
        json!({"x": 480, "y": 480, "width": 240, "height": 192})
    );
    assert_eq!(pos(&b["id"])["y"], 960);
    assert_eq!(
        canvas["data"]["agentNodes"][0]["position"]["x"], -288,
        "session positions are stored, on the grid"
    );
}

#[tokio::test]
async fn blocks_without_a_position_take_the_next_free_grid_slot() {
    let (app, _, key) = app_with_owner().await;
    let pid = project(&app, &key, "Slots").await;
    let mut seen = Vec::new();
    for i in 0..5 {
        let b = block(&app, &key, &pid, doc(&format!("b{i}"))).await;
        seen.push((
            b["position"]["x"].as_i64().unwrap(),
            b["position"]["y"].as_i64().unwrap(),
        ));
    }
    assert_eq!(
        seen,
        [(0, 0), (312, 0), (624, 0), (936, 0), (0, 216)],
        "row by row, four to a row"
    );
    // Free the second slot: the next block fills it.
    let (_, list) = get(&app, &key, &format!("/api/v1/projects/{pid}/blocks")).await;
    let second = list["data"]["items"][1]["id"].as_str().unwrap().to_string();
    delete(&app, &key, &format!("/api/v1/blocks/{second}")).await;
    let b = block(&app, &key, &pid, doc("again")).await;
    assert_eq!(
        (b["position"]["x"].as_i64(), b["position"]["y"].as_i64()),
        (Some(312), Some(0))
    );
    // Org-context blocks have their own canvas.
    let (_, org) = post(&app, &key, "/api/v1/blocks", doc("org")).await;
    assert_eq!(
        org["data"]["position"],
        json!({"x": 0, "y": 0, "width": 288, "height": 192})
    );
}

#[tokio::test]
async fn block_lists_page_in_creation_order_and_filter_by_type() {
    let (app, _, key) = app_with_owner().await;
    let pid = project(&app, &key, "Pages").await;
    let mut want = Vec::new();
    for i in 0..7 {
        let body = if i % 3 == 0 {
            json!({"type": "code", "data": {"code": "x"}})
        } else {
            doc(&format!("d{i}"))
        };
        want.push(
            block(&app, &key, &pid, body).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let base = format!("/api/v1/projects/{pid}/blocks");
    let (_, all) = get(&app, &key, &base).await;
    assert_eq!(
        ids(&all["data"]["items"]),
        want,
        "createdAt asc, everything without limit"
    );
    assert_eq!(all["data"]["hasMore"], false);
    let mut got = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = get(&app, &key, &format!("{base}?limit=3&cursor={cursor}")).await;
        assert_eq!(status, 200, "{page}");
        got.extend(ids(&page["data"]["items"]));
        match page["data"]["nextCursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    assert_eq!(got, want, "cursor pages cover the list once");
    let (_, code) = get(&app, &key, &format!("{base}?type=code")).await;
    assert_eq!(
        ids(&code["data"]["items"]),
        [want[0].clone(), want[3].clone(), want[6].clone()]
    );
    for bad in ["limit=0", "limit=501", "limit=x"] {
        let (status, body) = get(&app, &key, &format!("{base}?{bad}")).await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
    let (status, body) = get(&app, &key, &format!("{base}?limit=2&cursor=garbage")).await;
    assert_error(status, &body, 400, "BAD_REQUEST", "invalid_cursor");
}

#[tokio::test]
async fn edges_join_live_nodes_of_the_project_and_are_hard_deleted() {
    let (app, _, key) = app_with_owner().await;
    let pid = project(&app, &key, "Edges").await;
    let other = project(&app, &key, "Other").await;
    let a = block(&app, &key, &pid, doc("a")).await;
    let b = block(&app, &key, &pid, doc("b")).await;
    let f = block(&app, &key, &other, doc("f")).await;
    let path = format!("/api/v1/projects/{pid}/edges");
    let (status, e) = post(&app, &key, &path, json!({"from": {"kind": "block", "id": a["id"]}, "to": {"kind": "block", "id": b["id"]}, "label": "feeds"})).await;
    assert_eq!(status, 201, "{e}");
    assert_eq!(e["data"]["label"], "feeds");
    let (status, body) = post(
        &app,
        &key,
        &path,
        json!({"from": {"kind": "block", "id": a["id"]}, "to": {"kind": "block", "id": f["id"]}}),
    )
    .await;
    assert_error(status, &body, 400, "BAD_REQUEST", "invalid_reference");
    assert_eq!(body["error"]["details"]["ids"], json!([f["id"]]));
    let (status, _) = post(
        &app,
        &key,
        &path,
        json!({"from": {"kind": "file", "id": a["id"]}, "to": {"kind": "block", "id": b["id"]}}),
    )
    .await;
    assert_eq!(status, 422);
    let eid = e["data"]["id"].as_str().unwrap();
    let (status, _) = delete(&app, &key, &format!("/api/v1/projects/{other}/edges/{eid}")).await;
    assert_eq!(
        status, 404,
        "an edge is deleted through its own project only"
    );
    let (status, _) = delete(&app, &key, &format!("{path}/{eid}")).await;
    assert_eq!(status, 200);
    let (status, _) = delete(&app, &key, &format!("{path}/{eid}")).await;
    assert_eq!(status, 404, "hard delete: gone");
    let (_, canvas) = get(&app, &key, &format!("/api/v1/projects/{pid}/canvas")).await;
    assert_eq!(canvas["data"]["edges"], json!([]));
}

#[tokio::test]
async fn arrange_grid_is_deterministic_and_dry_run_changes_nothing() {
    let (app, _, key) = app_with_owner().await;
    let pid = project(&app, &key, "Arrange").await;
    let mut blocks = Vec::new();
    for (i, (x, y)) in [(960, 960), (48, 2400), (0, 0), (4800, 24), (240, 240)]
        .iter()
        .enumerate()
    {
        blocks.push(
            block(
                &app,
                &key,
                &pid,
                json!({"type": "document", "data": {"content": i.to_string()},
            "position": {"x": x, "y": y, "width": 96 + 24 * i as i64, "height": 96}}),
            )
            .await,
        );
    }
    let body = json!({"projectId": pid, "dryRun": true});
    let (status, dry) = post(&app, &key, "/api/v1/blocks/arrange", body.clone()).await;
    assert_eq!(status, 200, "{dry}");
    let (_, again) = post(&app, &key, "/api/v1/blocks/arrange", body).await;
    assert_eq!(
        dry["data"]["positions"], again["data"]["positions"],
        "grid is deterministic"
    );
    let positions = dry["data"]["positions"].as_array().unwrap();
    let xy: Vec<(i64, i64)> = positions
        .iter()
        .map(|p| (p["x"].as_i64().unwrap(), p["y"].as_i64().unwrap()))
        .collect();
    assert_eq!(xy, [(0, 0), (216, 0), (432, 0), (648, 0), (0, 120)]);
    assert_eq!(
        ids(&dry["data"]["positions"]),
        blocks
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    );
    let (_, list) = get(&app, &key, &format!("/api/v1/projects/{pid}/blocks")).await;
    assert_eq!(
        list["data"]["items"][0]["position"]["x"], 960,
        "a dry run moves nothing"
    );

    let (status, applied) = post(
        &app,
        &key,
        "/api/v1/blocks/arrange",
        json!({"projectId": pid, "strategy": "grid"}),
    )
    .await;
    assert_eq!(status, 200, "{applied}");
    assert_eq!(applied["data"]["positions"], dry["data"]["positions"]);
    let (_, list) = get(&app, &key, &format!("/api/v1/projects/{pid}/blocks")).await;
    let stored: Vec<(i64, i64)> = list["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["position"]["x"].as_i64().unwrap(),
                b["position"]["y"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(stored, xy, "the arrangement is applied");

    // A subset; an id outside the project is refused.
    let (status, sub) = post(
        &app,
        &key,
        "/api/v1/blocks/arrange",
        json!({"projectId": pid, "blockIds": [blocks[4]["id"], blocks[1]["id"]], "dryRun": true}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        ids(&sub["data"]["positions"]),
        [
            blocks[1]["id"].as_str().unwrap(),
            blocks[4]["id"].as_str().unwrap()
        ]
    );
    let stray = block(&app, &key, &project(&app, &key, "Stray").await, doc("s")).await;
    let (status, body) = post(
        &app,
        &key,
        "/api/v1/blocks/arrange",
        json!({"projectId": pid, "blockIds": [stray["id"]]}),
    )
    .await;
    assert_error(status, &body, 400, "BAD_REQUEST", "invalid_reference");
    let (status, _) = post(
        &app,
        &key,
        "/api/v1/blocks/arrange",
        json!({"projectId": pid, "strategy": "spiral"}),
    )
    .await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn arrange_ai_refuses_a_reply_that_is_not_a_layout() {
    let (app, _, key) = app_with_owner().await;
    let pid = project(&app, &key, "AI").await;
    let b = block(&app, &key, &pid, doc("a")).await;
    let (status, body) = post(
        &app,
        &key,
        "/api/v1/blocks/arrange",
        json!({"projectId": pid, "strategy": "ai"}),
    )
    .await;
    assert_error(status, &body, 400, "BAD_REQUEST", "invalid_layout");
    let (_, after) = get(
        &app,
        &key,
        &format!("/api/v1/blocks/{}", b["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(after["data"]["updatedAt"], b["updatedAt"], "nothing moved");
}

#[tokio::test]
async fn deleting_a_project_takes_its_blocks_and_edges() {
    let (app, _, key) = app_with_owner().await;
    let pid = project(&app, &key, "Doomed").await;
    let keep = project(&app, &key, "Kept").await;
    let a = block(&app, &key, &pid, doc("a")).await;
    let k = block(&app, &key, &keep, doc("k")).await;
    let (status, _) = post(
        &app,
        &key,
        &format!("/api/v1/projects/{pid}/edges"),
        json!({"from": {"kind": "block", "id": a["id"]}, "to": {"kind": "block", "id": a["id"]}}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = delete(&app, &key, &format!("/api/v1/projects/{pid}")).await;
    assert_eq!(status, 200);
    let (status, _) = get(
        &app,
        &key,
        &format!("/api/v1/blocks/{}", a["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, 404, "its blocks are deleted");
    let (status, _) = get(&app, &key, &format!("/api/v1/projects/{pid}/canvas")).await;
    assert_eq!(status, 404);
    let (status, _) = get(
        &app,
        &key,
        &format!("/api/v1/blocks/{}", k["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, 200, "other projects keep theirs");
}

/// Runs a chat turn in `project` with `agent` to its end.
async fn turn(
    app: &TestApp,
    key: &str,
    agent: &str,
    project: &str,
    text: &str,
) -> (String, Vec<(String, Value)>) {
    let res = chat(
        app,
        key,
        json!({"agentId": agent, "projectId": project,
        "messages": [{"role": "user", "content": text}]}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let sid = res.headers()["x-alumia-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    (sid, parse_sse(&res.text().await.unwrap()))
}

fn tool_outputs(chunks: &[(String, Value)]) -> Vec<Result<Value, String>> {
    chunks
        .iter()
        .filter_map(|(_, c)| match c["type"].as_str() {
            Some("tool-output-available") => Some(Ok(c["output"].clone())),
            Some("tool-output-error") => {
                Some(Err(c["errorText"].as_str().unwrap_or_default().to_string()))
            }
            _ => None,
        })
        .collect()
}

/// An agent allowed the canvas tools (tool lists need a browser step-up).
async fn canvas_agent(owner: &alumia_testkit::Browser) -> String {
    let (status, body) = read(
        owner
            .post(
                "/api/v1/agents",
                json!({"name": "Painter",
        "allowedTools": ["data_block", "show", "list_blocks", "search_blocks", "message_agent"],
        "allowedPeers": ["*"]}),
            )
            .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["data"]["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn agent_tools_write_blocks_and_the_canvas_derives_edges() {
    let (app, owner, key) = app_with_owner().await;
    let pid = project(&app, &key, "Agents").await;
    let painter = canvas_agent(&owner).await;
    let (sid, chunks) = turn(&app, &key, &painter, &pid, "/tool data_block {\"title\": \"KPIs\", \"spec\": {\"type\": \"metric\", \"label\": \"MRR\", \"value\": 5}}\n/tool show {\"primitive\": \"code\", \"title\": \"snippet\", \"data\": {\"code\": \"fn main() {}\"}}\n/tool data_block {\"title\": \"bad\", \"spec\": {\"type\": \"gauge\"}}").await;
    let outs = tool_outputs(&chunks);
    assert_eq!(outs.len(), 3, "{chunks:?}");
    let kpi = outs[0].clone().expect("data_block creates");
    assert!(outs[1].is_ok(), "{:?}", outs[1]);
    assert!(
        outs[2].as_ref().unwrap_err().contains("data.type"),
        "a bad DataSpec is the model's error: {:?}",
        outs[2]
    );
    let kid = kpi["block"]["id"].as_str().unwrap().to_string();
    let (_, b) = get(&app, &key, &format!("/api/v1/blocks/{kid}")).await;
    assert_eq!(b["data"]["projectId"], pid.as_str());
    assert_eq!(b["data"]["createdBy"]["kind"], "agent");
    assert_eq!(b["data"]["createdBy"]["id"], painter.as_str());
    assert_eq!(b["data"]["createdBy"]["sessionId"], sid.as_str());
    assert!(b["data"]["createdBy"]["turnId"].is_string());

    // Update by id, list and search.
    let (_, chunks) = turn(&app, &key, &painter, &pid, &format!("/tool data_block {{\"blockId\": \"{kid}\", \"title\": \"KPIs v2\", \"spec\": {{\"type\": \"markdown\", \"markdown\": \"up\"}}}}\n/tool list_blocks\n/tool search_blocks {{\"query\": \"FN MAIN\"}}")).await;
    let outs = tool_outputs(&chunks);
    assert_eq!(outs[0].as_ref().unwrap()["created"], false, "{outs:?}");
    assert_eq!(
        outs[1].as_ref().unwrap()["blocks"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let hits = outs[2].as_ref().unwrap()["blocks"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        (hits.len(), hits[0]["title"].as_str()),
        (1, Some("snippet"))
    );

    // A peer message from this session's agent to Ala, in the project.
    let (_, chunks) = turn(
        &app,
        &key,
        &painter,
        &pid,
        "/tool message_agent {\"agent\": \"ala\", \"message\": \"look\"}",
    )
    .await;
    assert!(tool_outputs(&chunks)[0].is_ok(), "{chunks:?}");
    let (status, canvas) =
        crate::chat_lifecycle::eventually("the peer's session on the canvas", || async {
            let (status, canvas) = get(&app, &key, &format!("/api/v1/projects/{pid}/canvas")).await;
            let has_peer = canvas["data"]["agentNodes"]
                .as_array()
                .is_some_and(|a| a.iter().any(|n| n["agentId"] != painter.as_str()));
            has_peer.then_some((status, canvas))
        })
        .await;
    assert_eq!(status, 200);
    let c = &canvas["data"];
    assert_eq!(c["project"]["id"], pid.as_str());
    assert_eq!(c["blocks"].as_array().unwrap().len(), 2);
    let nodes = c["agentNodes"].as_array().unwrap();
    let painter_node = nodes
        .iter()
        .find(|n| n["sessionId"] == sid.as_str())
        .expect("the painter's session is a node");
    assert_eq!(painter_node["agentName"], "Painter");
    let peer = nodes
        .iter()
        .find(|n| n["agentId"] != painter.as_str())
        .unwrap();
    assert_eq!(peer["agentName"], "Ala", "{peer}");
    let edges = c["edges"].as_array().unwrap();
    let derived: Vec<(&str, &str, &str)> = edges
        .iter()
        .map(|e| {
            (
                e["derived"].as_str().unwrap_or("stored"),
                e["from"]["id"].as_str().unwrap(),
                e["to"]["id"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        derived.contains(&("created_by", kid.as_str(), sid.as_str())),
        "block → its session: {derived:?}"
    );
    assert!(
        derived.contains(&(
            "peer_message",
            sid.as_str(),
            peer["sessionId"].as_str().unwrap()
        )),
        "session → peer session: {derived:?}"
    );
    assert!(
        edges.iter().all(|e| e["id"].is_null()),
        "derived edges have no id to delete"
    );
}

#[tokio::test]
async fn restore_last_run_undoes_what_the_failed_turn_wrote() {
    let (app, owner, key) = app_with_owner().await;
    let pid = project(&app, &key, "Restore").await;
    let path = format!("/api/v1/projects/{pid}/restore-last-run");
    let (status, body) = post(&app, &key, &path, json!({})).await;
    assert_error(status, &body, 404, "NOT_FOUND", "no_failed_run");
    let painter = canvas_agent(&owner).await;
    let user_block = block(
        &app,
        &key,
        &pid,
        json!({"type": "data", "title": "Mine", "data": {"type": "markdown", "markdown": "v1"}}),
    )
    .await;
    let ub = user_block["id"].as_str().unwrap();

    // A good turn writes one block; it is not undone.
    let (_, chunks) = turn(&app, &key, &painter, &pid, "/tool show {\"primitive\": \"document\", \"title\": \"good\", \"data\": {\"content\": \"ok\"}}").await;
    let good = tool_outputs(&chunks)[0].clone().unwrap()["block"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // A failing turn creates one block and rewrites the user's, then errors.
    let (_, chunks) = turn(&app, &key, &painter, &pid, &format!("/tool show {{\"primitive\": \"document\", \"title\": \"junk\", \"data\": {{\"content\": \"x\"}}}}\n/tool data_block {{\"blockId\": \"{ub}\", \"title\": \"Broken\", \"spec\": {{\"type\": \"markdown\", \"markdown\": \"v2\"}}}}\n/error-after-tools boom")).await;
    let outs = tool_outputs(&chunks);
    let junk = outs[0].clone().unwrap()["block"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(outs[1].is_ok(), "{outs:?}");
    assert!(
        chunks.iter().any(|(_, c)| c["type"] == "error"),
        "the turn failed: {chunks:?}"
    );
    let (_, broken) = get(&app, &key, &format!("/api/v1/blocks/{ub}")).await;
    assert_eq!(broken["data"]["title"], "Broken");

    let (status, body) = post(&app, &key, &path, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["restored"], json!([ub]));
    assert_eq!(body["data"]["deleted"], json!([junk]));
    assert!(body["data"]["turnId"].is_string());
    let (_, back) = get(&app, &key, &format!("/api/v1/blocks/{ub}")).await;
    assert_eq!(
        (back["data"]["title"].as_str(), &back["data"]["data"]),
        (Some("Mine"), &user_block["data"]),
        "restored to before the turn"
    );
    let (status, _) = get(&app, &key, &format!("/api/v1/blocks/{junk}")).await;
    assert_eq!(status, 404, "the failed turn's block is deleted");
    let (status, _) = get(&app, &key, &format!("/api/v1/blocks/{good}")).await;
    assert_eq!(status, 200, "the good turn's block stays");

    // A second call finds the same turn with nothing left to undo.
    let (status, again) = post(&app, &key, &path, json!({})).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["data"]["turnId"], body["data"]["turnId"]);
    assert_eq!(
        (&again["data"]["restored"], &again["data"]["deleted"]),
        (&json!([]), &json!([]))
    );

    // Another org cannot restore it.
    let eve = add_user(&app, "eve@example.com", "evil", None).await;
    let (eve_key, _) = eve.mint_key("eve", None).await;
    let (status, _) = post(&app, &eve_key, &path, json!({})).await;
    assert_eq!(status, 404);
}
