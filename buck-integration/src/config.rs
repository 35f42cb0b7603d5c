//! `.buckconfig` parsing: the INI dialect Buck2 reads, rule for rule as
//! buck2's legacy config parser (`buck2_common::legacy_configs::parser`).
//!
//! A cell's configuration is every file under `.buckconfig.d/` (recursively,
//! sorted by name), then `.buckconfig`, then `.buckconfig.local`, later
//! values overriding earlier ones. Within a file, lines are trimmed, a
//! trailing `\` joins the next (trimmed) line directly, and empty lines and
//! lines starting with `#` or `;` are skipped (after joining). A section
//! header may end in a ` #` comment (`[x] # @oss-enable`); keys before any
//! header land in buck2's `__unspecified__` section. `<file:PATH>` and
//! `<?file:PATH>` include other files relative to the including file and
//! continue its current section. Values are kept verbatim (no quote
//! processing). `$(config section.key)` refers to another value, resolved
//! after every file is read, so a key defined later (or in a later file) is
//! visible; an undefined key expands to nothing, a cycle is an error.

use crate::error::BuckError;
use crate::tree::Tree;
use antares_overlay::{EntryKind, RepoPath};
use std::collections::{BTreeMap, HashMap};

/// Where a value was defined, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    file: RepoPath,
    line: usize,
}

impl Origin {
    fn error(&self, message: String) -> BuckError {
        BuckError::Config {
            file: self.file.to_string(),
            line: self.line,
            message,
        }
    }
}

/// The merged configuration of one cell.
#[derive(Debug, Clone, Default)]
pub struct BuckConfig {
    /// Every section seen (an empty `[x]` header counts: buck2 then prefers
    /// it over a fallback section, as with `[cell_aliases]`).
    values: BTreeMap<String, BTreeMap<String, String>>,
    /// Every file read, includes too, in reading order.
    pub files: Vec<RepoPath>,
}

/// Raw values before interpolation, by section and key.
type RawValues = BTreeMap<String, BTreeMap<String, (String, Origin)>>;

/// How deep `<file:…>` includes may nest (buck2 has no bound; a cycle of
/// includes would recurse forever there).
const MAX_DEPTH: usize = 32;

/// The section of keys written before any header.
const UNSPECIFIED: &str = "__unspecified__";

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

    /// Whether a `[section]` header (or a key of it) appeared.
    pub fn has_section(&self, section: &str) -> bool {
        self.values.contains_key(section)
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
        config_dir_files(tree, &join(dir, ".buckconfig.d")?, &mut top, 0)?;
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
            section: String::new(),
        };
        for file in &top {
            parser.section = UNSPECIFIED.to_string();
            parser.file(file, None, 0)?;
        }
        let Parser { raw, files, .. } = parser;
        let mut resolver = Resolver {
            raw: &raw,
            done: HashMap::new(),
            stack: Vec::new(),
        };
        let mut values = BTreeMap::new();
        for (section, keys) in &raw {
            let mut out = BTreeMap::new();
            for key in keys.keys() {
                out.insert(key.clone(), resolver.resolve(section, key)?);
            }
            values.insert(section.clone(), out);
        }
        Ok(Some(BuckConfig { values, files }))
    }
}

/// The files under a `.buckconfig.d` directory, depth first, each level
/// sorted by name (as buck2 walks it).
fn config_dir_files(
    tree: &Tree,
    dir: &RepoPath,
    out: &mut Vec<RepoPath>,
    depth: usize,
) -> Result<(), BuckError> {
    if depth > MAX_DEPTH {
        return Err(BuckError::Config {
            file: dir.to_string(),
            line: 0,
            message: format!("directories nest deeper than {MAX_DEPTH}"),
        });
    }
    for e in tree.list(dir)?.iter() {
        match e.kind {
            EntryKind::Dir => config_dir_files(tree, &e.path, out, depth + 1)?,
            EntryKind::File | EntryKind::Symlink => out.push(e.path.clone()),
            _ => {}
        }
    }
    Ok(())
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
    /// The open section; an included file continues it and may change it.
    section: String,
}

/// An include directive found in a line.
struct Include<'l> {
    optional: bool,
    path: &'l str,
}

impl Parser<'_, '_> {
    /// Reads one file; `included_from` is the include line for messages.
    /// Returns whether the file exists.
    fn file(
        &mut self,
        path: &RepoPath,
        included_from: Option<&Origin>,
        depth: usize,
    ) -> Result<bool, BuckError> {
        if depth > MAX_DEPTH {
            let o = included_from.cloned().unwrap_or(Origin {
                file: path.clone(),
                line: 0,
            });
            return Err(o.error(format!("includes nest deeper than {MAX_DEPTH} (a cycle?)")));
        }
        let Some(text) = self.tree.read_text(path)? else {
            return Ok(false);
        };
        self.files.push(path.clone());
        for (idx, line) in logical_lines(&text) {
            let origin = Origin {
                file: path.clone(),
                line: idx + 1,
            };
            if let Some(rest) = line.strip_prefix('[') {
                let Some(name) = strip_line_comment(rest).strip_suffix(']') else {
                    return Err(
                        origin.error(format!("section header {line:?} lacks a closing ']'"))
                    );
                };
                self.section = name.to_string();
                self.raw.entry(self.section.clone()).or_default();
            } else if let Some((key, value)) = line.split_once('=') {
                let key = key.trim();
                if key.is_empty() {
                    return Err(origin.error(format!("empty key in {line:?}")));
                }
                self.raw
                    .entry(self.section.clone())
                    .or_default()
                    .insert(key.to_string(), (value.trim().to_string(), origin));
            } else if let Some(include) = include_directive(&line) {
                self.include(path, &include, &origin, depth)?;
            } else {
                return Err(origin.error(format!(
                    "expected `key = value`, `[section]` or `<file:PATH>`, found {line:?}"
                )));
            }
        }
        Ok(true)
    }

    fn include(
        &mut self,
        from: &RepoPath,
        include: &Include,
        origin: &Origin,
        depth: usize,
    ) -> Result<(), BuckError> {
        if include.path.starts_with('/') {
            // A machine-wide file: not part of the project, so not part of
            // what antares can read or place.
            if include.optional {
                tracing::debug!(
                    "{}:{}: skipping optional include {}",
                    origin.file,
                    origin.line,
                    include.path
                );
                return Ok(());
            }
            return Err(origin.error(format!(
                "include {:?} is an absolute path outside the project (antares reads only the project's files)",
                include.path
            )));
        }
        let Some(included) = from.resolve_link(include.path) else {
            return Err(origin.error(format!("include {:?} leaves the project", include.path)));
        };
        let exists = self.file(&included, Some(origin), depth + 1)?;
        if !exists && !include.optional {
            return Err(origin.error(format!("included file {included} does not exist")));
        }
        Ok(())
    }
}

/// The file's lines as buck2 sees them: trimmed, `\`-continuations joined
/// (without a separator), empty and comment lines dropped; each with the
/// 0-based number of its first physical line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut lines: Vec<(usize, String)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        match lines.last_mut() {
            Some((_, prev)) if prev.ends_with('\\') => {
                prev.pop();
                prev.push_str(line);
            }
            _ => lines.push((i, line.to_string())),
        }
    }
    lines.retain(|(_, l)| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'));
    lines
}

/// A section header may carry a trailing ` #` comment.
fn strip_line_comment(line: &str) -> &str {
    line.split_once(" #").map_or(line, |(before, _)| before)
}

/// `<file:PATH>` or `<?file:PATH>` anywhere in the line, `PATH` reaching to
/// the last `>` (buck2's `<(\?)?file:(..*)>`).
fn include_directive(line: &str) -> Option<Include<'_>> {
    line.match_indices('<').find_map(|(i, _)| {
        let rest = &line[i + 1..];
        let (optional, rest) = match rest.strip_prefix('?') {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let rest = rest.strip_prefix("file:")?;
        let end = rest.rfind('>').filter(|&e| e > 0)?;
        Some(Include {
            optional,
            path: &rest[..end],
        })
    })
}

/// Expands `$(config section.key)` references, each value once.
struct Resolver<'r> {
    raw: &'r RawValues,
    done: HashMap<(String, String), String>,
    /// The values being expanded, outermost first, to name a cycle.
    stack: Vec<(String, String)>,
}

impl Resolver<'_> {
    fn resolve(&mut self, section: &str, key: &str) -> Result<String, BuckError> {
        let Some((raw, origin)) = self.raw.get(section).and_then(|s| s.get(key)) else {
            return Ok(String::new());
        };
        let id = (section.to_string(), key.to_string());
        if let Some(v) = self.done.get(&id) {
            return Ok(v.clone());
        }
        if let Some(start) = self.stack.iter().position(|s| *s == id) {
            let cycle: Vec<String> = self.stack[start..]
                .iter()
                .chain([&id])
                .map(|(s, k)| format!("`{s}.{k}`"))
                .collect();
            return Err(origin.error(format!(
                "$(config …) references form a cycle: {}",
                cycle.join(" -> ")
            )));
        }
        self.stack.push(id.clone());
        let mut out = String::new();
        let mut rest = raw.as_str();
        while let Some((before, reference, after)) = next_reference(rest) {
            out.push_str(before);
            let (s, k) = section_and_key(reference).map_err(|m| origin.error(m))?;
            out.push_str(&self.resolve(s, k)?);
            rest = after;
        }
        out.push_str(rest);
        self.stack.pop();
        self.done.insert(id, out.clone());
        Ok(out)
    }
}

/// The first `$(config X)` in `text`: what precedes it, `X`, what follows.
/// An unterminated reference is literal text, as in buck2.
fn next_reference(text: &str) -> Option<(&str, &str, &str)> {
    const OPEN: &str = "$(config ";
    let start = text.find(OPEN)?;
    let inner = &text[start + OPEN.len()..];
    let end = inner.find(')')?;
    Some((&text[..start], &inner[..end], &inner[end + 1..]))
}

/// `section.key` as buck2 splits it: at the first dot, leading blanks of
/// the section ignored, no blanks inside.
fn section_and_key(reference: &str) -> Result<(&str, &str), String> {
    let Some((section, key)) = reference.split_once('.') else {
        return Err(format!("$(config {reference}) is not section.key"));
    };
    let section = section.trim_start();
    if section.contains(char::is_whitespace) || key.contains(char::is_whitespace) {
        return Err(format!("$(config {reference}): blank inside section.key"));
    }
    Ok((section, key))
}
