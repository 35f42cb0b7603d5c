//! One sync: make the workspace hold the requested entries of a source,
//! without ever losing a workspace edit.
//!
//! A pipeline of named steps, each in its own module:
//!
//! 1. [`observe`](self::observe): every path the plan may touch, ours (on
//!    disk: parallel stat, hash only on stat mismatch) beside theirs (the
//!    source's entry, [`theirs`]) and the base (the manifest record);
//!    then [`fetch`] what the store lacks of the new versions;
//! 2. [`plan`]: per path a pure decision from (base, ours, theirs) to an
//!    action, the table in `docs/architecture.md#sync-plan`;
//! 3. [`execute`]: removals, directories, placements (parallel, atomic);
//! 4. [`write_back`] (two-way): workspace edits to the source side;
//! 5. [`commit`]: fold the outcome into the manifest, flush the data,
//!    then save the manifest.
//!
//! The manifest is written last: a sync killed at any point leaves every
//! file old or new (renames are atomic), and the next sync recognises
//! already-placed files by content and converges
//! (`docs/architecture.md#no-torn-files`).

mod commit;
mod execute;
mod fetch;
mod observe;
mod plan;
mod theirs;
mod write_back;

use crate::error::{IoContext, Result};
use crate::intent;
use crate::layout::Layout;
use crate::manifest::Manifest;
use crate::store::Store;
use antares_overlay::{EntryKind, ObjectId, RepoPath, Source, TreeEntry};
use std::collections::BTreeSet;
use std::fs;
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
pub struct FailedPath {
    /// The path.
    pub path: String,
    /// What went wrong there.
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
    /// Paths left as they were (same on both sides).
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
    /// Paths that could not be synced, and why.
    pub errors: Vec<FailedPath>,
    /// Blobs read from the source (the rest came from the store).
    pub fetched: u64,
    /// Bytes read from the source.
    pub fetched_bytes: u64,
    /// Bytes placed into the workspace.
    pub bytes_placed: u64,
    /// Files placed by reflink.
    pub reflinked: u64,
    /// Files placed by copy.
    pub copied: u64,
    /// Wall time of the sync.
    pub seconds: f64,
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

    /// Keeps `manifest` for the next sync.
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

    // 1. Observe: theirs (symlink targets resolved and checked), then ours.
    let (mut wanted, gitlinks) = theirs::wanted_entries(&request, &mut summary);
    let (targets, mut unreadable) =
        theirs::symlink_targets(source, &manifest, &wanted, &mut summary);
    wanted.retain(|p, e| e.kind != EntryKind::Symlink || targets.contains_key(p));
    log_phase(started, "checking");
    let root_dir = fs::File::open(root).at(root.display())?;
    let observed = observe::observe(root, &root_dir, &manifest, &request, &wanted, progress);
    summary.unchanged += observed.quiet;
    log_phase(started, "fetching");
    let (known, failed) =
        fetch::fetch_new_files(store, source, &observed.rows, progress, &mut summary);
    unreadable += failed;
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

    // 2. Plan.
    let mut actions = plan::plan_rows(
        observed.rows,
        |e| fetch::version_of(e, &known, &targets),
        request.write_back.is_some(),
        source,
        &mut summary,
    );

    // 3. Execute.
    log_phase(started, "placing");
    let executed = execute::execute(
        layout,
        store,
        &root_dir,
        &mut actions,
        &gitlinks,
        progress,
        &mut summary,
    )?;

    // 4. Write back.
    let written_back = match request.write_back {
        Some(wb) => {
            log_phase(started, "writing back");
            write_back::write_back(wb, root, &actions, progress, &mut summary)
        }
        None => write_back::WrittenBack::default(),
    };

    // 5. Commit.
    commit::commit(
        layout,
        store,
        request,
        &mut manifest,
        actions,
        executed,
        written_back,
        &mut summary,
    )?;
    intent::clear(layout)?;
    let _ = fs::remove_dir_all(&tmp_dir);
    cache.0 = Some(manifest);
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Logs the start of a sync phase, with the time since the sync began.
fn log_phase(started: Instant, phase: &'static str) {
    tracing::debug!(
        phase,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "sync phase"
    );
}
