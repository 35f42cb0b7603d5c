//! From Buck2 target patterns to the entries a sync must place, through
//! antares-buck (built-in evaluator) or real buck2 (`--graph buck2`).

use antares_buck::{FileSet, GraphRequest};
use antares_materializer::fsutil::write_atomic;
use antares_overlay::{RepoPath, Source, SourceSpec};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Which graph provider answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphMode {
    /// Evaluate BUCK/.bzl files with the built-in Starlark evaluator.
    Builtin,
    /// Ask real buck2 (`buck2 cquery`) on a full tree on disk.
    Buck2,
}

/// Is a command-line argument a target pattern rather than a path?
/// `//x:y`, `cell//x`, `@cell//x`, `:name`, `pkg:name`, `x/...`.
pub fn is_pattern(arg: &str) -> bool {
    arg.contains("//")
        || arg.starts_with('@')
        || arg.contains(':')
        || arg == "..."
        || arg.ends_with("/...")
}

/// Makes a relative pattern absolute against `current_dir`, so it can be
/// saved and replayed from anywhere: `:a` → `//dir:a`, `sub:a` → `//dir/sub:a`,
/// `...` → `//dir/...`. Absolute and cell-qualified patterns are unchanged.
pub fn absolutize(pattern: &str, current_dir: &RepoPath) -> String {
    if pattern.contains("//") || pattern.starts_with('@') {
        return pattern.to_string();
    }
    let base = current_dir.as_str();
    let joined = |rest: &str| match (base.is_empty(), rest.is_empty()) {
        (true, _) => rest.to_string(),
        (false, true) => base.to_string(),
        (false, false) => format!("{base}/{rest}"),
    };
    match pattern.split_once(':') {
        Some((pkg, name)) => format!("//{}:{name}", joined(pkg)),
        None if pattern == "..." => format!("//{}", joined("...")),
        None => format!("//{}", joined(pattern)),
    }
}

/// The patterns given on the command line (made absolute against the
/// current directory), or else the workspace's saved targets.
pub fn given_or_saved(
    ws: &crate::workspace::Workspace,
    given: &[String],
) -> anyhow::Result<Vec<String>> {
    if given.is_empty() {
        return Ok(ws.config.targets.clone());
    }
    let current = ws.current_dir()?;
    Ok(given.iter().map(|p| absolutize(p, &current)).collect())
}

/// The file set of `patterns`, with relative patterns taken from `current_dir`;
/// the built-in evaluator reuses and refreshes the graph cache at `cache`.
pub fn file_set(
    source: &dyn Source,
    spec: &SourceSpec,
    patterns: &[String],
    current_dir: &RepoPath,
    mode: GraphMode,
    cache: Option<&Path>,
) -> Result<FileSet> {
    let request = GraphRequest {
        patterns: patterns.to_vec(),
        current_dir: current_dir.clone(),
    };
    let set = match mode {
        GraphMode::Builtin => builtin(source, &request, cache)?,
        GraphMode::Buck2 => {
            let root = full_tree_on_disk(spec)?;
            let buck2 = antares_buck::buck2::Buck2::on_path(&root)
                .context("--graph buck2: no `buck2` executable on PATH")?;
            antares_buck::buck2::query(&buck2, source, &request)?
        }
    };
    for w in &set.warnings {
        eprintln!("warning: {w}");
    }
    let failed = set.warnings.iter().filter(|w| w.is_eval_failure()).count();
    if failed > 0 {
        eprintln!("warning: {failed} file(s) could not be evaluated (-v logs each error in full)");
    }
    // Loaded only for patterns naming a cell: a root-cell pattern is
    // checked from its text, so a no-op re-sync reads no config for this.
    let mut cells = None;
    for p in patterns {
        let canonical = if p.starts_with("//") {
            p.clone()
        } else {
            let cells = match &mut cells {
                Some(c) => c,
                None => cells.insert(antares_buck::project_cells(source)?),
            };
            canonical_pattern(p, cells, current_dir)?
        };
        // A build file that failed to evaluate records no targets, only the
        // labels it mentions: its patterns cannot be checked, only warned about.
        let pkg = canonical
            .split_once("//")
            .map_or("", |(_, rest)| rest)
            .split(':')
            .next()
            .unwrap_or("")
            .trim_end_matches("/...");
        let unevaluated = set
            .warnings
            .iter()
            .filter_map(|w| w.failed_file())
            .any(|file| file.contains(pkg));
        if !unevaluated && !matches_any(&canonical, &set) {
            bail!("{p}: no such target (no matching target was found; see the warnings above)");
        }
    }
    Ok(set)
}

/// The built-in evaluator's answer, through the graph cache when given one.
/// The cache is only an optimization: an unreadable one is ignored and a
/// failure to store one is a warning.
fn builtin(source: &dyn Source, request: &GraphRequest, cache: Option<&Path>) -> Result<FileSet> {
    let Some(path) = cache else {
        return Ok(antares_buck::compute(source, request)?);
    };
    let old = match std::fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            tracing::warn!("{}: {e}; the graph cache is not used", path.display());
            None
        }
    };
    let computed = antares_buck::compute_cached(source, request, old.as_deref())?;
    if let Some(bytes) = &computed.cache {
        if let Err(e) = write_atomic(path, bytes) {
            tracing::warn!("{}: graph cache not stored: {e:#}", path.display());
        }
    }
    let s = &computed.set.stats;
    tracing::info!(
        "graph: {} evaluations{} ({} build files, {} .bzl, {} fallbacks)",
        s.evaluations,
        if s.cached {
            ", from the graph cache"
        } else {
            ""
        },
        s.build_files,
        s.bzl_files,
        s.fallbacks
    );
    Ok(computed.set)
}

/// `pattern` with its cell resolved (aliases to the cell's name), written
/// as the set's labels are: `//…` in the root cell, `cell//…` in another.
/// An unknown cell is an error naming the project's cells.
fn canonical_pattern(
    pattern: &str,
    cells: &antares_buck::Cells,
    current_dir: &RepoPath,
) -> Result<String> {
    let parsed = antares_buck::parse_pattern(pattern, cells, current_dir)?;
    let text = parsed.to_string();
    Ok(if parsed.cell == cells.root {
        text.split_once("//")
            .map_or(text.clone(), |(_, rest)| format!("//{rest}"))
    } else {
        text
    })
}

/// Does an absolute pattern, cell resolved as [`canonical_pattern`] writes
/// it, match some target of the set?
fn matches_any(pattern: &str, set: &FileSet) -> bool {
    let Some((cell, rest)) = pattern.split_once("//") else {
        return true;
    };
    let prefix = format!("{cell}//");
    let labels = || set.targets.keys().filter_map(|l| l.strip_prefix(&prefix));
    if let Some(pkg) = rest.strip_suffix("...") {
        let pkg = pkg.trim_end_matches('/');
        return labels().any(|l| {
            pkg.is_empty() || l.starts_with(&format!("{pkg}/")) || l.starts_with(&format!("{pkg}:"))
        });
    }
    match rest.split_once(':') {
        Some((pkg, "")) => labels().any(|l| l.starts_with(&format!("{pkg}:"))),
        Some(_) => labels().any(|l| l == rest),
        None => {
            let name = rest.rsplit('/').next().unwrap_or(rest);
            labels().any(|l| l == format!("{rest}:{name}"))
        }
    }
}

/// Real buck2 needs the whole tree on disk to answer: a dir: source is one.
fn full_tree_on_disk(spec: &SourceSpec) -> Result<PathBuf> {
    match spec {
        SourceSpec::Dir { path } => Ok(path.clone()),
        other => bail!("--graph buck2 needs the full tree on disk (a dir: source); {other} is not one: use --graph builtin"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_patterns_become_absolute() {
        let d = RepoPath::new("app/server").unwrap();
        assert_eq!(absolutize(":server", &d), "//app/server:server");
        assert_eq!(absolutize("sub:x", &d), "//app/server/sub:x");
        assert_eq!(absolutize("...", &d), "//app/server/...");
        assert_eq!(absolutize("//lib:a", &d), "//lib:a");
        assert_eq!(absolutize("cell//lib:a", &d), "cell//lib:a");
        assert_eq!(absolutize(":x", &RepoPath::root()), "//:x");
        assert!(
            is_pattern("//a:b")
                && is_pattern(":b")
                && is_pattern("a/...")
                && !is_pattern("lib/util")
        );
    }
}
