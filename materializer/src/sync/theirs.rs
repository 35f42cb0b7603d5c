//! The source's side of a sync: the wanted entries by path, and the
//! targets of the wanted symlinks (read, checked against the tree).

use super::{FailedPath, Request, Summary};
use crate::error::Error;
use crate::manifest::Manifest;
use antares_overlay::{EntryKind, RepoPath, Source, TreeEntry};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The request's files and symlinks by path (a name listed twice keeps its
/// first entry, reported), and its gitlinks.
pub(crate) fn wanted_entries<'r>(
    request: &'r Request,
    summary: &mut Summary,
) -> (BTreeMap<&'r RepoPath, &'r TreeEntry>, Vec<RepoPath>) {
    let mut wanted: BTreeMap<&RepoPath, &TreeEntry> = BTreeMap::new();
    let mut gitlinks = Vec::new();
    for e in &request.entries {
        match e.kind {
            EntryKind::File | EntryKind::Symlink => {
                if wanted.contains_key(&e.path) {
                    // A malformed tree (git fsck: duplicateEntries): the
                    // first entry is used, every sync, so it stays settled.
                    summary.errors.push(FailedPath {
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
    (wanted, gitlinks)
}

/// Symlink targets for the wanted symlinks: from the manifest when the
/// version is unchanged (no read), else read from the source. Absolute or
/// escaping targets are refused with an error naming the path.
pub(crate) fn symlink_targets(
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
            Err(error) => summary.errors.push(FailedPath {
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
            summary.errors.push(FailedPath {
                path: p.to_string(),
                error: Error::ClimbingSymlink { path: p, target }.to_string(),
            });
        }
    }
    (out, unreadable)
}
