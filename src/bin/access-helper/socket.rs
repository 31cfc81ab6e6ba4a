//! The Unix socket: created under a temporary name, given the operator's mode, then renamed onto its path,
//! so the path never exists with other permissions and a stale socket from a crashed run is replaced in one
//! step. A symbolic link, a live helper's socket or any other file at the path stops the start instead.
//! The socket file is removed on drop, if it is still this one.

use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("socket {0} is a symbolic link; the helper never follows or replaces one")]
    Symlink(PathBuf),
    #[error("socket {0} is in use by a running helper")]
    InUse(PathBuf),
    #[error("socket {0} exists and is not a socket")]
    NotASocket(PathBuf),
    #[error("socket {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The listening socket; dropping it removes the socket file.
pub struct BoundSocket {
    pub listener: UnixListener,
    path: PathBuf,
    inode: u64,
}

pub fn bind(path: &Path, mode: u32) -> Result<BoundSocket, SocketError> {
    let io = |source| SocketError::Io {
        path: path.to_owned(),
        source,
    };
    check_replaceable(path)?;
    let name = path
        .file_name()
        .ok_or_else(|| io(std::io::Error::new(ErrorKind::InvalidInput, "no file name")))?;
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io)?;
    let mut temporary = parent.join(".");
    temporary.as_mut_os_string().push(name);
    temporary
        .as_mut_os_string()
        .push(format!(".{}.tmp", std::process::id()));
    // Left over by a crashed run with the same process id (a container restart): only ever a socket.
    if std::fs::symlink_metadata(&temporary).is_ok_and(|m| m.file_type().is_socket()) {
        std::fs::remove_file(&temporary).map_err(io)?;
    }
    let listener = UnixListener::bind(&temporary).map_err(io)?;
    let placed = std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(mode))
        // rename(2) replaces a stale socket, or a link raced in since the check, without following it.
        .and_then(|()| std::fs::rename(&temporary, path))
        .and_then(|()| std::fs::symlink_metadata(path));
    match placed {
        Ok(metadata) => Ok(BoundSocket {
            listener,
            path: path.to_owned(),
            inode: metadata.ino(),
        }),
        Err(err) => {
            let _ = std::fs::remove_file(&temporary);
            Err(io(err))
        }
    }
}

/// Nothing at `path`, or a socket nobody answers on (a crashed run's).
fn check_replaceable(path: &Path) -> Result<(), SocketError> {
    let metadata = match std::fs::symlink_metadata(path) {
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(SocketError::Io {
                path: path.to_owned(),
                source,
            });
        }
        Ok(metadata) => metadata,
    };
    let kind = metadata.file_type();
    if kind.is_symlink() {
        return Err(SocketError::Symlink(path.to_owned()));
    }
    if !kind.is_socket() {
        return Err(SocketError::NotASocket(path.to_owned()));
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(SocketError::InUse(path.to_owned()));
    }
    Ok(())
}

impl BoundSocket {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for BoundSocket {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.file_type().is_socket() && m.ino() == self.inode);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ah-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test]
    async fn the_socket_gets_the_operators_mode_and_is_removed_on_drop() {
        let path = scratch("mode").join("program.sock");
        let socket = bind(&path, 0o600).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        drop(socket);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced() {
        let path = scratch("stale").join("program.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let socket = bind(&path, 0o660).unwrap();
        assert!(std::os::unix::net::UnixStream::connect(&path).is_ok());
        drop(socket);
    }

    #[tokio::test]
    async fn a_symlink_a_live_socket_and_a_file_are_never_replaced() {
        let dir = scratch("refuse");
        let target = dir.join("target");
        std::fs::write(&target, "keep").unwrap();
        let link = dir.join("link.sock");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(bind(&link, 0o660), Err(SocketError::Symlink(_))));
        assert!(matches!(
            bind(&target, 0o660),
            Err(SocketError::NotASocket(_))
        ));
        let live = dir.join("live.sock");
        let _running = bind(&live, 0o660).unwrap();
        assert!(matches!(bind(&live, 0o660), Err(SocketError::InUse(_))));
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    }
}
