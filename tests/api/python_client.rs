//! The published Python TokenCredential client, unchanged, from PyPI (`vibedata-studio-azure-cred-broker`):
//! 0.2.0 through the access helper's socket with no bearer in its environment or files, 0.2.0 falling back
//! to the bearer file without a socket, and 0.1.0 against the broker with the bearer file; with an Entra
//! token as the bearer, and with a delegation bearer (issue 18) that the backend rotates and revokes.
//!
//! `.ci/python-clients` installs both versions into target/python-clients/<version>/: `.ci/run` calls it
//! before the tests, and the first test that finds a version missing runs it; one that still cannot be had
//! fails these tests, saying why.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::delegations::{bearer_of, broker_with_delegations, id_of, rotate, user_delegation};
use crate::helpers::access_helper::{TestHelper, scratch_dir};
use crate::helpers::assertions::decode_claims;
use crate::helpers::broker::TestBroker;
use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::{SQL_RESOURCE, USER_OID};
use crate::helpers::test_tools;

const SQL: &str = "https://database.windows.net/.default";
const STORAGE: &str = "https://storage.azure.com/.default";
/// Mapped by the script to the alias `graph`, which the broker does not know (403 `unknown_audience`).
const GRAPH: &str = "https://graph.microsoft.com/.default";

/// Asks for each scope given and prints one JSON line per scope: the token, or the error and the code the
/// client raised with (0.2.0 chains the helper's `RuntimeAccessError`, which carries it).
const SCRIPT: &str = r#"
import json, os, sys
from vibedata_studio_azure_cred_broker import StudioAzureCredBroker, __version__
print(json.dumps({"version": __version__, "bearer_pointer": "VD_CREDENTIAL_FILE" in os.environ}))
credential = StudioAzureCredBroker(audience_map={"https://graph.microsoft.com": "graph"})
for scope in sys.argv[1:]:
    try:
        token = credential.get_token(scope)
        print(json.dumps({"scope": scope, "token": token.token, "expires_on": token.expires_on}))
    except Exception as error:
        cause = error.__cause__
        print(json.dumps({"scope": scope, "error": str(error), "code": getattr(cause, "code", None)}))
"#;

fn client_dir(version: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("python-clients")
        .join(version);
    assert!(
        test_tools::ensure("python-clients", || dir.join(".installed").is_file()),
        "the Python client {version} is not installed in {} and `bash .ci/python-clients` could not \
         install it (it needs python3 3.11 or newer with pip, and PyPI)",
        dir.display(),
    );
    dir
}

/// Runs the published client `version` with exactly `env` (plus PATH and HOME to find python3) and one
/// `get_token` per scope; returns the header line and one line per scope.
async fn run_client(version: &str, env: &[(&str, String)], scopes: &[&str]) -> (Value, Vec<Value>) {
    let mut command = tokio::process::Command::new("python3");
    command
        .env_clear()
        .env("PYTHONPATH", client_dir(version))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .envs(
            ["PATH", "HOME"]
                .iter()
                .filter_map(|name| Some((name, std::env::var(name).ok()?))),
        )
        .envs(env.iter().map(|(name, value)| (name, value)))
        .arg("-c")
        .arg(SCRIPT)
        .args(scopes)
        .kill_on_drop(true);
    let output = command.output().await.expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "python client {version} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut lines = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"));
    let header: Value = lines.next().expect("the header line");
    assert_eq!(header["version"], version);
    (header, lines.collect())
}

fn claims_of(line: &Value) -> Value {
    let token = line["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token: {line}"));
    decode_claims(token)
}

fn audience_of(line: &Value) -> Value {
    claims_of(line)["aud"].clone()
}

/// Asserts the first two lines are the default user's tokens for Azure SQL and for Storage.
#[track_caller]
fn assert_user_tokens_for_sql_and_storage(lines: &[Value]) {
    assert_eq!(audience_of(&lines[0]), SQL_RESOURCE);
    assert_eq!(claims_of(&lines[0])["oid"], USER_OID);
    assert_eq!(audience_of(&lines[1]), "https://storage.azure.com");
}

/// The agent's whole environment with the helper: where its socket is, and no bearer.
fn agent_env(helper: &TestHelper) -> [(&'static str, String); 1] {
    [(
        "VD_RUNTIME_ACCESS_SOCKET",
        helper.socket.display().to_string(),
    )]
}

/// A fresh scratch directory holding `bearer` in its file `bearer`; the directory and the file.
fn scratch_bearer_file(bearer: &str) -> (PathBuf, PathBuf) {
    let dir = scratch_dir();
    let bearer_file = dir.join("bearer");
    std::fs::write(&bearer_file, bearer).unwrap();
    (dir, bearer_file)
}

/// The environment of client 0.1.0: the broker's URL and the bearer file.
fn client_0_1_0_env(broker: &TestBroker, bearer_file: &Path) -> [(&'static str, String); 2] {
    [
        ("VD_AZ_TOKEN_URL", format!("{}/api", broker.url())),
        ("VD_CREDENTIAL_FILE", bearer_file.display().to_string()),
    ]
}

#[tokio::test]
async fn client_0_2_0_gets_tokens_through_the_helper_without_holding_the_bearer() {
    // Arrange
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let helper = TestHelper::spawn(&broker, "user", &emulator.user_token().await).await;
    let agent_env = agent_env(&helper);

    // Act
    let (header, lines) = run_client("0.2.0", &agent_env, &[SQL, STORAGE, GRAPH]).await;

    // Assert
    assert_eq!(header["bearer_pointer"], false);
    assert_user_tokens_for_sql_and_storage(&lines);
    assert_eq!(lines[2]["code"], "unknown_audience", "{}", lines[2]);
    let audit = broker.wait_for_audit_lines(3).await;
    assert_eq!(audit.len(), 3);
}

#[tokio::test]
async fn client_0_2_0_raises_with_the_helpers_code_when_the_bearer_is_gone() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let helper = TestHelper::spawn(&broker, "user", &emulator.user_token().await).await;
    std::fs::remove_file(&helper.bearer_file).unwrap();

    let agent_env = agent_env(&helper);
    let (_, lines) = run_client("0.2.0", &agent_env, &[SQL]).await;

    assert_eq!(lines[0]["code"], "credential_unavailable", "{}", lines[0]);
}

#[tokio::test]
async fn client_0_2_0_without_a_socket_falls_back_to_the_bearer_file() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let (dir, bearer_file) = scratch_bearer_file(&emulator.user_token().await);
    let env = [
        (
            "VD_RUNTIME_ACCESS_SOCKET",
            dir.join("absent.sock").display().to_string(),
        ),
        ("VD_CREDENTIAL_BROKER_URL", format!("{}/api", broker.url())),
        ("VD_CREDENTIAL_FILE", bearer_file.display().to_string()),
        ("VD_CREDENTIAL_LANE", "user".to_owned()),
        ("VD_CREDENTIAL_CONFIGURATION_REVISION", "1".to_owned()),
    ];

    let (_, lines) = run_client("0.2.0", &env, &[SQL, GRAPH]).await;

    assert_eq!(audience_of(&lines[0]), SQL_RESOURCE);
    let refused = lines[1]["error"].as_str().unwrap_or_default();
    assert!(refused.contains("403"), "{}", lines[1]);
    let audit = broker.wait_for_audit_lines(2).await;
    assert_eq!(audit[0]["label"], "data_platform");
    assert_eq!(audit[0]["lane"], "user");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn client_0_1_0_gets_a_token_from_the_broker_with_the_bearer_file() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let (dir, bearer_file) = scratch_bearer_file(&emulator.user_token().await);
    let env = client_0_1_0_env(&broker, &bearer_file);

    let (_, lines) = run_client("0.1.0", &env, &[SQL, GRAPH]).await;

    assert_eq!(audience_of(&lines[0]), SQL_RESOURCE);
    assert!(
        lines[1]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("403"),
        "{}",
        lines[1]
    );
    assert_eq!(broker.wait_for_audit_lines(2).await.len(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Mapped by the client to the alias `arm`, which the policy knows but the delegation does not hold.
const ARM: &str = "https://management.azure.com/.default";

#[tokio::test]
async fn client_0_2_0_redeems_a_delegation_bearer_through_the_helper_for_its_audiences_only() {
    // Arrange: a backend's user-lane delegation of `sql` and `storage`, its bearer held by the helper.
    let emulator = TestEmulator::start().await;
    let broker = broker_with_delegations(&emulator).await;
    let created = user_delegation(&emulator, &broker).await;
    let helper = TestHelper::spawn(&broker, "user", &bearer_of(&created)).await;
    let agent_env = agent_env(&helper);

    // Act
    let (header, lines) = run_client("0.2.0", &agent_env, &[SQL, STORAGE, ARM]).await;

    // Assert: the user's own tokens for the delegated audiences, the broker's code for the third.
    assert_eq!(header["bearer_pointer"], false);
    assert_user_tokens_for_sql_and_storage(&lines);
    assert_eq!(lines[2]["code"], "audience_not_delegated", "{}", lines[2]);
}

#[tokio::test]
async fn client_0_1_0_follows_a_rotated_delegation_bearer_in_its_file_until_revocation() {
    // Arrange: the backend writes the delegation's bearer into the sandbox's credential file.
    let emulator = TestEmulator::start().await;
    let broker = broker_with_delegations(&emulator).await;
    let backend = emulator.msi_token().await;
    let created = user_delegation(&emulator, &broker).await;
    let id = id_of(&created);
    let (dir, bearer_file) = scratch_bearer_file(&bearer_of(&created));
    let env = client_0_1_0_env(&broker, &bearer_file);

    // Act: a call, the backend rotates the bearer in the file, a call, the backend revokes, a call.
    let (_, first) = run_client("0.1.0", &env, &[SQL]).await;
    let rotated = rotate(&broker, &backend, &id).await;
    assert_ne!(rotated["token"], created["token"]);
    std::fs::write(&bearer_file, bearer_of(&rotated)).unwrap();
    let (_, second) = run_client("0.1.0", &env, &[STORAGE]).await;
    let revoked = broker
        .delete(&format!("/api/delegations/{id}"), &backend)
        .await;
    assert_eq!(revoked.status(), 204);
    let (_, third) = run_client("0.1.0", &env, &[SQL]).await;

    // Assert
    assert_eq!(audience_of(&first[0]), SQL_RESOURCE);
    assert_eq!(audience_of(&second[0]), "https://storage.azure.com");
    assert_eq!(claims_of(&second[0])["oid"], USER_OID);
    let refused = third[0]["error"].as_str().unwrap_or_default();
    assert!(refused.contains("401"), "{}", third[0]);
    let _ = std::fs::remove_dir_all(&dir);
}
