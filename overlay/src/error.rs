//! Errors of the sources and the View.

use crate::path::{PathError, RepoPath};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0}: no such file or directory in the source")]
    NotFound(RepoPath),
    #[error("{0}: not a directory in the source")]
    NotADirectory(RepoPath),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid path from {origin}: {error}")]
    BadPath {
        origin: String,
        #[source]
        error: PathError,
    },
    #[error("git repository {repo}: {message}")]
    Git { repo: String, message: String },
    #[error("{url}: {message}")]
    Remote { url: String, message: String },
    #[error("invalid source spec {spec:?}: {message}")]
    Spec { spec: String, message: String },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl SourceError {
    pub fn io(path: impl std::fmt::Display, source: std::io::Error) -> Self {
        SourceError::Io {
            path: path.to_string(),
            source,
        }
    }
}

pub type Result<T, E = SourceError> = std::result::Result<T, E>;
