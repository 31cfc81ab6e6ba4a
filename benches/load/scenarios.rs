//! The scenarios that need a fresh broker each: cold start, the cold-scope stampede, and the optional
//! diagnostic variants of the throughput run.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use hyper::StatusCode;
use hyper::header::HeaderValue;
use serde_json::json;

use crate::bare::BareHandler;
use crate::broker::{BrokerProcess, POLL_INTERVAL};
use crate::emulator::Emulator;
use crate::load::{self, Burst, BurstResult, LoadResult, LoadSpec};
use crate::process;

const STAMPEDE_DELAY_MS: u64 = 500;
/// Broker setting overrides for the diagnostic runs.
const DEFAULTS: &[(&str, &str)] = &[];
const QUIET: &[(&str, &str)] = &[("BROKER_LOG", "warn")];
const BURST_TIMEOUT: Duration = Duration::from_secs(10);

/// Spawn-to-first-200 of a fresh broker (cold token cache), `runs` times.
pub async fn cold_starts(
    emulator: &Emulator,
    token: &str,
    runs: usize,
) -> anyhow::Result<Vec<Duration>> {
    let bearer = HeaderValue::from_str(&format!("Bearer {token}"))?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let port = process::free_port()?;
        let started = Instant::now();
        let mut broker = BrokerProcess::spawn(emulator, port, &[])?;
        times.push(first_200(&mut broker, &bearer, started).await?);
    }
    Ok(times)
}

/// Polls connect + GetSPToken every millisecond until a 200.
async fn first_200(
    broker: &mut BrokerProcess,
    bearer: &HeaderValue,
    started: Instant,
) -> anyhow::Result<Duration> {
    loop {
        if let Ok(StatusCode::OK) = get_sp_token_once(broker.addr(), bearer.clone()).await {
            return Ok(started.elapsed());
        }
        broker.check_alive(started)?;
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

async fn get_sp_token_once(addr: SocketAddr, bearer: HeaderValue) -> anyhow::Result<StatusCode> {
    let mut sender = load::connect(addr).await?;
    load::send(&mut sender, bearer).await
}

/// What `requests` simultaneous GetSPToken calls for one cold scope did.
pub struct Stampede {
    pub requests: usize,
    pub result: BurstResult,
    pub upstream_calls: u64,
    /// VmHWM of the fresh broker once ready, before the burst (KiB).
    pub idle_rss_kib: u64,
    /// VmHWM of the same broker after the burst (KiB).
    pub peak_rss_kib: u64,
}

/// A fresh broker; one connection per request, all opened first; the token endpoint slowed for its
/// first call so that every request arrives while that call is in flight; then all released at once.
pub async fn stampede(
    emulator: &Emulator,
    tokens: &[String],
    requests: usize,
) -> anyhow::Result<Stampede> {
    let broker = BrokerProcess::start(emulator, &[]).await?;
    let idle_rss_kib = broker.process().peak_rss_kib()?;
    let bearers = load::bearers(tokens)?;
    let burst = Burst::prepare(broker.addr(), &bearers, requests, BURST_TIMEOUT).await?;
    emulator
        .inject_fault(
            json!({"target": "token", "mode": "slow", "delay_ms": STAMPEDE_DELAY_MS, "count": 1}),
        )
        .await?;
    let before = emulator.client_credentials_calls().await?;
    let result = burst.release().await?;
    let after = emulator.client_credentials_calls().await?;
    emulator
        .inject_fault(json!({"target": "token", "mode": "none"}))
        .await?;
    Ok(Stampede {
        requests,
        result,
        upstream_calls: after.saturating_sub(before),
        idle_rss_kib,
        peak_rss_kib: broker.process().peak_rss_kib()?,
    })
}

/// Extra runs that separate the costs behind (a) and (e).
pub struct Diagnostics {
    /// Variants of run (a): logging level, distinct versus repeated callers.
    pub loads: Vec<(String, LoadResult)>,
    /// The bare handler's VmHWM after the same burst as (d) (KiB): what the server stack alone costs.
    pub bare_burst_rss_kib: u64,
}

pub async fn diagnostics(emulator: &Emulator, tokens: &[String]) -> anyhow::Result<Diagnostics> {
    let one_token = tokens.get(..1).context("no tokens")?;
    let variants = [
        ("broker, BROKER_LOG=warn", tokens, QUIET),
        ("broker, 1 caller token", one_token, DEFAULTS),
        ("broker, 1 caller token, BROKER_LOG=warn", one_token, QUIET),
    ];
    let mut loads = Vec::with_capacity(variants.len());
    for (label, tokens, overrides) in variants {
        crate::progress(&format!("diagnostic: {label}"));
        let broker = BrokerProcess::start(emulator, overrides).await?;
        let result = load::run(&LoadSpec::get_sp_token(broker.addr(), tokens)?).await?;
        loads.push((label.to_owned(), result));
    }

    crate::progress("diagnostic: bare handler, same burst as (d)");
    let bare = BareHandler::start().await?;
    let bearers = load::bearers(tokens)?;
    Burst::prepare(
        bare.addr(),
        &bearers,
        crate::STAMPEDE_REQUESTS,
        BURST_TIMEOUT,
    )
    .await?
    .release()
    .await?;
    Ok(Diagnostics {
        loads,
        bare_burst_rss_kib: bare.process().peak_rss_kib()?,
    })
}
