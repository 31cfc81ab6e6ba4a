//! The runtime-access helper (issue 19): the real `access-helper` binary on its Unix socket, minting at the
//! real broker behind the emulated host, against the emulator. Both lanes, every refusal with its code
//! and header, bearer rotation, single flight, hostile clients, settings and a clean stop.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::helpers::access_helper::{TestHelper, command, scratch_dir, settings_for};
use crate::helpers::assertions::{assert_no_line_reveals, decode_claims};
use crate::helpers::broker::TestBroker;
use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::{BROKER_SP_OID, SQL_RESOURCE, USER_OID, USER2_OID};

fn sql() -> Value {
    json!({"scope": "data_platform", "audience": "sql"})
}

/// The issued token's claims, once the answer is a 200 with `access_token` and `expires_in`.
fn issued_claims(answer: &crate::helpers::access_helper::Answer) -> Value {
    assert_eq!(answer.status, 200, "not issued: {}", answer.body);
    assert_eq!(answer.error_header(), None);
    assert!(
        answer.body["expires_in"].as_u64().is_some_and(|s| s > 0),
        "{}",
        answer.body
    );
    decode_claims(answer.body["access_token"].as_str().expect("access_token"))
}

#[tokio::test]
async fn user_lane_helper_mints_a_sql_token_issued_to_the_bearers_user() {
    // Arrange
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let helper = TestHelper::spawn(&broker, "user", &emulator.user_token().await).await;

    // Act
    let answer = helper.credentials(sql()).await;

    // Assert
    let claims = issued_claims(&answer);
    assert_eq!(claims["aud"], SQL_RESOURCE);
    assert_eq!(claims["oid"], USER_OID);
    assert_eq!(answer.body["lane"], "user");
    let audit = broker.wait_for_audit_lines(1).await;
    assert_eq!(audit[0]["label"], "data_platform", "audit: {}", audit[0]);
}

#[tokio::test]
async fn service_lane_helper_mints_the_brokers_token_for_an_allowlisted_identity() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let helper = TestHelper::spawn(&broker, "service", &emulator.msi_token().await).await;

    let answer = helper
        .credentials(json!({"scope": "data_platform", "audience": "storage", "target": "intent"}))
        .await;

    let claims = issued_claims(&answer);
    assert_eq!(claims["aud"], "https://storage.azure.com");
    assert_eq!(claims["oid"], BROKER_SP_OID);
    assert_eq!(answer.body["lane"], "service");
}

#[tokio::test]
async fn requests_that_are_not_the_protocol_are_refused_with_code_and_header() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let helper = TestHelper::spawn(&broker, "user", &emulator.user_token().await).await;
    let json = Some("application/json");
    let big = format!(
        r#"{{"scope":"data_platform","audience":"sql","pad":"{}"}}"#,
        "x".repeat(9 * 1024)
    );

    let cases = [
        (
            "studio route",
            "GET",
            "/v1/studio/intents/1",
            None,
            String::new(),
            404,
            "not_supported",
        ),
        (
            "other path",
            "POST",
            "/token",
            json,
            sql().to_string(),
            404,
            "not_supported",
        ),
        (
            "root",
            "GET",
            "/",
            None,
            String::new(),
            404,
            "not_supported",
        ),
        (
            "GET credentials",
            "GET",
            "/v1/credentials",
            None,
            String::new(),
            405,
            "invalid_request",
        ),
        (
            "no content type",
            "POST",
            "/v1/credentials",
            None,
            sql().to_string(),
            415,
            "invalid_request",
        ),
        (
            "not JSON",
            "POST",
            "/v1/credentials",
            json,
            "scope=sql".into(),
            400,
            "invalid_request",
        ),
        (
            "agent picks the lane",
            "POST",
            "/v1/credentials",
            json,
            json!({"scope": "data_platform", "audience": "sql", "lane": "service"}).to_string(),
            400,
            "invalid_request",
        ),
        (
            "domain target",
            "POST",
            "/v1/credentials",
            json,
            json!({"scope": "data_platform", "audience": "sql", "target": "domain"}).to_string(),
            400,
            "not_supported",
        ),
        (
            "over 8 KiB",
            "POST",
            "/v1/credentials",
            json,
            big,
            413,
            "invalid_request",
        ),
    ];
    for (case, method, path, content_type, body, status, code) in cases {
        let answer = helper.request(method, path, content_type, body).await;
        answer.assert_refused(status, code, case);
    }
    assert!(
        broker.audit_lines().is_empty(),
        "a refused request reached the broker"
    );
}

#[tokio::test]
async fn a_missing_or_empty_bearer_file_is_credential_unavailable() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let helper = TestHelper::spawn(&broker, "user", &emulator.user_token().await).await;

    helper.write_bearer("  ");
    helper
        .credentials(sql())
        .await
        .assert_refused(503, "credential_unavailable", "empty");
    std::fs::remove_file(&helper.bearer_file).expect("remove the bearer file");
    helper
        .credentials(sql())
        .await
        .assert_refused(503, "credential_unavailable", "missing");
    assert!(broker.audit_lines().is_empty());
}

#[tokio::test]
async fn broker_refusals_pass_through_with_the_brokers_status_and_code() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let user = emulator.user_token().await;
    let user_helper =
        TestHelper::spawn(&broker, "user", "not-a-token-but-a-long-opaque-bearer").await;
    user_helper.credentials(sql()).await.assert_refused(
        401,
        "invalid_token",
        "bearer the broker rejects",
    );
    user_helper.write_bearer(&user);
    user_helper
        .credentials(json!({"scope": "data_platform", "audience": "graph"}))
        .await
        .assert_refused(403, "unknown_audience", "audience the broker does not know");
    let msi_helper = TestHelper::spawn(&broker, "user", &emulator.msi_token().await).await;
    msi_helper.credentials(sql()).await.assert_refused(
        403,
        "lane_not_allowed",
        "app asking for the user lane",
    );
    let dir = scratch_dir();
    let mut settings = settings_for(&broker, &dir, "user");
    settings.retain(|(name, _)| name != "VD_CREDENTIAL_CONFIGURATION_REVISION");
    settings.push(("VD_CREDENTIAL_CONFIGURATION_REVISION".into(), "2".into()));
    let pinned = TestHelper::spawn_with(&dir, &settings, &[]).await;
    pinned.write_bearer(&user);
    pinned.credentials(sql()).await.assert_refused(
        409,
        "revision_mismatch",
        "pinned revision is not the policy's",
    );
}

#[tokio::test]
async fn rate_limited_answer_passes_through_with_retry_after() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn_with(&emulator, &[("BROKER_RATE_LIMIT_PER_CALLER", "1")]).await;
    let helper = TestHelper::spawn(&broker, "user", &emulator.user_token().await).await;
    issued_claims(&helper.credentials(sql()).await);

    let answer = helper
        .credentials(json!({"scope": "data_platform", "audience": "storage"}))
        .await;

    answer.assert_refused(429, "rate_limited", "second audience past the budget");
    let retry_after = answer
        .headers
        .get("retry-after")
        .expect("Retry-After passed through");
    assert!(
        retry_after.to_str().unwrap().parse::<u64>().is_ok(),
        "{retry_after:?}"
    );
}

#[tokio::test]
async fn an_unreachable_broker_is_unavailable_and_the_helper_keeps_serving() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let dir = scratch_dir();
    let settings: Vec<(String, String)> = [
        (
            "VD_CREDENTIAL_BROKER_URL",
            format!("http://127.0.0.1:{port}/api"),
        ),
        (
            "VD_CREDENTIAL_FILE",
            dir.join("bearer").display().to_string(),
        ),
        ("VD_CREDENTIAL_LANE", "user".into()),
        ("VD_CREDENTIAL_CONFIGURATION_REVISION", "1".into()),
        (
            "VD_RUNTIME_ACCESS_SOCKET",
            dir.join("program.sock").display().to_string(),
        ),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect();
    let helper = TestHelper::spawn_with(&dir, &settings, &[]).await;
    helper.write_bearer("an-opaque-bearer-of-some-length");

    for attempt in ["first", "second"] {
        helper
            .credentials(sql())
            .await
            .assert_refused(503, "unavailable", attempt);
    }
}

#[tokio::test]
async fn a_rotated_bearer_is_used_on_the_next_call_and_never_served_the_old_token() {
    // Arrange
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let helper = TestHelper::spawn(&broker, "user", &emulator.user_token().await).await;
    assert_eq!(
        issued_claims(&helper.credentials(sql()).await)["oid"],
        USER_OID
    );

    // Act: the backend rotates the bearer (here to another user's, so the answer tells them apart).
    let ben = emulator.second_user_token().await;
    helper.write_bearer(&ben);
    let answer = helper.credentials(sql()).await;

    // Assert
    assert_eq!(issued_claims(&answer)["oid"], USER2_OID);
    assert_eq!(broker.wait_for_audit_lines(2).await.len(), 2);
}

#[tokio::test]
async fn a_hundred_concurrent_requests_cost_one_broker_call() {
    // Arrange
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let helper = TestHelper::spawn(&broker, "user", &emulator.user_token().await).await;

    // Act
    let answers = futures_util::future::join_all((0..100).map(|_| helper.credentials(sql()))).await;

    // Assert
    let tokens: std::collections::BTreeSet<_> = answers
        .iter()
        .map(|answer| {
            issued_claims(answer);
            answer.body["access_token"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(tokens.len(), 1, "every request got the one token");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(broker.audit_lines().len(), 1, "broker calls");
    assert_eq!(emulator.stats().await["token_requests"]["obo"], 1);
    let sources: Vec<String> = helper
        .lines()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["fields"]["event"] == "issued")
        .map(|line| {
            line["fields"]["cache"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(sources.len(), 100);
    assert_eq!(
        sources.iter().filter(|s| *s == "miss").count(),
        1,
        "{sources:?}"
    );
}

#[tokio::test]
async fn garbage_slow_headers_and_oversized_bodies_do_not_stop_the_helper() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let helper = TestHelper::spawn(&broker, "user", &emulator.user_token().await).await;

    // Garbage: an answer (400) or a closed connection, and nothing else.
    let mut garbage = UnixStream::connect(&helper.socket).await.unwrap();
    garbage
        .write_all(b"\x00\x01\xffNOT HTTP AT ALL\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = garbage.read_to_end(&mut answer).await;
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 400"),
        "{answer:?}"
    );

    // Slow headers: half a request, then nothing. Others are served meanwhile; the helper hangs up on it.
    let mut slow = UnixStream::connect(&helper.socket).await.unwrap();
    slow.write_all(b"POST /v1/credentials HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    issued_claims(&helper.credentials(sql()).await);
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(30), slow.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "a connection that never finished its headers stayed open"
    );

    // Oversized bodies, announced and not.
    for size in [9 * 1024, 64 * 1024] {
        let body = format!(
            r#"{{"scope":"data_platform","audience":"sql","pad":"{}"}}"#,
            "x".repeat(size)
        );
        helper
            .request("POST", "/v1/credentials", Some("application/json"), body)
            .await
            .assert_refused(413, "invalid_request", &format!("{size} bytes"));
    }
    let mut lying = UnixStream::connect(&helper.socket).await.unwrap();
    lying
        .write_all(b"POST /v1/credentials HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n{")
        .await
        .unwrap();
    let mut answer = vec![0; 12];
    lying.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 413");

    // Still serving.
    issued_claims(&helper.credentials(sql()).await);
}

#[tokio::test]
async fn no_log_line_reveals_the_bearer_or_the_issued_token() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let bearer = emulator.user_token().await;
    let helper = TestHelper::spawn(&broker, "user", &bearer).await;

    let answer = helper.credentials(sql()).await;
    let _ = helper.credentials(sql()).await;
    helper.write_bearer("not-a-token-but-a-long-opaque-bearer");
    let _ = helper.credentials(sql()).await;

    let token = answer.body["access_token"].as_str().unwrap().to_owned();
    let lines = helper.lines();
    assert!(
        lines
            .iter()
            .any(|line| line.contains(r#""event":"issued""#)),
        "{lines:?}"
    );
    assert_no_line_reveals(
        &lines,
        [
            ("the bearer", bearer.as_str()),
            ("the rotated bearer", "not-a-token-but-a-long-opaque-bearer"),
            ("the issued token", token.as_str()),
        ],
    );
}

#[tokio::test]
async fn the_socket_gets_the_mode_the_operator_sets_by_flag_over_the_environment() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let dir = scratch_dir();
    let mut settings = settings_for(&broker, &dir, "user");
    settings.push(("VD_RUNTIME_ACCESS_SOCKET_MODE".into(), "0666".into()));

    let helper = TestHelper::spawn_with(&dir, &settings, &["--socket-mode", "0600"]).await;

    let mode = std::fs::metadata(&helper.socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn default_socket_mode_is_0660() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let helper = TestHelper::spawn(&broker, "user", "an-opaque-bearer-of-some-length").await;

    let mode = std::fs::metadata(&helper.socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o660);
}

#[tokio::test]
async fn sigterm_stops_the_helper_cleanly_and_removes_the_socket() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;
    let mut helper = TestHelper::spawn(&broker, "user", "an-opaque-bearer-of-some-length").await;
    assert!(helper.socket.exists());

    let sent = std::process::Command::new("kill")
        .args(["-TERM", &helper.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success());
    let status = helper.wait_for_exit().await;

    assert!(status.success(), "{status}");
    assert!(!helper.socket.exists(), "the socket outlived the helper");
}

#[tokio::test]
async fn a_stale_socket_is_replaced_and_a_symlink_is_never_followed() {
    let emulator = TestEmulator::start().await;
    let broker = TestBroker::spawn(&emulator).await;

    // A crashed run's socket: replaced.
    let dir = scratch_dir();
    drop(std::os::unix::net::UnixListener::bind(dir.join("program.sock")).unwrap());
    let helper = TestHelper::spawn_with(&dir, &settings_for(&broker, &dir, "user"), &[]).await;
    helper.write_bearer(&emulator.user_token().await);
    issued_claims(&helper.credentials(sql()).await);

    // A symbolic link at the path: the helper stops, naming it, and the link's target is untouched.
    let dir = scratch_dir();
    let target = dir.join("target");
    std::fs::write(&target, "keep").unwrap();
    std::os::unix::fs::symlink(&target, dir.join("program.sock")).unwrap();
    let output = command(&settings_for(&broker, &dir, "user"), &[])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("symbolic link"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_missing_or_invalid_setting_stops_the_helper_with_one_line_naming_it() {
    let dir = scratch_dir();
    let full: Vec<(String, String)> = [
        ("VD_CREDENTIAL_BROKER_URL", "https://broker.example/api"),
        ("VD_CREDENTIAL_FILE", "/run/secrets/bearer"),
        ("VD_CREDENTIAL_LANE", "user"),
        ("VD_CREDENTIAL_CONFIGURATION_REVISION", "1"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect();
    let socket = (
        "VD_RUNTIME_ACCESS_SOCKET".to_owned(),
        dir.join("program.sock").display().to_string(),
    );
    let cases = [
        ("VD_CREDENTIAL_BROKER_URL", None),
        ("VD_CREDENTIAL_FILE", None),
        ("VD_CREDENTIAL_LANE", Some("admin")),
        ("VD_CREDENTIAL_CONFIGURATION_REVISION", Some("latest")),
        (
            "VD_CREDENTIAL_BROKER_URL",
            Some("http://broker.example/api"),
        ),
        ("VD_RUNTIME_ACCESS_SOCKET_MODE", Some("rw")),
    ];
    for (name, value) in cases {
        let mut settings: Vec<_> = full.iter().filter(|(n, _)| n != name).cloned().collect();
        settings.push(socket.clone());
        if let Some(value) = value {
            settings.push((name.to_owned(), value.to_owned()));
        }
        let output = command(&settings, &[]).output().await.unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(output.status.code(), Some(1), "case `{name}={value:?}`");
        assert_eq!(lines.len(), 1, "case `{name}={value:?}`: {stdout}");
        assert!(lines[0].contains(name), "case `{name}={value:?}`: {stdout}");
        assert!(
            !dir.join("program.sock").exists(),
            "case `{name}={value:?}`"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
