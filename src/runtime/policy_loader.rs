//! Reading the policy document off the request path, each read bounded by `READ_TIMEOUT` and holding no
//! lock while it waits: from Key Vault, the secret's version history (listed, each new version read
//! once) and the verdict `history` gives over it; from a file, a stable read on a blocking thread. A
//! read that times out counts as a failed read; a blocking read that never returns keeps its thread, so
//! at most `MAX_STUCK_FILE_READS` are left waiting before reads are refused outright.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::azure::key_vault::VaultReader;
use crate::broker::error::LoadFailure;
use crate::broker::metrics::Metrics;
use crate::broker::policy::history::{History, Outcome, Version};
use crate::broker::policy::source::PolicySource;
use crate::broker::policy::stable_file::{self, FileProblem};

/// Longest a policy read may take, Key Vault (listing and new versions together) or file.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
const TIMED_OUT: &str = "reading the policy timed out after 10 s";
/// File reads that may still be blocked (a FIFO swapped in after the check, a hung network share).
const MAX_STUCK_FILE_READS: usize = 2;

/// The policy document in a Key Vault secret, and what was read of its versions.
pub struct VaultPolicy {
    pub name: String,
    history: History,
}

impl VaultPolicy {
    pub fn new(name: String) -> Self {
        Self {
            name,
            history: History::default(),
        }
    }

    /// Reads the secret's history and applies the verdict to `source`.
    pub async fn load(&self, reader: &VaultReader, metrics: &Metrics, source: &PolicySource) {
        Metrics::add(&metrics.key_vault_reads);
        let read = match tokio::time::timeout(READ_TIMEOUT, self.outcome(reader)).await {
            Ok(read) => read,
            Err(_) => Err((LoadFailure::Unreachable, TIMED_OUT)),
        };
        match read {
            Ok(outcome) => source.apply_history(outcome),
            Err((failure, reason)) => {
                Metrics::add(&metrics.key_vault_failures);
                source.apply_failure(failure, reason);
            }
        }
    }

    /// Lists the versions, reads the enabled ones not read before (kept even if a later one fails or
    /// the whole read times out, so progress is never lost), and gives the verdict.
    async fn outcome(&self, reader: &VaultReader) -> Result<Outcome, (LoadFailure, &'static str)> {
        const UNREACHABLE: &str = "Key Vault could not be reached";
        const REFUSED: &str =
            "the policy secret is missing or the managed identity may not read it";
        let reason = |failure| match failure {
            LoadFailure::Unreachable => (failure, UNREACHABLE),
            LoadFailure::Misconfigured => (failure, REFUSED),
        };
        let listed: Vec<Version> = reader
            .versions(&self.name)
            .await
            .map_err(reason)?
            .into_iter()
            .filter(|version| version.enabled)
            .map(|version| Version {
                id: version.id,
                created: version.created,
            })
            .collect();
        if listed.is_empty() {
            return Err(reason(LoadFailure::Misconfigured));
        }
        for id in self.history.unread(&listed) {
            let value = reader.read_version(&self.name, &id).await.map_err(reason)?;
            self.history.record(&id, value.expose().as_bytes());
        }
        self.history
            .outcome(&listed)
            .ok_or((LoadFailure::Unreachable, UNREACHABLE))
    }
}

/// The policy document in a file deployed with the app.
pub struct FilePolicy {
    pub path: PathBuf,
    /// One permit per blocking read that may be running.
    reads: Arc<Semaphore>,
}

impl FilePolicy {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            reads: Arc::new(Semaphore::new(MAX_STUCK_FILE_READS)),
        }
    }

    /// Reads the file and applies it to `source`.
    pub async fn load(&self, source: &PolicySource) {
        match self.read().await {
            Ok(bytes) => source.apply(Ok(bytes)),
            Err(reason) => source.apply_failure(LoadFailure::Misconfigured, reason),
        }
    }

    async fn read(&self) -> Result<Vec<u8>, &'static str> {
        let Ok(permit) = self.reads.clone().try_acquire_owned() else {
            return Err("earlier reads of the policy file have not returned");
        };
        let path = self.path.clone();
        let read = tokio::task::spawn_blocking(move || {
            let read = stable_file::read(&path);
            drop(permit);
            read
        });
        match tokio::time::timeout(READ_TIMEOUT, read).await {
            Ok(Ok(read)) => read.map_err(FileProblem::reason),
            Ok(Err(_)) => Err(FileProblem::Unreadable.reason()),
            Err(_) => Err(TIMED_OUT),
        }
    }
}
