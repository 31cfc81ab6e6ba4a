//! JSON lines on stdout. The ready line is written directly; later lines go through a bounded queue to a
//! writer thread, so a test that stops reading stdout can never stall a request (lines are dropped instead).
//! Callers pass only routing facts: never a token, secret, assertion, body or query string.

use serde_json::{Value, json};
use std::io::Write;
use std::sync::OnceLock;
use std::sync::mpsc::{SyncSender, sync_channel};

static QUEUE: OnceLock<SyncSender<String>> = OnceLock::new();

/// Writes one line to stdout now and flushes it; a closed stdout is ignored.
pub fn write_now(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Starts the writer thread; lines logged before this are written directly.
pub fn start_writer() {
    let (sender, receiver) = sync_channel::<String>(4_096);
    let spawned = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || {
            for line in receiver {
                write_now(&line);
            }
        });
    if spawned.is_ok() {
        let _ = QUEUE.set(sender);
    }
}

/// Queues one JSON line; drops it when the queue is full.
pub fn event(value: &Value) {
    let line = value.to_string();
    match QUEUE.get() {
        Some(queue) => {
            let _ = queue.try_send(line);
        }
        None => write_now(&line),
    }
}

/// A start-up or runtime problem, on stderr.
pub fn error(message: &str) {
    let line = json!({"event": "error", "message": message}).to_string();
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}
