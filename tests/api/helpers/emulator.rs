//! `TestEmulator`: one `entra-emulator` process per test, the settings its ready line gives the broker,
//! and its control API (spec.md §2.5).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::helpers::ids::{USER2_NAME, USER2_OID, USER2_UPN, new_guid};
use crate::helpers::logs::LogLines;

const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The emulator's one `"event":"ready"` line.
#[derive(Debug, Clone, Deserialize)]
pub struct Ready {
    pub authority: String,
    pub key_vault_url: String,
    pub identity_endpoint: String,
    pub identity_header: String,
    pub control_url: String,
    pub ca_file: String,
    pub tenant_id: String,
    pub broker_client_id: String,
    pub broker_client_secret: String,
}

pub struct TestEmulator {
    pub ready: Ready,
    control: reqwest::Client,
    https: reqwest::Client,
    stdout: LogLines,
    stderr: LogLines,
    state_dir: PathBuf,
    _child: Child,
}

impl TestEmulator {
    pub async fn start() -> Self {
        let state_dir =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("emulator-{}", new_guid()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_entra-emulator"))
            .arg("--state-dir")
            .arg(&state_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn entra-emulator");
        let (stderr, _) = LogLines::collect(child.stderr.take().expect("piped stderr"));
        let stdout = LogLines::default();
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let ready = tokio::time::timeout(START_TIMEOUT, read_ready(&mut lines, &stdout))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "entra-emulator printed no ready line within {START_TIMEOUT:?}; stderr: {:?}",
                    stderr.snapshot()
                )
            })
            .unwrap_or_else(|why| panic!("{why}; stderr: {:?}", stderr.snapshot()));
        stdout.keep_collecting(lines);
        let pem = std::fs::read(&ready.ca_file).expect("read the emulator's ca.pem");
        let ca = reqwest::Certificate::from_pem(&pem).expect("parse the emulator's ca.pem");
        let https = reqwest::Client::builder()
            .tls_certs_only([ca])
            .build()
            .expect("build the HTTPS client");
        Self {
            ready,
            control: reqwest::Client::new(),
            https,
            stdout,
            stderr,
            state_dir,
            _child: child,
        }
    }

    /// The app settings a broker in front of this emulator runs with, with refresh periods short
    /// enough for tests.
    pub fn broker_settings(&self) -> Vec<(String, String)> {
        let ready = &self.ready;
        [
            ("BROKER_TENANT_ID", ready.tenant_id.as_str()),
            ("BROKER_CLIENT_ID", &ready.broker_client_id),
            ("BROKER_CLIENT_SECRET", &ready.broker_client_secret),
            ("BROKER_AUTHORITY_HOST", &ready.authority),
            ("BROKER_KEY_VAULT_URL", &ready.key_vault_url),
            ("IDENTITY_ENDPOINT", &ready.identity_endpoint),
            ("IDENTITY_HEADER", &ready.identity_header),
            ("SSL_CERT_FILE", &ready.ca_file),
            ("BROKER_ALLOWLIST_REFRESH_SECONDS", "1"),
            ("BROKER_JWKS_MIN_REFRESH_SECONDS", "1"),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
    }

    /// A client that trusts only the emulator's CA, for talking to its HTTPS listener directly.
    pub fn https_client(&self) -> &reqwest::Client {
        &self.https
    }

    /// A caller token minted by the emulator (`POST /_emulator/tokens`).
    pub async fn mint(&self, request: Value) -> String {
        let body = self.control("POST", "/tokens", Some(request)).await;
        body["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("mint answered without access_token: {body}"))
            .to_owned()
    }

    /// The default user's v2 token for the broker (Ana).
    pub async fn user_token(&self) -> String {
        self.mint(json!({})).await
    }

    /// The second user's v2 token for the broker (Ben).
    pub async fn second_user_token(&self) -> String {
        self.mint(json!({"oid": USER2_OID, "upn": USER2_UPN, "name": USER2_NAME}))
            .await
    }

    /// The default managed identity's v1 token for the broker (on the default allowlist).
    pub async fn msi_token(&self) -> String {
        self.mint(json!({"kind": "msi"})).await
    }

    /// Makes a new signing key current; the answer carries `kid` and `published`.
    pub async fn rotate_keys(&self, retire_previous: bool) -> Value {
        let request = json!({"retire_previous": retire_previous});
        self.control("POST", "/keys/rotate", Some(request)).await
    }

    /// Adds a version of the secret; returns the version's id.
    pub async fn set_secret(&self, name: &str, value: &str) -> String {
        let path = format!("/secrets/{name}");
        let body = self
            .control("PUT", &path, Some(json!({"value": value})))
            .await;
        body["version"].as_str().expect("version").to_owned()
    }

    /// How many items a Key Vault list page holds at most (Key Vault's own is 25).
    pub async fn set_key_vault_page_size(&self, size: usize) {
        let request = json!({"key_vault_page_size": size});
        self.control("POST", "/settings", Some(request)).await;
    }

    /// Injects a fault; `extra` adds `count`, `delay_ms` or `retry_after`.
    pub async fn inject_fault(&self, target: &str, mode: &str, extra: Value) {
        let mut request = json!({"target": target, "mode": mode});
        if let (Some(fields), Some(more)) = (request.as_object_mut(), extra.as_object()) {
            fields.extend(more.clone());
        }
        self.control("POST", "/faults", Some(request)).await;
    }

    pub async fn clear_faults(&self) {
        self.inject_fault("all", "none", json!({})).await;
    }

    /// What the token endpoint demands for OBO requests of `user_oid` (`resource` None: all).
    pub async fn obo_policy(&self, user_oid: &str, resource: Option<&str>, demand: &str) {
        let request = json!({"user_oid": user_oid, "resource": resource, "demand": demand});
        self.control("POST", "/obo-policy", Some(request)).await;
    }

    /// Makes a certificate (`POST /_emulator/certificates`): by default registered on the broker's
    /// app; `vault_secret` also stores it in Key Vault. The answer has `thumbprint_sha256`, `pem`,
    /// `pkcs12` (base64) and `not_after`.
    pub async fn make_certificate(&self, request: Value) -> Value {
        self.control("POST", "/certificates", Some(request)).await
    }

    /// Removes a certificate from the broker's app registration.
    pub async fn unregister_certificate(&self, thumbprint: &str) {
        let path = format!("/certificates/{thumbprint}");
        self.control("DELETE", &path, None).await;
    }

    /// Trusts the broker's user-assigned identity as a federated credential; returns the record id.
    pub async fn add_federated_credential(&self) -> String {
        let body = self
            .control("POST", "/federated-credentials", Some(json!({})))
            .await;
        body["id"].as_str().expect("record id").to_owned()
    }

    pub async fn revoke_federated_credential(&self, id: &str) {
        let path = format!("/federated-credentials/{id}");
        self.control("DELETE", &path, None).await;
    }

    /// The client assertions the token endpoint was shown, oldest first.
    pub async fn client_assertions(&self) -> Vec<String> {
        let body = self.control("GET", "/assertions", None).await;
        serde_json::from_value(body["assertions"].clone()).expect("assertions")
    }

    pub async fn stats(&self) -> Value {
        self.control("GET", "/stats", None).await
    }

    pub async fn reset_stats(&self) {
        self.control("POST", "/stats/reset", None).await;
    }

    pub async fn set_token_lifetime(&self, seconds: u64) {
        let request = json!({"token_lifetime_seconds": seconds});
        self.control("POST", "/settings", Some(request)).await;
    }

    /// Makes a redeemed refresh token unusable a second time (`strict_refresh_tokens`).
    pub async fn set_strict_refresh_tokens(&self, strict: bool) {
        let request = json!({"strict_refresh_tokens": strict});
        self.control("POST", "/settings", Some(request)).await;
    }

    /// An admin's "revoke sessions" for the user: every refresh token issued to them until now stops working.
    pub async fn revoke_sessions(&self, user_oid: &str) {
        let path = format!("/users/{user_oid}/revoke-sessions");
        self.control("POST", &path, None).await;
    }

    /// Moves the tenant's clock forward (tokens minted or checked afterwards use the new time).
    pub async fn advance_clock(&self, seconds: i64) {
        let request = json!({"advance_seconds": seconds});
        self.control("POST", "/clock", Some(request)).await;
    }

    /// A form POST to the tenant's v2 token endpoint as the broker, with its client secret; the status
    /// and the JSON answer.
    pub async fn token_endpoint(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let url = format!(
            "{}/{}/oauth2/v2.0/token",
            self.ready.authority, self.ready.tenant_id
        );
        let mut fields = vec![
            ("client_id", self.ready.broker_client_id.as_str()),
            ("client_secret", self.ready.broker_client_secret.as_str()),
        ];
        fields.extend_from_slice(form);
        let response = self
            .https
            .post(&url)
            .form(&fields)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON answer"))
    }

    async fn control(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.ready.control_url);
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let mut request = self.control.request(method.clone(), &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "{method} {url} answered {status}: {text}"
        );
        if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("{method} {url}: not JSON: {text}"))
        }
    }
}

impl Drop for TestEmulator {
    fn drop(&mut self) {
        self.stdout.dump_on_failure("emulator stdout");
        self.stderr.dump_on_failure("emulator stderr");
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

async fn read_ready(
    lines: &mut Lines<BufReader<ChildStdout>>,
    stdout: &LogLines,
) -> Result<Ready, String> {
    loop {
        let line = match lines.next_line().await {
            Ok(Some(line)) => line,
            Ok(None) => return Err("entra-emulator closed stdout before its ready line".into()),
            Err(e) => return Err(format!("read entra-emulator stdout: {e}")),
        };
        stdout.push(line.clone());
        let Ok(event) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if event["event"] == "ready" {
            return serde_json::from_value(event).map_err(|e| format!("ready line: {e}"));
        }
    }
}
