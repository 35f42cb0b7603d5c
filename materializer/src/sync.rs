//! One sync: make the workspace hold the requested entries of a source,
//! without ever losing a workspace edit.
//!
//! Per path, a three-way decision with base = the manifest record, theirs =
//! the source entry, ours = what is on disk ([`observe`]):
//!
//! | ours \ theirs      | same as base | new version v                 | gone from source      | no longer requested |
//! |--------------------|--------------|-------------------------------|-----------------------|---------------------|
//! | unchanged          | keep         | place v                       | remove                | remove              |
//! | missing            | user deleted | place v (no base) / conflict  | forget                | forget              |
//! | changed            | modified     | adopt if = v, else conflict   | conflict              | keep (modified)     |
//!
//! Phases: observe (parallel stat, hash only on stat mismatch) → fetch what
//! the store lacks → remove → create directories → place (parallel: clone or
//! copy into `.antares/tmp`, rename into place) → flush the file system →
//! save the manifest. The manifest is written last: a sync killed at any
//! point leaves every file old or new (renames are atomic), and the next
//! sync recognises already-placed files by content and converges.

use crate::error::{Error, IoContext, Result};
use crate::fsutil::{
    create_dirs_nofollow, remove_empty_dir_beneath, remove_file_beneath, syncfs, StatKey,
};
use crate::intent;
use crate::io_pool;
use crate::layout::Layout;
use crate::manifest::{Conflict, Kind, Manifest, Record, Version};
use crate::observe::{self, Observed};
use crate::place::{self, Method, Placer, Spot, Staging};
use crate::store::{Known, Store};
use antares_overlay::{EntryKind, ObjectId, RepoPath, Source, TreeEntry};
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Where workspace edits go back to: the mount's writable upper layer (the
/// binary implements it over the overlay View). Each call returns the id the
/// source will report for the path from now on, so the next sync sees the
/// source and the workspace agree.
pub trait WriteBack: Sync {
    /// Makes `path` hold a copy of the workspace file `from`.
    fn put_file(
        &self,
        path: &RepoPath,
        from: &std::path::Path,
        executable: bool,
    ) -> antares_overlay::Result<ObjectId>;
    /// Makes `path` a symlink to `target`.
    fn put_symlink(&self, path: &RepoPath, target: &str) -> antares_overlay::Result<ObjectId>;
    /// Deletes `path` (in an overlay: a whiteout).
    fn delete(&self, path: &RepoPath) -> antares_overlay::Result<()>;
    /// Makes what the calls above wrote durable: `paths`, or everything
    /// (`None`). Called before the manifest that records it is saved.
    fn flush(&self, paths: Option<&[RepoPath]>) -> antares_overlay::Result<()>;
}

/// What to materialize.
#[derive(Clone, Default)]
pub struct Request<'a> {
    /// The entries the workspace must hold (files, symlinks; gitlinks are
    /// reported; directories are implied by their contents).
    pub entries: Vec<TreeEntry>,
    /// Subtrees the entries were taken from: a manifest path inside one of
    /// them that is not among `entries` was deleted by the source; outside,
    /// it is merely no longer requested.
    pub scope: Vec<RepoPath>,
    /// The source revision, recorded in the manifest.
    pub revision: Option<String>,
    /// Restrict this sync to these paths (a watcher's changed paths); other
    /// manifest records are left untouched. `None`: every path.
    pub only: Option<BTreeSet<RepoPath>>,
    /// Two-way mode: workspace edits, new files (inside `scope`) and
    /// deletions are written here instead of being left alone.
    pub write_back: Option<&'a dyn WriteBack>,
    /// Subtrees never written back (e.g. `project.ignore`).
    pub ignored: Vec<RepoPath>,
}

/// Progress reporting hooks; the binary draws bars with them.
pub trait Progress: Sync {
    /// A new phase with `total` units of work.
    fn phase(&self, name: &'static str, total: u64);
    /// `n` more units done.
    fn advance(&self, n: u64);
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn phase(&self, _: &'static str, _: u64) {}
    fn advance(&self, _: u64) {}
}

/// A path that could not be synced, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PathError {
    pub path: String,
    pub error: String,
}

/// What a sync did; serialised as the `--json` summary.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    /// Paths in the request.
    pub requested: usize,
    /// Newly placed paths.
    pub added: usize,
    /// Paths replaced by a new source version.
    pub updated: usize,
    /// Paths removed (gone from the source or no longer requested).
    pub removed: usize,
    pub unchanged: usize,
    /// Workspace edits left alone (source unchanged).
    pub modified: Vec<String>,
    /// Workspace deletions left alone (source unchanged).
    pub deleted: Vec<String>,
    /// Paths where the workspace already held the new source version.
    pub adopted: usize,
    /// Paths changed on both sides; both versions are kept.
    pub conflicts: Vec<String>,
    /// Submodule entries, materialized as empty directories.
    pub gitlinks: Vec<String>,
    /// Workspace edits and new files written back to the source side.
    pub written_back: Vec<String>,
    /// Workspace deletions written back to the source side.
    pub deleted_back: Vec<String>,
    /// Paths skipped because the workspace changed while syncing.
    pub raced: Vec<String>,
    pub errors: Vec<PathError>,
    /// Blobs read from the source (the rest came from the store).
    pub fetched: u64,
    pub fetched_bytes: u64,
    pub bytes_placed: u64,
    pub reflinked: u64,
    pub copied: u64,
    pub seconds: f64,
}

/// The source's side of a path.
enum Theirs<'a> {
    /// Same version as the manifest record.
    Same,
    New(&'a TreeEntry),
    Deleted,
    Unrequested,
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
                    && !p.file_name().is_some_and(crate::status::is_editor_temp)
                    && fs::symlink_metadata(p.to_fs_path(root)).is_ok_and(|m| !m.is_dir())
            })
            .cloned(),
    );
    added
}

/// One path as the plan sees it.
struct Row<'a> {
    path: RepoPath,
    ours: std::io::Result<Observed>,
    theirs: Theirs<'a>,
    /// The manifest record's stat (None: no record).
    base_stat: Option<StatKey>,
}

/// What the plan does at a path.
enum Action {
    Keep {
        refresh: Option<StatKey>,
    },
    /// Place a new version; `expect` is the stat of the file it replaces
    /// (None: nothing there, never clobber).
    Place {
        version: Version,
        expect: Option<StatKey>,
    },
    Remove {
        expect: StatKey,
    },
    Forget,
    Adopt {
        version: Version,
        stat: StatKey,
    },
    Conflict {
        theirs: Option<Version>,
    },
    /// Two-way: copy ours to the source side (`stat` as observed).
    WriteBack {
        version: Version,
        stat: StatKey,
    },
    /// Two-way: delete on the source side what the user deleted here.
    DeleteBack,
    /// Leave the workspace and the record as they are.
    Leave,
}

/// A manifest kept in memory between the syncs of one process (`--watch`
/// runs one per burst of edits), reloaded when another process changed it.
#[derive(Default)]
pub struct ManifestCache(Option<Manifest>);

impl ManifestCache {
    fn take(&mut self, path: &std::path::Path) -> Result<Manifest> {
        match self.0.take() {
            Some(m) if m.is_current(path) => Ok(m),
            _ => Manifest::load(path),
        }
    }

    /// Whether the next sync would load the manifest at `path` from disk.
    /// A caller with other work to do first can load it on another thread
    /// and [`put`](Self::put) it here.
    pub fn needs_load(&self, path: &std::path::Path) -> bool {
        !self.0.as_ref().is_some_and(|m| m.is_current(path))
    }

    pub fn put(&mut self, manifest: Manifest) {
        self.0 = Some(manifest);
    }
}

/// Runs one sync. The caller holds the workspace lock.
pub fn sync(
    layout: &Layout,
    store: &Store,
    source: &dyn Source,
    request: Request,
    progress: &dyn Progress,
) -> Result<Summary> {
    sync_cached(
        layout,
        store,
        source,
        request,
        progress,
        &mut ManifestCache::default(),
    )
}

/// [`sync`] with the manifest taken from (and left in) `cache`. A sync that
/// changed few paths (every [`Request::only`] one) records them in the
/// manifest's journal instead of rewriting it.
pub fn sync_cached(
    layout: &Layout,
    store: &Store,
    source: &dyn Source,
    request: Request,
    progress: &dyn Progress,
    cache: &mut ManifestCache,
) -> Result<Summary> {
    let started = Instant::now();
    let root = layout.root();
    // Taken out: an error below leaves the cache empty, so the next sync
    // reloads what is on disk rather than trusting a half-updated copy.
    let mut manifest = cache.take(&layout.manifest())?;
    intent::recover(layout, &mut manifest)?;
    let tmp_dir = layout.tmp_dir();
    if tmp_dir.exists() {
        fs::remove_dir_all(&tmp_dir).at(tmp_dir.display())?;
    }
    fs::create_dir_all(&tmp_dir).at(tmp_dir.display())?;

    let mut summary = Summary {
        requested: request.entries.len(),
        ..Summary::default()
    };

    // The wanted entries, by path; symlink targets resolved and checked.
    let mut wanted: BTreeMap<&RepoPath, &TreeEntry> = BTreeMap::new();
    let mut gitlinks = Vec::new();
    for e in &request.entries {
        match e.kind {
            EntryKind::File | EntryKind::Symlink => {
                if wanted.contains_key(&e.path) {
                    // A malformed tree (git fsck: duplicateEntries): the
                    // first entry is used, every sync, so it stays settled.
                    summary.errors.push(PathError {
                        path: e.path.to_string(),
                        error: "the source's tree lists this name more than once (a malformed tree); its first entry is used".into(),
                    });
                } else {
                    wanted.insert(&e.path, e);
                }
            }
            EntryKind::Gitlink => gitlinks.push(e.path.clone()),
            EntryKind::Dir => {}
        }
    }
    let (targets, mut unreadable) = symlink_targets(source, &manifest, &wanted, &mut summary);
    wanted.retain(|p, e| e.kind != EntryKind::Symlink || targets.contains_key(p));

    // Observe ours for every path the plan may touch. Borrowed, not copied:
    // at 100,000 paths every copy of the path set costs time and memory.
    // Three sorted runs: a stable sort merges them in linear time.
    let mut known_paths: Vec<&RepoPath> = wanted.keys().copied().collect();
    known_paths.extend(keys_under(&manifest.records, request.only.as_ref()));
    known_paths.extend(keys_under(&manifest.conflicts, request.only.as_ref()));
    known_paths.sort();
    known_paths.dedup();
    // New workspace files inside the requested subtrees.
    let added: Vec<RepoPath> = match request.write_back {
        Some(_) => new_files(root, &request, &known_paths),
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
    tracing::debug!(
        phase = "checking",
        elapsed_ms = started.elapsed().as_millis() as u64,
        "sync phase"
    );
    progress.phase("checking", paths.len() as u64);
    let saved_at = manifest.saved_at_ns;
    let root_dir = fs::File::open(root).at(root.display())?;
    // Ours, theirs and the base's stat of every path, in one parallel pass
    // (the map lookups are a good part of a no-op sync's time). A path
    // unchanged on both sides, with nothing to refresh or settle, needs no
    // row: it is only counted (most paths of a large workspace).
    let quiet = AtomicUsize::new(0);
    let observed: Vec<Row> = observe::in_directories(&root_dir, &paths, |path, look| {
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
                _ => Theirs::New(e),
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
    summary.unchanged += quiet.into_inner();

    // The blobs the store must hold for new versions.
    let new_files: Vec<&TreeEntry> = observed
        .iter()
        .filter_map(|row| match row.theirs {
            Theirs::New(e) if e.kind == EntryKind::File => Some(e),
            _ => None,
        })
        .collect();
    let in_store = store.lookup_many(new_files.iter().map(|e| &e.oid));
    let mut known: HashMap<RepoPath, Known> = HashMap::new();
    let mut to_fetch: Vec<TreeEntry> = Vec::new();
    for e in new_files {
        match in_store.get(&e.oid) {
            Some(k) => {
                known.insert(e.path.clone(), *k);
            }
            None => to_fetch.push(e.clone()),
        }
    }
    if !to_fetch.is_empty() {
        tracing::debug!(
            phase = "fetching",
            elapsed_ms = started.elapsed().as_millis() as u64,
            "sync phase"
        );
        progress.phase("fetching", to_fetch.len() as u64);
        let bytes = AtomicU64::new(0);
        // On the default pool: a git source's reads are CPU (inflating,
        // applying deltas), and each extra thread keeps its own pack cache.
        let mut fetched = store.fetch(source, &to_fetch, &|n| {
            bytes.fetch_add(n, Ordering::Relaxed);
            progress.advance(1);
        });
        summary.fetched_bytes = bytes.into_inner();
        // For the paths the source never answered for: its first complaint.
        let first_error = fetched
            .values()
            .find_map(|r| r.as_ref().err())
            .map(|e| e.to_string());
        for e in &to_fetch {
            match fetched.remove(&e.path) {
                Some(Ok(k)) => {
                    summary.fetched += 1;
                    known.insert(e.path.clone(), k);
                }
                failed => {
                    unreadable += 1;
                    let why = match failed {
                        Some(Err(err)) => err.to_string(),
                        _ => first_error
                            .clone()
                            .unwrap_or_else(|| "the source returned no content".into()),
                    };
                    summary.errors.push(PathError {
                        path: e.path.to_string(),
                        error: why,
                    });
                }
            }
        }
    }
    // A source that could not deliver everything (a network fault, a file
    // that vanished) changes nothing: a half-applied sync is worse than none,
    // and a path whose new version is unknown must not look deleted.
    if unreadable > 0 {
        tracing::warn!(
            unreadable,
            source = %source.describe(),
            "entries could not be read; the workspace is left unchanged"
        );
        return Ok(summary);
    }
    let version_of = |e: &TreeEntry| -> Option<Version> {
        match e.kind {
            EntryKind::File => known.get(&e.path).map(|k| Version {
                kind: Kind::File,
                executable: e.executable,
                size: k.size,
                hash: Some(k.hash),
                target: None,
                oid: e.oid.clone(),
            }),
            EntryKind::Symlink => targets.get(&e.path).map(|t| Version {
                kind: Kind::Symlink,
                executable: false,
                size: t.len() as u64,
                hash: None,
                target: Some(t.clone()),
                oid: e.oid.clone(),
            }),
            _ => None,
        }
    };

    // Decide.
    let mut actions: Vec<(RepoPath, Action)> = Vec::with_capacity(observed.len());
    // Indices of conflicts that are only a directory where a file comes.
    let mut dir_in_the_way: Vec<usize> = Vec::new();
    for Row {
        path: p,
        ours: obs,
        theirs,
        base_stat,
    } in observed
    {
        let obs = match obs {
            Ok(o) => o,
            Err(e) => {
                summary.errors.push(PathError {
                    path: p.to_string(),
                    error: format!("cannot inspect workspace file: {e}"),
                });
                continue;
            }
        };
        let has_record = base_stat.is_some();
        let new_version = match &theirs {
            Theirs::New(e) => match version_of(e) {
                Some(v) => Some(v),
                None => continue, // fetch failed: already reported, leave all as is
            },
            _ => None,
        };
        let action = match (obs, theirs) {
            (Observed::Unchanged { stat }, Theirs::Same) => Action::Keep {
                refresh: (base_stat != Some(stat)).then_some(stat),
            },
            (Observed::Unchanged { stat }, Theirs::New(_)) => Action::Place {
                version: new_version.expect_version(),
                expect: Some(stat),
            },
            (Observed::Unchanged { stat }, Theirs::Deleted | Theirs::Unrequested) => {
                Action::Remove { expect: stat }
            }
            (Observed::Missing, Theirs::Same) if request.write_back.is_some() => Action::DeleteBack,
            (Observed::Missing, Theirs::Same) => {
                summary.deleted.push(p.to_string());
                Action::Leave
            }
            (Observed::Missing, Theirs::New(_)) if has_record => Action::Conflict {
                theirs: new_version,
            },
            (Observed::Missing, Theirs::New(_)) => Action::Place {
                version: new_version.expect_version(),
                expect: None,
            },
            (Observed::Missing, Theirs::Deleted | Theirs::Unrequested) => Action::Forget,
            (Observed::Present { version, stat }, Theirs::Same | Theirs::Unrequested)
                if request.write_back.is_some() && has_record =>
            {
                Action::WriteBack { version, stat }
            }
            (Observed::Present { version, stat }, Theirs::Deleted | Theirs::Unrequested)
                if request.write_back.is_some() && !has_record =>
            {
                // A new workspace file: write it back unless the source has
                // something at that path that was not requested.
                match source.stat(&p) {
                    Ok(None) => Action::WriteBack { version, stat },
                    Ok(Some(_)) => {
                        summary.errors.push(PathError {
                            path: p.to_string(),
                            error: "created in the workspace, but the source has this path outside the synced set; not written back".into(),
                        });
                        Action::Leave
                    }
                    Err(e) => {
                        summary.errors.push(PathError {
                            path: p.to_string(),
                            error: e.to_string(),
                        });
                        Action::Leave
                    }
                }
            }
            (
                Observed::Present { .. } | Observed::Other { .. } | Observed::BehindSymlink,
                Theirs::Same,
            ) => {
                summary.modified.push(p.to_string());
                Action::Leave
            }
            (Observed::Present { version, stat }, Theirs::New(_)) => {
                let v = new_version.expect_version();
                if version.same_content(&v) {
                    Action::Adopt { version: v, stat }
                } else {
                    Action::Conflict { theirs: Some(v) }
                }
            }
            // Placing refuses the symlinked directory, with an error naming it.
            (Observed::BehindSymlink, Theirs::New(_)) => Action::Place {
                version: new_version.expect_version(),
                expect: None,
            },
            (Observed::Other { what }, Theirs::New(_)) => {
                if what == observe::A_DIRECTORY && !has_record {
                    // The source turned a directory into a file: no
                    // conflict if the removals below empty it.
                    dir_in_the_way.push(actions.len());
                }
                Action::Conflict {
                    theirs: new_version,
                }
            }
            (Observed::Present { .. } | Observed::Other { .. }, Theirs::Deleted) if has_record => {
                Action::Conflict { theirs: None }
            }
            (
                Observed::Present { .. } | Observed::Other { .. } | Observed::BehindSymlink,
                Theirs::Deleted | Theirs::Unrequested,
            ) => {
                if has_record {
                    summary.modified.push(p.to_string());
                }
                Action::Leave
            }
        };
        actions.push((p, action));
    }

    // Execute: removals, then directories, then placements.
    let removals: Vec<(&RepoPath, StatKey)> = actions
        .iter()
        .filter_map(|(p, a)| match a {
            Action::Remove { expect } => Some((p, *expect)),
            _ => None,
        })
        .collect();
    let removed: Vec<RepoPath> = removals
        .par_iter()
        .filter_map(|(p, expect)| {
            matches!(
                remove_file_beneath(&root_dir, p.as_str(), *expect),
                Ok(true)
            )
            .then(|| (*p).clone())
        })
        .collect();
    prune_empty_dirs(&root_dir, &removed);
    for i in dir_in_the_way {
        let (p, action) = &mut actions[i];
        if let Action::Conflict { theirs: Some(v) } = action {
            if matches!(StatKey::at(&root_dir, p.as_str()), Ok(None)) {
                *action = Action::Place {
                    version: v.clone(),
                    expect: None,
                };
            }
        }
    }

    let placements: Vec<(&RepoPath, &Version, Option<StatKey>)> = actions
        .iter()
        .filter_map(|(p, a)| match a {
            Action::Place { version, expect } => Some((p, version, *expect)),
            _ => None,
        })
        .collect();
    let mut dirs: BTreeSet<RepoPath> = placements
        .iter()
        .filter_map(|(p, _, _)| p.parent())
        .collect();
    dirs.extend(gitlinks.iter().cloned());
    let mut bad_dirs: Vec<(RepoPath, String)> = Vec::new();
    for d in &dirs {
        if let Err(e) = create_dirs_nofollow(root, d.as_str()) {
            bad_dirs.push((d.clone(), e.to_string()));
        }
    }
    summary.gitlinks = gitlinks.iter().map(|p| p.to_string()).collect();

    if !placements.is_empty() {
        let intended: Vec<(&RepoPath, &Version)> =
            placements.iter().map(|(p, v, _)| (*p, *v)).collect();
        intent::write(layout, &intended)?;
    }
    tracing::debug!(
        phase = "placing",
        elapsed_ms = started.elapsed().as_millis() as u64,
        "sync phase"
    );
    progress.phase("placing", placements.len() as u64);
    let placer = Placer::default();
    let staging = Staging::open(&tmp_dir).at(tmp_dir.display())?;
    let placed: Mutex<Vec<(RepoPath, Record)>> = Mutex::new(Vec::new());
    let raced: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let errors: Mutex<Vec<PathError>> = Mutex::new(Vec::new());
    let (bytes, reflinked, copied) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let raced_late: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let late_errors: Mutex<Vec<PathError>> = Mutex::new(Vec::new());
    io_pool::install(|| {
        placements.par_iter().for_each(|(p, v, expect)| {
            let fail = |error: String| {
                if let Ok(mut e) = errors.lock() {
                    e.push(PathError {
                        path: p.to_string(),
                        error,
                    });
                }
            };
            if let Some((d, why)) = bad_dirs.iter().find(|(d, _)| p.starts_with(d)) {
                fail(format!("directory {d}: {why}"));
                progress.advance(1);
                return;
            }
            // Opened once, without following a symlink: a directory swapped
            // for one after the plan looked cannot redirect what follows.
            let spot = match Spot::beneath(&root_dir, p.as_str()) {
                Ok(spot) => spot,
                Err(e) => {
                    fail(place::spot_error(&e));
                    progress.advance(1);
                    return;
                }
            };
            let staged = match (&v.hash, &v.target) {
                (Some(h), _) => placer
                    .stage_file(
                        &store.object_path(h),
                        Some(spot.dir()),
                        &staging,
                        v.size,
                        if v.executable { 0o755 } else { 0o644 },
                    )
                    .map(|(s, m)| (s, Some(m))),
                (None, Some(t)) => place::stage_symlink(t, &staging).map(|s| (s, None)),
                (None, None) => Err(std::io::Error::other(
                    "version has neither content nor target",
                )),
            };
            let res = staged
                .and_then(|(s, m)| place::commit(s, &staging, &spot, *expect).map(|st| (st, m)));
            match res {
                Ok((Some(stat), method)) => {
                    match method {
                        Some(Method::Reflink) => reflinked.fetch_add(1, Ordering::Relaxed),
                        Some(Method::Copy) => copied.fetch_add(1, Ordering::Relaxed),
                        None => 0,
                    };
                    bytes.fetch_add(v.size, Ordering::Relaxed);
                    if let Ok(mut pl) = placed.lock() {
                        pl.push((
                            (*p).clone(),
                            Record {
                                version: (*v).clone(),
                                stat,
                            },
                        ));
                    }
                }
                Ok((None, _)) => {
                    if let Ok(mut r) = raced.lock() {
                        r.push(p.to_string());
                    }
                }
                Err(e) => fail(e.to_string()),
            }
            progress.advance(1);
        })
    });
    summary.bytes_placed = bytes.into_inner();
    summary.reflinked = reflinked.into_inner();
    summary.copied = copied.into_inner();
    summary.raced = raced.into_inner().unwrap_or_default();
    summary
        .errors
        .extend(errors.into_inner().unwrap_or_default());

    // Two-way: workspace edits and deletions go to the source side.
    let written: Mutex<HashMap<RepoPath, Record>> = Mutex::new(HashMap::new());
    let deleted_back: Mutex<BTreeSet<RepoPath>> = Mutex::new(BTreeSet::new());
    if let Some(wb) = request.write_back {
        let back: Vec<&(RepoPath, Action)> = actions
            .iter()
            .filter(|(_, a)| matches!(a, Action::WriteBack { .. } | Action::DeleteBack))
            .collect();
        tracing::debug!(
            phase = "writing back",
            elapsed_ms = started.elapsed().as_millis() as u64,
            "sync phase"
        );
        progress.phase("writing back", back.len() as u64);
        io_pool::install(|| {
            back.par_iter().for_each(|(p, a)| {
                let res = write_back_one(wb, root, p, a);
                match res {
                    Ok(Some(rec)) => {
                        if let Ok(mut w) = written.lock() {
                            w.insert(p.clone(), rec);
                        }
                    }
                    Ok(None) if matches!(a, Action::DeleteBack) => {
                        if let Ok(mut d) = deleted_back.lock() {
                            d.insert(p.clone());
                        }
                    }
                    Ok(None) => {
                        if let Ok(mut r) = raced_late.lock() {
                            r.push(p.to_string());
                        }
                    }
                    Err(error) => {
                        if let Ok(mut e) = late_errors.lock() {
                            e.push(PathError {
                                path: p.to_string(),
                                error,
                            });
                        }
                    }
                }
                progress.advance(1);
            })
        });
    }
    summary
        .raced
        .extend(raced_late.into_inner().unwrap_or_default());
    summary
        .errors
        .extend(late_errors.into_inner().unwrap_or_default());
    let written = written.into_inner().unwrap_or_default();
    let deleted_back = deleted_back.into_inner().unwrap_or_default();

    // Fold the outcome into the manifest.
    let placed: HashMap<RepoPath, Record> = placed
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let removed: BTreeSet<RepoPath> = removed.into_iter().collect();
    let mut conflict_copies: Vec<(RepoPath, Version)> = Vec::new();
    let conflicts_before = manifest.conflicts.clone();
    // Whether the records change: a no-op sync must not rewrite the manifest
    // nor flush the file system (that would cost more than the sync itself).
    let mut dirty = !placed.is_empty() || !removed.is_empty();
    // The paths whose record or conflict entry this sync may change: when
    // they are few, the manifest's journal records them instead of a rewrite.
    let touched: Vec<RepoPath> = actions
        .iter()
        .filter(|(p, a)| {
            !matches!(a, Action::Keep { refresh: None } | Action::Leave)
                || manifest.conflicts.contains_key(p)
        })
        .map(|(p, _)| p.clone())
        .collect();
    for (p, action) in actions {
        match action {
            Action::Keep { refresh } => {
                summary.unchanged += 1;
                if let (Some(stat), Some(r)) = (refresh, manifest.records.get_mut(&p)) {
                    r.stat = stat;
                    dirty = true;
                }
                manifest.conflicts.remove(&p);
            }
            Action::Place { .. } => {
                if let Some(rec) = placed.get(&p) {
                    if manifest.records.insert(p.clone(), rec.clone()).is_some() {
                        summary.updated += 1;
                    } else {
                        summary.added += 1;
                    }
                    manifest.conflicts.remove(&p);
                }
            }
            Action::Remove { .. } => {
                if removed.contains(&p) {
                    summary.removed += 1;
                    manifest.records.remove(&p);
                    manifest.conflicts.remove(&p);
                } else {
                    summary.raced.push(p.to_string());
                }
            }
            Action::Forget => {
                dirty = true;
                manifest.records.remove(&p);
                manifest.conflicts.remove(&p);
            }
            Action::Adopt { version, stat } => {
                dirty = true;
                summary.adopted += 1;
                manifest.records.insert(p.clone(), Record { version, stat });
                manifest.conflicts.remove(&p);
            }
            Action::Conflict { theirs } => {
                summary.conflicts.push(p.to_string());
                if let Some(v) = &theirs {
                    conflict_copies.push((p.clone(), v.clone()));
                }
                manifest.conflicts.insert(p, Conflict { theirs });
            }
            Action::Leave => {
                manifest.conflicts.remove(&p);
            }
            Action::WriteBack { .. } => {
                if let Some(rec) = written.get(&p) {
                    dirty = true;
                    summary.written_back.push(p.to_string());
                    manifest.records.insert(p.clone(), rec.clone());
                    manifest.conflicts.remove(&p);
                }
            }
            Action::DeleteBack => {
                if deleted_back.contains(&p) {
                    dirty = true;
                    summary.deleted_back.push(p.to_string());
                    manifest.records.remove(&p);
                    manifest.conflicts.remove(&p);
                }
            }
        }
    }
    write_conflict_copies(
        layout,
        store,
        &placer,
        &staging,
        &manifest,
        &conflict_copies,
        &mut summary,
    );

    dirty |= manifest.conflicts != conflicts_before;
    if request.revision.is_some() && request.revision != manifest.revision {
        manifest.revision = request.revision;
        dirty = true;
    }
    if dirty {
        // Data first, then the manifest that describes it.
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "flushing"
        );
        let written_back: Vec<RepoPath> =
            written.keys().chain(deleted_back.iter()).cloned().collect();
        if request.only.is_some() {
            // A watcher's small sync: flush just what it wrote, not the
            // whole file system (that costs hundreds of ms per edit).
            for (p, rec) in &placed {
                fsync_path(&p.to_fs_path(root));
                if let Some(h) = &rec.version.hash {
                    fsync_path(&store.object_path(h));
                }
            }
        } else {
            syncfs(root);
            store.sync_fs();
        }
        if let Some(wb) = request.write_back.filter(|_| !written_back.is_empty()) {
            let paths = request.only.is_some().then_some(written_back.as_slice());
            // Not durable: the manifest must not say it is done.
            wb.flush(paths)?;
        }
        tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "flushed");
        if request.only.is_some() || touched.len() * 8 < manifest.records.len() {
            manifest.save_paths(&layout.manifest(), &touched)?;
        } else {
            manifest.save(&layout.manifest())?;
        }
    }
    intent::clear(layout)?;
    let _ = fs::remove_dir_all(&tmp_dir);
    cache.0 = Some(manifest);
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Unwraps the new version for an action that only exists when there is one.
trait ExpectVersion {
    fn expect_version(self) -> Version;
}

impl ExpectVersion for Option<Version> {
    fn expect_version(self) -> Version {
        // `new_version` is Some whenever theirs is `New` (checked above with `continue`).
        self.unwrap_or_else(|| unreachable!("new version missing for a New entry"))
    }
}

/// Symlink targets for the wanted symlinks: from the manifest when the
/// version is unchanged (no read), else read from the source. Absolute or
/// escaping targets are refused with an error naming the path.
fn symlink_targets(
    source: &dyn Source,
    manifest: &Manifest,
    wanted: &BTreeMap<&RepoPath, &TreeEntry>,
    summary: &mut Summary,
) -> (HashMap<RepoPath, String>, usize) {
    let mut out = HashMap::new();
    let mut unreadable = 0;
    let mut to_read = Vec::new();
    for (p, e) in wanted.iter().filter(|(_, e)| e.kind == EntryKind::Symlink) {
        match manifest.records.get(*p) {
            Some(r) if r.version.oid == e.oid && r.version.target.is_some() => {
                out.insert((*p).clone(), r.version.target.clone().unwrap_or_default());
            }
            _ => to_read.push((*e).clone()),
        }
    }
    let read: Mutex<Vec<(RepoPath, std::result::Result<String, String>)>> = Mutex::new(Vec::new());
    let failed = AtomicUsize::new(0);
    source.read_many(&to_read, &|e, bytes| {
        let r = match bytes {
            Ok(b) => {
                String::from_utf8(b).map_err(|_| "symlink target is not valid UTF-8".to_string())
            }
            Err(err) => {
                failed.fetch_add(1, Ordering::Relaxed);
                Err(format!("cannot read from the source: {err}"))
            }
        };
        if let Ok(mut v) = read.lock() {
            v.push((e.path.clone(), r));
        }
    });
    let read = read.into_inner().unwrap_or_default();
    // Entries the source never answered for count as unreadable too.
    unreadable += failed.into_inner() + to_read.len().saturating_sub(read.len());
    for (p, r) in read {
        let checked = r.and_then(|t| {
            if t.starts_with('/') {
                Err(Error::AbsoluteSymlink {
                    path: p.clone(),
                    target: t,
                }
                .to_string())
            } else if p.resolve_link(&t).is_none() {
                Err(Error::EscapingSymlink {
                    path: p.clone(),
                    target: t,
                }
                .to_string())
            } else {
                Ok(t)
            }
        });
        match checked {
            Ok(t) => {
                out.insert(p, t);
            }
            Err(error) => summary.errors.push(PathError {
                path: p.to_string(),
                error,
            }),
        }
    }
    // Every target, also one unchanged since the last sync (the tree around
    // it may have changed), resolved against the tree: no `..` out of a link.
    let mut dirs: HashMap<RepoPath, bool> = HashMap::new();
    let mut is_dir = |d: &RepoPath| {
        *dirs
            .entry(d.clone())
            .or_insert_with(|| matches!(source.stat(d), Ok(Some(e)) if e.kind == EntryKind::Dir))
    };
    let mut climbing: Vec<RepoPath> = out
        .iter()
        .filter(|(p, t)| p.resolve_link_in(t, &mut is_dir).is_none())
        .map(|(p, _)| p.clone())
        .collect();
    climbing.sort();
    for p in climbing {
        if let Some(target) = out.remove(&p) {
            summary.errors.push(PathError {
                path: p.to_string(),
                error: Error::ClimbingSymlink { path: p, target }.to_string(),
            });
        }
    }
    (out, unreadable)
}

/// Removes directories left empty by removals, bottom-up, never the root,
/// never through a symlink.
fn prune_empty_dirs(root_dir: &fs::File, removed: &[RepoPath]) {
    let mut dirs: BTreeSet<RepoPath> = BTreeSet::new();
    for p in removed {
        let mut cur = p.parent();
        while let Some(d) = cur {
            if d.is_root() {
                break;
            }
            cur = d.parent();
            dirs.insert(d);
        }
    }
    // Deepest first: reverse lexicographic order puts children before parents.
    for d in dirs.iter().rev() {
        remove_empty_dir_beneath(root_dir, d.as_str());
    }
}

/// Keeps the source's side of each conflict under `.antares/conflicts/`,
/// every write and removal there through [`Spot`]s beneath that directory.
fn write_conflict_copies(
    layout: &Layout,
    store: &Store,
    placer: &Placer,
    staging: &Staging,
    manifest: &Manifest,
    copies: &[(RepoPath, Version)],
    summary: &mut Summary,
) {
    let base = layout.conflicts_dir();
    // Drop copies of conflicts that no longer exist.
    if let Ok(base_dir) = fs::File::open(&base) {
        for rel in list_files(&base) {
            let stale = RepoPath::from_fs(&rel)
                .map(|p| !manifest.conflicts.contains_key(&p))
                .unwrap_or(true);
            if let Some(spot) = stale
                .then(|| Spot::beneath(&base_dir, &rel.to_string_lossy()).ok())
                .flatten()
            {
                let _ = spot.remove_file();
            }
        }
    }
    for (p, v) in copies {
        let res = (|| -> Result<()> {
            fs::create_dir_all(&base).at(base.display())?;
            if let Some(parent) = p.parent() {
                create_dirs_nofollow(&base, parent.as_str())?;
            }
            let base_dir = fs::File::open(&base).at(base.display())?;
            let shown = p.to_fs_path(&base);
            let spot = Spot::beneath(&base_dir, p.as_str()).map_err(|e| {
                Error::io(
                    shown.display(),
                    std::io::Error::other(place::spot_error(&e)),
                )
            })?;
            let staged = match (&v.hash, &v.target) {
                (Some(h), _) => placer
                    .stage_file(
                        &store.object_path(h),
                        Some(spot.dir()),
                        staging,
                        v.size,
                        0o444,
                    )
                    .map(|(s, _)| s),
                (None, Some(t)) => place::stage_symlink(t, staging),
                _ => return Ok(()),
            }
            .at(shown.display())?;
            // Replaces an older copy; a directory there is an error.
            let expect = spot.stat().at(shown.display())?;
            place::commit(staged, staging, &spot, expect)
                .at(shown.display())?
                .map(|_| ())
                .ok_or_else(|| {
                    Error::io(
                        shown.display(),
                        std::io::Error::other("changed while it was written"),
                    )
                })
        })();
        if let Err(e) = res {
            summary.errors.push(PathError {
                path: p.to_string(),
                error: format!(
                    "cannot keep the source's version in {}: {e}",
                    base.display()
                ),
            });
        }
    }
}

/// Files below `dir`, relative to it.
fn list_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(rd) = fs::read_dir(dir.join(&rel)) else {
            continue;
        };
        for e in rd.flatten() {
            let r = rel.join(e.file_name());
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(r),
                Ok(_) => out.push(r),
                Err(_) => {}
            }
        }
    }
    out
}

/// Writes one workspace change to the source side. Returns the new record
/// for a written file, `None` for a deletion or when the file changed while
/// it was being copied (left for the next sync).
fn write_back_one(
    wb: &dyn WriteBack,
    root: &std::path::Path,
    p: &RepoPath,
    action: &Action,
) -> std::result::Result<Option<Record>, String> {
    match action {
        Action::WriteBack { version, stat } => {
            let from = p.to_fs_path(root);
            let oid = match (&version.kind, &version.target) {
                (Kind::Symlink, Some(t)) => wb.put_symlink(p, t),
                _ => wb.put_file(p, &from, version.executable),
            }
            .map_err(|e| format!("cannot write back: {e}"))?;
            let now = fs::symlink_metadata(&from).map(|m| StatKey::of(&m)).ok();
            if now != Some(*stat) {
                return Ok(None);
            }
            let mut version = version.clone();
            version.oid = oid;
            Ok(Some(Record {
                version,
                stat: *stat,
            }))
        }
        Action::DeleteBack => wb
            .delete(p)
            .map(|()| None)
            .map_err(|e| format!("cannot write back the deletion: {e}")),
        _ => Ok(None),
    }
}

/// fsync of one file by path (best effort: a failure only weakens
/// durability after a power loss, never correctness).
fn fsync_path(path: &std::path::Path) {
    if let Ok(f) = fs::File::open(path) {
        let _ = f.sync_all();
    }
}
