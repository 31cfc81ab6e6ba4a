//! The release `entra-emulator` for the bench: started on loopback with its own state directory, its
//! ready line parsed into broker settings, and the few control-API calls the scenarios need.

use std::path::PathBuf;

use anyhow::{Context, bail};
use futures_util::{StreamExt, TryStreamExt, stream};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::process::Process;

/// Control-API calls in flight while minting tokens.
const MINT_CONCURRENCY: usize = 16;

/// The fields of the emulator's `{"event":"ready",...}` line that the broker needs.
#[derive(Deserialize)]
struct ReadyLine {
    authority: String,
    key_vault_url: String,
    identity_endpoint: String,
    identity_header: String,
    control_url: String,
    ca_file: String,
    tenant_id: String,
    broker_client_id: String,
    broker_client_secret: String,
}

pub struct Emulator {
    ready: ReadyLine,
    control: reqwest::Client,
    state_dir: PathBuf,
    _process: Process,
}

impl Emulator {
    pub async fn start() -> anyhow::Result<Self> {
        let state_dir =
            std::env::temp_dir().join(format!("token-broker-bench-{}", std::process::id()));
        let mut command = Command::new(env!("CARGO_BIN_EXE_entra-emulator"));
        command.arg("--state-dir").arg(&state_dir);
        let mut process = Process::spawn("entra-emulator", command, |line| {
            line.contains(r#""event":"ready""#)
        })?;
        let line = process.ready().await?;
        let ready: ReadyLine =
            serde_json::from_str(&line).context("parse the emulator's ready line")?;
        Ok(Self {
            ready,
            control: reqwest::Client::new(),
            state_dir,
            _process: process,
        })
    }

    /// The broker's environment, as spec.md section 3 lists it for a run against the emulator.
    pub fn broker_env(&self) -> Vec<(&'static str, String)> {
        let ready = &self.ready;
        vec![
            ("BROKER_TENANT_ID", ready.tenant_id.clone()),
            ("BROKER_CLIENT_ID", ready.broker_client_id.clone()),
            ("BROKER_CLIENT_SECRET", ready.broker_client_secret.clone()),
            ("BROKER_AUTHORITY_HOST", ready.authority.clone()),
            ("BROKER_KEY_VAULT_URL", ready.key_vault_url.clone()),
            ("IDENTITY_ENDPOINT", ready.identity_endpoint.clone()),
            ("IDENTITY_HEADER", ready.identity_header.clone()),
            ("SSL_CERT_FILE", ready.ca_file.clone()),
        ]
    }

    /// `count` distinct tokens for the default allowlisted MSI caller (each with its own `uti`).
    pub async fn mint_msi_tokens(&self, count: usize) -> anyhow::Result<Vec<String>> {
        let tokens: Vec<String> = stream::iter(0..count)
            .map(|i| self.mint(json!({"kind": "msi", "claims": {"uti": format!("bench-{i}")}})))
            .buffered(MINT_CONCURRENCY)
            .try_collect()
            .await?;
        let mut distinct = tokens.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() != count {
            bail!("minted {count} tokens but only {} differ", distinct.len());
        }
        Ok(tokens)
    }

    /// A caller token from `POST /_emulator/tokens` with `body` as the request.
    pub async fn mint(&self, body: Value) -> anyhow::Result<String> {
        let reply = self.post("tokens", &body).await?;
        reply["access_token"]
            .as_str()
            .map(str::to_owned)
            .context("mint: no access_token in the reply")
    }

    /// `POST /_emulator/faults` with `fault` as the body.
    pub async fn inject_fault(&self, fault: Value) -> anyhow::Result<()> {
        self.post("faults", &fault).await.map(drop)
    }

    /// `POST /_emulator/keys/rotate`: a new current key; the previous one stays published unless retired.
    pub async fn rotate_keys(&self, retire_previous: bool) -> anyhow::Result<()> {
        let body = json!({ "retire_previous": retire_previous });
        self.post("keys/rotate", &body).await.map(drop)
    }

    /// The authority host (with a trailing slash), the tenant id, and the CA file its TLS chains to.
    pub fn authority(&self) -> (&str, &str, &str) {
        let ready = &self.ready;
        (&ready.authority, &ready.tenant_id, &ready.ca_file)
    }

    /// How many client-credentials requests the token endpoint has answered so far.
    pub async fn client_credentials_calls(&self) -> anyhow::Result<u64> {
        let url = format!("{}/stats", self.ready.control_url);
        let stats: Value = self.control.get(url).send().await?.json().await?;
        stats["token_requests"]["client_credentials"]
            .as_u64()
            .context("stats: no token_requests.client_credentials")
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let url = format!("{}/{path}", self.ready.control_url);
        let response = self.control.post(&url).json(body).send().await?;
        let status = response.status();
        if !status.is_success() {
            bail!("POST {url}: {status}: {}", response.text().await?);
        }
        Ok(response.json().await?)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}
