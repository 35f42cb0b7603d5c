//! Cells: the named roots of a Buck2 project, their aliases, build-file names
//! and configurations, and the project-wide ignore list.

use crate::config::BuckConfig;
use crate::error::BuckError;
use crate::tree::Tree;
use antares_overlay::RepoPath;
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use std::collections::BTreeMap;

/// The prelude cell: its rules are always recorded generically, its
/// packages never followed, and when vendored it is materialized whole.
pub(crate) const PRELUDE: &str = "prelude";

/// One cell.
#[derive(Debug, Clone)]
pub struct Cell {
    /// The canonical cell name.
    pub name: String,
    /// The cell's directory, relative to the project root.
    pub path: RepoPath,
    /// The cell's own configuration (empty when it has no config file:
    /// a cell does not inherit the root's, oracle fact 2).
    pub config: BuckConfig,
    /// Build file names in order of preference.
    pub buildfiles: Vec<String>,
    /// `[external_cells]` origin (`bundled`, `git`, …): its files are not in
    /// the tree.
    pub external: Option<String>,
    /// Whether the cell's directory exists in the tree.
    pub present: bool,
    aliases: BTreeMap<String, String>,
}

impl Cell {
    /// Does the tree hold this cell's files?
    pub fn on_disk(&self) -> bool {
        self.external.is_none() && self.present
    }
}

/// Paths excluded from the project: `[project] ignore` plus `buck-out`.
#[derive(Debug, Clone)]
pub struct IgnoreSet {
    globs: GlobSet,
}

impl IgnoreSet {
    fn new(patterns: &[String]) -> Result<Self, String> {
        let mut b = GlobSetBuilder::new();
        for p in patterns
            .iter()
            .map(|p| p.trim_matches('/'))
            .chain(["buck-out"])
        {
            let glob = GlobBuilder::new(p)
                .literal_separator(true)
                .build()
                .map_err(|e| format!("[project] ignore {p:?}: {e}"))?;
            b.add(glob);
        }
        Ok(IgnoreSet {
            globs: b.build().map_err(|e| e.to_string())?,
        })
    }

    /// Whether `path` itself matches (walks check each level on the way down).
    pub fn matches(&self, path: &RepoPath) -> bool {
        !path.is_root() && self.globs.is_match(path.as_str())
    }

    /// Whether `path` or any of its ancestors matches.
    pub fn covers(&self, path: &RepoPath) -> bool {
        let mut p = Some(path.clone());
        while let Some(cur) = p {
            if self.matches(&cur) {
                return true;
            }
            p = cur.parent();
        }
        false
    }
}

/// All cells of a project.
#[derive(Debug, Clone)]
pub struct Cells {
    /// Name of the cell at the project root.
    pub root: String,
    cells: BTreeMap<String, Cell>,
    /// The project's `[project] ignore` patterns.
    pub ignore: IgnoreSet,
}

const DEFAULT_BUILDFILES: [&str; 2] = ["BUCK.v2", "BUCK"];

impl Cells {
    /// Reads the root `.buckconfig` and every cell's own configuration.
    pub(crate) fn load(tree: &Tree, describe: &str) -> Result<Cells, BuckError> {
        let root_config = BuckConfig::load(tree, &RepoPath::root())?
            .ok_or_else(|| BuckError::NotAProject(describe.to_string()))?;
        let bad = |message: String| BuckError::Config {
            file: ".buckconfig".into(),
            line: 0,
            message,
        };
        let mut paths: Vec<(String, RepoPath)> = Vec::new();
        // `[cells]` wins over `[repositories]` when its header appears at all.
        let section = if root_config.has_section("cells") {
            "cells"
        } else {
            "repositories"
        };
        for (name, path) in root_config.section(section) {
            let p = normalize(path)
                .ok_or_else(|| bad(format!("[{section}] {name} = {path:?} leaves the project")))?;
            paths.push((name.to_string(), p));
        }
        let root = paths
            .iter()
            .find(|(_, p)| p.is_root())
            .map(|(n, _)| n.clone())
            .unwrap_or_else(|| "root".to_string());
        if !paths.iter().any(|(n, _)| *n == root) {
            paths.push((root.clone(), RepoPath::root()));
        }
        let root_aliases = aliases_of(&root_config);
        let mut externals: BTreeMap<String, String> = BTreeMap::new();
        for (alias, origin) in root_config.section("external_cells") {
            if origin == "disabled" {
                continue;
            }
            let name = resolve_alias(&root_aliases, alias);
            if !paths.iter().any(|(n, _)| *n == name) {
                return Err(bad(format!(
                    "[external_cells] {alias}: no cell of that name in [{section}]"
                )));
            }
            check_external_origin(&root_config, &name, origin).map_err(bad)?;
            externals.insert(name, origin.to_string());
        }
        let mut ignore_patterns = Vec::new();
        let mut cells = BTreeMap::new();
        for (name, path) in paths {
            let config = if path.is_root() {
                root_config.clone()
            } else {
                BuckConfig::load(tree, &path)?.unwrap_or_default()
            };
            // Each cell's `[project] ignore` is relative to that cell.
            for p in config.list("project", "ignore").unwrap_or_default() {
                let p = p.trim_end_matches('/');
                ignore_patterns.push(if path.is_root() {
                    p.to_string()
                } else {
                    format!("{path}/{p}")
                });
            }
            let cell = Cell {
                buildfiles: buildfile_names(&config),
                external: externals.get(&name).cloned(),
                present: tree.is_dir(&path)?,
                name: name.clone(),
                path,
                aliases: aliases_of(&config),
                config,
            };
            cells.insert(name, cell);
        }
        let ignore = IgnoreSet::new(&ignore_patterns).map_err(bad)?;
        Ok(Cells {
            root,
            cells,
            ignore,
        })
    }

    /// The cell of that canonical name.
    pub fn get(&self, name: &str) -> Option<&Cell> {
        self.cells.get(name)
    }

    /// The root cell.
    pub fn root_cell(&self) -> Option<&Cell> {
        self.cells.get(&self.root)
    }

    /// Every cell, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Cell> {
        self.cells.values()
    }

    /// Resolves a cell name as written in `from` (its aliases first, then
    /// the root cell's aliases, then the real names).
    pub fn resolve(&self, from: &str, name: &str) -> Option<&Cell> {
        let mut name = name.to_string();
        for _ in 0..8 {
            if let Some(c) = self.cells.get(&name) {
                return Some(c);
            }
            let alias = self
                .cells
                .get(from)
                .and_then(|c| c.aliases.get(&name))
                .or_else(|| self.root_cell().and_then(|c| c.aliases.get(&name)))?;
            name = alias.clone();
        }
        None
    }

    /// The cell whose directory holds `path` (the deepest one).
    pub fn cell_of(&self, path: &RepoPath) -> Option<&Cell> {
        self.cells
            .values()
            .filter(|c| path.starts_with(&c.path))
            .max_by_key(|c| c.path.as_str().len())
    }

    /// Is `dir` the root of a cell other than `cell`? Such directories are
    /// boundaries: a package never reaches into another cell.
    pub fn is_other_cell_root(&self, dir: &RepoPath, cell: &Cell) -> bool {
        dir != &cell.path && self.cells.values().any(|c| &c.path == dir)
    }
}

/// Buck2's rule: `name_v2` if set, else each `name` as `NAME.v2` then `NAME`,
/// else `BUCK.v2`, `BUCK`.
fn buildfile_names(config: &BuckConfig) -> Vec<String> {
    if let Some(v2) = config.list("buildfile", "name_v2") {
        return v2;
    }
    if let Some(names) = config.list("buildfile", "name") {
        return names
            .iter()
            .flat_map(|n| [format!("{n}.v2"), n.clone()])
            .collect();
    }
    DEFAULT_BUILDFILES.iter().map(|s| s.to_string()).collect()
}

/// A cell path from config (`.`, `./x`, `x/`, `a/../b`) as a repo path,
/// normalized as buck2 does; `None` when it is absolute or leaves the
/// project.
fn normalize(path: &str) -> Option<RepoPath> {
    if path.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    RepoPath::new(&parts.join("/")).ok()
}

/// A cell's aliases: `[cell_aliases]`, or `[repository_aliases]` when the
/// former does not appear (buck2 reads one, never both).
fn aliases_of(config: &BuckConfig) -> BTreeMap<String, String> {
    let section = if config.has_section("cell_aliases") {
        "cell_aliases"
    } else {
        "repository_aliases"
    };
    config
        .section(section)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Follows root aliases from `name` to a cell name (bounded: aliases may
/// form a cycle).
fn resolve_alias(aliases: &BTreeMap<String, String>, name: &str) -> String {
    let mut name = name.to_string();
    for _ in 0..8 {
        match aliases.get(&name) {
            Some(next) => name = next.clone(),
            None => break,
        }
    }
    name
}

/// An `[external_cells]` origin must be one buck2 knows, with the settings
/// it needs: `bundled`, or `git` with `[external_cell_NAME] git_origin` and
/// a `commit_hash` of the object format (`sha1` unless `object_format`
/// says `sha256`).
fn check_external_origin(config: &BuckConfig, name: &str, origin: &str) -> Result<(), String> {
    match origin {
        "bundled" => Ok(()),
        "git" => {
            let section = format!("external_cell_{name}");
            let get = |key: &str| {
                config
                    .get(&section, key)
                    .ok_or_else(|| format!("[external_cells] {name} = git needs [{section}] {key}"))
            };
            get("git_origin")?;
            let commit = get("commit_hash")?;
            let len = match config.get(&section, "object_format") {
                None | Some("sha1") => 40,
                Some("sha256") => 64,
                Some(other) => {
                    return Err(format!(
                        "[{section}] object_format = {other:?}: expected sha1 or sha256"
                    ))
                }
            };
            if commit.len() != len || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "[{section}] commit_hash = {commit:?} is not a {len}-digit hex object id"
                ));
            }
            Ok(())
        }
        other => Err(format!(
            "[external_cells] {name} = {other:?}: unknown origin (expected bundled, git or disabled)"
        )),
    }
}
