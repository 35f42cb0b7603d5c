//! `.buckconfig` parsing: the INI dialect Buck2 reads.
//!
//! A cell's configuration is `.buckconfig.d/*` (sorted), then `.buckconfig`,
//! then `.buckconfig.local`, later values overriding earlier ones. Lines may
//! continue with a trailing `\`, `<file:PATH>` / `<?file:PATH>` include other
//! files (relative to the including file), and `$(config section.key)` refers
//! to another value — resolved after everything is read, so a key defined
//! later in the same file is visible (oracle fact 4).

use crate::error::BuckError;
use crate::tree::Tree;
use antares_overlay::{EntryKind, RepoPath};
use std::collections::BTreeMap;

/// Where a value was defined, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    file: RepoPath,
    line: usize,
}

/// The merged configuration of one cell.
#[derive(Debug, Clone, Default)]
pub struct BuckConfig {
    values: BTreeMap<String, BTreeMap<String, String>>,
    /// Every file read, includes too, in reading order.
    pub files: Vec<RepoPath>,
}

/// Raw values before interpolation.
type RawValues = BTreeMap<(String, String), (String, Origin)>;

/// How deep `<file:…>` includes and `$(config …)` references may nest.
const MAX_DEPTH: usize = 32;

impl BuckConfig {
    /// The value of `section.key`, interpolated.
    pub fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.values.get(section)?.get(key).map(String::as_str)
    }

    /// A comma-separated list value, items trimmed, empty items dropped.
    pub fn list(&self, section: &str, key: &str) -> Option<Vec<String>> {
        self.get(section, key).map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
    }

    /// All keys of a section with their values.
    pub fn section(&self, section: &str) -> impl Iterator<Item = (&str, &str)> {
        self.values
            .get(section)
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Reads the configuration of the cell rooted at `dir`; `None` when the
    /// cell has no config file of its own.
    pub(crate) fn load(tree: &Tree, dir: &RepoPath) -> Result<Option<BuckConfig>, BuckError> {
        let mut top = Vec::new();
        let conf_d = join(dir, ".buckconfig.d")?;
        for e in tree.list(&conf_d)?.iter() {
            if e.kind == EntryKind::File || e.kind == EntryKind::Symlink {
                top.push(e.path.clone());
            }
        }
        for name in [".buckconfig", ".buckconfig.local"] {
            let p = join(dir, name)?;
            if tree.entry(&p)?.is_some() {
                top.push(p);
            }
        }
        if top.is_empty() {
            return Ok(None);
        }
        let mut parser = Parser {
            tree,
            raw: RawValues::new(),
            files: Vec::new(),
        };
        for file in &top {
            parser.file(file, None, 0)?;
        }
        let Parser { raw, files, .. } = parser;
        let mut config = BuckConfig {
            values: BTreeMap::new(),
            files,
        };
        for ((section, key), (_, origin)) in &raw {
            let value = interpolate(&raw, section, key, origin, 0)?;
            config
                .values
                .entry(section.clone())
                .or_default()
                .insert(key.clone(), value);
        }
        Ok(Some(config))
    }
}

fn join(dir: &RepoPath, name: &str) -> Result<RepoPath, BuckError> {
    dir.join(name).map_err(|e| BuckError::Config {
        file: dir.to_string(),
        line: 0,
        message: e.to_string(),
    })
}

struct Parser<'t, 's> {
    tree: &'t Tree<'s>,
    raw: RawValues,
    files: Vec<RepoPath>,
}

impl Parser<'_, '_> {
    /// Reads one file; `included_from` is the include line for messages.
    fn file(
        &mut self,
        path: &RepoPath,
        included_from: Option<&Origin>,
        depth: usize,
    ) -> Result<(), BuckError> {
        let err = |o: &Origin, message: String| BuckError::Config {
            file: o.file.to_string(),
            line: o.line,
            message,
        };
        if depth > MAX_DEPTH {
            let o = included_from.cloned().unwrap_or(Origin {
                file: path.clone(),
                line: 0,
            });
            return Err(err(
                &o,
                format!("includes nest deeper than {MAX_DEPTH} (a cycle?)"),
            ));
        }
        let Some(text) = self.tree.read_text(path)? else {
            return match included_from {
                Some(o) => Err(err(o, format!("included file {path} does not exist"))),
                None => Ok(()),
            };
        };
        self.files.push(path.clone());
        let mut section: Option<String> = None;
        let mut lines = text.lines().enumerate();
        while let Some((idx, first)) = lines.next() {
            let origin = Origin {
                file: path.clone(),
                line: idx + 1,
            };
            let mut line = first.trim().to_string();
            while line.ends_with('\\') {
                line.pop();
                match lines.next() {
                    Some((_, more)) => {
                        line = format!("{} {}", line.trim_end(), more.trim());
                    }
                    None => break,
                }
            }
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(rest) = line.strip_prefix('[') {
                // Buck2 allows a ` #` comment after the header.
                let rest = rest.split_once(" #").map_or(rest, |(h, _)| h).trim_end();
                let Some(name) = rest.strip_suffix(']') else {
                    return Err(err(
                        &origin,
                        format!("section header {line:?} lacks a closing ']'"),
                    ));
                };
                let name = name.trim();
                if name.is_empty() {
                    return Err(err(&origin, "empty section name".into()));
                }
                section = Some(name.to_string());
                continue;
            }
            if let Some(inner) = line.strip_prefix('<').and_then(|l| l.strip_suffix('>')) {
                let (optional, target) = if let Some(t) = inner.strip_prefix("?file:") {
                    (true, t)
                } else if let Some(t) = inner.strip_prefix("file:") {
                    (false, t)
                } else {
                    return Err(err(
                        &origin,
                        format!("unknown directive {line:?} (expected <file:PATH>)"),
                    ));
                };
                let Some(included) = path.resolve_link(target.trim()) else {
                    return Err(err(
                        &origin,
                        format!("include {target:?} is absolute or leaves the project"),
                    ));
                };
                if optional && self.tree.entry(&included)?.is_none() {
                    continue;
                }
                self.file(&included, Some(&origin), depth + 1)?;
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(err(
                    &origin,
                    format!("expected `key = value`, found {line:?}"),
                ));
            };
            let key = key.trim();
            if key.is_empty() {
                return Err(err(&origin, "empty key".into()));
            }
            let Some(section) = &section else {
                return Err(err(
                    &origin,
                    format!("key {key:?} appears before any [section]"),
                ));
            };
            let value = unquote(value.trim()).map_err(|m| err(&origin, m))?;
            self.raw
                .insert((section.clone(), key.to_string()), (value, origin));
        }
        Ok(())
    }
}

/// Strips surrounding double quotes and resolves their escapes.
fn unquote(v: &str) -> Result<String, String> {
    let Some(inner) = v.strip_prefix('"') else {
        return Ok(v.to_string());
    };
    let Some(inner) = inner.strip_suffix('"') else {
        return Err(format!("unterminated quoted value {v:?}"));
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => return Err(format!("dangling backslash in {v:?}")),
        }
    }
    Ok(out)
}

/// Expands `$(config section.key)` references. A reference to an undefined
/// key expands to the empty string (it may live in a user or machine config
/// antares cannot see); a reference cycle is an error.
fn interpolate(
    raw: &RawValues,
    section: &str,
    key: &str,
    origin: &Origin,
    depth: usize,
) -> Result<String, BuckError> {
    let err = |message: String| BuckError::Config {
        file: origin.file.to_string(),
        line: origin.line,
        message,
    };
    if depth > MAX_DEPTH {
        return Err(err(format!(
            "$(config {section}.{key}) refers to itself through a cycle"
        )));
    }
    let Some((value, _)) = raw.get(&(section.to_string(), key.to_string())) else {
        return Ok(String::new());
    };
    let mut out = String::new();
    let mut rest = value.as_str();
    while let Some(start) = rest.find("$(config ") {
        out.push_str(&rest[..start]);
        let after = &rest[start + "$(config ".len()..];
        let Some(end) = after.find(')') else {
            return Err(err(format!("unterminated $(config …) in {value:?}")));
        };
        let reference = after[..end].trim();
        let Some((s, k)) = reference.rsplit_once('.') else {
            return Err(err(format!("$(config {reference}) is not section.key")));
        };
        out.push_str(&interpolate(raw, s, k, origin, depth + 1)?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
