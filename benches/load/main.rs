//! `cargo bench --bench load`: end-to-end load figures for the release `token-broker` against the
//! release `entra-emulator` on loopback (cached throughput and latency beside a bare warp handler,
//! cold start, a cold-scope stampede, peak memory), printed as one table with the targets. The
//! binaries are the ones cargo builds for this bench (`CARGO_BIN_EXE_*`), so they are never stale.
//! Run with `TOKEN_BROKER_BENCH_DIAGNOSE=1` for extra rows that help find where the time goes.

mod bare;
mod broker;
mod delegation;
#[allow(dead_code)] // shared with the soak bench, which uses more of it
mod emulator;
mod load;
#[allow(dead_code)]
mod process;
mod report;
mod scenarios;

use std::time::Duration;

use anyhow::Context;

use crate::broker::BrokerProcess;
use crate::delegation::DelegatingBroker;
use crate::emulator::Emulator;
use crate::load::{LoadResult, LoadSpec};
use crate::process::Process;
use crate::report::Report;

/// Distinct caller tokens minted for the throughput runs.
const CALLERS: usize = 500;
const COLD_START_RUNS: usize = 5;
pub const STAMPEDE_REQUESTS: usize = 1_000;
const DIAGNOSE_VAR: &str = "TOKEN_BROKER_BENCH_DIAGNOSE";
/// How long to wait for a child process to be ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);

fn main() -> anyhow::Result<()> {
    if std::env::var_os(bare::MODE_VAR).is_some() {
        return bare::serve();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("build the load generator's runtime")?;
    let report = runtime.block_on(run())?;
    report.print();
    Ok(())
}

async fn run() -> anyhow::Result<Report> {
    let emulator = Emulator::start().await?;
    progress(&format!("minting {CALLERS} caller tokens"));
    let tokens = emulator.mint_msi_tokens(CALLERS).await?;

    let broker = BrokerProcess::start(&emulator, &[]).await?;
    let bare = bare::BareHandler::start().await?;
    let broker_spec = LoadSpec::get_sp_token(broker.addr(), &tokens)?.slice();
    let bare_spec = LoadSpec::get_sp_token(bare.addr(), &tokens)?.slice();
    let delegating = DelegatingBroker::start(&emulator).await?;
    let delegation_spec = LoadSpec::token(
        delegating.broker.addr(),
        std::slice::from_ref(&delegating.bearer),
    )?
    .slice();
    progress(&format!(
        "(a) broker, (b) bare warp handler and (f) delegation redemption: {} connections, {} alternating slices of {:?} warm-up + {:?} each",
        broker_spec.connections,
        load::SLICES,
        broker_spec.warm_up,
        broker_spec.measure,
    ));
    let (mut broker_slices, mut bare_slices, mut delegation_slices) =
        (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..load::SLICES {
        broker_slices.push(run_slice(&broker_spec, broker.process()).await?);
        bare_slices.push(run_slice(&bare_spec, bare.process()).await?);
        delegation_slices.push(run_slice(&delegation_spec, delegating.broker.process()).await?);
    }
    let (broker_load, bare_load, delegation_load) = (
        LoadResult::merge(broker_slices),
        LoadResult::merge(bare_slices),
        LoadResult::merge(delegation_slices),
    );
    let broker_peak = broker.process().peak_rss_kib()?;
    let broker_log_lines = broker.log_lines();
    drop((broker, bare, delegating));

    progress("(c) cold start");
    let first = tokens.first().context("no caller tokens")?;
    let cold_starts = scenarios::cold_starts(&emulator, first, COLD_START_RUNS).await?;

    progress("(d) stampede");
    let stampede = scenarios::stampede(&emulator, &tokens, STAMPEDE_REQUESTS).await?;

    let diagnostics = match std::env::var_os(DIAGNOSE_VAR) {
        Some(_) => Some(scenarios::diagnostics(&emulator, &tokens).await?),
        None => None,
    };
    Ok(Report {
        callers: CALLERS,
        broker_load,
        broker_log_lines,
        bare_load,
        delegation_load,
        cold_starts,
        stampede,
        broker_peak_rss_kib: broker_peak,
        diagnostics,
    })
}

/// One slice of load against `server`, with the CPU the server used meanwhile.
async fn run_slice(spec: &LoadSpec, server: &Process) -> anyhow::Result<LoadResult> {
    let before = server.cpu_time()?;
    let mut result = load::run(spec).await?;
    result.server_cpu = server.cpu_time()? - before;
    Ok(result)
}

/// One progress line on stderr, so the table on stdout stays clean.
pub fn progress(message: &str) {
    eprintln!("[load] {message}");
}
