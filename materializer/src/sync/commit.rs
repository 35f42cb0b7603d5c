//! The sync's last step: fold what was done into the manifest, keep the
//! source's side of each conflict, make the data durable, then save the
//! manifest (rewritten, or a journal entry for a small sync; see
//! `docs/architecture.md#manifest`). The manifest is written last: a sync
//! killed before leaves every file old or new, and the next one converges.

use super::execute::Executed;
use super::plan::Action;
use super::write_back::WrittenBack;
use super::{FailedPath, Request, Summary};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{create_dirs_nofollow, syncfs};
use crate::layout::Layout;
use crate::manifest::{Conflict, Manifest, Record, Version};
use crate::place::{self, Placer, Spot, Staging};
use crate::store::Store;
use antares_overlay::RepoPath;
use std::fs;
use std::path::PathBuf;

/// Records `actions`' outcome in `manifest` and `summary`, and saves the
/// manifest when it changed (after flushing what it describes).
#[allow(clippy::too_many_arguments)]
pub(crate) fn commit(
    layout: &Layout,
    store: &Store,
    request: Request,
    manifest: &mut Manifest,
    actions: Vec<(RepoPath, Action)>,
    executed: Executed,
    written_back: WrittenBack,
    summary: &mut Summary,
) -> Result<()> {
    let root = layout.root();
    let Executed {
        removed,
        placed,
        placer,
        staging,
    } = executed;
    let WrittenBack {
        written,
        deleted: deleted_back,
    } = written_back;
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
            !matches!(a, Action::Keep { refresh: None } | Action::Leave(_))
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
            // (The last two are resolved before execution ends; never here.)
            Action::Leave(_) | Action::DirInTheWay { .. } | Action::WriteBackNew { .. } => {
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
        manifest,
        &conflict_copies,
        summary,
    );

    dirty |= manifest.conflicts != conflicts_before;
    if request.revision.is_some() && request.revision != manifest.revision {
        manifest.revision = request.revision;
        dirty = true;
    }
    if dirty {
        // Data first, then the manifest that describes it.
        tracing::debug!("flushing");
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
        tracing::debug!("flushed");
        if request.only.is_some() || touched.len() * 8 < manifest.records.len() {
            manifest.save_paths(&layout.manifest(), &touched)?;
        } else {
            manifest.save(&layout.manifest())?;
        }
    }
    Ok(())
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
            summary.errors.push(FailedPath {
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

/// fsync of one file by path (best effort: a failure only weakens
/// durability after a power loss, never correctness).
fn fsync_path(path: &std::path::Path) {
    if let Ok(f) = fs::File::open(path) {
        let _ = f.sync_all();
    }
}
