//! The sync's first step: observe every path the plan may touch, ours
//! (on disk, through [`crate::observe`]) beside theirs and the base.

use super::{Progress, Request};
use crate::fsutil::StatKey;
use crate::manifest::{Kind, Manifest};
use crate::observe::{self, Observed};
use antares_overlay::{RepoPath, TreeEntry};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The source's side of a path; `T` is how a new version is known (its
/// tree entry while observing, its [`crate::manifest::Version`] once fetched).
pub(crate) enum Theirs<T> {
    /// Same version as the manifest record.
    Same,
    /// A version other than the record's (or no record).
    New(T),
    /// Inside the requested scope, but the source no longer has it.
    Deleted,
    /// Outside every requested subtree: no longer wanted here.
    Unrequested,
}

/// One path as the plan sees it.
pub(crate) struct Row<'a> {
    pub(crate) path: RepoPath,
    pub(crate) ours: std::io::Result<Observed>,
    pub(crate) theirs: Theirs<&'a TreeEntry>,
    /// The manifest record's stat (None: no record).
    pub(crate) base_stat: Option<StatKey>,
}

/// What observing found: the rows to plan, and how many paths were
/// unchanged on both sides (no row needed).
pub(crate) struct Observation<'a> {
    pub(crate) rows: Vec<Row<'a>>,
    pub(crate) quiet: usize,
}

/// Observes every path the plan may touch: the wanted ones, those of the
/// manifest's records and conflicts (inside `only`), and, two-way, new
/// workspace files inside the requested subtrees.
pub(crate) fn observe<'r>(
    root: &Path,
    root_dir: &fs::File,
    manifest: &Manifest,
    request: &Request,
    wanted: &BTreeMap<&'r RepoPath, &'r TreeEntry>,
    progress: &dyn Progress,
) -> Observation<'r> {
    // Borrowed, not copied: at 100,000 paths every copy of the path set
    // costs time and memory. Three sorted runs: a stable sort merges them
    // in linear time.
    let mut known_paths: Vec<&RepoPath> = wanted.keys().copied().collect();
    known_paths.extend(keys_under(&manifest.records, request.only.as_ref()));
    known_paths.extend(keys_under(&manifest.conflicts, request.only.as_ref()));
    known_paths.sort();
    known_paths.dedup();
    // New workspace files inside the requested subtrees.
    let added: Vec<RepoPath> = match request.write_back {
        Some(_) => new_files(root, request, &known_paths),
        None => Vec::new(),
    };
    let paths: Vec<&RepoPath> = {
        let mut all = known_paths;
        if !added.is_empty() {
            all.extend(&added);
            all.sort();
            all.dedup();
        }
        if let Some(only) = &request.only {
            all.retain(|p| only.iter().any(|o| p.starts_with(o)));
        }
        all
    };
    progress.phase("checking", paths.len() as u64);
    let saved_at = manifest.saved_at_ns;
    // Ours, theirs and the base's stat of every path, in one parallel pass
    // (the map lookups are a good part of a no-op sync's time). A path
    // unchanged on both sides, with nothing to refresh or settle, needs no
    // row: it is only counted (most paths of a large workspace).
    let quiet = AtomicUsize::new(0);
    let rows: Vec<Row> = observe::in_directories(root_dir, &paths, |path, look| {
        let base = manifest.records.get(path);
        let ours = look(base, saved_at);
        let theirs = match wanted.get(path) {
            Some(e) => match base {
                Some(r)
                    if r.version.oid == e.oid
                        && (r.version.kind == Kind::Symlink
                            || r.version.executable == e.executable) =>
                {
                    Theirs::Same
                }
                _ => Theirs::New(*e),
            },
            None if request.scope.iter().any(|s| path.starts_with(s)) => Theirs::Deleted,
            None => Theirs::Unrequested,
        };
        progress.advance(1);
        let base_stat = base.map(|r| r.stat);
        if matches!(theirs, Theirs::Same)
            && matches!(&ours, Ok(Observed::Unchanged { stat }) if base_stat == Some(*stat))
            && !manifest.conflicts.contains_key(path)
        {
            quiet.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(Row {
            base_stat,
            path: path.clone(),
            ours,
            theirs,
        })
    });
    Observation {
        rows,
        quiet: quiet.into_inner(),
    }
}

/// The keys of `map` inside the `only` subtrees (all without `only`), by
/// range lookups: a watcher's small sync must not visit every record.
fn keys_under<'m, V>(
    map: &'m BTreeMap<RepoPath, V>,
    only: Option<&BTreeSet<RepoPath>>,
) -> Vec<&'m RepoPath> {
    let Some(only) = only else {
        return map.keys().collect();
    };
    let mut out = Vec::new();
    for o in only {
        // Every path under `o` shares its string prefix, and those are contiguous.
        out.extend(
            map.range(o.clone()..)
                .map(|(p, _)| p)
                .take_while(|p| p.as_str().starts_with(o.as_str()))
                .filter(|p| p.starts_with(o)),
        );
    }
    out
}

/// Files in the workspace that no record, conflict or wanted entry names
/// (`known`, sorted): new files inside the requested subtrees (the `only`
/// paths, else the scope), and an `only` path that is itself a new file.
fn new_files(root: &std::path::Path, request: &Request, known: &[&RepoPath]) -> Vec<RepoPath> {
    let known = |p: &RepoPath| known.binary_search(&p).is_ok();
    let under: Vec<RepoPath> = match &request.only {
        Some(only) => only
            .iter()
            .filter(|p| p.to_fs_path(root).is_dir() || !known(p))
            .cloned()
            .collect(),
        None => request.scope.clone(),
    };
    // Not for a watcher's small syncs: they look at a few directories, and
    // their cache would replace the whole workspace's.
    let cache = request
        .only
        .is_none()
        .then(|| crate::layout::Layout::new(root).untracked_cache());
    let mut added =
        crate::untracked::untracked(root, &under, &request.ignored, &known, cache.as_deref());
    added.extend(
        request
            .only
            .iter()
            .flatten()
            .filter(|p| {
                !known(p)
                    && !p.file_name().is_some_and(crate::untracked::is_editor_temp)
                    && fs::symlink_metadata(p.to_fs_path(root)).is_ok_and(|m| !m.is_dir())
            })
            .cloned(),
    );
    added
}
