//! Child processes for the bench: spawned with `kill_on_drop`, stdout drained by a reader thread that
//! counts lines and hands over the first line announcing readiness; CPU time and memory from /proc.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

/// Decides whether a stdout line is the child's "ready" announcement.
pub type ReadyLine = fn(&str) -> bool;

/// A running child; killed when dropped.
pub struct Process {
    name: &'static str,
    child: Child,
    lines: Arc<AtomicU64>,
    ready: Option<oneshot::Receiver<Result<String, String>>>,
}

impl Process {
    /// Spawns `command` with stdout piped to a draining thread; stderr is inherited.
    pub fn spawn(
        name: &'static str,
        mut command: Command,
        is_ready: ReadyLine,
    ) -> anyhow::Result<Self> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = command.spawn().with_context(|| format!("spawn {name}"))?;
        let stdout = child
            .stdout
            .take()
            .context("child stdout")?
            .into_owned_fd()
            .context("child stdout")?;
        let lines = Arc::new(AtomicU64::new(0));
        let (ready_tx, ready_rx) = oneshot::channel();
        let counter = lines.clone();
        std::thread::Builder::new()
            .name(format!("{name}-stdout"))
            .spawn(move || drain(std::fs::File::from(stdout), &counter, is_ready, ready_tx))
            .context("spawn the stdout reader")?;
        Ok(Self {
            name,
            child,
            lines,
            ready: Some(ready_rx),
        })
    }

    /// Waits for the ready line and returns it.
    pub async fn ready(&mut self) -> anyhow::Result<String> {
        let name = self.name;
        let receiver = self.ready.take().context("ready() called twice")?;
        match tokio::time::timeout(crate::READY_TIMEOUT, receiver).await {
            Ok(Ok(Ok(line))) => Ok(line),
            Ok(Ok(Err(last))) => bail!("{name} exited before it was ready; last line: {last}"),
            Ok(Err(_)) => bail!("{name}: stdout reader stopped"),
            Err(_) => bail!("{name} not ready within {:?}", crate::READY_TIMEOUT),
        }
    }

    /// Lines the child has written to stdout so far.
    pub fn lines(&self) -> u64 {
        self.lines.load(Ordering::Relaxed)
    }

    /// Whether the child has exited (or can no longer be waited on).
    pub fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// CPU time the child has used so far, user and system, all threads (`/proc/<pid>/stat`).
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        let pid = self.child.id().context("child already reaped")?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("read /proc/{pid}/stat"))?;
        // Fields after the command name (which may hold spaces) start at field 3; utime and stime are
        // fields 14 and 15, in clock ticks (USER_HZ, 100 on Linux).
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .context("malformed /proc stat")?
            .1
            .split_whitespace()
            .collect();
        let ticks = |index: usize| -> anyhow::Result<u64> {
            fields
                .get(index)
                .and_then(|field| field.parse().ok())
                .context("malformed /proc stat")
        };
        let total = ticks(11)? + ticks(12)?;
        Ok(Duration::from_millis(total * 10))
    }

    /// Peak resident set size (VmHWM) in KiB.
    pub fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        self.status_kib("VmHWM:")
    }

    /// Current resident set size (VmRSS) in KiB.
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        self.status_kib("VmRSS:")
    }

    /// A `kB` field of `/proc/<pid>/status`.
    fn status_kib(&self, field: &str) -> anyhow::Result<u64> {
        let pid = self.child.id().context("child already reaped")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("read /proc/{pid}/status"))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("{field} missing from /proc status"))
    }
}

/// Reads stdout to its end: counts lines, sends the first ready line (or, at EOF before one, the last
/// line seen), and discards the rest. Bytes, not `String`s, so that no odd output stops the draining.
fn drain(
    stdout: std::fs::File,
    counter: &AtomicU64,
    is_ready: ReadyLine,
    ready: oneshot::Sender<Result<String, String>>,
) {
    let mut reader = BufReader::with_capacity(1 << 16, stdout);
    let mut pending = Some(ready);
    let mut line = Vec::new();
    let mut last = String::new();
    while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some(sender) = pending.take() {
            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
            if is_ready(&text) {
                let _ = sender.send(Ok(text));
            } else {
                last = text;
                pending = Some(sender);
            }
        }
        line.clear();
    }
    if let Some(sender) = pending {
        let _ = sender.send(Err(last));
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// The loopback address for `port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}
