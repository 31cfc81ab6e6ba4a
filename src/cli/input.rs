//! The files the offline commands are given: regular files only (opening a FIFO blocks until a writer
//! appears, and a device may never end), read no further than the command could use.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// The whole of the regular file at `path`, refused when it is something else or holds more than
/// `max_bytes`.
pub(super) fn read_regular(path: &Path, max_bytes: usize) -> io::Result<Vec<u8>> {
    // Checked before opening, which is what would block on a FIFO; and again on the open file, in case
    // the path was replaced in between.
    ensure_regular(&std::fs::metadata(path)?)?;
    let file = File::open(path)?;
    ensure_regular(&file.metadata()?)?;
    let mut bytes = Vec::new();
    file.take(max_bytes as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > max_bytes {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {max_bytes} bytes"),
        ));
    }
    Ok(bytes)
}

fn ensure_regular(metadata: &std::fs::Metadata) -> io::Result<()> {
    if metadata.is_file() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("cli-input-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_regular_file_within_the_limit_is_read_whole() {
        let dir = scratch("regular");
        let file = dir.join("f");
        std::fs::write(&file, b"12345").unwrap();
        assert_eq!(read_regular(&file, 5).unwrap(), b"12345");
        let err = read_regular(&file, 4).unwrap_err();
        assert_eq!(err.to_string(), "larger than 4 bytes");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_directory_is_refused() {
        let dir = scratch("directory");
        let err = read_regular(&dir, 5).unwrap_err();
        assert_eq!(err.to_string(), "not a regular file");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
