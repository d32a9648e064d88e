//! The server-rendered pages: headers, and the setup/login redirects.

use alumia_testkit::TestApp;

#[tokio::test]
async fn pages_deny_framing_and_setup_redirects_once_done() {
    let app = TestApp::spawn().await;
    let browser = app.browser();
    let res = browser.get("/").await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/setup");
    let res = browser.get("/setup").await;
    assert_eq!(res.status(), 200);
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert_eq!(res.headers()["referrer-policy"], "same-origin");
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    let html = res.text().await.unwrap();
    assert!(
        html.contains("/assets/app.js") && !html.contains("<script>"),
        "no inline scripts"
    );

    let mut owner = app.browser();
    owner.setup("owner@example.com", "acme").await;
    let res = browser.get("/setup").await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/login");
    for path in ["/login", "/acme/developers", "/acme/settings/security"] {
        let res = browser.get(path).await;
        assert_eq!(res.status(), 200, "{path}");
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }
    let js = browser.get("/assets/app.js").await;
    assert!(
        js.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(js.text().await.unwrap().contains("/api/v1/api-keys"));
    assert_eq!(browser.get("/Not_A_Slug/developers").await.status(), 404);
}
