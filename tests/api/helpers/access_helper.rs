//! `TestHelper`: the real `access-helper` binary on a Unix socket in a scratch directory, pointed at a
//! `TestBroker` through the emulated host, with its bearer file, its log lines, and raw HTTP/1.1 over the
//! socket for the calls tests make.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::UnixStream;
use tokio::process::{Child, Command};

use crate::helpers::broker::TestBroker;
use crate::helpers::ids::new_guid;
use crate::helpers::logs::LogLines;

const START_TIMEOUT: Duration = Duration::from_secs(20);

/// One answer from the helper.
pub struct Answer {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Value,
}

impl Answer {
    /// The refusal header's value, when there is one.
    pub fn error_header(&self) -> Option<&str> {
        self.headers
            .get("x-runtime-access-error")
            .and_then(|value| value.to_str().ok())
    }

    /// Asserts a refusal: status, the code in the body and in the header, and a message.
    pub fn assert_refused(&self, status: u16, code: &str, case: &str) {
        assert_eq!(self.status, status, "case `{case}`: {}", self.body);
        assert_eq!(self.body["code"], code, "case `{case}`");
        assert_eq!(self.error_header(), Some(code), "case `{case}`");
        assert!(
            self.body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "case `{case}`"
        );
    }
}

pub struct TestHelper {
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub bearer_file: PathBuf,
    stdout: LogLines,
    child: Child,
}

/// A fresh scratch directory, short enough for a socket path (108 bytes at most).
pub fn scratch_dir() -> PathBuf {
    let guid = new_guid();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("ah-{}", &guid[..8]));
    std::fs::create_dir_all(&dir).expect("create the helper's directory");
    dir
}

/// The helper's settings for `broker`: its URL, the bearer file, the lane and the legacy revision 1.
pub fn settings_for(broker: &TestBroker, dir: &Path, lane: &str) -> Vec<(String, String)> {
    [
        ("VD_CREDENTIAL_BROKER_URL", format!("{}/api", broker.url())),
        (
            "VD_CREDENTIAL_FILE",
            dir.join("bearer").display().to_string(),
        ),
        ("VD_CREDENTIAL_LANE", lane.to_owned()),
        ("VD_CREDENTIAL_CONFIGURATION_REVISION", "1".to_owned()),
        (
            "VD_RUNTIME_ACCESS_SOCKET",
            dir.join("program.sock").display().to_string(),
        ),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

impl TestHelper {
    /// A helper for `broker` on `lane`, holding `bearer`.
    pub async fn spawn(broker: &TestBroker, lane: &str, bearer: &str) -> Self {
        let dir = scratch_dir();
        let helper = Self::spawn_with(&dir, &settings_for(broker, &dir, lane), &[]).await;
        helper.write_bearer(bearer);
        helper
    }

    /// Starts the helper with exactly these environment settings and flags; waits for its listening line.
    pub async fn spawn_with(dir: &Path, settings: &[(String, String)], args: &[&str]) -> Self {
        let mut child = command(settings, args)
            .spawn()
            .expect("spawn access-helper");
        let stdout = LogLines::default();
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let listening = tokio::time::timeout(START_TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                stdout.push(line.clone());
                if line.contains(r#""event":"listening""#) {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(
            listening,
            Ok(true),
            "access-helper did not start: {:?}",
            stdout.snapshot()
        );
        stdout.keep_collecting(lines);
        let socket = settings
            .iter()
            .find(|(name, _)| name == "VD_RUNTIME_ACCESS_SOCKET")
            .map(|(_, value)| PathBuf::from(value))
            .expect("the socket setting");
        Self {
            dir: dir.to_owned(),
            socket,
            bearer_file: dir.join("bearer"),
            stdout,
            child,
        }
    }

    /// Replaces the bearer, as the backend does when it rotates it.
    pub fn write_bearer(&self, bearer: &str) {
        std::fs::write(&self.bearer_file, format!("{bearer}\n")).expect("write the bearer file");
    }

    /// `POST /v1/credentials` with a JSON body.
    pub async fn credentials(&self, body: Value) -> Answer {
        self.request(
            "POST",
            "/v1/credentials",
            Some("application/json"),
            body.to_string(),
        )
        .await
    }

    /// One request on a new connection.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<Bytes>,
    ) -> Answer {
        let stream = UnixStream::connect(&self.socket)
            .await
            .expect("connect to the helper");
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .expect("HTTP/1.1 handshake");
        tokio::spawn(connection);
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "runtime-access");
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let request = request.body(Full::new(body.into())).expect("a request");
        let response = sender.send_request(request).await.expect("an answer");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("the body")
            .to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
        }
    }

    pub fn lines(&self) -> Vec<String> {
        self.stdout.snapshot()
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("the helper is running")
    }

    pub async fn wait_for_exit(&mut self) -> ExitStatus {
        tokio::time::timeout(START_TIMEOUT, self.child.wait())
            .await
            .expect("the helper exits")
            .expect("wait for the helper")
    }
}

impl Drop for TestHelper {
    fn drop(&mut self) {
        self.stdout.dump_on_failure("access-helper stdout");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The helper's command: an empty environment but these settings, stdout piped.
pub fn command(settings: &[(String, String)], args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_access-helper"));
    command
        .env_clear()
        .envs(settings.iter().map(|(name, value)| (name, value)))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}
