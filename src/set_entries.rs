//! The source entries of a file set, and the directories it covers (the
//! scope in which a missing file means "deleted by the source").
//!
//! One listing per directory rather than a lookup per path: packages are
//! placed whole, so most of a listing is wanted. Even so, listing the 700
//! directories of a systeminit/si target set was most of a no-op re-sync,
//! so what the last sync found is kept in a state file and reused where the
//! source proves it cannot have changed:
//! - a source at a fixed commit (`git:`, `mono:`), at the recorded commit,
//!   holds everything it held: nothing is listed;
//! - otherwise (the mount's View, whose lower may have moved) directories
//!   are taken parents first, each with the source's id for it from its
//!   parent's listing; an unchanged git tree id vouches for the directory's
//!   whole subtree (in the View it also means no upper entry below it), so
//!   only directories above and beside a change are listed. A directory
//!   known by anything else (a stat signature of a live directory or of the
//!   View's upper layer) is always listed: its id does not change when a
//!   file in it is rewritten.
//!
//! The record answers one set (a hash of its paths); another set, or an
//! unreadable record, is listed afresh.

use antares_buck::FileSet;
use antares_materializer::fsutil::write_atomic;
use antares_overlay::{EntryKind, ObjectId, RepoPath, Source, TreeEntry};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

/// Bumped whenever the stored shape or its meaning changes.
const FORMAT: u32 = 1;

/// What one run found, as stored.
#[derive(Serialize, Deserialize)]
struct Record {
    format: u32,
    /// Which set, from which source, the entries answer (see [`key`]).
    key: String,
    /// The fixed commit they were read at (`None`: a live tree or a View).
    revision: Option<String>,
    /// Every directory of the set and every directory above one.
    dirs: BTreeMap<RepoPath, Dir>,
}

/// One directory as read.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
struct Dir {
    /// The source's id for the directory, taken before listing it.
    id: Option<ObjectId>,
    /// The set's entries directly in it (directories left out).
    entries: Vec<TreeEntry>,
}

/// The source entries of `set`, and the directories it covers. With
/// `record` (a state file), what the previous run found is reused where
/// the source proves it unchanged, and what this run found is stored there
/// (temp + rename) when it differs.
pub fn entries(
    source: &dyn Source,
    set: &FileSet,
    record: Option<&Path>,
) -> Result<(Vec<TreeEntry>, Vec<RepoPath>)> {
    let mut by_dir: BTreeMap<RepoPath, Vec<&RepoPath>> = BTreeMap::new();
    for path in set.files.keys() {
        by_dir
            .entry(path.parent().unwrap_or_else(RepoPath::root))
            .or_default()
            .push(path);
    }
    let key = key(set);
    let old = record.and_then(|p| load(p, &key));
    let revision = fixed_revision(source);
    let same_commit = revision.is_some() && old.as_ref().is_some_and(|o| o.revision == revision);
    let fresh = old.is_none();
    // Parents sort before their children.
    let mut all: BTreeSet<RepoPath> = BTreeSet::new();
    for dir in by_dir.keys() {
        let mut at = Some(dir.clone());
        while let Some(d) = at {
            at = d.parent();
            if !all.insert(d) {
                break;
            }
        }
    }
    let mut before = old.map(|o| o.dirs).unwrap_or_default();
    // Directories whose subtree is unchanged, by their git tree id.
    let mut whole: HashSet<RepoPath> = HashSet::new();
    // This run's listings, for their children's ids.
    let mut listed: HashMap<RepoPath, Vec<TreeEntry>> = HashMap::new();
    let mut dirs: BTreeMap<RepoPath, Dir> = BTreeMap::new();
    let (mut kept, mut relisted, mut changed) = (0usize, 0usize, 0usize);
    for dir in &all {
        if same_commit || below(dir, &whole) {
            if let Some(b) = before.remove(dir) {
                kept += 1;
                dirs.insert(dir.clone(), b);
                continue;
            }
        }
        let id = id_of(source, dir, &listed)?;
        let b = before.remove(dir);
        if let Some(b) = b.as_ref().filter(|b| vouches(&b.id, &id)) {
            kept += 1;
            whole.insert(dir.clone());
            dirs.insert(dir.clone(), b.clone());
            continue;
        }
        relisted += 1;
        let list = source.list_dir(dir).ok();
        let entries = match by_dir.get(dir) {
            Some(paths) => wanted(source, paths, list.as_deref())?,
            None => Vec::new(),
        };
        if let Some(list) = list {
            listed.insert(dir.clone(), list);
        }
        let now = Dir { id, entries };
        if b.as_ref() != Some(&now) {
            changed += 1;
        }
        dirs.insert(dir.clone(), now);
    }
    tracing::debug!(
        dirs = all.len(),
        kept,
        relisted,
        changed,
        same_commit,
        "file set entries"
    );
    let mut out: Vec<TreeEntry> = by_dir
        .keys()
        .filter_map(|d| dirs.get(d))
        .flat_map(|d| d.entries.iter().cloned())
        .collect();
    out.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    let scope = by_dir
        .iter()
        .filter(|(_, paths)| paths.iter().any(|p| !p.is_root()))
        .map(|(d, _)| d.clone())
        .collect();
    if let Some(path) = record {
        // A directory listed again as it was (the View's merged root, on
        // every run) changes nothing worth a write.
        if changed > 0 || fresh {
            store(path, key, revision, dirs);
        }
    }
    Ok((out, scope))
}

/// The entries of `paths` (all directly in one directory) from its
/// `listing`; a path the listing lacks is looked up alone, for an error
/// naming it. Directories are left out: only their contents are placed.
fn wanted(
    source: &dyn Source,
    paths: &[&RepoPath],
    listing: Option<&[TreeEntry]>,
) -> Result<Vec<TreeEntry>> {
    let by_name: HashMap<&RepoPath, &TreeEntry> = listing
        .unwrap_or_default()
        .iter()
        .map(|e| (&e.path, e))
        .collect();
    let mut out = Vec::with_capacity(paths.len());
    for path in paths {
        let entry = match by_name.get(path) {
            Some(e) => (*e).clone(),
            None => source.stat(path)?.with_context(|| {
                format!("{path}: in the file set but not in {}", source.describe())
            })?,
        };
        if entry.kind != EntryKind::Dir {
            out.push(entry);
        }
    }
    Ok(out)
}

/// The source's id for `dir`: from its parent's listing made by this run
/// (taken before `dir` is listed), else asked of the source.
fn id_of(
    source: &dyn Source,
    dir: &RepoPath,
    listed: &HashMap<RepoPath, Vec<TreeEntry>>,
) -> Result<Option<ObjectId>> {
    if let Some(siblings) = dir.parent().and_then(|p| listed.get(&p)) {
        return Ok(siblings
            .iter()
            .find(|e| &e.path == dir)
            .filter(|e| e.kind == EntryKind::Dir)
            .map(|e| e.oid.clone()));
    }
    Ok(source.stat(dir)?.map(|e| e.oid))
}

/// Does the id `now` prove a directory recorded with `then` unchanged,
/// subtree and all? Only an equal git tree id does.
fn vouches(then: &Option<ObjectId>, now: &Option<ObjectId>) -> bool {
    match (then, now) {
        (Some(then), Some(now)) => then == now && ObjectId::git(now.as_str()).is_some(),
        _ => false,
    }
}

/// Is `path` below one of the directories `whole`?
fn below(path: &RepoPath, whole: &HashSet<RepoPath>) -> bool {
    path.ancestors().any(|dir| whole.contains(&dir))
}

/// The fixed commit the source serves, if it serves one: a git object id
/// (a changelist on top of a commit is not fixed).
fn fixed_revision(source: &dyn Source) -> Option<String> {
    source.revision().filter(|r| ObjectId::git(r).is_some())
}

/// What a record answers: the set's paths. Not the source's name: what
/// vouches for a record (a commit, a git tree id) names content wherever
/// it comes from, and naming the commit would list a whole new commit
/// afresh rather than only its changed directories.
fn key(set: &FileSet) -> String {
    let mut h = blake3::Hasher::new();
    h.update(&FORMAT.to_le_bytes());
    for p in set.files.keys() {
        h.update(p.as_str().as_bytes());
        h.update(b"\0");
    }
    h.finalize().to_hex().to_string()
}

/// The record at `path` if it answers `key`; `None` if missing, unreadable
/// or for something else (it is only an optimization).
fn load(path: &Path, key: &str) -> Option<Record> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!("{}: {e}; the file set is listed afresh", path.display());
            return None;
        }
    };
    match postcard::from_bytes::<Record>(&bytes) {
        Ok(r) if r.format == FORMAT && r.key == key => Some(r),
        Ok(_) => None,
        Err(e) => {
            tracing::debug!("{}: {e}; the file set is listed afresh", path.display());
            None
        }
    }
}

/// Stores what this run found; a failure is a warning (the next run lists
/// afresh).
fn store(path: &Path, key: String, revision: Option<String>, dirs: BTreeMap<RepoPath, Dir>) {
    let record = Record {
        format: FORMAT,
        key,
        revision,
        dirs,
    };
    let stored = postcard::to_allocvec(&record)
        .map_err(anyhow::Error::from)
        .and_then(|bytes| Ok(write_atomic(path, &bytes)?));
    if let Err(e) = stored {
        tracing::warn!("{}: file set entries not stored: {e:#}", path.display());
    }
}
