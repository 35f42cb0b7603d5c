//! The manifest journal: restricted (watcher) syncs append what they changed
//! instead of rewriting the manifest; a torn tail or a stale journal is never
//! replayed; a cached manifest is reloaded when another process synced.

mod common;

use antares_materializer::{
    sync, sync_cached, ContentHash, Manifest, ManifestCache, NoProgress, Request, Summary,
};
use antares_overlay::RepoPath;
use common::{env, Env, MemSource};
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

fn p(s: &str) -> RepoPath {
    RepoPath::new(s).unwrap()
}

fn request(src: &MemSource, only: Option<&[&str]>) -> Request<'static> {
    Request {
        entries: src.entries(),
        scope: vec![RepoPath::root()],
        only: only.map(|o| o.iter().map(|s| p(s)).collect::<BTreeSet<_>>()),
        ..Default::default()
    }
}

/// One sync in a fresh process's terms (no cached manifest).
fn run(e: &Env, src: &MemSource, only: Option<&[&str]>) -> Summary {
    sync(&e.layout, &e.store, src, request(src, only), &NoProgress).unwrap()
}

/// One sync of a long-running process, its manifest kept in `cache`.
fn run_cached(
    e: &Env,
    src: &MemSource,
    only: Option<&[&str]>,
    cache: &mut ManifestCache,
) -> Summary {
    sync_cached(
        &e.layout,
        &e.store,
        src,
        request(src, only),
        &NoProgress,
        cache,
    )
    .unwrap()
}

fn journal(e: &Env) -> PathBuf {
    e.layout.state_dir().join("manifest.journal")
}

fn load(e: &Env) -> Manifest {
    Manifest::load(&e.layout.manifest()).unwrap()
}

fn hash_of(m: &Manifest, path: &str) -> Option<ContentHash> {
    m.records.get(&p(path)).and_then(|r| r.version.hash)
}

fn sample() -> MemSource {
    MemSource::new(&[
        ("a/one.txt", "one"),
        ("a/two.txt", "two"),
        ("b/three.txt", "3"),
    ])
}

#[test]
fn a_restricted_sync_appends_and_a_full_sync_folds_the_journal_in() {
    let e = env();
    let src = sample();
    let mut cache = ManifestCache::default();
    run_cached(&e, &src, None, &mut cache);
    let base = fs::metadata(e.layout.manifest()).unwrap();
    assert!(!journal(&e).exists());

    src.put("a/one.txt", "one, edited");
    let s = run_cached(&e, &src, Some(&["a/one.txt"]), &mut cache);
    assert_eq!(s.updated, 1, "{s:?}");
    src.put("b/new.txt", "new");
    let s = run_cached(&e, &src, Some(&["b/new.txt"]), &mut cache);
    assert_eq!(s.added, 1, "{s:?}");
    // The base file was not rewritten; the journal holds both changes.
    let now = fs::metadata(e.layout.manifest()).unwrap();
    assert_eq!(
        (now.ino(), now.mtime_nsec()),
        (base.ino(), base.mtime_nsec())
    );
    assert!(journal(&e).exists());
    let m = load(&e);
    assert_eq!(m.records.len(), 4);
    assert_eq!(
        hash_of(&m, "a/one.txt"),
        Some(ContentHash::of(b"one, edited"))
    );
    // A later plain sync sees the journaled state as its base: nothing to do.
    let s = run(&e, &src, None);
    assert_eq!((s.added, s.updated, s.removed), (0, 0, 0), "{s:?}");
    // A full sync that changes something rewrites the base and drops the journal.
    src.put("a/two.txt", "two, edited");
    run(&e, &src, None);
    assert!(!journal(&e).exists());
    assert_eq!(load(&e).records.len(), 4);
}

#[test]
fn a_torn_journal_tail_is_ignored_and_the_next_append_follows_the_good_frames() {
    let e = env();
    let src = sample();
    run(&e, &src, None);
    src.put("a/one.txt", "edit 1");
    run(&e, &src, Some(&["a/one.txt"]));
    let good = fs::read(journal(&e)).unwrap();
    // A crash mid-append: half a frame of garbage at the end.
    let mut torn = good.clone();
    torn.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3]);
    fs::write(journal(&e), &torn).unwrap();
    let m = load(&e);
    assert_eq!(hash_of(&m, "a/one.txt"), Some(ContentHash::of(b"edit 1")));
    // The next restricted sync drops the torn bytes and appends after them.
    src.put("a/two.txt", "edit 2");
    run(&e, &src, Some(&["a/two.txt"]));
    let after = fs::read(journal(&e)).unwrap();
    assert_eq!(&after[..good.len()], &good[..]);
    let m = load(&e);
    assert_eq!(hash_of(&m, "a/two.txt"), Some(ContentHash::of(b"edit 2")));
    assert_eq!(hash_of(&m, "a/one.txt"), Some(ContentHash::of(b"edit 1")));
}

#[test]
fn a_journal_left_by_a_crash_after_a_full_save_is_not_replayed() {
    let e = env();
    let src = sample();
    run(&e, &src, None);
    src.put("a/one.txt", "journaled");
    run(&e, &src, Some(&["a/one.txt"]));
    let stale = fs::read(journal(&e)).unwrap();
    // A full save supersedes it (the source moved on)…
    src.put("a/one.txt", "newer");
    run(&e, &src, None);
    // …and a crash before the journal's removal would leave it behind.
    fs::write(journal(&e), &stale).unwrap();
    assert_eq!(
        hash_of(&load(&e), "a/one.txt"),
        Some(ContentHash::of(b"newer"))
    );
}

#[test]
fn a_cached_manifest_is_reloaded_after_another_process_synced() {
    let e = env();
    let src = sample();
    let mut cache = ManifestCache::default();
    run_cached(&e, &src, None, &mut cache);
    // Another process adds a file and records it (a full save).
    src.put("c/other.txt", "other");
    run(&e, &src, None);
    // The cached copy lacks that record; if it were trusted, the file would
    // look new and unrecorded. Reloaded, the path is known and unchanged.
    let s = run_cached(&e, &src, Some(&["c/other.txt"]), &mut cache);
    assert_eq!((s.added, s.updated, s.unchanged), (0, 0, 1), "{s:?}");
}
