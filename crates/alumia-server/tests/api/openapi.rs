//! The OpenAPI document lists exactly the routes the router serves: each
//! path's methods are read back from the live router's `Allow` header.

use std::collections::BTreeSet;

use alumia_server::router::{authed_routes, public_routes};
use alumia_testkit::TestApp;
use serde_json::Value;

async fn served_operations(app: &TestApp) -> BTreeSet<(String, String)> {
    let probe = reqwest::Method::from_bytes(b"PROPFIND").unwrap();
    let mut ops = BTreeSet::new();
    for (path, _) in public_routes().into_iter().chain(authed_routes()) {
        let concrete = path
            .split('/')
            .map(|seg| {
                if seg.starts_with('{') {
                    "01a22264-7973-757d-bed0-cdd57d5fb903"
                } else {
                    seg
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let res = app
            .http
            .request(probe.clone(), app.at(&concrete))
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            405,
            "{path} should answer 405 to an unknown method"
        );
        let allow = res.headers()["allow"].to_str().unwrap().to_string();
        for method in allow.split(',').map(str::trim).filter(|m| *m != "HEAD") {
            ops.insert((method.to_lowercase(), path.to_string()));
        }
    }
    ops
}

fn documented_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                ops.insert((method.clone(), path.clone()));
            }
        }
    }
    ops
}

#[tokio::test]
async fn the_openapi_document_matches_the_router_exactly() {
    let app = TestApp::spawn().await;
    let res = app
        .http
        .get(app.at("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["openapi"].as_str().map(|v| &v[..3]), Some("3.1"));

    let served = served_operations(&app).await;
    let documented = documented_operations(&doc);
    let missing: Vec<_> = served.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&served).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "openapi.json drifted from the router.\n  served but undocumented: {missing:?}\n  documented but not served: {stale:?}\n  edit crates/alumia-server/openapi.json"
    );
    // Every operation says what it answers and how it authenticates.
    for (method, path) in &documented {
        let op = &doc["paths"][path][method];
        assert!(op["summary"].is_string(), "{method} {path} has no summary");
        assert!(
            op["responses"].is_object(),
            "{method} {path} has no responses"
        );
    }
}
