//! The answer: every path a build of the requested targets needs, each with
//! the reason it is there.

use crate::warning::Warning;
use antares_overlay::RepoPath;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Why something is in the set: a chain from a requested target (or from
/// the project itself) to the path, e.g.
/// `//app:server -> //lib:util (deps) -> package lib/ (whole package)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Reason {
    /// Why a path is in the set, outermost first (the first entry is the pattern).
    pub chain: Vec<String>,
}

impl Reason {
    /// A reason that starts with one step.
    pub fn new(first: impl Into<String>) -> Self {
        Reason {
            chain: vec![first.into()],
        }
    }

    /// This chain extended by one step.
    pub fn then(&self, step: impl Into<String>) -> Self {
        let mut chain = self.chain.clone();
        chain.push(step.into());
        Reason { chain }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.chain.join(" -> "))
    }
}

/// A target in the closure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetInfo {
    /// The rule kind as the build file called it (`rust_library`, `genrule`).
    pub kind: String,
    /// Every label found in its attributes (all `select()` branches,
    /// macros in strings), resolved.
    pub deps: Vec<String>,
    /// Attribute strings naming files of its package, package-relative.
    pub inputs: Vec<String>,
    /// Why the target was reached.
    pub reason: Reason,
}

/// What computing a file set took.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphStats {
    /// Build files evaluated (or scanned, when they failed).
    pub build_files: usize,
    /// `PACKAGE` files evaluated.
    pub package_files: usize,
    /// `.bzl` files loaded.
    pub bzl_files: usize,
    /// Build files that could not be evaluated: their labels were scanned.
    pub fallbacks: usize,
    /// Starlark files evaluated by this computation: 0 when the answer came
    /// from the graph cache.
    pub evaluations: usize,
    /// Whether the answer came from the graph cache.
    pub cached: bool,
}

/// The result of [`crate::compute`] (or of the buck2 provider).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FileSet {
    /// Every path to materialize, with why.
    pub files: BTreeMap<RepoPath, Reason>,
    /// Packages in the closure, as `cell//path`.
    pub packages: BTreeMap<String, Reason>,
    /// Targets in the closure, as labels (root cell written `//…`).
    pub targets: BTreeMap<String, TargetInfo>,
    /// What could not be followed exactly (failed build files, missing
    /// packages, escaping symlinks…); the set is a superset regardless.
    pub warnings: Vec<Warning>,
    /// What the computation took (zeros from the buck2 provider).
    pub stats: GraphStats,
}

impl FileSet {
    /// Why `path` is in the set.
    pub fn why(&self, path: &RepoPath) -> Option<&Reason> {
        self.files.get(path)
    }

    /// Adds `path` unless present (the first, shortest reason wins).
    pub(crate) fn add(&mut self, path: RepoPath, reason: impl FnOnce() -> Reason) -> bool {
        match self.files.entry(path) {
            std::collections::btree_map::Entry::Occupied(_) => false,
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(reason());
                true
            }
        }
    }
}

/// Paths one file set has and the other lacks (`antares graph --compare`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Comparison {
    /// Paths only in the left set.
    pub only_left: Vec<RepoPath>,
    /// Paths only in the right set.
    pub only_right: Vec<RepoPath>,
}

impl Comparison {
    /// Whether the two sets hold the same paths.
    pub fn is_equal(&self) -> bool {
        self.only_left.is_empty() && self.only_right.is_empty()
    }
}

/// Compares two file sets by path.
pub fn compare(left: &FileSet, right: &FileSet) -> Comparison {
    Comparison {
        only_left: left
            .files
            .keys()
            .filter(|p| !right.files.contains_key(*p))
            .cloned()
            .collect(),
        only_right: right
            .files
            .keys()
            .filter(|p| !left.files.contains_key(*p))
            .cloned()
            .collect(),
    }
}
