//! Reading the policy file so that a torn write is never loaded: only a regular file (a FIFO or a
//! device is refused before it is opened), only once it has been left alone for `SETTLE` (a writer
//! between two writes leaves a file that may parse as new head plus old tail), and only when its size,
//! modification time and inode are the same before, during and after the read (else it is read again).
//! Blocking: the caller runs it off the async workers, under a timeout.

use std::fs::{File, Metadata};
use std::io::Read;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::broker::policy::document::MAX_DOCUMENT_BYTES;

/// How long a file must go unmodified before it is loaded.
pub const SETTLE: Duration = Duration::from_secs(2);
/// Reads of a file that keeps changing under the reader before giving up until the next refresh.
const ATTEMPTS: usize = 3;

/// Why the file was not read; each is a fixed sentence for health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileProblem {
    NotRegular,
    Unsettled,
    KeptChanging,
    Unreadable,
}

impl FileProblem {
    pub fn reason(self) -> &'static str {
        match self {
            Self::NotRegular => "the policy file is not a regular file",
            Self::Unsettled => {
                "the policy file changed less than 2 s ago; it is read again on the next refresh"
            }
            Self::KeptChanging => "the policy file kept changing while it was read",
            Self::Unreadable => "the policy file could not be read",
        }
    }
}

/// The file's bytes (at most one past the document cap, so an oversized file is refused by the parser
/// without being read whole), read while nothing changed it.
pub fn read(path: &Path) -> Result<Vec<u8>, FileProblem> {
    read_at(path, SystemTime::now())
}

fn read_at(path: &Path, now: SystemTime) -> Result<Vec<u8>, FileProblem> {
    for _ in 0..ATTEMPTS {
        let before = regular(std::fs::metadata(path).map_err(unreadable)?)?;
        if before
            .modified()
            .ok()
            .and_then(|modified| now.duration_since(modified).ok())
            .is_some_and(|age| age < SETTLE)
        {
            return Err(FileProblem::Unsettled);
        }
        let mut file = File::open(path).map_err(unreadable)?;
        let opened = regular(file.metadata().map_err(unreadable)?)?;
        let mut bytes = Vec::new();
        (&mut file)
            .take(MAX_DOCUMENT_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(unreadable)?;
        let after = file.metadata().map_err(unreadable)?;
        let at_path = std::fs::metadata(path).map_err(unreadable)?;
        let stamp = Stamp::of(&opened);
        let whole = bytes.len() > MAX_DOCUMENT_BYTES || bytes.len() as u64 == opened.len();
        if whole
            && stamp == Stamp::of(&before)
            && stamp == Stamp::of(&after)
            && stamp == Stamp::of(&at_path)
        {
            return Ok(bytes);
        }
        tracing::info!("policy file changed while it was read; reading it again");
    }
    Err(FileProblem::KeptChanging)
}

fn regular(metadata: Metadata) -> Result<Metadata, FileProblem> {
    if metadata.is_file() {
        Ok(metadata)
    } else {
        Err(FileProblem::NotRegular)
    }
}

fn unreadable(err: std::io::Error) -> FileProblem {
    tracing::warn!(kind = %err.kind(), "policy file could not be read");
    FileProblem::Unreadable
}

/// What changes when a file is written or replaced.
#[derive(PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    inode: (u64, u64),
}

impl Stamp {
    fn of(metadata: &Metadata) -> Self {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        Self {
            len: metadata.len(),
            modified: metadata.modified().ok(),
            #[cfg(unix)]
            inode: (metadata.dev(), metadata.ino()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(contents: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("stable-file-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("policy.json");
        std::fs::write(&file, contents).unwrap();
        (dir, file)
    }

    #[test]
    fn a_file_left_alone_is_read_whole() {
        let (dir, file) = temp_file(r#"{"revision": 1}"#);
        let later = SystemTime::now() + SETTLE;
        assert_eq!(read_at(&file, later).unwrap(), br#"{"revision": 1}"#);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_file_written_within_the_settle_time_is_not_read_yet() {
        let (dir, file) = temp_file(r#"{"revision": 1}"#);
        assert_eq!(
            read_at(&file, SystemTime::now()),
            Err(FileProblem::Unsettled)
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_directory_is_not_a_regular_file() {
        let (dir, _) = temp_file("{}");
        assert_eq!(
            read_at(&dir, SystemTime::now() + SETTLE),
            Err(FileProblem::NotRegular)
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_file_is_unreadable() {
        let path = std::env::temp_dir().join(format!("missing-{}", rand::random::<u64>()));
        assert_eq!(
            read_at(&path, SystemTime::now()),
            Err(FileProblem::Unreadable)
        );
    }
}
