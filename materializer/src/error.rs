//! Errors of the materializer.

use antares_overlay::{RepoPath, SourceError};

/// Why a materializer operation failed; each names the path concerned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// Where.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The source failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A symlink from the source with an absolute target.
    #[error("{path}: symlink target {target:?} is absolute; only relative symlinks inside the repository are materialized")]
    AbsoluteSymlink {
        /// The symlink.
        path: RepoPath,
        /// Its target.
        target: String,
    },
    /// A symlink from the source whose target escapes the tree.
    #[error("{path}: symlink target {target:?} escapes the repository root")]
    EscapingSymlink {
        /// The symlink.
        path: RepoPath,
        /// Its target.
        target: String,
    },
    /// A symlink from the source whose `..` climbs out of something that
    /// is not a directory of the tree.
    #[error("{path}: symlink target {target:?} climbs with `..` out of something that is not a directory of the tree (a symlink, or nothing): it could lead outside the workspace")]
    ClimbingSymlink {
        /// The symlink.
        path: RepoPath,
        /// Its target.
        target: String,
    },
    /// Something in the workspace keeps a path from being placed.
    #[error("{path}: cannot place it, {reason}")]
    Blocked {
        /// The path.
        path: RepoPath,
        /// Why.
        reason: String,
    },
    /// The manifest or its journal is unreadable.
    #[error("manifest {path}: {message}")]
    Manifest {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Another process holds the workspace lock.
    #[error("workspace {path} is locked by another antares process (pid {holder}); try again when it has finished")]
    Locked {
        /// The workspace.
        path: String,
        /// The holder's pid.
        holder: String,
    },
    /// A state file or input is malformed.
    #[error("{path}: {message}")]
    Invalid {
        /// Where.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl Error {
    /// An I/O error at `path`.
    pub fn io(path: impl std::fmt::Display, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_string(),
            source,
        }
    }
}

/// A result whose error is an [`Error`].
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
