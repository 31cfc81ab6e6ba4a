//! The Azure Functions host around the broker, per FUNCTIONS_HOST.md §1.2, §1.3, §1.6, §1.8 and §7:
//! `BrokerProcess` launches the handler as the host does and polls `GET /` for readiness; `FrontEnd`
//! routes client requests by host.json and function.json and forwards them with the host's headers.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::helpers::function_app::{APP_ROOT, FunctionApp};
use crate::helpers::ids::new_guid;
use crate::helpers::logs::LogLines;

/// The host release FUNCTIONS_HOST.md was read from.
pub const HOST_VERSION: &str = "4.1037.0";
const READINESS_POLL: Duration = Duration::from_millis(25);
const READINESS_TIMEOUT: Duration = Duration::from_secs(30);
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Request headers .NET cannot add to an `HttpRequestMessage` (content headers, re-added only with a
/// body) and the hop's own framing, which the forwarder redoes.
const NOT_COPIED: &[&str] = &[
    "content-type",
    "content-length",
    "content-encoding",
    "content-language",
    "content-disposition",
    "content-location",
    "content-md5",
    "content-range",
    "expires",
    "last-modified",
    "allow",
    "transfer-encoding",
    "connection",
    "keep-alive",
];

/// The handler process: the host's environment in, stdout and stderr collected line by line.
pub struct BrokerProcess {
    pub port: u16,
    child: Child,
    stdout: LogLines,
    stderr: LogLines,
    drains: Vec<JoinHandle<()>>,
}

impl BrokerProcess {
    /// Starts `token-broker` with `settings` as the app settings, without waiting for readiness.
    pub fn launch(settings: &[(String, String)]) -> Self {
        Self::launch_limited(settings, None)
    }

    /// As `launch`, with the process's open-descriptor limit lowered to `descriptor_limit` (by
    /// `ulimit -n` in a shell that then execs the broker, so the process is still the broker's).
    pub fn launch_limited(settings: &[(String, String)], descriptor_limit: Option<u32>) -> Self {
        let port = free_port();
        let worker_id = new_guid();
        let binary = env!("CARGO_BIN_EXE_token-broker");
        let mut command = match descriptor_limit {
            None => Command::new(binary),
            Some(limit) => {
                let mut shell = Command::new("sh");
                shell
                    .arg("-c")
                    .arg(format!("ulimit -n {limit} && exec \"$0\""))
                    .arg(binary);
                shell
            }
        };
        let mut child = command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(settings.iter().map(|(name, value)| (name, value)))
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .env("FUNCTIONS_HTTPWORKER_PORT", port.to_string())
            .env("FUNCTIONS_CUSTOMHANDLER_WORKER_ID", &worker_id)
            .env("FUNCTIONS_HTTPWORKER_ID", &worker_id)
            .env("FUNCTIONS_APP_ROOT_PATH", APP_ROOT)
            .current_dir(APP_ROOT)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn token-broker");
        let (stdout, out_drain) = LogLines::collect(child.stdout.take().expect("piped stdout"));
        let (stderr, err_drain) = LogLines::collect(child.stderr.take().expect("piped stderr"));
        Self {
            port,
            child,
            stdout,
            stderr,
            drains: vec![out_drain, err_drain],
        }
    }

    /// Polls `GET /` every 25 ms until any HTTP response, as the host does; gives up after 30 s or
    /// when the process exits, with everything it wrote.
    pub async fn wait_ready(&mut self) {
        let deadline = tokio::time::Instant::now() + READINESS_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.finish_drains().await;
                panic!(
                    "token-broker exited ({status}) before it was ready{}",
                    self.logs()
                );
            }
            let ping = Request::get("/")
                .header(header::HOST, format!("127.0.0.1:{}", self.port))
                .body(Full::default())
                .expect("a readiness request");
            let answered = tokio::time::timeout_at(deadline, send(self.port, ping)).await;
            if matches!(answered, Ok(Ok(_))) {
                return;
            }
            assert!(
                answered.is_ok() && tokio::time::Instant::now() < deadline,
                "token-broker did not answer GET / within {READINESS_TIMEOUT:?}{}",
                self.logs()
            );
            tokio::time::sleep(READINESS_POLL).await;
        }
    }

    /// Waits for the process to exit (start-up failure tests) and for its last lines.
    pub async fn wait_for_exit(&mut self) -> ExitStatus {
        let status = tokio::time::timeout(EXIT_TIMEOUT, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("token-broker still running after {EXIT_TIMEOUT:?}"))
            .expect("wait for token-broker");
        self.finish_drains().await;
        status
    }

    /// Sends SIGTERM, as a container runtime or a local `kill` does, and waits up to `bound` for the
    /// process to exit; `None` if it is still running then.
    pub async fn terminate(&mut self, bound: Duration) -> Option<ExitStatus> {
        let pid = self.child.id().expect("token-broker is running");
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let status = tokio::time::timeout(bound, self.child.wait()).await.ok()?;
        self.finish_drains().await;
        Some(status.expect("wait for token-broker"))
    }

    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.snapshot()
    }

    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.snapshot()
    }

    async fn finish_drains(&mut self) {
        for drain in self.drains.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
        }
    }

    fn logs(&self) -> String {
        format!(
            "\nstdout:\n{}\nstderr:\n{}",
            self.stdout_lines().join("\n"),
            self.stderr_lines().join("\n")
        )
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.stdout.dump_on_failure("broker stdout");
        self.stderr.dump_on_failure("broker stderr");
    }
}

/// The host's HTTP front end on its own loopback port, forwarding to the handler on `handler_port`.
pub struct FrontEnd {
    pub addr: SocketAddr,
    accept_loop: JoinHandle<()>,
}

impl FrontEnd {
    pub async fn start(app: FunctionApp, handler_port: u16) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind the front end");
        let addr = listener.local_addr().expect("front end address");
        let app = Arc::new(app);
        let pool = HandlerPool::new(handler_port);
        let accept_loop = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (app, pool) = (app.clone(), pool.clone());
                let service = hyper::service::service_fn(move |request| {
                    invoke(app.clone(), pool.clone(), request)
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        Self { addr, accept_loop }
    }
}

impl Drop for FrontEnd {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

/// One invocation: route, forward, relay. No function matches → 404 with an empty body; the handler
/// unreachable → 500 with an empty body.
async fn invoke(
    app: Arc<FunctionApp>,
    pool: HandlerPool,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if app
        .route(request.method().as_str(), request.uri().path())
        .is_none()
    {
        return Ok(empty(StatusCode::NOT_FOUND));
    }
    let (parts, body) = request.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return Ok(empty(StatusCode::INTERNAL_SERVER_ERROR));
    };
    let forwarded = forwarded_request(&parts, body);
    Ok(match pool.send(forwarded).await {
        Ok(response) => relay(response),
        Err(_) => empty(StatusCode::INTERNAL_SERVER_ERROR),
    })
}

/// The request as the handler sees it with `enableForwardingHttpRequest` (FUNCTIONS_HOST.md §1.3).
fn forwarded_request(parts: &hyper::http::request::Parts, body: Bytes) -> Request<Full<Bytes>> {
    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        if !NOT_COPIED.contains(&name.as_str()) {
            headers.append(name.clone(), value.clone());
        }
    }
    let declared_length = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let body = if declared_length > 0 {
        if let Some(content_type) = parts.headers.get(header::CONTENT_TYPE) {
            headers.insert(header::CONTENT_TYPE, content_type.clone());
        }
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        body
    } else {
        Bytes::new()
    };
    let user_agent = match parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        Some(client) => format!("{client} Azure-Functions-Host/{HOST_VERSION}"),
        None => format!("Azure-Functions-Host/{HOST_VERSION}"),
    };
    headers.insert(header::USER_AGENT, value(&user_agent));
    headers.insert(
        HeaderName::from_static("x-azure-functions-hostversion"),
        value(HOST_VERSION),
    );
    headers.insert(
        HeaderName::from_static("x-azure-functions-invocationid"),
        value(&new_guid()),
    );
    let mut target = parts.uri.path().to_owned();
    if let Some(query) = parts.uri.query() {
        target.push_str(&rebuilt_query(query));
    }
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = target.parse().expect("a forwardable path and query");
    *request.headers_mut() = headers;
    request
}

/// `QueryHelpers.AddQueryString` over the parsed query: repeated keys joined with commas, values
/// re-escaped as `EscapeDataString` does, a bare key given `=`.
fn rebuilt_query(query: &str) -> String {
    let mut grouped: Vec<(String, Vec<String>)> = Vec::new();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match grouped.iter_mut().find(|(k, _)| *k == key) {
            Some((_, values)) => values.push(value.into_owned()),
            None => grouped.push((key.into_owned(), vec![value.into_owned()])),
        }
    }
    let pairs: Vec<String> = grouped
        .iter()
        .map(|(key, values)| {
            let values: Vec<String> = values.iter().map(|v| escape_data_string(v)).collect();
            format!("{}={}", escape_data_string(key), values.join(","))
        })
        .collect();
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

fn escape_data_string(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Status, headers and the buffered body; chunked framing removed, Content-Length recomputed.
fn relay(response: Response<Bytes>) -> Response<Full<Bytes>> {
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Full::new(body))
}

fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::default());
    *response.status_mut() = status;
    response
}

fn value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).expect("a valid header value")
}

type SendError = Box<dyn std::error::Error + Send + Sync>;

/// One HTTP/1.1 exchange with the handler on 127.0.0.1, body buffered, no redirects followed.
async fn send(port: u16, request: Request<Full<Bytes>>) -> Result<Response<Bytes>, SendError> {
    let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Response::from_parts(parts, body))
}

/// The host's connections to the handler: one keep-alive pool, as the host's `HttpClient` keeps
/// (.NET's `SocketsHttpHandler`: connections reused, idle ones dropped after a minute, a connection the
/// handler closed is not reused).
#[derive(Clone)]
struct HandlerPool {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl HandlerPool {
    fn new(port: u16) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build_http();
        Self {
            client,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn send(&self, mut request: Request<Full<Bytes>>) -> Result<Response<Bytes>, SendError> {
        let target = request
            .uri()
            .path_and_query()
            .map_or("/", |target| target.as_str());
        *request.uri_mut() = format!("{}{target}", self.base).parse()?;
        let response = self.client.request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Response::from_parts(parts, body))
    }
}

/// A port that was free a moment ago (bind 127.0.0.1:0, read, release), as the host picks one.
fn free_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("find a free port")
        .port()
}
