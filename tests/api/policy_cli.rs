//! The offline checker (issue 11 item 5), run as the real binary with no settings and no network:
//! `policy check` validates a document and `policy explain` says allow or deny, and why.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::helpers::emulator::TestEmulator;
use crate::helpers::ids::{USER_OID, new_guid};
use crate::helpers::policy::{
    ANALYSTS_GROUP, INGEST_OID, INGEST_ROLE, SALES_OID, example_document, overage_analyst_token,
};

/// A scratch directory for one test's files.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let dir =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("policy-cli-{}", new_guid()));
        std::fs::create_dir_all(&dir).expect("create the scratch directory");
        Self(dir)
    }

    fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write a scratch file");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `token-broker policy <args>` with an empty environment.
fn policy(args: &[&str]) -> (i32, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = std::process::Command::new(env!("CARGO_BIN_EXE_token-broker"))
        .env_clear()
        .arg("policy")
        .args(args)
        .output()
        .expect("run token-broker policy");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    (status.code().expect("an exit code"), text)
}

fn example(scratch: &Scratch) -> PathBuf {
    scratch.file("policy.json", &example_document(7).to_string())
}

fn path(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

#[test]
fn check_summarizes_a_valid_document_and_exits_0() {
    let scratch = Scratch::new();
    let file = example(&scratch);

    let (code, out) = policy(&["check", path(&file)]);

    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("valid, revision 7, 4 grant(s), 3 audience alias(es)"),
        "{out}"
    );
    assert!(
        out.contains("ingestion-storage: service lane, apps with app role Broker.Ingest"),
        "{out}"
    );
}

#[test]
fn check_lists_every_error_with_its_json_path_and_exits_1() {
    let scratch = Scratch::new();
    let mut document = example_document(7);
    document["grants"][0]["apps"] = serde_json::json!(["not-a-guid"]);
    document["grants"][1]["audiences"] = serde_json::json!(["nowhere"]);
    document["grants"][3]["name"] = serde_json::json!("sales-workspace-sql");
    let file = scratch.file("invalid.json", &document.to_string());

    let (code, out) = policy(&["check", path(&file)]);

    assert_eq!(code, 1, "{out}");
    assert!(out.contains("invalid, 3 error(s)"), "{out}");
    for at in [
        "grants[0].apps[0]: \"not-a-guid\" is not an object id",
        "grants[1].audiences[0]: \"nowhere\" is not an alias",
        "grants[3].name: \"sales-workspace-sql\" repeats",
    ] {
        assert!(out.contains(at), "missing {at}: {out}");
    }
}

#[test]
fn check_names_an_unknown_field_by_path() {
    let scratch = Scratch::new();
    let file = scratch.file(
        "unknown.json",
        r#"{"revision": 1, "grants": [], "grant": []}"#,
    );

    let (code, out) = policy(&["check", path(&file)]);

    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("grant: does not match the document schema"),
        "{out}"
    );
}

/// Whether `text` holds a control character other than the line breaks the checker writes itself.
fn has_control_character(text: &str) -> bool {
    text.chars().any(|c| c.is_control() && c != '\n')
}

#[test]
fn check_prints_document_text_and_file_names_escaped() {
    let scratch = Scratch::new();
    // A value that would erase the line and redraw it as "valid", in a file named likewise.
    let redraw = "\u{1b}[2K\rpolicy.json: valid";
    let mut document = example_document(7);
    document["grants"][1]["audiences"] = serde_json::json!([redraw]);
    let bad_value = scratch.file("bad\u{1b}[1Avalue.json", &document.to_string());
    let bad_key = scratch.file(
        "bad-key.json",
        &format!(
            r#"{{"revision": 1, "grants": [], "{}": 1}}"#,
            "\\u001b]0;owned\\u0007"
        ),
    );

    for file in [bad_value, bad_key] {
        let (code, out) = policy(&["check", path(&file)]);

        assert_eq!(code, 1, "{out}");
        assert!(out.contains("invalid, 1 error(s)"), "{out}");
        assert!(!has_control_character(&out), "{out:?}");
    }
    let (_, out) = policy(&["check", path(&scratch.0.join("bad\u{1b}[1Avalue.json"))]);
    assert!(out.contains("bad\\u{1b}[1Avalue.json: invalid"), "{out}");
    assert!(
        out.contains(r#"grants[1].audiences[0]: "\u{1b}[2K\rpolicy.json: valid" is not an alias"#),
        "{out}"
    );
}

#[test]
fn check_refuses_null_where_a_value_is_expected() {
    let scratch = Scratch::new();
    let mut document = example_document(7);
    document["grants"][3]["apps"] = serde_json::Value::Null;
    let file = scratch.file("null.json", &document.to_string());

    let (code, out) = policy(&["check", path(&file)]);

    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("grants[3].apps: does not match the document schema"),
        "{out}"
    );
}

/// `token-broker policy <args>` that must exit by itself; if it blocks, `unblock` runs (so the child
/// can end) and the test fails.
fn policy_without_blocking(args: &[&str], unblock: impl FnOnce()) -> (i32, String) {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_token-broker"))
        .env_clear()
        .arg("policy")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run token-broker policy");
    let (done, outcome) = mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    let Ok(output) = outcome.recv_timeout(Duration::from_secs(60)) else {
        unblock();
        panic!("token-broker policy {args:?} blocked");
    };
    let output = output.expect("token-broker policy output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().expect("an exit code"), text)
}

/// A FIFO at `path`, which nothing ever writes to.
fn fifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo failed");
}

/// Opens the FIFO for writing and closes it, which ends a reader blocked on it.
fn release(path: &Path) {
    let _ = std::fs::OpenOptions::new().write(true).open(path);
}

#[test]
fn check_and_explain_refuse_a_fifo_without_blocking() {
    let scratch = Scratch::new();
    let document = example(&scratch);
    let pipe = scratch.0.join("pipe");
    fifo(&pipe);

    let (code, out) = policy_without_blocking(&["check", path(&pipe)], || release(&pipe));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not a regular file"), "{out}");

    let args = [
        "explain",
        path(&document),
        "--token",
        path(&pipe),
        "--audience",
        "sql",
    ];
    let (code, out) = policy_without_blocking(&args, || release(&pipe));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not a regular file"), "{out}");
}

#[test]
fn explain_refuses_a_token_longer_than_the_route_accepts() {
    let scratch = Scratch::new();
    let document = example(&scratch);
    let token = scratch.file("token.jwt", &"a".repeat(16 * 1024 + 1));

    let (code, out) = policy(&[
        "explain",
        path(&document),
        "--token",
        path(&token),
        "--audience",
        "sql",
    ]);

    assert_eq!(code, 1, "{out}");
    assert!(out.contains("longer than the 16384 bytes"), "{out}");
}

#[test]
fn explain_allows_with_the_grant_or_denies_with_the_reason() {
    let scratch = Scratch::new();
    let file = example(&scratch);
    let file = path(&file);
    let sql = "https://database.windows.net/.default";
    let cases: [(&str, Vec<&str>, i32, &str); 5] = [
        (
            "sales gets SQL",
            vec!["--app", SALES_OID, "--scope", sql],
            0,
            "allow: grant sales-workspace-sql",
        ),
        (
            "ingestion is refused SQL",
            vec!["--app", INGEST_OID, "--role", INGEST_ROLE, "--scope", sql],
            1,
            "deny: scope_not_allowed",
        ),
        (
            "analyst gets own Fabric",
            vec![
                "--user",
                USER_OID,
                "--group",
                ANALYSTS_GROUP,
                "--audience",
                "fabric_api",
            ],
            0,
            "allow: grant analysts-own-fabric (user lane",
        ),
        (
            "analyst is refused the SP",
            vec![
                "--user",
                USER_OID,
                "--group",
                ANALYSTS_GROUP,
                "--audience",
                "fabric_api",
                "--lane",
                "service",
            ],
            1,
            "deny: caller_not_allowed",
        ),
        (
            "an app has no user lane",
            vec!["--app", SALES_OID, "--audience", "sql", "--lane", "user"],
            1,
            "deny: lane_not_allowed",
        ),
    ];
    for (case, args, expected, says) in cases {
        let mut full = vec!["explain", file];
        full.extend(args);

        let (code, out) = policy(&full);

        assert_eq!(code, expected, "case `{case}`: {out}");
        assert!(out.contains(says), "case `{case}`: {out}");
    }
}

#[tokio::test]
async fn explain_reads_a_real_token_and_reports_group_overage() {
    let scratch = Scratch::new();
    let file = example(&scratch);
    let emulator = TestEmulator::start().await;
    let token = scratch.file("token.jwt", &overage_analyst_token(&emulator).await);

    let (code, out) = policy(&[
        "explain",
        path(&file),
        "--token",
        path(&token),
        "--audience",
        "fabric_api",
    ]);

    assert_eq!(code, 1, "{out}");
    assert!(out.contains("group overage"), "{out}");
    assert!(
        out.contains("signature and lifetime were not checked"),
        "{out}"
    );
    assert!(out.contains("deny: scope_not_allowed"), "{out}");
}

#[test]
fn a_usage_error_exits_1_with_the_usage() {
    let (code, out) = policy(&["explain", "policy.json", "--scope", "x"]);

    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("explain needs one of --token, --app, --user"),
        "{out}"
    );
    assert!(out.contains("usage:"), "{out}");
}
