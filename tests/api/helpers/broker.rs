//! `TestBroker`: the real `token-broker` binary behind the emulated Functions host, configured for one
//! `TestEmulator`, with the calls tests make and the broker's log lines.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde_json::Value;

use crate::helpers::emulator::TestEmulator;
use crate::helpers::function_app::FunctionApp;
use crate::helpers::host::{BrokerProcess, FrontEnd};
use crate::helpers::ids::sql_request;
use crate::helpers::openapi;

const LOG_WAIT: Duration = Duration::from_secs(5);

pub struct TestBroker {
    process: BrokerProcess,
    front_end: FrontEnd,
    client: reqwest::Client,
}

impl TestBroker {
    pub async fn spawn(emulator: &TestEmulator) -> Self {
        Self::spawn_with(emulator, &[]).await
    }

    /// Starts the broker with the emulator's settings plus `overrides`, waits for readiness, and
    /// puts the host's front end before it.
    pub async fn spawn_with(emulator: &TestEmulator, overrides: &[(&str, &str)]) -> Self {
        Self::spawn_with_settings(settings(emulator, overrides)).await
    }

    /// Starts the broker with exactly these settings.
    pub async fn spawn_with_settings(settings: Vec<(String, String)>) -> Self {
        Self::start(BrokerProcess::launch(&settings)).await
    }

    /// As `spawn_with`, in a process allowed only `descriptor_limit` open descriptors.
    pub async fn spawn_with_descriptor_limit(
        emulator: &TestEmulator,
        overrides: &[(&str, &str)],
        descriptor_limit: u32,
    ) -> Self {
        let settings = settings(emulator, overrides);
        Self::start(BrokerProcess::launch_limited(
            &settings,
            Some(descriptor_limit),
        ))
        .await
    }

    async fn start(mut process: BrokerProcess) -> Self {
        process.wait_ready().await;
        let front_end = FrontEnd::start(FunctionApp::load(), process.port).await;
        Self {
            process,
            front_end,
            client: reqwest::Client::new(),
        }
    }

    /// The host's front end: what clients call.
    pub fn url(&self) -> String {
        format!("http://{}", self.front_end.addr)
    }

    /// The broker's own port, bypassing the host.
    pub fn direct_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.process.port)
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub async fn get_sp_token(&self, bearer: &str, body: Value) -> reqwest::Response {
        self.post_json("/api/GetSPToken", bearer, &body).await
    }

    pub async fn token(&self, bearer: &str, body: Value) -> reqwest::Response {
        self.post_json("/api/token", bearer, &body).await
    }

    /// A POST through the host with exactly these headers and body.
    pub async fn post_raw(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        let mut request = self.client.post(format!("{}{path}", self.url())).body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("POST through the host");
        conforming("POST", path, response).await
    }

    /// A GetSPToken call for Azure SQL with exactly these `Authorization` values, as raw bytes so that
    /// non-ASCII values can be sent; `&[]` sends none.
    pub async fn get_sp_token_with_authorization(&self, values: &[&[u8]]) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}/api/GetSPToken", self.url()))
            .json(&sql_request());
        for value in values {
            let value = HeaderValue::from_bytes(value).expect("a sendable header value");
            request = request.header(AUTHORIZATION, value);
        }
        let response = request.send().await.expect("POST /api/GetSPToken");
        conforming("POST", "/api/GetSPToken", response).await
    }

    /// `GET /api/whoami` with `bearer`, or with no `Authorization` at all.
    pub async fn whoami(&self, bearer: Option<&str>) -> reqwest::Response {
        self.get("/api/whoami", bearer).await
    }

    pub async fn health(&self) -> reqwest::Response {
        self.get("/api/health", None).await
    }

    /// A GET through the host, with the caller token when there is one.
    pub async fn get(&self, path: &str, bearer: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(format!("{}{path}", self.url()));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        conforming("GET", path, response).await
    }

    /// A JSON POST through the host with `bearer`.
    pub async fn post_json_as(&self, path: &str, bearer: &str, body: &Value) -> reqwest::Response {
        self.post_json(path, bearer, body).await
    }

    /// A DELETE through the host with `bearer`.
    pub async fn delete(&self, path: &str, bearer: &str) -> reqwest::Response {
        let response = self
            .client
            .delete(format!("{}{path}", self.url()))
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap_or_else(|e| panic!("DELETE {path}: {e}"));
        conforming("DELETE", path, response).await
    }

    /// SIGTERM, then up to `bound` for the exit; `None` if the broker is still running then.
    pub async fn terminate(&mut self, bound: Duration) -> Option<std::process::ExitStatus> {
        self.process.terminate(bound).await
    }

    pub fn stdout_lines(&self) -> Vec<String> {
        self.process.stdout_lines()
    }

    pub fn stderr_lines(&self) -> Vec<String> {
        self.process.stderr_lines()
    }

    /// Every line the broker wrote so far, stdout then stderr.
    pub fn all_lines(&self) -> Vec<String> {
        let mut lines = self.stdout_lines();
        lines.extend(self.stderr_lines());
        lines
    }

    /// The parsed stdout lines whose `target` is `audit`.
    pub fn audit_lines(&self) -> Vec<Value> {
        self.stdout_lines()
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line["target"] == "audit")
            .collect()
    }

    /// GetSPToken for Azure SQL as `bearer`, asked every 200 ms until `done` holds for the status or
    /// `wait` has passed; the last answer. For what the broker picks up on its own schedule.
    pub async fn get_sql_token_until(
        &self,
        bearer: &str,
        wait: Duration,
        done: impl Fn(reqwest::StatusCode) -> bool,
    ) -> reqwest::Response {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let response = self.get_sp_token(bearer, sql_request()).await;
            if done(response.status()) || tokio::time::Instant::now() >= deadline {
                return response;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The audit lines once at least `count` have been written (the line may trail the response).
    pub async fn wait_for_audit_lines(&self, count: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + LOG_WAIT;
        loop {
            let lines = self.audit_lines();
            if lines.len() >= count || tokio::time::Instant::now() >= deadline {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn post_json(&self, path: &str, bearer: &str, body: &Value) -> reqwest::Response {
        let response = self
            .client
            .post(format!("{}{path}", self.url()))
            .bearer_auth(bearer)
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        conforming("POST", path, response).await
    }
}

/// The same response, once its JSON body has been checked against docs/openapi.yaml.
async fn conforming(method: &str, path: &str, response: reqwest::Response) -> reqwest::Response {
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("read the response body");
    let json = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if json {
        openapi::assert_conforms(method, path, status.as_u16(), &body);
    }
    let mut rebuilt = warp::http::Response::new(body);
    *rebuilt.status_mut() = status;
    *rebuilt.headers_mut() = headers;
    reqwest::Response::from(rebuilt)
}

/// The emulator's broker settings with `overrides` replacing or adding entries.
pub fn settings(emulator: &TestEmulator, overrides: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut settings = emulator.broker_settings();
    for (name, value) in overrides {
        settings.retain(|(existing, _)| existing != name);
        settings.push(((*name).to_owned(), (*value).to_owned()));
    }
    settings
}
