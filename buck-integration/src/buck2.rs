//! Real buck2 as an optional provider (`--graph buck2`).
//!
//! Asks `buck2 cquery` (never `uquery`: its `deps()` fails on rust/cxx
//! targets with the current prelude, oracle fact 5) for `deps()`,
//! `inputs()` and `allbuildfiles()` of the requested patterns plus the
//! toolchains cell, then adds what those queries leave out (oracle fact 1):
//! whole packages, PACKAGE files, cell configs and their includes,
//! `.buckroot`, and the targets of relative symlinks.

use crate::cells::{Cells, PRELUDE};
use crate::closure::Graph;
use crate::error::BuckError;
use crate::fileset::{FileSet, Reason};
use crate::label::{parse_raw, resolve};
use crate::pattern::parse_pattern;
use crate::tree::Tree;
use crate::warning::Warning;
use crate::GraphRequest;
use antares_overlay::{RepoPath, Source};
use std::path::PathBuf;
use std::process::Command;

/// How to run real buck2 on a full checkout of the project.
#[derive(Debug, Clone)]
pub struct Buck2 {
    /// The `buck2` executable.
    pub program: PathBuf,
    /// A directory holding the whole project (buck2 runs there).
    pub project_root: PathBuf,
}

impl Buck2 {
    /// `buck2` from `PATH`, if there is one.
    pub fn on_path(project_root: impl Into<PathBuf>) -> Option<Buck2> {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|d| d.join("buck2"))
            .find(|p| p.is_file())
            .map(|program| Buck2 {
                program,
                project_root: project_root.into(),
            })
    }

    /// Runs `buck2 cquery --json QUERY` and returns the strings it lists
    /// (a JSON array, or the keys of a JSON object).
    fn cquery(&self, query: &str) -> Result<Vec<String>, BuckError> {
        let output = Command::new(&self.program)
            .args(["cquery", "--json", query])
            .current_dir(&self.project_root)
            .output()
            .map_err(|e| BuckError::Buck2(format!("running {}: {e}", self.program.display())))?;
        if !output.status.success() {
            return Err(BuckError::Buck2(format!(
                "cquery {query:?} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        let value: serde_json::Value = serde_json::from_slice(&output.stdout)
            .map_err(|e| BuckError::Buck2(format!("cquery {query:?}: output is not JSON: {e}")))?;
        let strings = match value {
            serde_json::Value::Array(items) => items
                .into_iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            serde_json::Value::Object(map) => map.into_iter().map(|(k, _)| k).collect(),
            other => {
                return Err(BuckError::Buck2(format!(
                    "cquery {query:?}: unexpected JSON {other}"
                )))
            }
        };
        Ok(strings)
    }
}

/// `root//app:tool (prelude//platforms:default#5c1b…)` → `root//app:tool`.
fn strip_configuration(label: &str) -> &str {
    label.split(" (").next().unwrap_or(label).trim()
}

/// The file set of `request` according to real buck2.
pub fn query(
    buck2: &Buck2,
    source: &dyn Source,
    request: &GraphRequest,
) -> Result<FileSet, BuckError> {
    let tree = Tree::new(source);
    let cells = Cells::load(&tree, &source.describe())?;
    let mut patterns = Vec::new();
    for text in &request.patterns {
        patterns.push(parse_pattern(text, &cells, &request.current_dir)?.to_string());
    }
    if cells.get("toolchains").is_some_and(|c| c.on_disk()) {
        patterns.push("toolchains//...".to_string());
    }
    let universe = format!("set({})", patterns.join(" "));
    let deps = buck2.cquery(&format!("deps({universe})"))?;
    let inputs = buck2.cquery(&format!("inputs(deps({universe}))"))?;
    let buildfiles = buck2.cquery(&format!("allbuildfiles(deps({universe}))"))?;

    let mut graph = Graph::new(&tree, &cells);
    let mut roots = Vec::new();
    for d in &deps {
        let text = strip_configuration(d);
        match parse_raw(text).map(|raw| resolve(&raw, &cells, &cells.root, "")) {
            Some(Ok(label)) if label.cell != PRELUDE => {
                roots.push((label, Some("buck2 cquery deps()".to_string())))
            }
            Some(Ok(_)) => {}
            _ => graph.warn(Warning::Buck2NotALabel { text: d.clone() }),
        }
    }
    roots.extend(graph.platform_roots()?);
    roots.extend(graph.toolchain_cell_roots()?);
    let mut extra = Vec::new();
    for (list, what) in [
        (&inputs, "buck2 cquery inputs()"),
        (&buildfiles, "buck2 cquery allbuildfiles()"),
    ] {
        for p in list.iter() {
            match RepoPath::new(p) {
                Ok(path) if tree.entry(&path)?.is_some() => extra.push((path, Reason::new(what))),
                _ => graph.warn(Warning::Buck2NotInTree {
                    query: what.to_string(),
                    path: p.clone(),
                }),
            }
        }
    }
    let walk = graph.walk(roots, false)?;
    graph.assemble(walk, extra)
}
