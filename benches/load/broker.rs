//! The broker as the benches run it: the release binary with the emulator's settings and rate limits out
//! of the way, killed when dropped.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::bail;
use hyper::StatusCode;
use tokio::process::Command;

use crate::emulator::Emulator;
use crate::load;
use crate::process::{self, Process};

/// High enough that the limiter never answers 429 and so never distorts throughput.
const NO_RATE_LIMIT: &str = "100000000";
pub const POLL_INTERVAL: Duration = Duration::from_millis(1);

/// A release broker process, killed when dropped.
pub struct BrokerProcess {
    addr: SocketAddr,
    process: Process,
}

impl BrokerProcess {
    /// Spawns a broker on `port` without waiting for it.
    pub fn spawn(
        emulator: &Emulator,
        port: u16,
        overrides: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_token-broker"));
        command
            .env_clear()
            .envs(emulator.broker_env())
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .env("BROKER_RATE_LIMIT_PER_CALLER", NO_RATE_LIMIT)
            .env("BROKER_RATE_LIMIT_TOTAL", NO_RATE_LIMIT)
            .envs(overrides.iter().copied());
        let process = Process::spawn("token-broker", command, |_| false)?;
        Ok(Self {
            addr: process::loopback(port),
            process,
        })
    }

    /// Spawns a broker on a free port and waits until it answers the host's readiness probe (not
    /// its `listening` line, which a quieter `BROKER_LOG` leaves out).
    pub async fn start(emulator: &Emulator, overrides: &[(&str, &str)]) -> anyhow::Result<Self> {
        let mut broker = Self::spawn(emulator, process::free_port()?, overrides)?;
        let started = Instant::now();
        while !matches!(load::probe(broker.addr).await, Ok(StatusCode::OK)) {
            broker.check_alive(started)?;
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        Ok(broker)
    }

    /// Fails if the broker has exited or `started` is longer ago than the ready timeout.
    pub fn check_alive(&mut self, started: Instant) -> anyhow::Result<()> {
        if self.process.has_exited() {
            bail!("the broker exited before it was ready");
        }
        if started.elapsed() > crate::READY_TIMEOUT {
            bail!("the broker was not ready within {:?}", crate::READY_TIMEOUT);
        }
        Ok(())
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The child process, for its CPU time and peak memory.
    pub fn process(&self) -> &Process {
        &self.process
    }

    /// Log lines (audit and others) the broker has written so far.
    pub fn log_lines(&self) -> u64 {
        self.process.lines()
    }
}
