//! Errors of the sources and the View.

use crate::path::{PathError, RepoPath};

/// Why a source could not answer.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The path is not in the source.
    #[error("{0}: no such file or directory in the source")]
    NotFound(RepoPath),
    /// A directory was expected at the path.
    #[error("{0}: not a directory in the source")]
    NotADirectory(RepoPath),
    /// Reading the source failed.
    #[error("{path}: {source}")]
    Io {
        /// What was being read.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The source named a path that could escape the tree.
    #[error("invalid path from {origin}: {error}")]
    BadPath {
        /// Where the path came from.
        origin: String,
        /// What is wrong with it.
        #[source]
        error: PathError,
    },
    /// A git repository could not be read.
    #[error("git repository {repo}: {message}")]
    Git {
        /// The repository.
        repo: String,
        /// What went wrong.
        message: String,
    },
    /// A remote (Mono) server failed or answered wrongly.
    #[error("{url}: {message}")]
    Remote {
        /// What was asked.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// A source spec could not be parsed.
    #[error("invalid source spec {spec:?}: {message}")]
    Spec {
        /// The spec as given.
        spec: String,
        /// What is wrong with it.
        message: String,
    },
    /// The source holds something malformed at a path.
    #[error("{path}: {message}")]
    Invalid {
        /// Where.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl SourceError {
    /// An I/O error at `path`.
    pub fn io(path: impl std::fmt::Display, source: std::io::Error) -> Self {
        SourceError::Io {
            path: path.to_string(),
            source,
        }
    }
}

/// A result whose error is a [`SourceError`].
pub type Result<T, E = SourceError> = std::result::Result<T, E>;
