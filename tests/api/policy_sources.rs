//! One decision from one source (issue 17 items 1 and 5): a Key Vault document's version in force comes
//! from the secret's history, so a broker started after a refused upload refuses it too; a policy file
//! is loaded only when nothing is writing it, and a file that blocks its reader hangs nothing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::assertions::{assert_error, assert_issued};
use crate::helpers::broker::TestBroker;
use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::{new_guid, sql_request};
use crate::helpers::policy::{
    POLICY_SECRET, STORAGE_SCOPE, broker_with_policy, example_document, health_when, sales_token,
};

fn storage_request() -> Value {
    json!({"targetScope": STORAGE_SCOPE})
}

/// `example_document(revision)` that also grants the sales workspace Storage.
fn with_sales_storage(revision: u64) -> Value {
    let mut document = example_document(revision);
    document["grants"][0]["scopes"] =
        json!(["https://database.windows.net/.default", STORAGE_SCOPE]);
    document
}

/// The revision a broker decides by, and whether the sales workspace gets Storage under it.
async fn decision(broker: &TestBroker, sales: &str) -> (Value, u16) {
    let health = health_when(broker, |_| true).await;
    let storage = broker.get_sp_token(sales, storage_request()).await;
    (
        health["policy"]["revision"].clone(),
        storage.status().as_u16(),
    )
}

/// The secret versions a broker's health names: in force, and refused.
async fn versions(broker: &TestBroker) -> (Value, Value) {
    let health = health_when(broker, |_| true).await;
    (
        health["policy"]["version"].clone(),
        health["policy"]["refused_version"].clone(),
    )
}

#[tokio::test]
async fn a_broker_started_after_a_same_revision_upload_refuses_it_too() {
    // Arrange: the first broker runs revision 7; a different revision 7 is uploaded and refused.
    let emulator = TestEmulator::start().await;
    let first = broker_with_policy(&emulator, &example_document(7)).await;
    let in_force = health_when(&first, |h| !h["policy"]["version"].is_null()).await;
    let changed = emulator
        .set_secret(POLICY_SECRET, &with_sales_storage(7).to_string())
        .await;
    health_when(&first, |h| !h["policy"]["last_refusal"].is_null()).await;

    // Act: a second broker starts now, as a scale-out would.
    let second =
        TestBroker::spawn_with(&emulator, &[("BROKER_POLICY_SECRET_NAME", POLICY_SECRET)]).await;
    let sales = sales_token(&emulator).await;

    // Assert: both run the first revision 7 and refuse Storage, and name the same versions.
    assert_eq!(
        decision(&first, &sales).await,
        (json!(7), 403),
        "first broker"
    );
    assert_eq!(
        decision(&second, &sales).await,
        (json!(7), 403),
        "second broker"
    );
    let named = (in_force["policy"]["version"].clone(), json!(changed));
    assert_eq!(versions(&first).await, named, "first broker");
    assert_eq!(versions(&second).await, named, "second broker");
    let health = health_when(&second, |_| true).await;
    assert_eq!(health["reasons"], json!(["policy_refused"]), "{health}");
    let refusal = health["policy"]["last_refusal"]
        .as_str()
        .unwrap_or_default();
    assert!(refusal.contains("is not higher"), "{health}");
}

#[tokio::test]
async fn a_broker_started_after_a_rollback_upload_refuses_it_too() {
    // Arrange: one history entry per page, so the brokers follow nextLink. Revision 3, then 4 (which
    // grants Storage), then 3 again: the rollback is refused.
    let emulator = TestEmulator::start().await;
    emulator.set_key_vault_page_size(1).await;
    let first = broker_with_policy(&emulator, &example_document(3)).await;
    let raised = emulator
        .set_secret(POLICY_SECRET, &with_sales_storage(4).to_string())
        .await;
    health_when(&first, |h| h["policy"]["revision"] == 4).await;
    let rollback = emulator
        .set_secret(POLICY_SECRET, &example_document(3).to_string())
        .await;
    health_when(&first, |h| !h["policy"]["refused_version"].is_null()).await;

    // Act
    let second =
        TestBroker::spawn_with(&emulator, &[("BROKER_POLICY_SECRET_NAME", POLICY_SECRET)]).await;
    let sales = sales_token(&emulator).await;

    // Assert: revision 4 decides on both, and both name the same versions.
    assert_eq!(
        decision(&first, &sales).await,
        (json!(4), 200),
        "first broker"
    );
    assert_eq!(
        decision(&second, &sales).await,
        (json!(4), 200),
        "second broker"
    );
    let named = (json!(raised), json!(rollback));
    assert_eq!(versions(&first).await, named, "first broker");
    assert_eq!(versions(&second).await, named, "second broker");
}

#[tokio::test]
async fn a_higher_revision_after_a_refused_upload_is_in_force_everywhere() {
    // Arrange
    let emulator = TestEmulator::start().await;
    let first = broker_with_policy(&emulator, &example_document(7)).await;
    emulator
        .set_secret(POLICY_SECRET, &with_sales_storage(7).to_string())
        .await;
    health_when(&first, |h| !h["policy"]["refused_version"].is_null()).await;

    // Act
    let fixed = emulator
        .set_secret(POLICY_SECRET, &with_sales_storage(8).to_string())
        .await;
    let health = health_when(&first, |h| h["policy"]["revision"] == 8).await;
    let second =
        TestBroker::spawn_with(&emulator, &[("BROKER_POLICY_SECRET_NAME", POLICY_SECRET)]).await;
    let sales = sales_token(&emulator).await;

    // Assert: no refusal left, and both agree.
    assert_eq!(health["status"], "ready", "{health}");
    assert_eq!(
        decision(&first, &sales).await,
        (json!(8), 200),
        "first broker"
    );
    assert_eq!(
        decision(&second, &sales).await,
        (json!(8), 200),
        "second broker"
    );
    let named = (json!(fixed), Value::Null);
    assert_eq!(versions(&first).await, named, "first broker");
    assert_eq!(versions(&second).await, named, "second broker");
}

/// A fresh directory for one test's policy file.
fn policy_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("policy-{}", new_guid()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn broker_with_file(emulator: &TestEmulator, file: &Path) -> TestBroker {
    let broker =
        TestBroker::spawn_with(emulator, &[("BROKER_POLICY_FILE", file.to_str().unwrap())]).await;
    let health = health_when(&broker, |h| h["policy"]["loaded"] == true).await;
    assert_eq!(health["policy"]["revision"], 1, "{health}");
    broker
}

/// A document as compact JSON with `revision` first, so two documents share their bytes up to the
/// revision's digit.
fn revision_first(document: &Value) -> String {
    format!(
        r#"{{"revision":{},"audiences":{},"grants":{}}}"#,
        document["revision"], document["audiences"], document["grants"]
    )
}

#[tokio::test]
async fn a_policy_file_caught_half_written_is_not_loaded() {
    // Arrange: revision 1 without Storage for the sales workspace.
    let emulator = TestEmulator::start().await;
    let dir = policy_dir();
    let file = dir.join("policy.json");
    let old = revision_first(&example_document(1));
    std::fs::write(&file, &old).unwrap();
    let broker = broker_with_file(&emulator, &file).await;
    let sales = sales_token(&emulator).await;
    let new = revision_first(&with_sales_storage(2));

    // Act: a writer that overwrites in place has written the new head only. The file now parses as
    // revision 2 with revision 1's grants.
    let head = r#"{"revision":2"#;
    let mut writer = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    writer.write_all(head.as_bytes()).unwrap();
    writer.flush().unwrap();
    let torn = health_when(&broker, |h| {
        h["policy"]["revision"] != 1 || !h["policy"]["last_refusal"].is_null()
    })
    .await;
    // The writer finishes.
    writer.write_all(&new.as_bytes()[head.len()..]).unwrap();
    writer.set_len(new.len() as u64).unwrap();
    drop(writer);

    // Assert: the torn file was never in force; the finished one is, and is not refused.
    assert_eq!(torn["policy"]["revision"], 1, "{torn}");
    let refusal = torn["policy"]["last_refusal"].as_str().unwrap_or_default();
    assert!(refusal.contains("changed less than"), "{torn}");
    let health = health_when(&broker, |h| h["policy"]["revision"] == 2).await;
    assert_eq!(health["policy"]["last_refusal"], Value::Null, "{health}");
    assert_issued(broker.get_sp_token(&sales, storage_request()).await).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_fifo_as_policy_file_hangs_nothing_and_a_later_revocation_takes_effect() {
    // Arrange
    let emulator = TestEmulator::start().await;
    let dir = policy_dir();
    let file = dir.join("policy.json");
    std::fs::write(&file, example_document(1).to_string()).unwrap();
    let broker = broker_with_file(&emulator, &file).await;
    let sales = sales_token(&emulator).await;

    // Act: the file becomes a FIFO nobody writes to.
    std::fs::remove_file(&file).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&file)
        .status()
        .unwrap();
    assert!(made.success());
    let failing = health_when(&broker, |h| {
        h["reasons"]
            .as_array()
            .is_some_and(|r| r.contains(&json!("policy_refresh_failing")))
    })
    .await;

    // Assert: health counts the failed reads, requests are answered by the last good document...
    assert_eq!(failing["status"], "degraded", "{failing}");
    assert!(
        failing["policy"]["failed_reads"].as_u64() >= Some(3),
        "{failing}"
    );
    let answered = tokio::time::timeout(
        Duration::from_secs(5),
        broker.get_sp_token(&sales, sql_request()),
    )
    .await
    .expect("a request hung behind the policy file");
    assert_issued(answered).await;

    // ...and a document that revokes the sales workspace, written meanwhile, takes effect.
    let mut revoking = example_document(2);
    revoking["grants"][0]["apps"] = json!([crate::helpers::ids::new_guid()]);
    std::fs::remove_file(&file).unwrap();
    std::fs::write(&file, revoking.to_string()).unwrap();
    health_when(&broker, |h| h["policy"]["revision"] == 2).await;
    let body = assert_error(
        broker.get_sp_token(&sales, sql_request()).await,
        403,
        "caller_not_allowed",
    )
    .await;
    assert_eq!(body["policy_revision"], 2);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The emulator's Key Vault answers a list of versions as Key Vault does: pages of properties joined by
/// `nextLink`, oldest first, never a value, and 400 for a malformed query.
#[tokio::test]
async fn the_emulated_key_vault_lists_versions_in_pages_without_values() {
    // Arrange: three versions, and the Function App identity's token for Key Vault.
    let emulator = TestEmulator::start().await;
    let mut uploaded = Vec::new();
    for value in ["one", "two", "three"] {
        uploaded.push(emulator.set_secret("listed", value).await);
    }
    let identity: Value = emulator
        .https_client()
        .get(format!(
            "{}?api-version=2019-08-01&resource=https%3A%2F%2Fvault.azure.net",
            emulator.ready.identity_endpoint
        ))
        .header("x-identity-header", &emulator.ready.identity_header)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = format!("Bearer {}", identity["access_token"].as_str().unwrap());
    let list = |url: String| {
        let request = emulator
            .https_client()
            .get(url)
            .header("authorization", &bearer);
        async move {
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let base = format!("{}secrets/listed/versions", emulator.ready.key_vault_url);

    // Act
    let (status, first) = list(format!("{base}?api-version=7.6&maxresults=2")).await;
    let next = first["nextLink"].as_str().unwrap_or_default().to_owned();
    let (next_status, second) = list(next).await;

    // Assert
    assert_eq!((status, next_status), (200, 200), "{first} {second}");
    assert!(second["nextLink"].is_null(), "{second}");
    let items: Vec<&Value> = [&first, &second]
        .iter()
        .flat_map(|page| page["value"].as_array().unwrap())
        .collect();
    let ids: Vec<String> = items
        .iter()
        .map(|item| {
            item["id"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids, uploaded);
    for item in &items {
        assert!(item.get("value").is_none(), "{item}");
        assert_eq!(item["attributes"]["enabled"], true, "{item}");
        assert!(item["attributes"]["created"].is_i64(), "{item}");
    }
    for (query, case) in [
        ("", "no api-version"),
        ("?api-version=7.6&maxresults=26", "maxresults over 25"),
        ("?api-version=7.6&$skiptoken=bm9wZQ", "a forged skip token"),
        ("?api-version=7.6&api-version=7.6", "a repeated parameter"),
    ] {
        let (status, body) = list(format!("{base}{query}")).await;
        assert_eq!(status, 400, "case `{case}`: {body}");
        assert_eq!(body["error"]["code"], "BadParameter", "case `{case}`");
    }
}
