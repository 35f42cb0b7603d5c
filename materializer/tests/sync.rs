//! The three-way sync against an in-memory source: every row of the plan
//! table in `sync.rs`, atomicity leftovers, status and resolve.

mod common;

use antares_materializer::resolve::{resolve, Side};
use antares_materializer::status::status;
use antares_materializer::{sync, Layout, NoProgress, Request, Summary, WorkspaceLock};
use antares_overlay::RepoPath;
use common::{env, Env, MemSource};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

impl Env {
    fn sync(&self, src: &MemSource) -> Summary {
        self.sync_scoped(src, src.entries(), vec![RepoPath::root()])
    }
    fn sync_scoped(
        &self,
        src: &MemSource,
        entries: Vec<antares_overlay::TreeEntry>,
        scope: Vec<RepoPath>,
    ) -> Summary {
        let req = Request {
            entries,
            scope,
            ..Default::default()
        };
        sync(&self.layout, &self.store, src, req, &NoProgress).unwrap()
    }
    fn path(&self, p: &str) -> std::path::PathBuf {
        self.layout.root().join(p)
    }
    fn read(&self, p: &str) -> String {
        fs::read_to_string(self.path(p)).unwrap()
    }
    fn write(&self, p: &str, c: &str) {
        fs::write(self.path(p), c).unwrap()
    }
}

/// (inode, mtime_ns) of every file: a rewrite changes the inode (rename).
fn identity(p: &Path) -> (u64, i64) {
    let m = fs::symlink_metadata(p).unwrap();
    (m.ino(), m.mtime_nsec() + m.mtime() * 1_000_000_000)
}

fn sample() -> MemSource {
    let s = MemSource::new(&[
        ("a/one.txt", "one"),
        ("a/b/two.txt", "two"),
        ("top.txt", "top"),
    ]);
    s.put_exec("bin/run.sh", "#!/bin/sh\n");
    s.link("a/link.txt", "b/two.txt");
    s
}

#[test]
fn places_files_modes_and_symlinks() {
    let e = env();
    let src = sample();
    let s = e.sync(&src);
    assert_eq!((s.added, s.updated, s.removed), (5, 0, 0), "{s:?}");
    assert_eq!(e.read("a/b/two.txt"), "two");
    assert_eq!(
        fs::metadata(e.path("bin/run.sh"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
    assert_eq!(
        fs::metadata(e.path("top.txt"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o644
    );
    assert_eq!(
        fs::read_link(e.path("a/link.txt")).unwrap().to_str(),
        Some("b/two.txt")
    );
    assert_eq!(e.read("a/link.txt"), "two");
    assert!(status(&e.layout).unwrap().is_clean());
    // Nothing left in the staging dir.
    assert!(!e.layout.tmp_dir().exists());
}

#[test]
fn noop_resync_rewrites_and_reads_nothing() {
    let e = env();
    let src = sample();
    e.sync(&src);
    let before: Vec<_> = [
        "a/one.txt",
        "a/b/two.txt",
        "top.txt",
        "bin/run.sh",
        "a/link.txt",
    ]
    .iter()
    .map(|p| identity(&e.path(p)))
    .collect();
    src.take_reads();
    std::thread::sleep(std::time::Duration::from_millis(30)); // past the racy-clean window
    let s = e.sync(&src);
    assert_eq!(
        (s.added, s.updated, s.removed, s.unchanged, s.fetched),
        (0, 0, 0, 5, 0),
        "{s:?}"
    );
    assert!(
        src.take_reads().is_empty(),
        "a no-op sync read from the source"
    );
    let after: Vec<_> = [
        "a/one.txt",
        "a/b/two.txt",
        "top.txt",
        "bin/run.sh",
        "a/link.txt",
    ]
    .iter()
    .map(|p| identity(&e.path(p)))
    .collect();
    assert_eq!(before, after);
}

#[test]
fn resync_touches_only_changed_files() {
    let e = env();
    let src = sample();
    e.sync(&src);
    let one = identity(&e.path("a/one.txt"));
    let top = identity(&e.path("top.txt"));
    src.put("a/b/two.txt", "TWO");
    src.take_reads();
    let s = e.sync(&src);
    assert_eq!((s.updated, s.unchanged, s.fetched), (1, 4, 1), "{s:?}");
    assert_eq!(src.take_reads(), vec!["a/b/two.txt".to_string()]);
    assert_eq!(e.read("a/b/two.txt"), "TWO");
    assert_eq!(identity(&e.path("a/one.txt")), one);
    assert_eq!(identity(&e.path("top.txt")), top);
}

#[test]
fn local_edit_is_kept_when_source_unchanged() {
    let e = env();
    let src = sample();
    e.sync(&src);
    e.write("a/one.txt", "mine");
    let s = e.sync(&src);
    assert_eq!(s.modified, vec!["a/one.txt"]);
    assert_eq!(e.read("a/one.txt"), "mine");
    assert_eq!(status(&e.layout).unwrap().modified, vec!["a/one.txt"]);
}

#[test]
fn edit_on_both_sides_is_a_conflict_keeping_both() {
    let e = env();
    let src = sample();
    e.sync(&src);
    e.write("a/one.txt", "mine");
    src.put("a/one.txt", "theirs");
    let s = e.sync(&src);
    assert_eq!(s.conflicts, vec!["a/one.txt"]);
    assert_eq!(e.read("a/one.txt"), "mine");
    let theirs = e.layout.conflicts_dir().join("a/one.txt");
    assert_eq!(fs::read_to_string(&theirs).unwrap(), "theirs");
    let st = status(&e.layout).unwrap();
    assert_eq!(st.conflicts.len(), 1);
    assert!(st.modified.is_empty());
    // Still a conflict on the next sync, still nothing overwritten.
    let s = e.sync(&src);
    assert_eq!(s.conflicts, vec!["a/one.txt"]);
    assert_eq!(e.read("a/one.txt"), "mine");
}

#[test]
fn same_change_on_both_sides_is_adopted() {
    let e = env();
    let src = sample();
    e.sync(&src);
    e.write("a/one.txt", "same");
    src.put("a/one.txt", "same");
    let s = e.sync(&src);
    assert_eq!((s.adopted, s.conflicts.len()), (1, 0), "{s:?}");
    assert!(status(&e.layout).unwrap().is_clean());
}

#[test]
fn deletions_on_each_side() {
    let e = env();
    let src = sample();
    e.sync(&src);
    // User deletes, source unchanged: stays deleted.
    fs::remove_file(e.path("top.txt")).unwrap();
    let s = e.sync(&src);
    assert_eq!(s.deleted, vec!["top.txt"]);
    assert!(!e.path("top.txt").exists());
    assert_eq!(status(&e.layout).unwrap().deleted, vec!["top.txt"]);
    // Source deletes an unmodified file: removed, empty dir pruned.
    src.remove("a/b/two.txt");
    src.remove("a/link.txt");
    let s = e.sync(&src);
    assert_eq!(s.removed, 2, "{s:?}");
    assert!(!e.path("a/b").exists());
    // Source deletes a file the user edited: conflict, the edit stays.
    e.write("a/one.txt", "edited");
    src.remove("a/one.txt");
    let s = e.sync(&src);
    assert_eq!(s.conflicts, vec!["a/one.txt"]);
    assert_eq!(e.read("a/one.txt"), "edited");
    // User deleted, source modified: conflict, nothing placed.
    src.put("top.txt", "new top");
    let s = e.sync(&src);
    assert!(s.conflicts.contains(&"top.txt".to_string()), "{s:?}");
    assert!(!e.path("top.txt").exists());
}

#[test]
fn unrequested_paths_removed_only_if_unmodified() {
    let e = env();
    let src = sample();
    e.sync(&src);
    e.write("a/one.txt", "mine");
    let only_bin: Vec<_> = src
        .entries()
        .into_iter()
        .filter(|x| x.path.as_str().starts_with("bin/"))
        .collect();
    let s = e.sync_scoped(&src, only_bin, vec![RepoPath::new("bin").unwrap()]);
    assert_eq!(s.removed, 3, "{s:?}"); // two.txt, link.txt, top.txt
    assert_eq!(s.modified, vec!["a/one.txt"]);
    assert_eq!(e.read("a/one.txt"), "mine");
    assert!(!e.path("top.txt").exists());
    assert!(e.path("bin/run.sh").exists());
}

#[test]
fn user_file_in_the_way_is_a_conflict_or_adopted() {
    let e = env();
    let src = sample();
    fs::create_dir_all(e.path("a")).unwrap();
    e.write("a/one.txt", "one"); // same bytes: adopted
    e.write("top.txt", "not top"); // different: conflict
    let s = e.sync(&src);
    assert_eq!(s.adopted, 1, "{s:?}");
    assert_eq!(s.conflicts, vec!["top.txt"]);
    assert_eq!(e.read("top.txt"), "not top");
}

#[test]
fn hostile_symlinks_are_refused() {
    let e = env();
    let src = MemSource::new(&[("ok.txt", "ok")]);
    src.link("abs", "/etc/passwd");
    src.link("d/escape", "../../outside");
    let s = e.sync(&src);
    let mut bad: Vec<_> = s.errors.iter().map(|x| x.path.clone()).collect();
    bad.sort();
    assert_eq!(bad, vec!["abs", "d/escape"]);
    assert!(s.errors.iter().any(|x| x.error.contains("absolute")));
    assert!(s.errors.iter().any(|x| x.error.contains("escapes")));
    assert!(fs::symlink_metadata(e.path("abs")).is_err());
    assert!(fs::symlink_metadata(e.path("d/escape")).is_err());
    assert_eq!(e.read("ok.txt"), "ok");
}

#[test]
fn never_writes_through_a_workspace_symlink() {
    let e = env();
    let outside = tempfile::tempdir().unwrap();
    fs::create_dir_all(e.layout.root()).unwrap();
    std::os::unix::fs::symlink(outside.path(), e.path("a")).unwrap();
    let src = MemSource::new(&[("a/one.txt", "one")]);
    let s = e.sync(&src);
    assert_eq!(s.errors.len(), 1, "{s:?}");
    assert!(
        fs::read_dir(outside.path()).unwrap().next().is_none(),
        "wrote through a symlink"
    );
}

#[test]
fn resolve_ours_and_theirs() {
    let e = env();
    let src = sample();
    e.sync(&src);
    e.write("a/one.txt", "mine");
    e.write("top.txt", "mine too");
    src.put("a/one.txt", "theirs");
    src.put("top.txt", "theirs too");
    assert_eq!(e.sync(&src).conflicts.len(), 2);
    resolve(
        &e.layout,
        &e.store,
        &RepoPath::new("a/one.txt").unwrap(),
        Side::Theirs,
    )
    .unwrap();
    assert_eq!(e.read("a/one.txt"), "theirs");
    resolve(
        &e.layout,
        &e.store,
        &RepoPath::new("top.txt").unwrap(),
        Side::Ours,
    )
    .unwrap();
    assert_eq!(e.read("top.txt"), "mine too");
    let st = status(&e.layout).unwrap();
    assert!(st.conflicts.is_empty(), "{st:?}");
    assert_eq!(st.modified, vec!["top.txt"]);
    let s = e.sync(&src);
    assert!(
        s.conflicts.is_empty() && s.modified == vec!["top.txt"],
        "{s:?}"
    );
    assert!(resolve(
        &e.layout,
        &e.store,
        &RepoPath::new("top.txt").unwrap(),
        Side::Ours
    )
    .is_err());
}

#[test]
fn status_reports_added_files_but_not_state_or_outputs() {
    let e = env();
    let src = sample();
    e.sync(&src);
    e.write("a/new.txt", "new");
    fs::create_dir_all(e.path("buck-out/v2")).unwrap();
    e.write("buck-out/v2/x", "x");
    e.write(".gitignore", "*.log\n");
    e.write("a/debug.log", "x");
    let st = status(&e.layout).unwrap();
    assert_eq!(st.added, vec![".gitignore", "a/new.txt"]);
}

#[test]
fn interrupted_sync_converges() {
    // A sync that placed files but died before saving its manifest: the next
    // sync must recognise the placed files by content, not call them conflicts.
    let e = env();
    let src = sample();
    e.sync(&src);
    src.put("a/one.txt", "one v2");
    e.sync(&src);
    fs::remove_file(e.layout.manifest()).unwrap();
    fs::create_dir_all(e.layout.tmp_dir()).unwrap();
    fs::write(e.layout.tmp_dir().join("17"), "torn").unwrap();
    let s = e.sync(&src);
    assert_eq!(
        (s.adopted, s.conflicts.len(), s.errors.len()),
        (5, 0, 0),
        "{s:?}"
    );
    assert!(!e.layout.tmp_dir().exists());
    let s = e.sync(&src);
    assert_eq!(s.unchanged, 5);
}

#[test]
fn warm_sync_reads_nothing_from_the_source() {
    let e = env();
    let src = sample();
    e.sync(&src);
    src.take_reads();
    let ws2 = e.layout.root().parent().unwrap().join("ws2");
    fs::create_dir_all(ws2.join(".antares")).unwrap();
    let l2 = Layout::new(&ws2);
    let req = Request {
        entries: src.entries(),
        scope: vec![RepoPath::root()],
        ..Default::default()
    };
    let s = sync(&l2, &e.store, &src, req, &NoProgress).unwrap();
    assert_eq!((s.added, s.fetched), (5, 0));
    // Only the symlink target is read (symlinks are not stored as blobs).
    assert_eq!(src.take_reads(), vec!["a/link.txt".to_string()]);
}

#[test]
fn second_locker_is_refused_without_wait() {
    let e = env();
    let _held = WorkspaceLock::acquire(&e.layout.lock_file(), false, |_| {}).unwrap();
    let err = WorkspaceLock::acquire(&e.layout.lock_file(), false, |_| {}).unwrap_err();
    assert!(err.to_string().contains("locked"), "{err}");
}

#[test]
fn a_source_read_failure_changes_nothing() {
    let e = env();
    let src = MemSource::new(&[("a.txt", "a1"), ("b.txt", "b1"), ("old.txt", "old")]);
    src.link("l", "a.txt");
    e.sync(&src);
    src.put("a.txt", "a2");
    src.put("b.txt", "b2");
    src.put("c.txt", "c");
    src.link("l", "b.txt");
    src.remove("old.txt");
    src.failing.lock().unwrap().insert("b.txt".into());
    let s = e.sync(&src);
    assert_eq!(s.errors.len(), 1, "{s:?}");
    assert!(s.errors[0].error.contains("injected failure"), "{s:?}");
    assert_eq!(e.read("a.txt"), "a1");
    assert_eq!(e.read("old.txt"), "old");
    assert!(!e.path("c.txt").exists());
    assert_eq!(fs::read_link(e.path("l")).unwrap().to_str(), Some("a.txt"));
    // A failing symlink read is the same.
    src.failing.lock().unwrap().clear();
    src.failing.lock().unwrap().insert("l".into());
    let s = e.sync(&src);
    assert_eq!(s.errors.len(), 1, "{s:?}");
    assert_eq!(e.read("a.txt"), "a1");
    assert_eq!(fs::read_link(e.path("l")).unwrap().to_str(), Some("a.txt"));
    // Once the source answers, the next sync converges.
    src.failing.lock().unwrap().clear();
    let s = e.sync(&src);
    assert!(s.errors.is_empty(), "{s:?}");
    assert_eq!(e.read("a.txt"), "a2");
    assert_eq!(e.read("b.txt"), "b2");
    assert_eq!(e.read("c.txt"), "c");
    assert!(!e.path("old.txt").exists());
    assert_eq!(fs::read_link(e.path("l")).unwrap().to_str(), Some("b.txt"));
}
