//! antares-buck: what a Buck2 build needs, computed without running buck2.
//!
//! # API
//!
//! ```text
//! compute(source: &dyn Source, request: &GraphRequest) -> Result<FileSet, BuckError>
//! compute_cached(source, request, cache: Option<&[u8]>) -> Result<Computed, BuckError>
//!     Computed { set: FileSet, cache: Option<Vec<u8>> }      // bytes to store, if recomputed
//!     GraphRequest { patterns: Vec<String>, current_dir: RepoPath }
//!     FileSet { files: BTreeMap<RepoPath, Reason>,          // what to materialize
//!               packages: BTreeMap<String, Reason>,         // "cell//path"
//!               targets: BTreeMap<String, TargetInfo>,      // label -> kind, deps, inputs, reason
//!               warnings: Vec<Warning>,                // Display: the message
//!               stats: GraphStats }                         // evaluations, fallbacks, cached
//!     FileSet::why(&RepoPath) -> Option<&Reason>            // Reason: Display "a -> b -> c"
//! buck2::query(&Buck2 { program, project_root }, source, request) -> Result<FileSet, BuckError>
//! buck2::Buck2::on_path(project_root) -> Option<Buck2>
//! compare(&FileSet, &FileSet) -> Comparison { only_left, only_right }
//! project_cells(source) -> Result<Cells, BuckError>        // cells, aliases, configs
//! parse_pattern(text, &Cells, current_dir) -> Result<TargetPattern, BuckError>
//! ```
//!
//! [`FileSet`] and [`Comparison`] serialize (serde) for `--json`. Errors ([`BuckError`]) are only
//! what makes an answer impossible: malformed config (file, line, problem),
//! bad patterns, unreadable sources, a failing buck2. A build file that does
//! not evaluate is a warning, and its labels still count.
//!
//! The tree is read only through [`antares_overlay::Source`]: directory
//! listings, and the contents of build, PACKAGE, `.bzl` and config files.
//!
//! # What the file set holds (`docs/architecture.md#package-granularity`)
//!
//! For every package in the dependency closure of the requested targets
//! (plus the toolchains cell's closure and the configured platforms): the
//! whole package down to sub-package boundaries minus `[project] ignore`,
//! its build file, the PACKAGE files above it, every `.bzl` it loads
//! transitively; each involved cell's config files (with includes) and
//! `.buckroot`; of a vendored prelude its `.bzl` files and the packages
//! its rules name by default (`prelude`); and the targets of relative
//! symlinks among all of these, followed transitively. Build files that fail
//! to evaluate are scanned for labels instead, with a warning.
//!
//! # Modules
//!
//! `config` (.buckconfig), `cells`, `label`, `pattern`, `tree` (cached
//! listings), `package` (package boundaries), `glob`, `eval` (starlark),
//! `closure` (walk and assembly), `cache` (the graph cache), `prelude` (what of a vendored prelude a
//! build reads), `fileset`, `warning` (what could not be followed exactly), `buck2` (real buck2 provider), `toolchains`
//! (the toolchains cell and its system stand-in).

// No `forbid(unsafe_code)`: starlark's `ProvidesStaticType` derive emits
// an `unsafe impl` in this crate's values.
#![warn(missing_docs)]

pub mod buck2;
mod cache;
mod cells;
mod closure;
mod config;
mod error;
mod eval;
mod fileset;
mod glob;
mod label;
mod package;
mod pattern;
mod prelude;
pub mod toolchains;
mod tree;
mod warning;

pub use cells::{Cell, Cells, IgnoreSet};
pub use config::BuckConfig;
pub use error::BuckError;
pub use fileset::{compare, Comparison, FileSet, GraphStats, Reason, TargetInfo};
pub use label::Label;
pub use pattern::{parse_pattern, PatternKind, TargetPattern};
pub use warning::Warning;

use antares_overlay::{RepoPath, Source};
use closure::Graph;
use tree::Tree;

/// What to compute a file set for.
#[derive(Debug, Clone, Default)]
pub struct GraphRequest {
    /// Target patterns (`//app:server`, `//lib/...`, `:name`, `cell//x:`).
    pub patterns: Vec<String>,
    /// The project-relative directory relative patterns start from.
    pub current_dir: RepoPath,
}

/// The cells of the project in `source`.
pub fn project_cells(source: &dyn Source) -> Result<Cells, BuckError> {
    Cells::load(&Tree::new(source), &source.describe())
}

/// The exact file set the requested targets need, with reasons.
pub fn compute(source: &dyn Source, request: &GraphRequest) -> Result<FileSet, BuckError> {
    compute_in(&Tree::new(source), request)
}

/// A file set and, when it was computed (or its cache refreshed) rather
/// than taken from the cache as it was, the graph cache to store for the
/// next computation.
#[derive(Debug)]
pub struct Computed {
    /// The file set the build needs.
    pub set: FileSet,
    /// The graph cache entry to store for the next run (`None`: not cacheable).
    pub cache: Option<Vec<u8>>,
}

/// [`compute`] with the graph cache: `cache` holds what a previous
/// [`Computed`] gave to store (a bad or stale one is ignored). When the
/// build files, `.bzl` files, configs and directory listings the previous
/// computation read are unchanged, its answer is returned and nothing is
/// evaluated (`stats.evaluations == 0`, `stats.cached`).
pub fn compute_cached(
    source: &dyn Source,
    request: &GraphRequest,
    cache: Option<&[u8]>,
) -> Result<Computed, BuckError> {
    let tree = Tree::new(source);
    if let Some(bytes) = cache {
        if let Some(mut hit) = cache::lookup(bytes, request, &tree)? {
            hit.set.stats.evaluations = 0;
            hit.set.stats.cached = true;
            return Ok(hit);
        }
    }
    let set = compute_in(&tree, request)?;
    let cache = cache::store(request, &tree, &set);
    Ok(Computed { set, cache })
}

fn compute_in(tree: &Tree, request: &GraphRequest) -> Result<FileSet, BuckError> {
    let source_name = tree.describe();
    let cells = Cells::load(tree, &source_name)?;
    let mut graph = Graph::new(tree, &cells);
    let mut roots = Vec::new();
    for text in &request.patterns {
        // `:name` names a target of the package holding the current
        // directory; other relative forms start from the directory itself.
        let base = if text.starts_with(':') {
            graph.enclosing_package(&request.current_dir)?
        } else {
            request.current_dir.clone()
        };
        let pattern = parse_pattern(text, &cells, &base)?;
        roots.extend(graph.pattern_roots(&pattern, None)?);
    }
    roots.extend(graph.platform_roots()?);
    // The toolchains a build configures follow from the rule kinds it
    // reaches: walk once for those, then again with them (packages are
    // evaluated once per computation, so the second walk only revisits).
    let first = graph.walk(roots.clone(), true)?;
    roots.extend(graph.toolchain_roots(&first)?);
    let walk = graph.walk(roots, true)?;
    graph.assemble(walk, Vec::new())
}
