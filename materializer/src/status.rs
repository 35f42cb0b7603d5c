//! `antares status`: the workspace against the manifest, without the source.

use crate::error::{IoContext, Result};
use crate::layout::{Layout, STATE_DIR};
use crate::manifest::Manifest;
use crate::observe::{in_directories, Observed};
use antares_overlay::RepoPath;
use std::collections::{BTreeSet, HashSet};

/// Directory names never reported as added: build outputs and state.
pub const NEVER_TRACKED: &[&str] = &[STATE_DIR, "buck-out", ".git"];

/// One conflict, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConflictEntry {
    /// The path in conflict.
    pub path: String,
    /// `"modified"` or `"deleted"`: what the source did.
    pub theirs: &'static str,
}

/// What changed in the workspace since the last sync.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    /// Placed files whose content changed.
    pub modified: Vec<String>,
    /// Files no sync placed, inside the synced subtrees.
    pub added: Vec<String>,
    /// Placed files that are gone.
    pub deleted: Vec<String>,
    /// Paths in conflict.
    pub conflicts: Vec<ConflictEntry>,
}

impl Status {
    /// Whether nothing changed and nothing is in conflict.
    pub fn is_clean(&self) -> bool {
        self.modified.is_empty()
            && self.added.is_empty()
            && self.deleted.is_empty()
            && self.conflicts.is_empty()
    }
}

/// Compares the workspace with its manifest. Added files are found by a walk
/// of the workspace that honours `.gitignore` and skips [`NEVER_TRACKED`].
pub fn status(layout: &Layout) -> Result<Status> {
    let manifest = Manifest::load(&layout.manifest())?;
    let root = layout.root();
    let root_dir = std::fs::File::open(root).at(root.display())?;
    let paths: Vec<&RepoPath> = manifest
        .records
        .keys()
        .filter(|p| !manifest.conflicts.contains_key(*p))
        .collect();
    let observed: Vec<(&RepoPath, Observed)> = in_directories(&root_dir, &paths, |p, look| {
        let o = look(manifest.records.get(p), manifest.saved_at_ns)
            .unwrap_or(Observed::Other { what: "unreadable" });
        Some((p, o))
    });
    let mut st = Status::default();
    for (p, o) in observed {
        match o {
            Observed::Unchanged { .. } => {}
            Observed::Missing => st.deleted.push(p.to_string()),
            Observed::Present { .. } | Observed::Other { .. } | Observed::BehindSymlink => {
                st.modified.push(p.to_string())
            }
        }
    }
    for (p, c) in &manifest.conflicts {
        st.conflicts.push(ConflictEntry {
            path: p.to_string(),
            theirs: if c.theirs.is_some() {
                "modified"
            } else {
                "deleted"
            },
        });
    }
    let known: BTreeSet<&str> = manifest
        .records
        .keys()
        .chain(manifest.conflicts.keys())
        .map(|p| p.as_str())
        .collect();
    st.added = untracked(root, &[RepoPath::root()], &[], &|p| {
        known.contains(p.as_str())
    })
    .into_iter()
    .map(|p| p.to_string())
    .collect();
    st.added.sort();
    Ok(st)
}

/// Files and symlinks below the `under` directories of the workspace at
/// `root` that `known` does not claim: what the user created. The walk
/// honours `.gitignore` (from the root down, as git does), skips
/// [`NEVER_TRACKED`] directories, the `ignored` subtrees (e.g.
/// `project.ignore`) and names that are not valid repo paths.
///
/// One walk from the root, entering only the `under` subtrees and the
/// directories on the way to them: a walker per directory re-read every
/// `.gitignore` above it each time (a sync of 1,187 directories of
/// systeminit/si opened the root one 1,187 times).
pub fn untracked(
    root: &std::path::Path,
    under: &[RepoPath],
    ignored: &[RepoPath],
    known: &(dyn Fn(&RepoPath) -> bool + Sync),
) -> Vec<RepoPath> {
    let Some(scope) = Scope::new(root, under, ignored) else {
        return Vec::new();
    };
    let scope = std::sync::Arc::new(scope);
    let filter = scope.clone();
    let walker = ignore::WalkBuilder::new(root)
        .hidden(false)
        .git_ignore(true)
        .git_global(false)
        .git_exclude(false)
        .require_git(false)
        .parents(false)
        .filter_entry(move |e| {
            !e.file_type().is_some_and(|t| t.is_dir())
                || (!e
                    .file_name()
                    .to_str()
                    .is_some_and(|n| NEVER_TRACKED.contains(&n))
                    && filter.enters(e.path()))
        })
        .build_parallel();
    // Directories in parallel: the walk is a `getdents` per directory
    // and a name check per entry, on a large workspace a tenth of a sync.
    let found = std::sync::Mutex::new(Vec::new());
    walker.run(|| {
        Box::new(|entry| {
            let Ok(entry) = entry else {
                return ignore::WalkState::Continue;
            };
            if entry.file_type().is_some_and(|t| t.is_dir())
                || entry.file_name().to_str().is_some_and(is_editor_temp)
            {
                return ignore::WalkState::Continue;
            }
            if let Some(rel) = scope.relative(entry.path()) {
                if scope.reports(&rel) && !known(&rel) {
                    if let Ok(mut found) = found.lock() {
                        found.push(rel);
                    }
                }
            }
            ignore::WalkState::Continue
        })
    });
    let mut out = found.into_inner().unwrap_or_default();
    out.sort();
    out
}

/// Which parts of the workspace an untracked scan looks at.
struct Scope {
    root: std::path::PathBuf,
    /// The selected directories ("" for the whole workspace).
    starts: HashSet<String>,
    /// Their proper ancestors: walked through, nothing in them reported.
    on_the_way: HashSet<String>,
    ignored: Vec<RepoPath>,
}

impl Scope {
    /// `None` when no selected directory exists.
    fn new(root: &std::path::Path, under: &[RepoPath], ignored: &[RepoPath]) -> Option<Scope> {
        let starts: HashSet<String> = under
            .iter()
            .filter(|d| d.to_fs_path(root).is_dir())
            .map(|d| d.as_str().to_string())
            .collect();
        if starts.is_empty() {
            return None;
        }
        let on_the_way = starts
            .iter()
            .flat_map(|s| prefixes(s).filter(|p| p.len() < s.len()).map(String::from))
            .collect();
        Some(Scope {
            root: root.to_path_buf(),
            starts,
            on_the_way,
            ignored: ignored.to_vec(),
        })
    }

    fn relative(&self, path: &std::path::Path) -> Option<RepoPath> {
        let rel = path.strip_prefix(&self.root).ok()?;
        RepoPath::from_fs(rel).ok()
    }

    /// Whether `rel` is a selected directory or inside one.
    fn inside(&self, rel: &str) -> bool {
        self.starts.contains("") || prefixes(rel).any(|p| self.starts.contains(p))
    }

    /// Whether the walk enters the directory at `path`.
    fn enters(&self, path: &std::path::Path) -> bool {
        self.relative(path).is_some_and(|rel| {
            (self.on_the_way.contains(rel.as_str()) || self.inside(rel.as_str()))
                && !self
                    .ignored
                    .iter()
                    .any(|i| !i.is_root() && rel.starts_with(i))
        })
    }

    /// Whether the file at `rel` is reported when nothing claims it.
    fn reports(&self, rel: &RepoPath) -> bool {
        self.inside(rel.as_str()) && !self.ignored.iter().any(|i| rel.starts_with(i))
    }
}

/// `a`, `a/b`, `a/b/c` for `a/b/c` (nothing for the root, "").
fn prefixes(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/')
        .map(move |(i, _)| &path[..i])
        .chain((!path.is_empty()).then_some(path))
}

/// Editors' scratch files (vim swap and backup files and its `4913` probe,
/// emacs lock and autosave files): never reported, never written back.
pub fn is_editor_temp(name: &str) -> bool {
    name == "4913"
        || name.ends_with('~')
        || name.starts_with(".#")
        || (name.starts_with('#') && name.ends_with('#') && name.len() > 1)
        || (name.starts_with('.') && [".swp", ".swo", ".swx"].iter().any(|s| name.ends_with(s)))
}
