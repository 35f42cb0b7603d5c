//! The sync's fourth step (two-way only): workspace edits, new files and
//! deletions go to the source side (the mount's upper dir), see
//! `docs/architecture.md#write-back`.

use super::plan::Action;
use super::{FailedPath, Progress, Summary, WriteBack};
use crate::fsutil::StatKey;
use crate::io_pool;
use crate::manifest::{Kind, Record};
use antares_overlay::RepoPath;
use rayon::prelude::*;
use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::sync::Mutex;

/// What was written back: the new records of written files, and the paths
/// whose deletion was written back.
#[derive(Default)]
pub(crate) struct WrittenBack {
    pub(crate) written: HashMap<RepoPath, Record>,
    pub(crate) deleted: BTreeSet<RepoPath>,
}

/// Writes back every [`Action::WriteBack`] and [`Action::DeleteBack`] in
/// parallel. A file that changed while it was copied is left for the next
/// sync (`summary.raced`).
pub(crate) fn write_back(
    wb: &dyn WriteBack,
    root: &std::path::Path,
    actions: &[(RepoPath, Action)],
    progress: &dyn Progress,
    summary: &mut Summary,
) -> WrittenBack {
    let written: Mutex<HashMap<RepoPath, Record>> = Mutex::new(HashMap::new());
    let deleted_back: Mutex<BTreeSet<RepoPath>> = Mutex::new(BTreeSet::new());
    let raced_late: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let late_errors: Mutex<Vec<FailedPath>> = Mutex::new(Vec::new());
    let back: Vec<&(RepoPath, Action)> = actions
        .iter()
        .filter(|(_, a)| matches!(a, Action::WriteBack { .. } | Action::DeleteBack))
        .collect();
    progress.phase("writing back", back.len() as u64);
    io_pool::install(back.len(), || {
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
                        e.push(FailedPath {
                            path: p.to_string(),
                            error,
                        });
                    }
                }
            }
            progress.advance(1);
        })
    });
    summary
        .raced
        .extend(raced_late.into_inner().unwrap_or_default());
    summary
        .errors
        .extend(late_errors.into_inner().unwrap_or_default());
    WrittenBack {
        written: written.into_inner().unwrap_or_default(),
        deleted: deleted_back.into_inner().unwrap_or_default(),
    }
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
