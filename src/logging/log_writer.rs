//! Batched stdout for log lines. Each line is appended to a shared buffer under a short lock; one
//! background thread writes the buffer out every `FLUSH_EVERY`, or as soon as a request fills it past
//! `FLUSH_AT`. The request path makes no syscall per line (a `write` per audit line had cost a quarter
//! of the broker's CPU under load). Lines are never dropped or split. Two buffers take turns, so their
//! capacity is reused instead of regrown after every flush.

use std::io::{self, Write};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::Thread;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// Pending bytes that wake the flushing thread early.
const FLUSH_AT: usize = 256 * 1024;
/// Pending bytes past which the appending request writes them itself: when stdout is slower than the
/// log rate, requests wait for it rather than the buffer growing without bound.
const WRITE_INLINE_AT: usize = 8 * FLUSH_AT;

#[derive(Default)]
struct Shared {
    pending: Mutex<Vec<u8>>,
    /// The buffer written last, kept for its capacity. Only taken while holding stdout.
    spare: Mutex<Vec<u8>>,
    flusher: OnceLock<Thread>,
}

fn lock(buffer: &Mutex<Vec<u8>>) -> MutexGuard<'_, Vec<u8>> {
    buffer.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Appends what `write` puts in the buffer; if it fails, nothing of it is kept.
    fn append_with<E>(&self, write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>) -> Result<(), E> {
        let (before, after) = {
            let mut pending = lock(&self.pending);
            let before = pending.len();
            if let Err(err) = write(&mut pending) {
                pending.truncate(before);
                return Err(err);
            }
            (before, pending.len())
        };
        if after >= WRITE_INLINE_AT {
            let _ = self.flush();
        } else if before < FLUSH_AT && after >= FLUSH_AT {
            match self.flusher.get() {
                Some(flusher) => flusher.unpark(),
                None => {
                    let _ = self.flush();
                }
            }
        }
        Ok(())
    }

    /// Swaps the pending lines out while holding stdout, so chunks reach it in the order they were taken.
    fn flush(&self) -> io::Result<()> {
        let mut stdout = io::stdout().lock();
        let mut lines = lock(&self.spare);
        lines.clear();
        std::mem::swap(&mut *lock(&self.pending), &mut *lines);
        if lines.is_empty() {
            return Ok(());
        }
        stdout.write_all(&lines)?;
        stdout.flush()
    }
}

/// The `MakeWriter` handed to the subscriber, and the audit line's direct way in.
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
                    std::thread::park_timeout(FLUSH_EVERY);
                    let _ = flusher.flush();
                }
            });
        match spawned {
            Ok(handle) => {
                let _ = shared.flusher.set(handle.thread().clone());
            }
            // Without the thread, lines still go out whenever the buffer fills and at exit.
            Err(_) => {
                let _ = io::stderr().write_all(b"log flusher thread could not start\n");
            }
        }
        (Self(shared.clone()), FlushOnDrop(shared))
    }

    /// Appends one complete line written by `write` (which must end it with a newline), or nothing if
    /// `write` fails.
    pub fn append_line<E>(
        &self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.0.append_with(write)
    }
}

/// One line's writer; `tracing_subscriber` writes each formatted line with one `write_all`.
pub struct LineSink<'a>(&'a Shared);

impl Write for LineSink<'_> {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        self.0.append_with(|pending| {
            pending.extend_from_slice(line);
            Ok::<_, io::Error>(())
        })?;
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
