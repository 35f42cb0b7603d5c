//! Between observing and planning: the store must hold every new file
//! version before the plan can name it (its size and BLAKE3 hash).

use super::observe::Row;
use super::observe::Theirs;
use super::{FailedPath, Progress, Summary};
use crate::manifest::{Kind, Version};
use crate::store::{Known, Store};
use antares_overlay::{EntryKind, RepoPath, Source, TreeEntry};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Fetches into the store the new file versions of `rows` it lacks.
/// Returns what the store knows of each, by path, and how many could not
/// be read (each reported in `summary`).
pub(crate) fn fetch_new_files(
    store: &Store,
    source: &dyn Source,
    rows: &[Row],
    progress: &dyn Progress,
    summary: &mut Summary,
) -> (HashMap<RepoPath, Known>, usize) {
    let new_files: Vec<&TreeEntry> = rows
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
    let mut unreadable = 0;
    if to_fetch.is_empty() {
        return (known, unreadable);
    }
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
                summary.errors.push(FailedPath {
                    path: e.path.to_string(),
                    error: why,
                });
            }
        }
    }
    (known, unreadable)
}

/// The version of wanted entry `e`: a file as the store knows it, a
/// symlink with its checked target; `None` when neither is known.
pub(crate) fn version_of(
    e: &TreeEntry,
    known: &HashMap<RepoPath, Known>,
    targets: &HashMap<RepoPath, String>,
) -> Option<Version> {
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
}
