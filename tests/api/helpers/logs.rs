//! Line buffers for a child process's stdout and stderr, filled by a task so that a pipe never fills.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader, Lines};
use tokio::task::JoinHandle;

#[derive(Clone, Default)]
pub struct LogLines(Arc<Mutex<Vec<String>>>);

impl LogLines {
    /// Collects every line of `reader` until end of file; the handle finishes at EOF.
    pub fn collect(reader: impl AsyncRead + Unpin + Send + 'static) -> (Self, JoinHandle<()>) {
        let lines = Self::default();
        let task = lines.keep_collecting(BufReader::new(reader).lines());
        (lines, task)
    }

    /// Continues collecting from a reader whose first lines were already taken.
    pub fn keep_collecting<R>(&self, mut lines: Lines<BufReader<R>>) -> JoinHandle<()>
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let sink = self.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                sink.push(line);
            }
        })
    }

    pub fn push(&self, line: String) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    }

    pub fn snapshot(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Prints the lines when a test is failing (or `TEST_LOG` is set); libtest shows them on failure.
    pub fn dump_on_failure(&self, label: &str) {
        if std::thread::panicking() || std::env::var_os("TEST_LOG").is_some() {
            for line in self.snapshot() {
                eprintln!("[{label}] {line}");
            }
        }
    }
}
