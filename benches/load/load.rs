//! The load generator: a fixed number of HTTP/1.1 keep-alive connections (hyper's client connection
//! API, one per worker), each looping POST requests for a warm-up and a measured window; latencies in
//! microseconds per worker, merged for percentiles.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Barrier;
use tokio::task::JoinHandle;

pub const GET_SP_TOKEN: &str = "/api/GetSPToken";
pub const SQL_SCOPE_BODY: &str = r#"{"targetScope":"https://database.windows.net/.default"}"#;
/// The Token route, as a sandbox's TokenCredential client redeems a delegation bearer on it.
pub const TOKEN: &str = "/api/token";
pub const SQL_AUDIENCE_BODY: &str = r#"{"audience":"sql"}"#;

pub const CONNECTIONS: usize = 32;
const WARM_UP: Duration = Duration::from_secs(2);
const MEASURE: Duration = Duration::from_secs(8);
/// The measured load is split into this many slices, alternating between the two servers, so that a
/// change in the shared machine's background load affects both sides of the ratio alike.
pub const SLICES: u32 = 8;

/// What to send, where, and for how long.
pub struct LoadSpec {
    pub addr: SocketAddr,
    pub connections: usize,
    pub warm_up: Duration,
    pub measure: Duration,
    /// `Authorization` values, used round-robin.
    pub bearers: Arc<Vec<HeaderValue>>,
    /// The route and body every request carries.
    pub path: &'static str,
    pub body: &'static str,
}

impl LoadSpec {
    /// The standard run: GetSPToken for the SQL scope, every token in turn.
    pub fn get_sp_token(addr: SocketAddr, tokens: &[String]) -> anyhow::Result<Self> {
        Ok(Self {
            addr,
            connections: CONNECTIONS,
            warm_up: WARM_UP,
            measure: MEASURE,
            bearers: Arc::new(bearers(tokens)?),
            path: GET_SP_TOKEN,
            body: SQL_SCOPE_BODY,
        })
    }

    /// The standard run on the Token route for the `sql` audience (a delegation bearer's redemption).
    pub fn token(addr: SocketAddr, tokens: &[String]) -> anyhow::Result<Self> {
        Ok(Self {
            path: TOKEN,
            body: SQL_AUDIENCE_BODY,
            ..Self::get_sp_token(addr, tokens)?
        })
    }

    /// One of `SLICES` alternating slices of the standard run (a shorter warm-up each).
    pub fn slice(&self) -> Self {
        Self {
            addr: self.addr,
            connections: self.connections,
            warm_up: self.warm_up / SLICES,
            measure: self.measure / SLICES,
            bearers: self.bearers.clone(),
            path: self.path,
            body: self.body,
        }
    }
}

/// Requests started inside the measured window, and how they went.
pub struct LoadResult {
    pub requests: usize,
    /// Every request sent, warm-up included.
    pub sent: usize,
    /// CPU the server used over the whole run, warm-up included (set by the caller).
    pub server_cpu: Duration,
    pub non_200: usize,
    pub measure: Duration,
    /// Sorted, microseconds.
    latencies: Vec<u32>,
}

impl LoadResult {
    /// One result from several runs against the same server.
    pub fn merge(results: Vec<LoadResult>) -> LoadResult {
        let mut merged = LoadResult {
            requests: 0,
            sent: 0,
            server_cpu: Duration::ZERO,
            non_200: 0,
            measure: Duration::ZERO,
            latencies: Vec::new(),
        };
        for result in results {
            merged.requests += result.requests;
            merged.sent += result.sent;
            merged.server_cpu += result.server_cpu;
            merged.non_200 += result.non_200;
            merged.measure += result.measure;
            merged.latencies.extend(result.latencies);
        }
        merged.latencies.sort_unstable();
        merged
    }

    /// Server CPU per request sent, in microseconds.
    pub fn cpu_micros_per_request(&self) -> f64 {
        self.server_cpu.as_secs_f64() * 1e6 / self.sent.max(1) as f64
    }

    pub fn requests_per_second(&self) -> f64 {
        self.requests as f64 / self.measure.as_secs_f64()
    }

    /// The `p`th percentile latency (0 < p < 100).
    pub fn percentile(&self, p: f64) -> Duration {
        let rank = ((self.latencies.len() as f64 * p / 100.0).ceil() as usize).saturating_sub(1);
        let micros = self
            .latencies
            .get(rank.min(self.latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0);
        Duration::from_micros(u64::from(micros))
    }
}

/// `Authorization: Bearer <token>` for each token.
pub fn bearers(tokens: &[String]) -> anyhow::Result<Vec<HeaderValue>> {
    tokens
        .iter()
        .map(|token| HeaderValue::from_str(&format!("Bearer {token}")).context("token as header"))
        .collect()
}

/// Runs `spec` to completion; fails if any connection fails.
pub async fn run(spec: &LoadSpec) -> anyhow::Result<LoadResult> {
    if spec.bearers.is_empty() {
        bail!("no caller tokens");
    }
    let start = Instant::now() + Duration::from_millis(50);
    let window = Window {
        from: start + spec.warm_up,
        until: start + spec.warm_up + spec.measure,
    };
    let mut workers = Vec::with_capacity(spec.connections);
    for id in 0..spec.connections {
        let sender = connect(spec.addr).await?;
        let bearers = spec.bearers.clone();
        let stride = spec.connections;
        let (path, body) = (spec.path, spec.body);
        workers.push(tokio::spawn(async move {
            tokio::time::sleep_until(start.into()).await;
            worker(sender, bearers, (path, body), (id, stride), window).await
        }));
    }
    let mut result = LoadResult {
        requests: 0,
        sent: 0,
        server_cpu: Duration::ZERO,
        non_200: 0,
        measure: spec.measure,
        latencies: Vec::new(),
    };
    for worker in workers {
        let stats = worker.await.context("load worker panicked")??;
        result.non_200 += stats.non_200;
        result.sent += stats.sent;
        result.latencies.extend(stats.latencies);
    }
    result.requests = result.latencies.len();
    result.latencies.sort_unstable();
    Ok(result)
}

#[derive(Clone, Copy)]
struct Window {
    from: Instant,
    until: Instant,
}

struct WorkerStats {
    latencies: Vec<u32>,
    non_200: usize,
    sent: usize,
}

async fn worker(
    mut sender: SendRequest<Full<Bytes>>,
    bearers: Arc<Vec<HeaderValue>>,
    (path, body): (&'static str, &'static str),
    (first, stride): (usize, usize),
    window: Window,
) -> anyhow::Result<WorkerStats> {
    let mut stats = WorkerStats {
        latencies: Vec::with_capacity(1 << 16),
        non_200: 0,
        sent: 0,
    };
    let mut next = first % bearers.len();
    loop {
        let sent = Instant::now();
        if sent >= window.until {
            return Ok(stats);
        }
        let bearer = bearers.get(next).context("bearer index")?.clone();
        let status = send_to(&mut sender, path, body, bearer).await?;
        stats.sent += 1;
        if sent >= window.from {
            let micros = sent.elapsed().as_micros();
            stats
                .latencies
                .push(u32::try_from(micros).unwrap_or(u32::MAX));
            if status != StatusCode::OK {
                stats.non_200 += 1;
            }
        }
        next = (next + stride) % bearers.len();
    }
}

/// Simultaneous GetSPToken requests, one per connection: all connections are opened first and each
/// request waits at a gate, so that none is sent before the last connection is up.
pub struct Burst {
    gate: Arc<Barrier>,
    calls: Vec<JoinHandle<anyhow::Result<StatusCode>>>,
}

/// How a burst went.
pub struct BurstResult {
    pub ok: usize,
    /// From the release to the last response.
    pub elapsed: Duration,
}

impl Burst {
    /// Opens `count` connections to `addr`; request `i` uses `bearers[i % len]`.
    pub async fn prepare(
        addr: SocketAddr,
        bearers: &[HeaderValue],
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        if bearers.is_empty() {
            bail!("no caller tokens");
        }
        let gate = Arc::new(Barrier::new(count + 1));
        let mut calls = Vec::with_capacity(count);
        for (i, bearer) in bearers.iter().cycle().take(count).enumerate() {
            let mut sender = connect(addr)
                .await
                .with_context(|| format!("burst connection {i}"))?;
            let (gate, bearer) = (gate.clone(), bearer.clone());
            calls.push(tokio::spawn(async move {
                gate.wait().await;
                tokio::time::timeout(timeout, send(&mut sender, bearer)).await?
            }));
        }
        Ok(Self { gate, calls })
    }

    /// Sends every request at once and waits for all of them (or their timeouts).
    pub async fn release(self) -> anyhow::Result<BurstResult> {
        self.gate.wait().await;
        let started = Instant::now();
        let mut ok = 0;
        for call in self.calls {
            if let Ok(StatusCode::OK) = call.await.context("burst request panicked")? {
                ok += 1;
            }
        }
        Ok(BurstResult {
            ok,
            elapsed: started.elapsed(),
        })
    }
}

/// Opens one keep-alive HTTP/1.1 connection; its I/O runs on a task of its own.
pub async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// One GetSPToken request for the SQL scope; reads the whole response body.
pub async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    bearer: HeaderValue,
) -> anyhow::Result<StatusCode> {
    send_to(sender, GET_SP_TOKEN, SQL_SCOPE_BODY, bearer).await
}

/// One POST of `body` to `path`; reads the whole response body.
pub async fn send_to(
    sender: &mut SendRequest<Full<Bytes>>,
    path: &'static str,
    body: &'static str,
    bearer: HeaderValue,
) -> anyhow::Result<StatusCode> {
    let request = Request::post(path)
        .header(HOST, "127.0.0.1")
        .header(CONTENT_TYPE, "application/json")
        .header(AUTHORIZATION, bearer)
        .body(Full::new(Bytes::from_static(body.as_bytes())))?;
    exchange(sender, request).await
}

/// The Functions host's readiness probe, `GET /`, on a new connection.
pub async fn probe(addr: SocketAddr) -> anyhow::Result<StatusCode> {
    let mut sender = connect(addr).await?;
    let request = Request::get("/")
        .header(HOST, "127.0.0.1")
        .body(Full::new(Bytes::new()))?;
    exchange(&mut sender, request).await
}

async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> anyhow::Result<StatusCode> {
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    response.into_body().collect().await?;
    Ok(status)
}
