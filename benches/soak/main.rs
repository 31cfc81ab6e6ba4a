//! `cargo bench --bench soak -- --duration 600`: the release broker against the release emulator for a
//! set time, under a fixed mix of valid and hostile requests, with emulator faults injected in turn and
//! the signing keys rotated periodically. Reports requests, wrong answers (an issued token that fails
//! verification against the emulator's keys and the request, or any 200 to a hostile request),
//! undocumented 5xx (a status and code absent from the README's error table) and the broker's RSS over
//! time; exits non-zero on any wrong answer or undocumented 5xx. A bench, so `cargo test` never runs it.

#[allow(dead_code)] // shared with the load bench; the soak uses part of it
#[path = "../load/broker.rs"]
mod broker;
#[allow(dead_code)]
#[path = "../load/emulator.rs"]
mod emulator;
#[allow(dead_code)]
#[path = "../load/load.rs"]
mod load;
#[allow(dead_code)]
#[path = "../load/process.rs"]
mod process;

mod chaos;
mod tally;
mod traffic;
mod verify;

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::broker::BrokerProcess;
use crate::emulator::Emulator;
use crate::tally::{DocumentedErrors, Tally};
use crate::traffic::Tokens;
use crate::verify::Verifier;

/// How long to wait for a child process to be ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);
const DEFAULT_DURATION: Duration = Duration::from_secs(60);
/// Concurrent clients, each sending the mix in turn on its own keep-alive connection.
const WORKERS: usize = 8;
/// RSS samples over the run.
const RSS_SAMPLES: u32 = 20;
/// Short refresh intervals, so that faults and rotations reach the broker within the run.
const BROKER_OVERRIDES: &[(&str, &str)] = &[
    ("BROKER_ALLOWLIST_REFRESH_SECONDS", "5"),
    ("BROKER_JWKS_REFRESH_SECONDS", "15"),
    ("BROKER_JWKS_MIN_REFRESH_SECONDS", "1"),
    ("BROKER_LOG", "warn"),
];

fn main() -> anyhow::Result<()> {
    let duration = duration_arg()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("build the soak's runtime")?;
    let tally = runtime.block_on(run(duration))?;
    tally.print(duration);
    if tally.wrong_answers() > 0 || tally.undocumented_5xx() > 0 {
        bail!("the soak found wrong answers or undocumented 5xx");
    }
    Ok(())
}

/// `--duration <seconds>`; cargo's own `--bench` flag is ignored.
fn duration_arg() -> anyhow::Result<Duration> {
    let mut args = std::env::args().skip(1);
    let mut duration = DEFAULT_DURATION;
    while let Some(arg) = args.next() {
        if arg == "--duration" {
            let seconds = args.next().context("--duration needs seconds")?;
            duration = Duration::from_secs(seconds.parse().context("--duration <seconds>")?);
        }
    }
    Ok(duration)
}

async fn run(duration: Duration) -> anyhow::Result<Tally> {
    let documented = DocumentedErrors::read()?;
    let emulator = Arc::new(Emulator::start().await?);
    let broker = BrokerProcess::start(&emulator, BROKER_OVERRIDES).await?;
    let verifier = Arc::new(Verifier::new(&emulator).await?);
    let tokens = Arc::new(RwLock::new(Arc::new(Tokens::mint(&emulator).await?)));
    let tally = Arc::new(Tally::new(documented));
    let deadline = Instant::now() + duration;
    progress(&format!(
        "{WORKERS} workers for {duration:?} against {}",
        broker.addr()
    ));

    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let (tokens, tally, verifier) = (tokens.clone(), tally.clone(), verifier.clone());
            let (addr, emulator) = (broker.addr(), emulator.clone());
            tokio::spawn(async move {
                tally::drive(
                    worker, addr, &emulator, &tokens, &verifier, &tally, deadline,
                )
                .await
            })
        })
        .collect();
    let chaos = tokio::spawn(chaos::run(
        emulator.clone(),
        tokens,
        tally.clone(),
        deadline,
    ));

    let interval = duration / RSS_SAMPLES;
    let started = Instant::now();
    while Instant::now() < deadline {
        tokio::time::sleep(interval.min(deadline.saturating_duration_since(Instant::now()))).await;
        tally.sample_rss(started.elapsed(), broker.process().rss_kib()?);
    }
    for worker in workers {
        worker.await??;
    }
    chaos.await??;
    Arc::into_inner(tally).context("a worker still holds the tally")
}

/// One progress line on stderr, so the report on stdout stays clean.
pub fn progress(message: &str) {
    eprintln!("[soak] {message}");
}
