//! Errors of the graph computation. Evaluation failures of single build files
//! are not errors (they become warnings and a conservative fallback); these
//! are the problems that make the whole answer impossible.

use antares_overlay::SourceError;

#[derive(Debug, thiserror::Error)]
/// The ways a whole graph computation can fail.
pub enum BuckError {
    /// A malformed configuration file: which file, which line, what is wrong.
    #[error("{file}:{line}: {message}")]
    Config {
        /// The configuration file.
        file: String,
        /// Its 1-based line.
        line: usize,
        /// What is wrong there.
        message: String,
    },
    /// The directory given as the project root has no `.buckconfig`.
    #[error("no .buckconfig at the root of {0}: not a Buck2 project")]
    NotAProject(String),
    /// A target pattern that does not parse.
    #[error("bad target pattern {text:?}: {message}")]
    Pattern {
        /// The pattern as written.
        text: String,
        /// What is wrong with it.
        message: String,
    },
    /// `known`: the project's cell names, so the user sees what to write.
    #[error("unknown cell {cell:?} in {text:?} (the cells of this project: {known})")]
    UnknownCell {
        /// The cell as written.
        cell: String,
        /// The pattern it appeared in.
        text: String,
        /// The cells the project declares, comma-separated.
        known: String,
    },
    /// Reading the source tree failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Running or understanding real `buck2` failed.
    #[error("buck2: {0}")]
    Buck2(String),
}
