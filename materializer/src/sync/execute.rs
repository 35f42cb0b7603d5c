//! The sync's third step: carry out the plan's changes to the workspace,
//! removals first (so a directory the source turned into a file can be
//! emptied), then directories, then placements (parallel: clone or copy
//! into `.antares/tmp`, rename into place; see
//! `docs/architecture.md#atomic-placement`).

use super::plan::Action;
use super::{FailedPath, Progress, Summary};
use crate::error::{IoContext, Result};
use crate::fsutil::{create_dirs_nofollow, remove_empty_dir_beneath, remove_file_beneath, StatKey};
use crate::intent;
use crate::io_pool;
use crate::layout::Layout;
use crate::manifest::{Record, Version};
use crate::place::{self, Method, Placer, Spot, Staging};
use crate::store::Store;
use antares_overlay::RepoPath;
use rayon::prelude::*;
use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// What executing did: the paths removed and placed (with their new
/// records), and the placer (which remembers what the file system cannot
/// do) and the open staging directory, for the conflict copies.
pub(crate) struct Executed {
    pub(crate) removed: BTreeSet<RepoPath>,
    pub(crate) placed: HashMap<RepoPath, Record>,
    pub(crate) placer: Placer,
    pub(crate) staging: Staging,
}

/// Removes, creates directories and places, as `actions` say. A path that
/// changed since it was observed is left alone (`summary.raced`).
/// Resolves every [`Action::DirInTheWay`] into a placement (the directory
/// is gone) or a conflict.
pub(crate) fn execute(
    layout: &Layout,
    store: &Store,
    root_dir: &fs::File,
    actions: &mut [(RepoPath, Action)],
    gitlinks: &[RepoPath],
    progress: &dyn Progress,
    summary: &mut Summary,
) -> Result<Executed> {
    let root = layout.root();
    let tmp_dir = layout.tmp_dir();
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
            matches!(remove_file_beneath(root_dir, p.as_str(), *expect), Ok(true))
                .then(|| (*p).clone())
        })
        .collect();
    prune_empty_dirs(root_dir, &removed);
    for (p, action) in actions.iter_mut() {
        if let Action::DirInTheWay { theirs } = action {
            let gone = matches!(StatKey::at(root_dir, p.as_str()), Ok(None));
            *action = match gone {
                true => Action::Place {
                    version: theirs.clone(),
                    expect: None,
                },
                false => Action::Conflict {
                    theirs: Some(theirs.clone()),
                },
            };
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
    progress.phase("placing", placements.len() as u64);
    let placer = Placer::default();
    let staging = Staging::open(&tmp_dir).at(tmp_dir.display())?;
    let placed: Mutex<Vec<(RepoPath, Record)>> = Mutex::new(Vec::new());
    let raced: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let errors: Mutex<Vec<FailedPath>> = Mutex::new(Vec::new());
    let (bytes, reflinked, copied) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    io_pool::install(placements.len(), || {
        placements.par_iter().for_each(|(p, v, expect)| {
            let fail = |error: String| {
                if let Ok(mut e) = errors.lock() {
                    e.push(FailedPath {
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
            let spot = match Spot::beneath(root_dir, p.as_str()) {
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
    Ok(Executed {
        removed: removed.into_iter().collect(),
        placed: placed
            .into_inner()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        placer,
        staging,
    })
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
