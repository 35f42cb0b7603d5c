//! A change list (Mono's "CL") laid over a lower source, read-only.
//!
//! A CL under review is a set of file changes against the base tree: new
//! and modified files (with their new content), deleted files, and renamed
//! files (new path with content, old path gone). [`ClSource`] answers for
//! the tree the CL would make: its files win over the lower's, deleted
//! paths and a rename's old path are hidden (whiteouts), and directories
//! that only the CL creates appear. It sits *between* the upper layer and
//! the lower source, as Scorpio's `layers.cl` does, so edits made on a
//! mount still go to the upper layer and the CL itself is never written.
//!
//! The CL's contents are fetched (and verified) once when it is opened and
//! held in memory: a CL is a review-sized set of files, not a tree.

use crate::entry::{EntryKind, ObjectId, TreeEntry};
use crate::error::{Result, SourceError};
use crate::path::RepoPath;
use crate::source::Source;
use std::collections::{BTreeMap, BTreeSet};

/// One changed file of a CL: its blob id and verified content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClFile {
    /// The id of the file's content in the change list.
    pub oid: ObjectId,
    /// The content itself.
    pub content: Vec<u8>,
    /// The lower path whose kind (file or symlink) and exec bit it keeps:
    /// its own, or a renamed file's old path (the files list has no modes).
    pub mode_of: RepoPath,
}

/// What a CL changes, keyed by repository path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeList {
    /// New, modified and renamed-to files.
    pub files: BTreeMap<RepoPath, ClFile>,
    /// Deleted files and the old paths of renamed ones.
    pub whiteouts: BTreeSet<RepoPath>,
}

impl ChangeList {
    /// Whether a CL file lies strictly below `dir` (so `dir` must exist).
    fn has_below(&self, dir: &RepoPath) -> bool {
        self.files.keys().any(|p| p != dir && p.starts_with(dir))
    }
}

/// The lower source with a CL laid over it.
pub struct ClSource {
    lower: Box<dyn Source>,
    link: String,
    cl: ChangeList,
}

impl ClSource {
    /// The tree of `lower` with change list `cl` (named `link`) applied.
    pub fn new(lower: Box<dyn Source>, link: &str, cl: ChangeList) -> ClSource {
        ClSource {
            lower,
            link: link.to_string(),
            cl,
        }
    }

    /// The CL's own entry for `path`: a file, with the kind and exec bit
    /// of the lower's entry at `f.mode_of` if that is a file or symlink.
    fn file_entry(&self, path: &RepoPath, f: &ClFile) -> Result<TreeEntry> {
        let below = self.lower_stat(&f.mode_of)?;
        let (kind, executable) = match below {
            Some(e) if e.kind == EntryKind::Symlink || e.kind == EntryKind::File => {
                (e.kind, e.executable)
            }
            _ => (EntryKind::File, false),
        };
        Ok(TreeEntry {
            path: path.clone(),
            kind,
            executable,
            size: Some(f.content.len() as u64),
            oid: f.oid.clone(),
        })
    }

    /// A directory on the way to a CL file: the lower's, with an id of its
    /// own (its content differs from the lower's tree of that id), or a
    /// new one.
    fn dir_entry(&self, path: &RepoPath, lower: Option<TreeEntry>) -> TreeEntry {
        let base = lower
            .filter(|e| e.kind == EntryKind::Dir)
            .map_or_else(|| "new".to_string(), |e| e.oid.to_string());
        TreeEntry {
            path: path.clone(),
            kind: EntryKind::Dir,
            executable: false,
            size: None,
            oid: ObjectId::opaque(format!("cl:{}:{base}", self.link)),
        }
    }

    /// The lower's entry, where a missing parent is just "absent".
    fn lower_stat(&self, path: &RepoPath) -> Result<Option<TreeEntry>> {
        match self.lower.stat(path) {
            Err(SourceError::NotFound(_) | SourceError::NotADirectory(_)) => Ok(None),
            r => r,
        }
    }

    fn touched(&self, path: &RepoPath) -> bool {
        self.cl.whiteouts.iter().any(|w| w.starts_with(path))
    }
}

/// `path` relative to `dir`, if it lies strictly below it.
fn below<'a>(path: &'a RepoPath, dir: &RepoPath) -> Option<&'a str> {
    if path == dir || !path.starts_with(dir) {
        return None;
    }
    let skip = if dir.is_root() {
        0
    } else {
        dir.as_str().len() + 1
    };
    Some(&path.as_str()[skip..])
}

impl Source for ClSource {
    fn describe(&self) -> String {
        format!("{} + cl {}", self.lower.describe(), self.link)
    }

    fn revision(&self) -> Option<String> {
        self.lower
            .revision()
            .map(|r| format!("{r}+cl:{}", self.link))
    }

    fn stat(&self, path: &RepoPath) -> Result<Option<TreeEntry>> {
        if self.cl.whiteouts.contains(path) {
            return Ok(None);
        }
        if let Some(f) = self.cl.files.get(path) {
            return self.file_entry(path, f).map(Some);
        }
        if !path.is_root() && self.cl.has_below(path) {
            let lower = self.lower_stat(path)?;
            return Ok(Some(self.dir_entry(path, lower)));
        }
        let e = self.lower_stat(path)?;
        Ok(match e {
            Some(e) if e.kind == EntryKind::Dir && self.touched(path) && !path.is_root() => {
                Some(self.dir_entry(path, Some(e)))
            }
            e => e,
        })
    }

    fn list_dir(&self, dir: &RepoPath) -> Result<Vec<TreeEntry>> {
        let mut out: BTreeMap<String, TreeEntry> = BTreeMap::new();
        match self.lower.list_dir(dir) {
            Ok(v) => {
                for e in v {
                    out.insert(e.path.file_name().unwrap_or_default().to_string(), e);
                }
            }
            Err(SourceError::NotFound(_)) if dir.is_root() || self.cl.has_below(dir) => {}
            Err(e) => return Err(e),
        }
        if self.cl.whiteouts.contains(dir) {
            return Err(SourceError::NotFound(dir.clone()));
        }
        out.retain(|_, e| !self.cl.whiteouts.contains(&e.path));
        for name in out.keys().cloned().collect::<Vec<_>>() {
            let e = &out[&name];
            if e.kind == EntryKind::Dir && (self.cl.has_below(&e.path) || self.touched(&e.path)) {
                let d = self.dir_entry(&e.path.clone(), Some(e.clone()));
                out.insert(name, d);
            }
        }
        for (path, f) in &self.cl.files {
            let Some(rest) = below(path, dir) else {
                continue;
            };
            let mut parts = rest.split('/');
            let Some(first) = parts.next() else { continue };
            let child = dir.join(first).map_err(|error| SourceError::BadPath {
                origin: format!("cl {}", self.link),
                error,
            })?;
            if parts.next().is_none() {
                out.insert(first.to_string(), self.file_entry(&child, f)?);
            } else if out.get(first).is_none_or(|e| e.kind != EntryKind::Dir) {
                out.insert(first.to_string(), self.dir_entry(&child, None));
            }
        }
        Ok(out.into_values().collect())
    }

    fn read(&self, entry: &TreeEntry) -> Result<Vec<u8>> {
        match self.cl.files.get(&entry.path) {
            Some(f) if f.oid == entry.oid => Ok(f.content.clone()),
            _ => self.lower.read(entry),
        }
    }

    fn size_hint(&self, entry: &TreeEntry) -> Option<u64> {
        match self.cl.files.get(&entry.path) {
            Some(f) if f.oid == entry.oid => Some(f.content.len() as u64),
            _ => self.lower.size_hint(entry),
        }
    }

    fn read_many(
        &self,
        entries: &[TreeEntry],
        sink: &(dyn Fn(&TreeEntry, Result<Vec<u8>>) + Sync),
    ) {
        let mut rest = Vec::new();
        for e in entries {
            match self.cl.files.get(&e.path) {
                Some(f) if f.oid == e.oid => sink(e, Ok(f.content.clone())),
                _ => rest.push(e.clone()),
            }
        }
        self.lower.read_many(&rest, sink);
    }
}
