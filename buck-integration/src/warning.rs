//! What a file-set computation could not follow exactly, as typed values:
//! callers decide by kind (e.g. "did a build file fail to evaluate?") and
//! print the `Display` text, which is the one place each message is worded.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One thing that could not be followed exactly; the file set is a superset
/// regardless.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Warning {
    /// A build file failed to evaluate: every label written in it counts as
    /// a dependency, and its targets are unknown.
    BuildFileFailed {
        /// The build file (repository path).
        buildfile: String,
        /// The evaluation error, starting with the failing file.
        reason: String,
    },
    /// A PACKAGE file failed to evaluate: its loads are kept.
    PackageFileFailed {
        /// The PACKAGE file (repository path).
        file: String,
        /// The evaluation error, starting with the failing file.
        reason: String,
    },
    /// A `.bzl` failed to evaluate: where it is loaded its symbols record
    /// calls generically.
    BzlFailed {
        /// The `.bzl` file (repository path).
        file: String,
        /// The evaluation error, starting with the failing file.
        reason: String,
    },
    /// A pattern names a package that has no build file.
    NoPackage {
        /// The pattern as written.
        pattern: String,
        /// The package, as `cell//path`.
        package: String,
    },
    /// A configured platform is not a target label.
    NotALabel {
        /// Where the text was configured.
        origin: String,
        /// The text.
        text: String,
    },
    /// A label's cell is declared but not in the tree.
    CellAbsent {
        /// The cell.
        cell: String,
        /// The skipped label.
        label: String,
        /// Why the label was reached.
        why: String,
    },
    /// A label's package has no build file.
    NoBuildFile {
        /// The package, as `cell//path`.
        package: String,
        /// Why the label was reached.
        why: String,
    },
    /// A build file that evaluated does not declare the target a label names.
    NoTarget {
        /// The build file (repository path).
        buildfile: String,
        /// The target name.
        name: String,
        /// Why the label was reached.
        why: String,
    },
    /// A string in a build file looks like a label but does not resolve.
    BadLabel {
        /// The build file (repository path).
        buildfile: String,
        /// The string.
        text: String,
        /// Why it does not resolve.
        error: String,
    },
    /// A symlink's target cannot be materialized (it escapes the tree, loops…).
    SymlinkUnresolvable {
        /// The symlink (repository path).
        link: String,
        /// What is wrong with its target.
        problem: String,
    },
    /// Real buck2 reported a dependency that is not a label here.
    Buck2NotALabel {
        /// What buck2 printed.
        text: String,
    },
    /// Real buck2 reported a path that is not in the tree.
    Buck2NotInTree {
        /// The query that reported it.
        query: String,
        /// What buck2 printed.
        path: String,
    },
    /// A symlink's target does not exist.
    SymlinkDangles {
        /// The symlink (repository path).
        link: String,
    },
}

impl Warning {
    /// Whether a Starlark file failed to evaluate (build, PACKAGE or `.bzl`).
    pub fn is_eval_failure(&self) -> bool {
        matches!(
            self,
            Warning::BuildFileFailed { .. }
                | Warning::PackageFileFailed { .. }
                | Warning::BzlFailed { .. }
        )
    }

    /// The file that failed to evaluate, for an evaluation failure.
    pub fn failed_file(&self) -> Option<&str> {
        match self {
            Warning::BuildFileFailed { buildfile: f, .. }
            | Warning::PackageFileFailed { file: f, .. }
            | Warning::BzlFailed { file: f, .. } => Some(f),
            _ => None,
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::BuildFileFailed { buildfile, reason } => write!(
                f,
                "could not evaluate {reason}; every label written in {buildfile} counts as a dependency"
            ),
            Warning::PackageFileFailed { file, reason } => {
                write!(f, "could not evaluate {reason}; the loads of {file} are kept")
            }
            Warning::BzlFailed { file, reason } => write!(
                f,
                "could not evaluate {reason}; where {file} is loaded its symbols record calls generically, with every label written in it"
            ),
            Warning::NoPackage { pattern, package } => write!(f, "{pattern}: no package {package}"),
            Warning::NotALabel { origin, text } => {
                write!(f, "{origin}: {text:?} is not a target label")
            }
            Warning::CellAbsent { cell, label, why } => {
                write!(f, "cell {cell} is not in the tree: {label} skipped ({why})")
            }
            Warning::NoBuildFile { package, why } => {
                write!(f, "no build file for package {package} ({why})")
            }
            Warning::NoTarget {
                buildfile,
                name,
                why,
            } => write!(f, "{buildfile} declares no target {name:?} ({why})"),
            Warning::BadLabel {
                buildfile,
                text,
                error,
            } => write!(f, "{buildfile}: {text:?}: {error}"),
            Warning::SymlinkUnresolvable { link, problem } => write!(
                f,
                "{problem} (kept {link}, its target cannot be materialized)"
            ),
            Warning::Buck2NotALabel { text } => {
                write!(f, "buck2 reported {text:?}, which is not a label here")
            }
            Warning::Buck2NotInTree { query, path } => {
                write!(f, "{query} reported {path:?}, which is not in the tree")
            }
            Warning::SymlinkDangles { link } => write!(f, "symlink {link} dangles"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The graph cache stores warnings: they come back as the same kind.
    #[test]
    fn a_warning_round_trips_through_json_with_its_kind() {
        let w = Warning::NoTarget {
            buildfile: "p/BUCK".into(),
            name: "t".into(),
            why: "//a:a -> //p:t (deps)".into(),
        };
        let json = serde_json::to_string(&w).unwrap();
        assert!(json.contains("\"kind\":\"no_target\""), "{json}");
        assert_eq!(serde_json::from_str::<Warning>(&json).unwrap(), w);
        assert_eq!(
            w.to_string(),
            "p/BUCK declares no target \"t\" (//a:a -> //p:t (deps))"
        );
        assert!(!w.is_eval_failure());
    }

    #[test]
    fn only_evaluation_failures_name_a_failed_file() {
        let w = Warning::BuildFileFailed {
            buildfile: "p/BUCK".into(),
            reason: "p/BUCK:1:1: boom".into(),
        };
        assert!(w.is_eval_failure());
        assert_eq!(w.failed_file(), Some("p/BUCK"));
        let none = Warning::SymlinkDangles { link: "s/l".into() };
        assert_eq!(none.failed_file(), None);
    }
}
