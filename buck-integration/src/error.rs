//! Errors of the graph computation. Evaluation failures of single build files
//! are not errors (they become warnings and a conservative fallback); these
//! are the problems that make the whole answer impossible.

use antares_overlay::SourceError;

#[derive(Debug, thiserror::Error)]
pub enum BuckError {
    /// A malformed configuration file: which file, which line, what is wrong.
    #[error("{file}:{line}: {message}")]
    Config {
        file: String,
        line: usize,
        message: String,
    },
    #[error("no .buckconfig at the root of {0}: not a Buck2 project")]
    NotAProject(String),
    #[error("bad target pattern {text:?}: {message}")]
    Pattern { text: String, message: String },
    /// `known`: the project's cell names, so the user sees what to write.
    #[error("unknown cell {cell:?} in {text:?} (the cells of this project: {known})")]
    UnknownCell {
        cell: String,
        text: String,
        known: String,
    },
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Running or understanding real `buck2` failed.
    #[error("buck2: {0}")]
    Buck2(String),
}
