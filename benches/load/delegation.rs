//! The delegation row's broker: a policy document that lets the bench's managed identity delegate `sql`
//! in the service lane, the in-memory delegation store, and one delegation created on it, whose bearer
//! the load then redeems on the Token route as a sandbox's TokenCredential client does.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use base64::Engine;
use serde_json::{Value, json};

use crate::broker::BrokerProcess;
use crate::emulator::Emulator;

pub struct DelegatingBroker {
    pub broker: BrokerProcess,
    /// The delegation bearer the load redeems.
    pub bearer: String,
    policy_dir: PathBuf,
}

impl DelegatingBroker {
    pub async fn start(emulator: &Emulator) -> anyhow::Result<Self> {
        let delegator = emulator.mint(json!({"kind": "msi"})).await?;
        let policy_dir =
            std::env::temp_dir().join(format!("bench-delegation-{}", std::process::id()));
        std::fs::create_dir_all(&policy_dir).context("create the policy folder")?;
        let policy = policy_dir.join("policy.json");
        write_settled(&policy, &document(&oid_of(&delegator)?))?;
        let policy_setting = policy.display().to_string();
        let broker = BrokerProcess::start(
            emulator,
            &[
                ("BROKER_POLICY_FILE", &policy_setting),
                ("BROKER_DELEGATION_STORE", "memory"),
            ],
        )
        .await?;
        let created: Value = reqwest::Client::new()
            .post(format!("http://{}/api/delegations", broker.addr()))
            .bearer_auth(&delegator)
            .json(&json!({"lane": "service", "audiences": ["sql"], "lifetime_seconds": 3600}))
            .send()
            .await?
            .error_for_status()
            .context("create the delegation")?
            .json()
            .await?;
        let bearer = created["token"]
            .as_str()
            .context("no bearer in the created delegation")?
            .to_owned();
        Ok(Self {
            broker,
            bearer,
            policy_dir,
        })
    }
}

impl Drop for DelegatingBroker {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.policy_dir);
    }
}

/// One grant: the delegator may delegate `sql` in the service lane, and nothing else.
fn document(delegator_oid: &str) -> Value {
    json!({
        "revision": 1,
        "audiences": {"sql": "https://database.windows.net/.default"},
        "grants": [{"name": "bench-delegator", "apps": [delegator_oid], "lane": "service",
                    "audiences": ["sql"], "delegate": true}],
    })
}

/// Writes the file with a modification time a minute old, so the broker loads it at once rather than
/// waiting out its settle time for a file that was just written.
fn write_settled(path: &std::path::Path, document: &Value) -> anyhow::Result<()> {
    std::fs::write(path, document.to_string()).context("write the policy")?;
    let file = std::fs::File::options().write(true).open(path)?;
    file.set_modified(SystemTime::now() - Duration::from_secs(60))?;
    Ok(())
}

/// The `oid` claim of a token (not verified: the bench minted it).
fn oid_of(token: &str) -> anyhow::Result<String> {
    let Some(payload) = token.split('.').nth(1) else {
        bail!("not a JWT");
    };
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?)?;
    claims["oid"]
        .as_str()
        .map(str::to_owned)
        .context("no oid claim")
}
