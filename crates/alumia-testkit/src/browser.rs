//! A browser stand-in: a cookie jar, the CSRF token, and the page flows
//! (setup, login, step-up, mint) as the dashboard performs them.

use serde_json::{Value, json};

pub const TEST_PASSWORD: &str = "correct horse battery staple";

pub struct Browser {
    pub base: String,
    pub client: reqwest::Client,
    pub csrf: Option<String>,
}

impl Browser {
    pub fn new(base: &str) -> Browser {
        Browser {
            base: base.to_string(),
            client: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            csrf: None,
        }
    }

    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends with the CSRF header, as the pages do.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut req = self.client.request(method, self.at(path));
        if let Some(csrf) = &self.csrf {
            req = req.header("x-csrf-token", csrf);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.expect("request")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    /// `POST /api/v1/setup`; keeps the CSRF token. Returns the response data.
    pub async fn setup(&mut self, email: &str, org_slug: &str) -> Value {
        let res = self
            .post(
                "/api/v1/setup",
                json!({"email": email, "password": TEST_PASSWORD, "orgSlug": org_slug, "orgName": org_slug}),
            )
            .await;
        let status = res.status();
        let body: Value = res.json().await.expect("json");
        assert_eq!(status, 201, "setup failed: {body}");
        self.csrf = body["data"]["csrfToken"].as_str().map(str::to_string);
        body["data"].clone()
    }

    /// `POST /api/v1/auth/login`; returns the raw response.
    pub async fn login_response(
        &mut self,
        email: &str,
        password: &str,
        extra: Value,
    ) -> reqwest::Response {
        let mut body = json!({"email": email, "password": password});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        self.post("/api/v1/auth/login", body).await
    }

    pub async fn login(&mut self, email: &str, password: &str) -> Value {
        let res = self.login_response(email, password, json!({})).await;
        let status = res.status();
        let body: Value = res.json().await.expect("json");
        assert_eq!(status, 200, "login failed: {body}");
        self.csrf = body["data"]["csrfToken"].as_str().map(str::to_string);
        body["data"].clone()
    }

    pub async fn step_up(&self, password: &str) -> reqwest::Response {
        self.post("/api/v1/auth/step-up", json!({"password": password}))
            .await
    }

    /// Mints a key (the session must be fresh) and returns `(key, data)`.
    pub async fn mint_key(&self, name: &str, scopes: Option<Vec<&str>>) -> (String, Value) {
        let mut body = json!({"name": name});
        if let Some(scopes) = scopes {
            body["scopes"] = json!(scopes);
        }
        let res = self.post("/api/v1/api-keys", body).await;
        let status = res.status();
        let body: Value = res.json().await.expect("json");
        assert_eq!(status, 201, "mint failed: {body}");
        (
            body["data"]["key"].as_str().expect("key").to_string(),
            body["data"].clone(),
        )
    }
}
