//! Errors of the materializer.

use antares_overlay::{RepoPath, SourceError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{path}: content from the source does not match its object id {oid} (got {actual})")]
    Corrupt {
        path: RepoPath,
        oid: String,
        actual: String,
    },
    #[error("{path}: symlink target {target:?} is absolute; only relative symlinks inside the repository are materialized")]
    AbsoluteSymlink { path: RepoPath, target: String },
    #[error("{path}: symlink target {target:?} escapes the repository root")]
    EscapingSymlink { path: RepoPath, target: String },
    #[error("{path}: symlink target {target:?} climbs with `..` out of something that is not a directory of the tree (a symlink, or nothing): it could lead outside the workspace")]
    ClimbingSymlink { path: RepoPath, target: String },
    #[error("{path}: cannot place it, {reason}")]
    Blocked { path: RepoPath, reason: String },
    #[error("manifest {path}: {message}")]
    Manifest { path: String, message: String },
    #[error("workspace {path} is locked by another antares process (pid {holder}); try again when it has finished")]
    Locked { path: String, holder: String },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl Error {
    pub fn io(path: impl std::fmt::Display, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_string(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches a path to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl std::fmt::Display) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl std::fmt::Display) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
