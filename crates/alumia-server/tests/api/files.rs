//! `/api/v1/files` (spec 06 §3): uploads (multipart, JSON + signed PUT),
//! signed downloads, limits, MIME checks, tenancy, protected folders, moves,
//! trash and purge with shared blobs, inline headers and previews.

use std::path::Path;
use std::time::Duration;

use alumia_testkit::{TestApp, TestStorage};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::chat::{get, post};
use crate::{add_user, app_with_owner, assert_error, read};

pub const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
const BOUNDARY: &str = "alumia-test-boundary-7MA4YWxkTrZu0gW";

/// A multipart/form-data body: text fields, then `file` (name, type, bytes).
pub fn multipart_body(fields: &[(&str, &str)], file: Option<(&str, &str, &[u8])>) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    if let Some((filename, mime, bytes)) = file {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: {mime}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// `POST /api/v1/files` as multipart.
pub async fn upload(
    app: &TestApp,
    key: &str,
    fields: &[(&str, &str)],
    file: (&str, &str, &[u8]),
) -> (u16, Value) {
    read(
        app.http
            .post(app.at("/api/v1/files"))
            .bearer_auth(key)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(multipart_body(fields, Some(file)))
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Uploads and returns the file; panics unless 201.
pub async fn upload_ok(app: &TestApp, key: &str, name: &str, mime: &str, bytes: &[u8]) -> Value {
    let (status, body) = upload(app, key, &[], (name, mime, bytes)).await;
    assert_eq!(status, 201, "{body}");
    body["data"]["file"].clone()
}

async fn send(
    app: &TestApp,
    key: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app.http.request(method, app.at(path)).bearer_auth(key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    read(req.send().await.unwrap()).await
}

/// Follows `?download=true` (302) and fetches the signed URL without a
/// credential: `(status, headers, bytes)` of the content.
pub async fn download(
    app: &TestApp,
    key: &str,
    id: &str,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = no_redirect
        .get(app.at(&format!("/api/v1/files/{id}?download=true")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302, "download redirects");
    let location = res.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&app.url), "{location}");
    assert!(location.contains("/content?exp=") && location.contains("&sig="));
    let res = reqwest::get(&location).await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, headers, res.bytes().await.unwrap().to_vec())
}

fn signed_url(app: &TestApp, location: &str) -> String {
    location.replace(&app.url, "")
}

/// Every file under `dir`, as paths relative to it.
pub fn files_under(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, root, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// A plain 422 (no reason): the envelope names the field.
#[track_caller]
fn assert_validation(status: u16, body: &Value) {
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "VALIDATION_ERROR", "{body}");
    assert!(body["error"]["details"]["fields"].is_object(), "{body}");
}

fn names(body: &Value) -> Vec<String> {
    body["data"]["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a list: {body}"))
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn multipart_upload_round_trips_through_a_signed_download() {
    let (app, _, key) = app_with_owner().await;
    let file = upload_ok(&app, &key, "dot.png", "image/png", PNG).await;
    assert_eq!(file["status"], "ready");
    assert_eq!(file["kind"], "file");
    assert_eq!(file["size"], PNG.len());
    assert_eq!(file["mimeType"], "image/png");
    assert_eq!(file["previewKind"], "image");
    assert!(file.get("storageKey").is_none());
    let id = file["id"].as_str().unwrap();

    let (status, headers, bytes) = download(&app, &key, id).await;
    assert_eq!(status, 200);
    assert_eq!(bytes, PNG);
    assert_eq!(headers["content-type"], "image/png");
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");

    // Listed in the org root, folders first then by name.
    let (_, _) = post(
        &app,
        &key,
        "/api/v1/files",
        json!({"source": "folder", "name": "zz folder"}),
    )
    .await;
    upload_ok(&app, &key, "a.txt", "text/plain", b"hello").await;
    let (status, body) = get(&app, &key, "/api/v1/files").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(names(&body), ["zz folder", "a.txt", "dot.png"]);
    let (_, body) = get(&app, &key, "/api/v1/files?limit=2").await;
    assert_eq!(names(&body), ["zz folder", "a.txt"]);
    let cursor = body["data"]["nextCursor"].as_str().unwrap().to_string();
    let (_, body) = get(
        &app,
        &key,
        &format!("/api/v1/files?limit=2&cursor={cursor}"),
    )
    .await;
    assert_eq!(names(&body), ["dot.png"]);
    assert_eq!(body["data"]["hasMore"], false);
    let (_, body) = get(&app, &key, "/api/v1/files?limit=2&page=2").await;
    assert_eq!(names(&body), ["dot.png"]);
    let (_, body) = get(&app, &key, "/api/v1/files?search=DOT").await;
    assert_eq!(names(&body), ["dot.png"]);
    let (status, body) = get(&app, &key, "/api/v1/files?limit=0").await;
    assert_validation(status, &body);
    let (status, body) = get(&app, &key, "/api/v1/files?cursor=garbage").await;
    assert_error(status, &body, 400, "BAD_REQUEST", "invalid_cursor");
}

#[tokio::test]
async fn json_upload_then_signed_put_makes_the_file_ready_once() {
    let (app, _, key) = app_with_owner().await;
    let bytes = b"a,b\n1,2\n";
    let (status, body) = post(
        &app,
        &key,
        "/api/v1/files",
        json!({"name": "t.csv", "mimeType": "text/csv", "size": bytes.len(), "tags": ["x"]}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let file = &body["data"]["file"];
    assert_eq!(file["status"], "pending");
    let upload = &body["data"]["upload"];
    assert_eq!(upload["method"], "PUT");
    assert_eq!(upload["headers"]["Content-Type"], "text/csv");
    let url = upload["url"].as_str().unwrap().to_string();
    let id = file["id"].as_str().unwrap().to_string();

    // Wrong lengths: 422 and the file stays pending; nothing stored.
    let res = app
        .http
        .put(&url)
        .body(b"a,b\n".to_vec())
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_error(status, &body, 422, "VALIDATION_ERROR", "size_mismatch");
    let too_long =
        reqwest::Body::wrap_stream(futures::stream::iter(vec![Ok::<_, std::io::Error>(
            bytes::Bytes::from_static(b"a,b\n1,2\n3,4\n"),
        )]));
    let (status, body) = read(app.http.put(&url).body(too_long).send().await.unwrap()).await;
    assert_error(status, &body, 422, "VALIDATION_ERROR", "size_mismatch");
    assert!(
        files_under(&app.blob_dir).is_empty(),
        "{:?}",
        files_under(&app.blob_dir)
    );
    let (_, body) = get(&app, &key, &format!("/api/v1/files/{id}")).await;
    assert_eq!(body["data"]["status"], "pending");

    let (status, body) = read(
        app.http
            .put(&url)
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["status"], "ready");
    let (status, body) = read(
        app.http
            .put(&url)
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 409, "CONFLICT", "already_uploaded");

    let (status, _, got) = download(&app, &key, &id).await;
    assert_eq!((status, got.as_slice()), (200, &bytes[..]));
    let (status, body) = get(&app, &key, &format!("/api/v1/files/{id}/preview")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["previewKind"], "spreadsheet");
    assert_eq!(body["data"]["table"], json!([["a", "b"], ["1", "2"]]));
}

#[tokio::test]
async fn tampered_or_expired_content_urls_are_refused() {
    let (app, _, key) = app_with_owner().await;
    let file = upload_ok(&app, &key, "a.txt", "text/plain", b"secret text").await;
    let id = file["id"].as_str().unwrap();
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.at(&format!("/api/v1/files/{id}?download=true")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let location = res.headers()["location"].to_str().unwrap().to_string();
    let path = signed_url(&app, &location);

    // A flipped signature digit, a moved expiry, another file's id, PUT with a GET signature.
    let last = path.chars().last().unwrap();
    let flipped = format!(
        "{}{}",
        &path[..path.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    let (status, body) = read(app.http.get(app.at(&flipped)).send().await.unwrap()).await;
    assert_error(status, &body, 403, "FORBIDDEN", "invalid_signature");
    let exp: i64 = path
        .split("exp=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let later = path.replace(&format!("exp={exp}"), &format!("exp={}", exp + 3600));
    let (status, body) = read(app.http.get(app.at(&later)).send().await.unwrap()).await;
    assert_error(status, &body, 403, "FORBIDDEN", "invalid_signature");
    let other = upload_ok(&app, &key, "b.txt", "text/plain", b"other").await;
    let swapped = path.replace(id, other["id"].as_str().unwrap());
    let (status, body) = read(app.http.get(app.at(&swapped)).send().await.unwrap()).await;
    assert_error(status, &body, 403, "FORBIDDEN", "invalid_signature");
    let (status, body) = read(app.http.put(app.at(&path)).body("x").send().await.unwrap()).await;
    assert_error(status, &body, 403, "FORBIDDEN", "invalid_signature");
    let bare = format!("/api/v1/files/{id}/content");
    let (status, body) = read(app.http.get(app.at(&bare)).send().await.unwrap()).await;
    assert_error(status, &body, 403, "FORBIDDEN", "invalid_signature");

    // Valid now; expired after 5 minutes.
    let res = app.http.get(app.at(&path)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    app.clock.advance(chrono::Duration::seconds(301));
    let (status, body) = read(app.http.get(app.at(&path)).send().await.unwrap()).await;
    assert_error(status, &body, 403, "FORBIDDEN", "url_expired");
}

/// Sends `head` and then `body` on a raw socket; returns what the server
/// answered before closing (or within 10 s).
async fn raw_request(app: &TestApp, head: String, body: &[u8]) -> String {
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    socket.write_all(head.as_bytes()).await.unwrap();
    let _ = socket.write_all(body).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn an_upload_cut_off_midway_keeps_no_row_and_no_blob() {
    let (app, _, key) = app_with_owner().await;
    // 3 MiB of PNG-looking bytes, of which half is sent before the socket closes.
    let mut bytes = PNG.to_vec();
    bytes.resize(3 * 1024 * 1024, 7);
    let body = multipart_body(
        &[("name", "cut.png")],
        Some(("cut.png", "image/png", &bytes)),
    );
    let head = format!(
        "POST /api/v1/files HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n\r\n",
        app.addr,
        body.len()
    );
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&body[..body.len() / 2]).await.unwrap();
    // The server is streaming into a temporary; then the client goes away.
    alumia_testkit::eventually(Duration::from_secs(10), || async {
        let left = files_under(&app.blob_dir);
        if left.iter().any(|f| f.starts_with("tmp")) {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    })
    .await;
    drop(socket);

    // The server notices the disconnect; nothing stays behind (had the cut
    // body been taken as complete, its blob would now sit there instead).
    alumia_testkit::eventually(Duration::from_secs(10), || async {
        let left = files_under(&app.blob_dir);
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    })
    .await;
    let (_, list) = get(&app, &key, "/api/v1/files").await;
    assert_eq!(names(&list), Vec::<String>::new(), "{list}");
    // A whole upload afterwards still works (and proves the check can fail).
    upload_ok(&app, &key, "whole.png", "image/png", &bytes).await;
    assert_eq!(files_under(&app.blob_dir).len(), 1);
}

#[tokio::test]
async fn a_declared_length_over_100_mb_is_refused_before_the_body() {
    let (app, _, key) = app_with_owner().await;
    let head = format!(
        "POST /api/v1/files HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n\r\n",
        app.addr,
        200 * 1024 * 1024
    );
    let answer = raw_request(&app, head, b"").await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("file_too_large"), "{answer}");

    // The PUT target too.
    let (_, body) = post(
        &app,
        &key,
        "/api/v1/files",
        json!({"name": "a.txt", "mimeType": "text/plain", "size": 10}),
    )
    .await;
    let url = body["data"]["upload"]["url"].as_str().unwrap();
    let head = format!(
        "PUT {} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
        signed_url(&app, url),
        app.addr,
        101 * 1024 * 1024
    );
    let answer = raw_request(&app, head, b"").await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // A JSON create over 100 MB is a validation error.
    let (status, body) = post(
        &app,
        &key,
        "/api/v1/files",
        json!({"name": "big.bin", "mimeType": "application/zip", "size": 100 * 1024 * 1024 + 1}),
    )
    .await;
    assert_validation(status, &body);
}

#[tokio::test]
async fn forbidden_types_and_mismatched_bytes_are_refused() {
    let (app, _, key) = app_with_owner().await;
    let (status, body) = upload(
        &app,
        &key,
        &[],
        ("page.html", "text/html", b"<script>1</script>"),
    )
    .await;
    assert_error(status, &body, 422, "VALIDATION_ERROR", "mime_not_allowed");
    let (status, body) = upload(
        &app,
        &key,
        &[],
        ("x.exe", "application/x-msdownload", b"MZ"),
    )
    .await;
    assert_error(status, &body, 422, "VALIDATION_ERROR", "mime_not_allowed");
    let (status, body) = post(
        &app,
        &key,
        "/api/v1/files",
        json!({"name": "a.svg", "mimeType": "image/svg+xml", "size": 3}),
    )
    .await;
    assert_error(status, &body, 422, "VALIDATION_ERROR", "mime_not_allowed");
    // A "png" that is text; text that holds a NUL.
    let (status, body) = upload(
        &app,
        &key,
        &[],
        ("fake.png", "image/png", b"just some text, not a picture"),
    )
    .await;
    assert_error(status, &body, 422, "VALIDATION_ERROR", "mime_mismatch");
    let (status, body) = upload(&app, &key, &[], ("bin.txt", "text/plain", b"ab\0cd")).await;
    assert_error(status, &body, 422, "VALIDATION_ERROR", "mime_mismatch");
    // The same through the signed PUT.
    let (_, body) = post(
        &app,
        &key,
        "/api/v1/files",
        json!({"name": "p.png", "mimeType": "image/png", "size": 12}),
    )
    .await;
    let url = body["data"]["upload"]["url"].as_str().unwrap();
    let (status, body) = read(app.http.put(url).body("hello world!").send().await.unwrap()).await;
    assert_error(status, &body, 422, "VALIDATION_ERROR", "mime_mismatch");
    assert!(
        files_under(&app.blob_dir).is_empty(),
        "{:?}",
        files_under(&app.blob_dir)
    );
    // Bad names.
    let (status, body) = upload(
        &app,
        &key,
        &[("name", "a/b.txt")],
        ("x.txt", "text/plain", b"x"),
    )
    .await;
    assert_validation(status, &body);
    assert!(
        files_under(&app.blob_dir).is_empty(),
        "a refused upload keeps no blob"
    );
}

#[tokio::test]
async fn another_orgs_file_is_not_found_everywhere() {
    let (app, _, key) = app_with_owner().await;
    let file = upload_ok(&app, &key, "mine.txt", "text/plain", b"mine").await;
    let id = file["id"].as_str().unwrap();
    let eve = add_user(&app, "eve@example.com", "evil", None).await;
    let (eve_key, _) = eve.mint_key("eve", None).await;

    for (method, path, body) in [
        (reqwest::Method::GET, format!("/api/v1/files/{id}"), None),
        (
            reqwest::Method::GET,
            format!("/api/v1/files/{id}?download=true"),
            None,
        ),
        (
            reqwest::Method::GET,
            format!("/api/v1/files/{id}?inline=true"),
            None,
        ),
        (
            reqwest::Method::GET,
            format!("/api/v1/files/{id}/preview"),
            None,
        ),
        (
            reqwest::Method::PATCH,
            format!("/api/v1/files/{id}"),
            Some(json!({"name": "pwned"})),
        ),
        (reqwest::Method::DELETE, format!("/api/v1/files/{id}"), None),
        (
            reqwest::Method::GET,
            format!("/api/v1/files?parentId={id}"),
            None,
        ),
    ] {
        let (status, body) = send(&app, &eve_key, method.clone(), &path, body).await;
        assert_error(status, &body, 404, "NOT_FOUND", "not_found");
    }
    // Nor as a parent or a link target.
    let (status, body) = upload(
        &app,
        &eve_key,
        &[("parentId", id)],
        ("x.txt", "text/plain", b"x"),
    )
    .await;
    assert_error(status, &body, 400, "BAD_REQUEST", "invalid_reference");
    let (status, body) = post(
        &app,
        &eve_key,
        "/api/v1/files",
        json!({"source": "link", "targetFileId": id}),
    )
    .await;
    assert_error(status, &body, 400, "BAD_REQUEST", "invalid_reference");
    let (_, body) = get(&app, &eve_key, "/api/v1/files").await;
    assert_eq!(names(&body), Vec::<String>::new());
    let (_, body) = get(&app, &key, &format!("/api/v1/files/{id}")).await;
    assert_eq!(body["data"]["name"], "mine.txt", "unchanged");
}

#[tokio::test]
async fn protected_folders_and_moves_into_own_subtree_are_refused() {
    let (app, _, key) = app_with_owner().await;
    let (_, body) = post(&app, &key, "/api/v1/projects", json!({"name": "Apollo"})).await;
    let project = body["data"]["id"].as_str().unwrap().to_string();
    let (status, body) = post(
        &app,
        &key,
        "/api/v1/files",
        json!({"source": "folder", "name": "a"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let a = body["data"]["file"].clone();
    let root = a["parentId"].as_str().unwrap().to_string();
    let (status, root_file) = get(&app, &key, &format!("/api/v1/files/{root}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            root_file["data"]["systemKind"].as_str(),
            root_file["data"]["isProtected"].as_bool()
        ),
        (Some("orgRoot"), Some(true))
    );
    let a_id = a["id"].as_str().unwrap();
    let (_, body) = post(
        &app,
        &key,
        "/api/v1/files",
        json!({"source": "folder", "name": "b", "parentId": a_id}),
    )
    .await;
    let b_id = body["data"]["file"]["id"].as_str().unwrap().to_string();

    // The project folder: files under it carry the project.
    let in_project = {
        let (status, body) = upload(
            &app,
            &key,
            &[("projectId", &project)],
            ("plan.md", "text/markdown", b"# Plan"),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        body["data"]["file"].clone()
    };
    assert_eq!(in_project["projectId"], project.as_str());
    let folder = in_project["parentId"].as_str().unwrap().to_string();
    let (_, listing) = get(&app, &key, &format!("/api/v1/files?projectId={project}")).await;
    assert_eq!(names(&listing), ["plan.md"]);

    for protected in [&root, &folder] {
        let (status, body) = send(
            &app,
            &key,
            reqwest::Method::PATCH,
            &format!("/api/v1/files/{protected}"),
            Some(json!({"name": "renamed"})),
        )
        .await;
        assert_error(status, &body, 403, "FORBIDDEN", "protected_file");
        let (status, body) = send(
            &app,
            &key,
            reqwest::Method::PATCH,
            &format!("/api/v1/files/{protected}"),
            Some(json!({"parentId": a_id})),
        )
        .await;
        assert_error(status, &body, 403, "FORBIDDEN", "protected_file");
        let (status, body) = send(
            &app,
            &key,
            reqwest::Method::DELETE,
            &format!("/api/v1/files/{protected}"),
            None,
        )
        .await;
        assert_error(status, &body, 403, "FORBIDDEN", "protected_file");
    }
    for target in [a_id, b_id.as_str()] {
        let (status, body) = send(
            &app,
            &key,
            reqwest::Method::PATCH,
            &format!("/api/v1/files/{a_id}"),
            Some(json!({"parentId": target})),
        )
        .await;
        assert_error(status, &body, 422, "VALIDATION_ERROR", "folder_cycle");
    }
    // A legal move into the project folder carries the project along.
    let (status, body) = send(
        &app,
        &key,
        reqwest::Method::PATCH,
        &format!("/api/v1/files/{a_id}"),
        Some(json!({"parentId": folder, "name": "a2", "tags": ["t"]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["projectId"], project.as_str());
    assert_eq!(body["data"]["name"], "a2");
    let (_, b) = get(&app, &key, &format!("/api/v1/files/{b_id}")).await;
    assert_eq!(
        b["data"]["projectId"],
        project.as_str(),
        "the subtree moves into the project"
    );
}

#[tokio::test]
async fn purge_needs_trash_browser_and_step_up_and_shared_blobs_go_with_the_last_row() {
    let (app, browser, key) = app_with_owner().await;
    let bytes = b"the same bytes, twice";
    let one = upload_ok(&app, &key, "one.txt", "text/plain", bytes).await;
    let two = upload_ok(&app, &key, "two.txt", "text/plain", bytes).await;
    assert_eq!(one["sha256"], two["sha256"]);
    assert_eq!(
        files_under(&app.blob_dir).len(),
        1,
        "one blob for the same bytes"
    );
    let (one, two) = (
        one["id"].as_str().unwrap().to_string(),
        two["id"].as_str().unwrap().to_string(),
    );

    let purge = |id: &str| format!("/api/v1/files/{id}?permanent=true");
    // Not trashed yet: 409 (browser with fresh step-up).
    let (status, body) = read(browser.delete(&purge(&one)).await).await;
    assert_error(status, &body, 409, "CONFLICT", "not_trashed");
    let (status, body) = send(
        &app,
        &key,
        reqwest::Method::DELETE,
        &format!("/api/v1/files/{one}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = get(&app, &key, &format!("/api/v1/files/{one}")).await;
    assert_eq!(status, 404, "a trashed file is gone from reads");
    // API keys never purge; a stale browser session must step up.
    let (status, body) = send(&app, &key, reqwest::Method::DELETE, &purge(&one), None).await;
    assert_error(status, &body, 403, "FORBIDDEN", "browser_session_required");
    app.clock.advance(chrono::Duration::seconds(601));
    let (status, body) = read(browser.delete(&purge(&one)).await).await;
    assert_error(status, &body, 403, "FORBIDDEN", "step_up_required");
    assert_eq!(
        read(browser.step_up(alumia_testkit::TEST_PASSWORD).await)
            .await
            .0,
        200
    );
    let (status, body) = read(browser.delete(&purge(&one)).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        files_under(&app.blob_dir).len(),
        1,
        "the other row keeps the blob"
    );
    let (status, _, got) = download(&app, &key, &two).await;
    assert_eq!((status, got.as_slice()), (200, &bytes[..]));

    send(
        &app,
        &key,
        reqwest::Method::DELETE,
        &format!("/api/v1/files/{two}"),
        None,
    )
    .await;
    let (status, body) = read(browser.delete(&purge(&two)).await).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        files_under(&app.blob_dir).is_empty(),
        "{:?}",
        files_under(&app.blob_dir)
    );
    let (status, _) = read(browser.delete(&purge(&two)).await).await;
    assert_eq!(status, 404, "purged for good");
}

#[tokio::test]
async fn folders_take_their_subtree_to_the_trash() {
    let (app, browser, key) = app_with_owner().await;
    let (_, body) = post(
        &app,
        &key,
        "/api/v1/files",
        json!({"source": "folder", "name": "dir"}),
    )
    .await;
    let dir = body["data"]["file"]["id"].as_str().unwrap().to_string();
    let (_, inner) = upload(
        &app,
        &key,
        &[("parentId", &dir)],
        ("in.txt", "text/plain", b"inside"),
    )
    .await;
    let inner = inner["data"]["file"]["id"].as_str().unwrap().to_string();
    let (status, _) = send(
        &app,
        &key,
        reqwest::Method::DELETE,
        &format!("/api/v1/files/{dir}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = get(&app, &key, &format!("/api/v1/files/{inner}")).await;
    assert_eq!(status, 404, "the child went with its folder");
    let (status, body) = read(
        browser
            .delete(&format!("/api/v1/files/{inner}?permanent=true"))
            .await,
    )
    .await;
    assert_eq!(status, 200, "a trashed child can be purged: {body}");
    let (status, body) = read(
        browser
            .delete(&format!("/api/v1/files/{dir}?permanent=true"))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(files_under(&app.blob_dir).is_empty());
}

#[tokio::test]
async fn inline_bytes_carry_hardened_headers_and_previews_show_text() {
    let (app, _, key) = app_with_owner().await;
    let text = "line one\nline two ✓\n".repeat(5000); // > 64 KB
    let file = upload_ok(&app, &key, "notes.md", "text/markdown", text.as_bytes()).await;
    let id = file["id"].as_str().unwrap();
    let res = app
        .get_with_key(&format!("/api/v1/files/{id}?inline=true"), &key)
        .await;
    assert_eq!(res.status(), 200);
    let h = res.headers();
    assert_eq!(h["content-security-policy"], "default-src 'none'; sandbox");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(
        h["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("inline")
    );
    assert_eq!(h["content-type"], "text/markdown");
    assert_eq!(res.bytes().await.unwrap().len(), text.len());

    let (status, body) = get(&app, &key, &format!("/api/v1/files/{id}/preview")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["previewKind"], "text");
    let shown = body["data"]["text"].as_str().unwrap();
    assert!(
        shown.len() <= 64 * 1024 && shown.len() > 60 * 1024,
        "{}",
        shown.len()
    );
    assert!(text.starts_with(shown));
    assert_eq!(body["data"]["truncated"], true);

    let png = upload_ok(&app, &key, "dot.png", "image/png", PNG).await;
    let (_, body) = get(
        &app,
        &key,
        &format!("/api/v1/files/{}/preview", png["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(body["data"]["previewKind"], "image");
    let url = body["data"]["url"].as_str().unwrap();
    assert_eq!(
        reqwest::get(url)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        PNG
    );

    // A link resolves to its target's bytes.
    let (status, body) = post(
        &app,
        &key,
        "/api/v1/files",
        json!({"source": "link", "targetFileId": id}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["data"]["file"]["name"], "notes.md",
        "links default to the target's name"
    );
    let link = body["data"]["file"]["id"].as_str().unwrap();
    let res = app
        .get_with_key(&format!("/api/v1/files/{link}?inline=true"), &key)
        .await;
    assert_eq!(res.bytes().await.unwrap().len(), text.len());
}

#[tokio::test]
async fn html_added_by_config_is_still_served_as_an_attachment() {
    // The allow-list is extendable: an org may allow text/html, but it is
    // never rendered inline.
    let app = TestApp::builder()
        .extra_mime_types(&["text/html"])
        .spawn()
        .await;
    let mut browser = app.browser();
    browser.setup("owner@example.com", "acme").await;
    let (key, _) = browser.mint_key("k", None).await;
    let file = upload_ok(
        &app,
        &key,
        "page.html",
        "text/html",
        b"<script>alert(1)</script>",
    )
    .await;
    let id = file["id"].as_str().unwrap();
    let res = app
        .get_with_key(&format!("/api/v1/files/{id}?inline=true"), &key)
        .await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert_eq!(
        res.headers()["content-security-policy"],
        "default-src 'none'; sandbox"
    );
}

#[tokio::test]
async fn uploads_and_downloads_work_on_the_s3_backend() {
    let app = TestApp::builder().storage(TestStorage::S3).spawn().await;
    let mut browser = app.browser();
    browser.setup("owner@example.com", "acme").await;
    let (key, _) = browser.mint_key("k", None).await;
    let file = upload_ok(&app, &key, "dot.png", "image/png", PNG).await;
    let id = file["id"].as_str().unwrap().to_string();
    let (status, _, bytes) = download(&app, &key, &id).await;
    assert_eq!((status, bytes.as_slice()), (200, PNG));
    assert!(
        files_under(&app.blob_dir)
            .iter()
            .any(|f| f.ends_with(file["sha256"].as_str().unwrap())),
        "the blob is in the bucket: {:?}",
        files_under(&app.blob_dir)
    );

    let (_, body) = post(
        &app,
        &key,
        "/api/v1/files",
        json!({"name": "t.txt", "mimeType": "text/plain", "size": 5}),
    )
    .await;
    let url = body["data"]["upload"]["url"].as_str().unwrap();
    let (status, body) = read(app.http.put(url).body("hello").send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    let (_, _, got) = download(&app, &key, body["data"]["id"].as_str().unwrap()).await;
    assert_eq!(got, b"hello");

    send(
        &app,
        &key,
        reqwest::Method::DELETE,
        &format!("/api/v1/files/{id}"),
        None,
    )
    .await;
    let (status, body) = read(
        browser
            .delete(&format!("/api/v1/files/{id}?permanent=true"))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        !files_under(&app.blob_dir)
            .iter()
            .any(|f| f.ends_with(file["sha256"].as_str().unwrap())),
        "the purged blob left the bucket"
    );
}

#[tokio::test]
async fn an_undeclared_body_is_cut_after_100_mb_with_413() {
    let (app, _, key) = app_with_owner().await;
    let socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let (mut rd, mut wr) = socket.into_split();
    let head = format!(
        "POST /api/v1/files HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nTransfer-Encoding: chunked\r\n\r\n",
        app.addr
    );
    // 101 MiB of file in chunked frames, with no length declared anywhere.
    let writer = tokio::spawn(async move {
        let frame = |data: &[u8]| {
            let mut out = format!("{:x}\r\n", data.len()).into_bytes();
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
            out
        };
        wr.write_all(head.as_bytes()).await?;
        let part = format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.png\"\r\nContent-Type: image/png\r\n\r\n"
        );
        wr.write_all(&frame(part.as_bytes())).await?;
        wr.write_all(&frame(PNG)).await?;
        let mib = vec![0x5au8; 1024 * 1024];
        for _ in 0..101 {
            wr.write_all(&frame(&mib)).await?;
        }
        wr.write_all(&frame(format!("\r\n--{BOUNDARY}--\r\n").as_bytes()))
            .await?;
        wr.write_all(b"0\r\n\r\n").await?;
        Ok::<_, std::io::Error>(())
    });
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(60), rd.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("file_too_large"), "{answer}");
    let _ = writer.await;
    alumia_testkit::eventually(Duration::from_secs(10), || async {
        let left = files_under(&app.blob_dir);
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    })
    .await;
    let (_, list) = get(&app, &key, "/api/v1/files").await;
    assert_eq!(names(&list), Vec::<String>::new());
}

#[tokio::test]
async fn files_of_a_private_project_are_hidden_from_other_members() {
    let (app, _, key) = app_with_owner().await;
    let (status, body) = post(
        &app,
        &key,
        "/api/v1/projects",
        json!({"name": "Secret", "visibility": "private"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let project = body["data"]["id"].as_str().unwrap().to_string();
    let (status, body) = upload(
        &app,
        &key,
        &[("projectId", &project)],
        ("plan.txt", "text/plain", b"plan"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["data"]["file"]["id"].as_str().unwrap().to_string();
    let (status, _) = get(&app, &key, &format!("/api/v1/files/{id}")).await;
    assert_eq!(status, 200, "the creator sees it");

    let bob = add_user(
        &app,
        "bob@example.com",
        "acme",
        Some(alumia_core::model::Role::Member),
    )
    .await;
    let (bob_key, _) = bob.mint_key("bob", None).await;
    for path in [
        format!("/api/v1/files/{id}"),
        format!("/api/v1/files/{id}/preview"),
        format!("/api/v1/files/{id}?download=true"),
        format!("/api/v1/files?projectId={project}"),
    ] {
        let (status, body) = get(&app, &bob_key, &path).await;
        assert_error(status, &body, 404, "NOT_FOUND", "not_found");
    }
    let (status, body) = upload(
        &app,
        &bob_key,
        &[("projectId", &project)],
        ("x.txt", "text/plain", b"x"),
    )
    .await;
    assert_error(status, &body, 400, "BAD_REQUEST", "invalid_reference");
}
