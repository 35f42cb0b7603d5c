//! Target patterns as given on the command line: `//pkg:name`, `//pkg:`,
//! `//pkg/...`, `cell//…`, and forms relative to the current directory
//! (`:name`, `sub:name`, `sub/...`, `...`).

use crate::cells::Cells;
use crate::error::BuckError;
use crate::tree::relative;
use antares_overlay::RepoPath;
use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
/// What a pattern selects within its package.
pub enum PatternKind {
    /// One target.
    Target(String),
    /// Every target of one package (`//pkg:`).
    Package,
    /// Every target of every package at or below (`//pkg/...`).
    Recursive,
}

/// A resolved pattern: canonical cell, cell-relative package path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetPattern {
    /// The canonical cell name.
    pub cell: String,
    /// The cell-relative package path.
    pub package: String,
    /// Which targets of the package.
    pub kind: PatternKind,
}

impl fmt::Display for TargetPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            PatternKind::Target(n) => write!(f, "{}//{}:{}", self.cell, self.package, n),
            PatternKind::Package => write!(f, "{}//{}:", self.cell, self.package),
            PatternKind::Recursive if self.package.is_empty() => write!(f, "{}//...", self.cell),
            PatternKind::Recursive => write!(f, "{}//{}/...", self.cell, self.package),
        }
    }
}

/// Parses `text`; relative forms are taken from `current_dir` (a
/// project-relative directory).
pub fn parse_pattern(
    text: &str,
    cells: &Cells,
    current_dir: &RepoPath,
) -> Result<TargetPattern, BuckError> {
    let bad = |message: &str| BuckError::Pattern {
        text: text.to_string(),
        message: message.to_string(),
    };
    let here = cells
        .cell_of(current_dir)
        .or_else(|| cells.root_cell())
        .ok_or_else(|| bad("no root cell"))?;
    let (cell, rest) = match text.split_once("//") {
        Some((c, rest)) => {
            let c = c.strip_prefix('@').unwrap_or(c);
            let cell = if c.is_empty() {
                here
            } else {
                cells
                    .resolve(&here.name, c)
                    .ok_or_else(|| BuckError::UnknownCell {
                        cell: c.to_string(),
                        text: text.to_string(),
                        known: cells
                            .iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })?
            };
            (cell, rest.to_string())
        }
        None if text.starts_with('@') => {
            return Err(bad(
                "`@` starts a cell name, which must be followed by `//` (`@cell//pkg:name`)",
            ));
        }
        None if text.starts_with('/') => {
            return Err(bad("not a target pattern: patterns start with `//`, `cell//` or a package relative to the current directory"));
        }
        None => {
            let rel = relative(current_dir, &here.path);
            let joined = match (rel.is_empty(), text.starts_with(':')) {
                (true, _) | (false, true) => format!("{rel}{text}"),
                (false, false) => format!("{rel}/{text}"),
            };
            (here, joined)
        }
    };
    let (package, kind) = if rest == "..." {
        (String::new(), PatternKind::Recursive)
    } else if let Some(p) = rest.strip_suffix("/...") {
        (p.to_string(), PatternKind::Recursive)
    } else if let Some((p, n)) = rest.split_once(':') {
        if n.is_empty() {
            (p.to_string(), PatternKind::Package)
        } else {
            (p.to_string(), PatternKind::Target(n.to_string()))
        }
    } else {
        let last = rest.rsplit('/').next().unwrap_or_default();
        if last.is_empty() {
            return Err(bad("a package pattern needs a target name, `:` or `/...`"));
        }
        (rest.clone(), PatternKind::Target(last.to_string()))
    };
    RepoPath::new(&package).map_err(|e| bad(&e.to_string()))?;
    if let PatternKind::Target(n) = &kind {
        if n.contains([' ', ':']) {
            return Err(bad("invalid target name"));
        }
    }
    Ok(TargetPattern {
        cell: cell.name.clone(),
        package,
        kind,
    })
}
