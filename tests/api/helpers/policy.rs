//! Grants policy fixtures: the example document (sales workspace, ingestion pipeline, analysts,
//! every user's own SQL), the identities it names, and a broker that reads it from the emulator's Key
//! Vault.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::assertions::json_body;
use crate::helpers::broker::TestBroker;
use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::{MSI_OID, OTHER_MSI_OID};

pub const POLICY_SECRET: &str = "broker-policy";
/// The sales workspace's identity: the emulator's default managed identity.
pub const SALES_OID: &str = MSI_OID;
/// The ingestion pipeline's identity, which holds the `Broker.Ingest` app role.
pub const INGEST_OID: &str = "6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8c9d";
pub const INGEST_ROLE: &str = "Broker.Ingest";
/// An identity no grant names.
pub const STRANGER_OID: &str = OTHER_MSI_OID;
pub const ANALYSTS_GROUP: &str = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a";

pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";
pub const FABRIC_SCOPE: &str = "https://api.fabric.microsoft.com/.default";

const POLICY_WAIT: Duration = Duration::from_secs(10);

/// The example document at `revision`.
pub fn example_document(revision: u64) -> Value {
    json!({
        "revision": revision,
        "audiences": {
            "sql": "https://database.windows.net/.default",
            "storage": STORAGE_SCOPE,
            "fabric_api": FABRIC_SCOPE,
        },
        "grants": [
            {"name": "sales-workspace-sql", "apps": [SALES_OID], "lane": "service",
             "scopes": ["https://database.windows.net/.default"]},
            {"name": "ingestion-storage", "apps": {"app_role": INGEST_ROLE}, "lane": "service",
             "audiences": ["storage"]},
            {"name": "analysts-own-fabric", "users": {"groups": [ANALYSTS_GROUP]}, "lane": "user",
             "audiences": ["fabric_api"]},
            {"name": "everyone-own-sql", "users": "tenant", "lane": "user", "audiences": ["sql"]},
        ],
    })
}

/// A broker that reads `document` from the emulator's Key Vault.
pub async fn broker_with_policy(emulator: &TestEmulator, document: &Value) -> TestBroker {
    emulator
        .set_secret(POLICY_SECRET, &document.to_string())
        .await;
    TestBroker::spawn_with(emulator, &[("BROKER_POLICY_SECRET_NAME", POLICY_SECRET)]).await
}

pub async fn sales_token(emulator: &TestEmulator) -> String {
    emulator.msi_token().await
}

pub async fn ingest_token(emulator: &TestEmulator) -> String {
    emulator
        .mint(json!({"kind": "msi", "oid": INGEST_OID, "roles": [INGEST_ROLE]}))
        .await
}

pub async fn stranger_token(emulator: &TestEmulator) -> String {
    emulator
        .mint(json!({"kind": "msi", "oid": STRANGER_OID}))
        .await
}

/// Ana, in the analysts group.
pub async fn analyst_token(emulator: &TestEmulator) -> String {
    emulator.mint(json!({"groups": [ANALYSTS_GROUP]})).await
}

/// Ana, in so many groups that the token carries the overage claims instead.
pub async fn overage_analyst_token(emulator: &TestEmulator) -> String {
    emulator
        .mint(json!({"groups": [ANALYSTS_GROUP], "group_overage": true}))
        .await
}

/// The broker's health body once `ready` holds for it (the policy is re-read every second).
pub async fn health_when(broker: &TestBroker, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + POLICY_WAIT;
    loop {
        let body = json_body(broker.health().await).await;
        if ready(&body) || tokio::time::Instant::now() >= deadline {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
