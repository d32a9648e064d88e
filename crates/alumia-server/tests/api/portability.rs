//! Duplicate, export and restore a project (spec 06 §4).

use alumia_testkit::TestApp;
use serde_json::{Value, json};

use crate::chat::{get, post};
use crate::{add_user, app_with_owner, assert_error, read};

async fn project(app: &TestApp, key: &str, name: &str) -> String {
    let (status, body) = post(app, key, "/api/v1/projects", json!({"name": name})).await;
    assert_eq!(status, 201, "{body}");
    body["data"]["id"].as_str().unwrap().to_string()
}

async fn block(app: &TestApp, key: &str, pid: &str, title: &str, markdown: &str) -> Value {
    let (status, body) = post(
        app,
        key,
        &format!("/api/v1/projects/{pid}/blocks"),
        json!({"type": "data", "title": title, "data": {"type": "markdown", "markdown": markdown}}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["data"].clone()
}

async fn edge(app: &TestApp, key: &str, pid: &str, from: &Value, to: &Value) {
    let (status, body) = post(
        app,
        key,
        &format!("/api/v1/projects/{pid}/edges"),
        json!({"from": {"kind": "block", "id": from["id"]}, "to": {"kind": "block", "id": to["id"]}, "label": "next"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

async fn export(app: &TestApp, key: &str, pid: &str) -> Value {
    let (status, body) = get(app, key, &format!("/api/v1/projects/{pid}/export")).await;
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

async fn restore(app: &TestApp, key: &str, pid: &str, body: Value) -> (u16, Value) {
    post(app, key, &format!("/api/v1/projects/{pid}/restore"), body).await
}

/// `(title, markdown)` of the project's live blocks, sorted.
async fn canvas_titles(app: &TestApp, key: &str, pid: &str) -> Vec<(String, String)> {
    let (status, body) = get(app, key, &format!("/api/v1/projects/{pid}/blocks")).await;
    assert_eq!(status, 200, "{body}");
    let mut out: Vec<(String, String)> = body["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["title"].as_str().unwrap().to_string(),
                b["data"]["markdown"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

async fn stored_edges(app: &TestApp, key: &str, pid: &str) -> Vec<Value> {
    let (_, canvas) = get(app, key, &format!("/api/v1/projects/{pid}/canvas")).await;
    canvas["data"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["derived"].is_null())
        .cloned()
        .collect()
}

#[tokio::test]
async fn export_is_a_checksummed_manifest_of_the_project_its_blocks_and_edges() {
    let (app, _, key) = app_with_owner().await;
    let pid = project(&app, &key, "Launch").await;
    let a = block(&app, &key, &pid, "A", "alpha").await;
    let b = block(&app, &key, &pid, "B", "beta").await;
    edge(&app, &key, &pid, &a, &b).await;

    let m = export(&app, &key, &pid).await;
    assert_eq!(m["format"], "alumia.project-export");
    assert_eq!(m["version"], 1);
    assert_eq!(m["project"]["name"], "Launch");
    assert_eq!(m["blocks"].as_array().unwrap().len(), 2);
    assert_eq!(m["edges"][0]["from"]["id"], a["id"]);
    assert!(m["files"].is_array());
    let read_back = alumia_core::portability::read(&m).expect("reads");
    assert!(read_back.checksum_valid, "{m}");
    // The checksum is SHA-256 of the canonical JSON without it.
    let mut body = m.clone();
    body.as_object_mut().unwrap().remove("checksum");
    let canonical = alumia_core::portability::canonical_json(&body);
    assert_eq!(
        m["checksum"],
        alumia_core::crypto::sha256_hex(canonical.as_bytes())
    );

    let eve = add_user(&app, "eve@example.com", "evil", None).await;
    let (eve_key, _) = eve.mint_key("eve", None).await;
    let (status, body) = get(&app, &eve_key, &format!("/api/v1/projects/{pid}/export")).await;
    assert_error(status, &body, 404, "NOT_FOUND", "not_found");
}

#[tokio::test]
async fn duplicate_copies_blocks_with_new_ids_and_remapped_edges() {
    let (app, _, key) = app_with_owner().await;
    let pid = project(&app, &key, "Launch").await;
    let a = block(&app, &key, &pid, "A", "alpha").await;
    let b = block(&app, &key, &pid, "B", "beta").await;
    edge(&app, &key, &pid, &a, &b).await;

    let (status, body) = post(
        &app,
        &key,
        &format!("/api/v1/projects/{pid}/duplicate"),
        json!({}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let copy = body["data"].clone();
    assert_eq!(copy["name"], "Launch (copy)");
    assert_eq!(copy["slug"], "launch-copy");
    assert_eq!(copy["shareEnabled"], false);
    let cid = copy["id"].as_str().unwrap().to_string();
    assert_ne!(cid, pid);
    assert_eq!(
        canvas_titles(&app, &key, &cid).await,
        canvas_titles(&app, &key, &pid).await
    );
    let (_, blocks) = get(&app, &key, &format!("/api/v1/projects/{cid}/blocks")).await;
    let ids: Vec<&str> = blocks["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert!(!ids.contains(&a["id"].as_str().unwrap()), "new ids");
    let edges = stored_edges(&app, &key, &cid).await;
    assert_eq!(edges.len(), 1);
    assert!(
        ids.contains(&edges[0]["from"]["id"].as_str().unwrap()),
        "remapped"
    );
    assert!(ids.contains(&edges[0]["to"]["id"].as_str().unwrap()));

    // A name of one's own; the slug is de-duplicated.
    let (status, body) = post(
        &app,
        &key,
        &format!("/api/v1/projects/{pid}/duplicate"),
        json!({"name": "Launch (copy)"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["slug"], "launch-copy-2");
    let (status, body) = post(
        &app,
        &key,
        &format!("/api/v1/projects/{pid}/duplicate"),
        json!({"name": ""}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let eve = add_user(&app, "eve@example.com", "evil", None).await;
    let (eve_key, _) = eve.mint_key("eve", None).await;
    let (status, _) = post(
        &app,
        &eve_key,
        &format!("/api/v1/projects/{pid}/duplicate"),
        json!({}),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn restore_makes_fields_blocks_and_edges_equal_the_manifest_and_dry_run_changes_nothing() {
    let (app, _, key) = app_with_owner().await;
    let pid = project(&app, &key, "Launch").await;
    let a = block(&app, &key, &pid, "A", "alpha").await;
    let b = block(&app, &key, &pid, "B", "beta").await;
    edge(&app, &key, &pid, &a, &b).await;
    let manifest = export(&app, &key, &pid).await;
    let before = canvas_titles(&app, &key, &pid).await;

    // Drift: rename, edit A, delete B (and with it nothing else), add C.
    let res = app
        .http
        .patch(app.at(&format!("/api/v1/projects/{pid}")))
        .bearer_auth(&key)
        .json(&json!({"name": "Renamed", "tags": ["x"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .http
        .patch(app.at(&format!("/api/v1/blocks/{}", a["id"].as_str().unwrap())))
        .bearer_auth(&key)
        .json(&json!({"data": {"type": "markdown", "markdown": "changed"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .http
        .delete(app.at(&format!("/api/v1/blocks/{}", b["id"].as_str().unwrap())))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let c = block(&app, &key, &pid, "C", "gamma").await;
    let drifted = canvas_titles(&app, &key, &pid).await;

    let (status, dry) = restore(
        &app,
        &key,
        &pid,
        json!({"manifest": manifest, "dryRun": true}),
    )
    .await;
    assert_eq!(status, 200, "{dry}");
    let dry = &dry["data"];
    assert_eq!(dry["checksumValid"], true);
    assert_eq!(dry["create"], json!([]));
    let mut update: Vec<&str> = dry["update"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    update.sort();
    let mut want = vec![a["id"].as_str().unwrap(), b["id"].as_str().unwrap()];
    want.sort();
    assert_eq!(update, want, "the deleted B comes back under its id");
    assert_eq!(dry["delete"], json!([c["id"]]));
    assert_eq!(
        canvas_titles(&app, &key, &pid).await,
        drifted,
        "a dry run writes nothing"
    );

    let (status, body) = restore(&app, &key, &pid, json!({"manifest": manifest})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(canvas_titles(&app, &key, &pid).await, before);
    let (_, got) = get(&app, &key, &format!("/api/v1/projects/{pid}")).await;
    assert_eq!(got["data"]["name"], "Launch");
    assert_eq!(got["data"]["tags"], json!([]));
    let edges = stored_edges(&app, &key, &pid).await;
    assert_eq!(edges.len(), 1);
    assert_eq!(
        (&edges[0]["from"]["id"], &edges[0]["to"]["id"]),
        (&a["id"], &b["id"])
    );
    // Restored blocks carry on as ordinary blocks: the old revision is stale.
    let res = app
        .http
        .patch(app.at(&format!("/api/v1/blocks/{}", a["id"].as_str().unwrap())))
        .bearer_auth(&key)
        .json(&json!({"title": "A2", "expectedUpdatedAt": a["updatedAt"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409, "the restore moved the revision on");

    // The same manifest into another project: ids that live elsewhere are
    // re-issued, so the source keeps its blocks.
    let other = project(&app, &key, "Other").await;
    let (status, body) = restore(&app, &key, &other, json!({"manifest": manifest})).await;
    assert_eq!(status, 200, "{body}");
    let created: Vec<&Value> = body["data"]["create"].as_array().unwrap().iter().collect();
    assert_eq!(created.len(), 2);
    assert!(!created.contains(&&a["id"]), "{body}");
    assert_eq!(canvas_titles(&app, &key, &other).await, before);
    assert_eq!(canvas_titles(&app, &key, &pid).await, before);
    assert_eq!(stored_edges(&app, &key, &other).await.len(), 1);
}

#[tokio::test]
async fn bad_manifests_are_refused_and_write_nothing() {
    let (app, _, key) = app_with_owner().await;
    let pid = project(&app, &key, "Launch").await;
    block(&app, &key, &pid, "A", "alpha").await;
    let manifest = export(&app, &key, &pid).await;
    block(&app, &key, &pid, "B", "beta").await;
    let drifted = canvas_titles(&app, &key, &pid).await;

    let mut tampered = manifest.clone();
    tampered["project"]["name"] = json!("Pwned");
    let (status, body) = restore(&app, &key, &pid, json!({"manifest": tampered})).await;
    assert_error(status, &body, 422, "VALIDATION_ERROR", "checksum_mismatch");
    let (status, body) = restore(
        &app,
        &key,
        &pid,
        json!({"manifest": tampered, "dryRun": true}),
    )
    .await;
    assert_eq!(status, 200, "a dry run reports the checksum: {body}");
    assert_eq!(body["data"]["checksumValid"], false);

    let mut v2 = manifest.clone();
    v2["version"] = json!(2);
    let (status, body) = restore(&app, &key, &pid, json!({"manifest": v2})).await;
    assert_error(
        status,
        &body,
        422,
        "VALIDATION_ERROR",
        "unsupported_manifest",
    );
    for broken in [json!({"format": "alumia.project-export", "version": 1}), {
        let mut m = manifest.clone();
        m["blocks"] = json!("nope");
        m
    }] {
        let (status, body) = restore(&app, &key, &pid, json!({"manifest": broken})).await;
        assert_error(status, &body, 422, "VALIDATION_ERROR", "invalid_manifest");
    }
    // A block the API would refuse is refused here too, even with a good checksum.
    let mut bad_block = manifest.clone();
    bad_block["blocks"][0]["data"] = json!({"type": "nonsense"});
    bad_block.as_object_mut().unwrap().remove("checksum");
    let sum = alumia_core::portability::checksum(&bad_block);
    bad_block["checksum"] = json!(sum);
    let (status, body) = restore(&app, &key, &pid, json!({"manifest": bad_block})).await;
    assert_eq!(status, 422, "{body}");

    // Another org's manifest, checksum and all.
    let eve = add_user(&app, "eve@example.com", "evil", None).await;
    let (eve_key, _) = eve.mint_key("eve", None).await;
    let eves = project(&app, &eve_key, "Eve's").await;
    block(&app, &eve_key, &eves, "E", "eve").await;
    let foreign = export(&app, &eve_key, &eves).await;
    let (status, body) = restore(&app, &key, &pid, json!({"manifest": foreign})).await;
    assert_error(status, &body, 422, "VALIDATION_ERROR", "foreign_manifest");
    // And Eve cannot restore into Acme's project at all.
    let (status, _) = restore(&app, &eve_key, &pid, json!({"manifest": foreign})).await;
    assert_eq!(status, 404);

    assert_eq!(
        canvas_titles(&app, &key, &pid).await,
        drifted,
        "nothing written"
    );
    let (_, got) = get(&app, &key, &format!("/api/v1/projects/{pid}")).await;
    assert_eq!(got["data"]["name"], "Launch");
}

#[tokio::test]
async fn restore_takes_manifests_up_to_8_mb_and_refuses_larger_unread() {
    let (app, _, key) = app_with_owner().await;
    let pid = project(&app, &key, "Launch").await;
    // 40 blocks of ~6 KB: over the 128 KB JSON cap of other routes.
    for i in 0..40 {
        block(&app, &key, &pid, &format!("B{i:02}"), &"x".repeat(6000)).await;
    }
    let manifest = export(&app, &key, &pid).await;
    let body = json!({"manifest": manifest, "dryRun": true});
    assert!(body.to_string().len() > 200 * 1024);
    let (status, body) = restore(&app, &key, &pid, body).await;
    assert_eq!(status, 200, "{body}");

    let huge = format!(
        r#"{{"manifest": {{"pad": "{}"}}}}"#,
        "y".repeat(8 * 1024 * 1024 + 10)
    );
    let res = app
        .http
        .post(app.at(&format!("/api/v1/projects/{pid}/restore")))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_error(status, &body, 413, "PAYLOAD_TOO_LARGE", "payload_too_large");
}

/// Uploads `bytes` as a text file into the project's folder (or a folder).
async fn upload_into(
    app: &TestApp,
    key: &str,
    fields: &[(&str, &str)],
    name: &str,
    bytes: &[u8],
) -> Value {
    let (status, body) = crate::files::upload(app, key, fields, (name, "text/plain", bytes)).await;
    assert_eq!(status, 201, "{body}");
    body["data"]["file"].clone()
}

#[tokio::test]
async fn files_go_into_the_manifest_are_copied_on_the_same_blobs_and_relinked_by_restore() {
    let (app, _, key) = app_with_owner().await;
    let pid = project(&app, &key, "Launch").await;
    let (status, folder) = post(
        &app,
        &key,
        "/api/v1/files",
        json!({"source": "folder", "name": "docs", "projectId": pid}),
    )
    .await;
    assert_eq!(status, 201, "{folder}");
    let folder_id = folder["data"]["file"]["id"].as_str().unwrap().to_string();
    let notes = upload_into(
        &app,
        &key,
        &[("projectId", &pid)],
        "notes.txt",
        b"hello notes",
    )
    .await;
    let spec = upload_into(
        &app,
        &key,
        &[("parentId", &folder_id)],
        "spec.txt",
        b"the spec",
    )
    .await;

    let m = export(&app, &key, &pid).await;
    let mut files: Vec<(String, String)> = m["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    files.sort();
    assert_eq!(
        files,
        vec![
            (
                "docs/spec.txt".to_string(),
                spec["sha256"].as_str().unwrap().to_string()
            ),
            (
                "notes.txt".to_string(),
                notes["sha256"].as_str().unwrap().to_string()
            ),
        ]
    );

    // Duplicate: the tree comes along, on the same blobs (one more reference each).
    let sha = notes["sha256"].as_str().unwrap().to_string();
    let refs = |app: &TestApp, sha: String| {
        let store = app.store.clone();
        async move { store.blob_refs(&sha).await.unwrap().unwrap().0 }
    };
    assert_eq!(refs(&app, sha.clone()).await, 1);
    let (status, copy) = post(
        &app,
        &key,
        &format!("/api/v1/projects/{pid}/duplicate"),
        json!({}),
    )
    .await;
    assert_eq!(status, 201, "{copy}");
    let cid = copy["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(refs(&app, sha.clone()).await, 2, "the copy shares the blob");
    let copied = export(&app, &key, &cid).await;
    let mut copied_paths: Vec<&str> = copied["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    copied_paths.sort();
    assert_eq!(copied_paths, ["docs/spec.txt", "notes.txt"]);
    assert_ne!(copied["files"][0]["id"], m["files"][0]["id"], "new rows");

    // Restore into a project without them: re-linked to the org's blobs;
    // a file whose bytes the org no longer has is reported missing.
    let empty = project(&app, &key, "Empty").await;
    let mut with_ghost = m.clone();
    with_ghost["files"].as_array_mut().unwrap().push(json!({
        "id": uuid::Uuid::now_v7(), "path": "ghost.txt", "name": "ghost.txt",
        "mimeType": "text/plain", "size": 3, "sha256": "0".repeat(64),
    }));
    with_ghost.as_object_mut().unwrap().remove("checksum");
    let sum = alumia_core::portability::checksum(&with_ghost);
    with_ghost["checksum"] = json!(sum);
    let (status, dry) = restore(
        &app,
        &key,
        &empty,
        json!({"manifest": with_ghost, "dryRun": true}),
    )
    .await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["data"]["relinkedFiles"].as_array().unwrap().len(), 2);
    assert_eq!(dry["data"]["missingFiles"][0]["name"], "ghost.txt");
    assert_eq!(
        refs(&app, sha.clone()).await,
        2,
        "a dry run takes no reference"
    );
    let (status, done) = restore(&app, &key, &empty, json!({"manifest": with_ghost})).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["data"]["relinkedFiles"].as_array().unwrap().len(), 2);
    assert_eq!(refs(&app, sha.clone()).await, 3);
    let restored = export(&app, &key, &empty).await;
    assert_eq!(restored["files"].as_array().unwrap().len(), 2);
    // Restoring again finds them in place (by path and bytes) for the top
    // level; nothing is linked twice there.
    let (_, again) = restore(
        &app,
        &key,
        &empty,
        json!({"manifest": with_ghost, "dryRun": true}),
    )
    .await;
    assert_eq!(
        again["data"]["relinkedFiles"].as_array().unwrap().len(),
        1,
        "{again}"
    );
}

#[tokio::test]
async fn the_navigator_shows_folders_block_counts_and_sessions() {
    let (app, _, key) = app_with_owner().await;
    let pid = project(&app, &key, "Launch").await;
    let (_, folder) = post(
        &app,
        &key,
        "/api/v1/files",
        json!({"source": "folder", "name": "docs", "projectId": pid}),
    )
    .await;
    let folder_id = folder["data"]["file"]["id"].as_str().unwrap().to_string();
    upload_into(&app, &key, &[("parentId", &folder_id)], "a.txt", b"a").await;
    upload_into(&app, &key, &[("projectId", &pid)], "b.txt", b"b").await;
    block(&app, &key, &pid, "A", "alpha").await;
    block(&app, &key, &pid, "B", "beta").await;
    let res = crate::chat::chat(
        &app,
        &key,
        json!({"messages": [{"role": "user", "content": "hi"}], "projectId": pid}),
    )
    .await;
    res.text().await.unwrap();

    let (status, nav) = get(&app, &key, &format!("/api/v1/projects/{pid}/navigator")).await;
    assert_eq!(status, 200, "{nav}");
    let nav = &nav["data"];
    assert_eq!(nav["folders"]["fileCount"], 1, "{nav}");
    assert_eq!(nav["folders"]["folders"][0]["name"], "docs");
    assert_eq!(nav["folders"]["folders"][0]["fileCount"], 1);
    assert_eq!(nav["blocksByType"], json!({"data": 2}));
    assert_eq!(nav["sessions"].as_array().unwrap().len(), 1);
    let eve = add_user(&app, "eve@example.com", "evil", None).await;
    let (eve_key, _) = eve.mint_key("eve", None).await;
    let (status, _) = get(&app, &eve_key, &format!("/api/v1/projects/{pid}/navigator")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_invited_member_duplicates_into_a_workspace_of_their_own() {
    let (app, owner, key) = app_with_owner().await;
    let org = app.store.get_org_by_slug("acme").await.unwrap().unwrap().id;
    let owner_id = app
        .store
        .find_user_by_email("owner@example.com")
        .await
        .unwrap()
        .unwrap()
        .user
        .id;
    let secret_ws = app.add_workspace(org, "Secret", &[owner_id]).await;
    let (status, p) = post(
        &app,
        &key,
        "/api/v1/projects",
        json!({"name": "Secret plan", "workspaceId": secret_ws}),
    )
    .await;
    assert_eq!(status, 201, "{p}");
    let pid = p["data"]["id"].as_str().unwrap().to_string();
    let bob = add_user(
        &app,
        "bob@example.com",
        "acme",
        Some(alumia_core::model::Role::Member),
    )
    .await;
    let (bob_key, _) = bob.mint_key("bob", None).await;
    let res = owner
        .post(&format!("/api/v1/projects/{pid}/share/invite"), json!({}))
        .await;
    let (status, invite) = read(res).await;
    assert_eq!(status, 200, "{invite}");
    let token = crate::share::invite_token(&invite);
    let (status, _) = read(
        bob.post(&format!("/api/v1/share/invite/{token}/accept"), json!({}))
            .await,
    )
    .await;
    assert_eq!(status, 200);

    let (status, copy) = post(
        &app,
        &bob_key,
        &format!("/api/v1/projects/{pid}/duplicate"),
        json!({}),
    )
    .await;
    assert_eq!(status, 201, "{copy}");
    let (_, ws) = get(&app, &bob_key, "/api/v1/workspaces").await;
    assert_eq!(
        copy["data"]["workspaceId"], ws["data"]["items"][0]["id"],
        "not the secret workspace Bob cannot reach"
    );
    assert_ne!(
        copy["data"]["workspaceId"].as_str(),
        Some(secret_ws.to_string().as_str())
    );
    let cid = copy["data"]["id"].as_str().unwrap();
    assert_eq!(
        get(&app, &bob_key, &format!("/api/v1/projects/{cid}"))
            .await
            .0,
        200
    );
}
