//! Batched stdout for log lines. Each line is appended to a shared buffer under a short lock; one
//! background thread writes the buffer out every `FLUSH_EVERY`, or the request that fills it past
//! `FLUSH_AT` does. The request path makes no syscall and wakes no thread per line (a `write` per
//! audit line had cost a quarter of the broker's CPU under load). Lines are never dropped or split.

use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

const FLUSH_EVERY: Duration = Duration::from_millis(50);
const FLUSH_AT: usize = 256 * 1024;

#[derive(Default)]
struct Shared {
    pending: Mutex<Vec<u8>>,
}

impl Shared {
    fn append(&self, line: &[u8]) -> io::Result<()> {
        let full = {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            pending.extend_from_slice(line);
            pending.len() >= FLUSH_AT
        };
        if full { self.flush() } else { Ok(()) }
    }

    /// Takes the pending lines while holding stdout, so chunks reach it in the order they were taken.
    fn flush(&self) -> io::Result<()> {
        let mut stdout = io::stdout().lock();
        let lines =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        if lines.is_empty() {
            return Ok(());
        }
        stdout.write_all(&lines)?;
        stdout.flush()
    }
}

/// The `MakeWriter` handed to the subscriber.
#[derive(Clone)]
pub struct BatchedStdout(Arc<Shared>);

/// Flushes whatever is pending when dropped: keep it until the process exits.
pub struct FlushOnDrop(Arc<Shared>);

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        let _ = self.0.flush();
    }
}

impl BatchedStdout {
    /// Starts the flushing thread.
    pub fn start() -> (Self, FlushOnDrop) {
        let shared = Arc::new(Shared::default());
        let flusher = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("log-flush".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(FLUSH_EVERY);
                    let _ = flusher.flush();
                }
            });
        if spawned.is_err() {
            // Without the thread, lines still go out whenever the buffer fills and at exit.
            let _ = io::stderr().write_all(b"log flusher thread could not start\n");
        }
        (Self(shared.clone()), FlushOnDrop(shared))
    }
}

/// One line's writer; `tracing_subscriber` writes each formatted line with one `write_all`.
pub struct LineSink<'a>(&'a Shared);

impl Write for LineSink<'_> {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        self.0.append(line)?;
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchedStdout {
    type Writer = LineSink<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineSink(&self.0)
    }
}
