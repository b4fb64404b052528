//! The library's typed errors. The CLI turns each into one stderr line.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid {what} {name:?}: must match ^[a-z0-9][a-z0-9_-]{{0,62}}$")]
    BadName { what: &'static str, name: String },

    #[error("{path}: {reason}; fix: {fix}")]
    Unsafe { path: PathBuf, reason: String, fix: String },

    #[error("unknown peer {0:?} (see `peerspool peer list`)")]
    UnknownPeer(String),

    #[error("peer {0:?} already exists (`peer add --force` overwrites its profile)")]
    PeerExists(String),

    #[error("{path}: {reason}")]
    Profile { path: PathBuf, reason: String },

    #[error("{0}")]
    Usage(String),

    /// An operation refused to protect data; nothing was changed.
    #[error("{0}")]
    Refused(String),

    #[error("another daemon (pid {pid}) is already running on {root}")]
    AlreadyRunning { pid: String, root: PathBuf },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    /// Exit code per the contract: 2 for usage errors, 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::BadName { .. } | Error::Usage(_) | Error::UnknownPeer(_) => 2,
            _ => 1,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches the path to an io::Result, so every fs error names its file.
pub trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
