//! The graph cache: an unchanged tree answers from the cache with no
//! evaluation; any change to a build file, `.bzl`, config or listing the
//! computation read recomputes; a bad cache is ignored.

mod common;

use antares_buck::{compute_cached, Computed, GraphRequest};
use antares_overlay::{
    DirSource, EntryKind, GitSource, ObjectId, RepoPath, Source, TreeEntry, View,
};
use common::copy_restoring_symlinks;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn fixture() -> (tempfile::TempDir, PathBuf) {
    let from = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/monorepo"
    ));
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("monorepo");
    copy_restoring_symlinks(from, &repo);
    (tmp, repo)
}

fn run(repo: &Path, pattern: &str, cache: Option<&[u8]>) -> Computed {
    let request = GraphRequest {
        patterns: vec![pattern.to_string()],
        current_dir: RepoPath::root(),
    };
    compute_cached(&DirSource::open(repo).unwrap(), &request, cache).unwrap()
}

/// Computes afresh (asserting so) and returns the cache to store.
fn fresh(repo: &Path, pattern: &str, cache: Option<&[u8]>, what: &str) -> (Computed, Vec<u8>) {
    let c = run(repo, pattern, cache);
    assert!(
        !c.set.stats.cached && c.set.stats.evaluations > 0,
        "{what}: expected a fresh computation, got {:?}",
        c.set.stats
    );
    let bytes = c
        .cache
        .clone()
        .expect("a fresh computation gives a cache to store");
    (c, bytes)
}

#[test]
fn unchanged_tree_answers_from_the_cache_without_evaluating() {
    let (_tmp, repo) = fixture();
    let (first, cache) = fresh(&repo, "//app:main_server", None, "first run");
    let again = run(&repo, "//app:main_server", Some(&cache));
    assert!(again.set.stats.cached, "{:?}", again.set.stats);
    assert_eq!(again.set.stats.evaluations, 0);
    assert_eq!(
        again.set.files.keys().collect::<Vec<_>>(),
        first.set.files.keys().collect::<Vec<_>>()
    );
    assert_eq!(again.set.targets, first.set.targets);
    // A source file's content is not part of the graph: still a hit.
    fs::write(repo.join("app/main.c"), "int main() { return 1; }\n").unwrap();
    assert!(
        run(&repo, "//app:main_server", Some(&cache))
            .set
            .stats
            .cached
    );
}

#[test]
fn any_change_to_what_was_read_recomputes() {
    let (_tmp, repo) = fixture();
    let (_, cache) = fresh(&repo, "//app:main_server", None, "first run");
    type Change = fn(&Path);
    let changes: [(&str, Change); 5] = [
        ("a build file", |r| {
            let p = r.join("lib/util/TARGETS");
            let text = fs::read_to_string(&p).unwrap();
            fs::write(p, format!("{text}\n# edited\n")).unwrap();
        }),
        ("a loaded .bzl", |r| {
            let p = r.join("build/flags.bzl");
            let text = fs::read_to_string(&p).unwrap();
            fs::write(p, format!("{text}\n# edited\n")).unwrap();
        }),
        ("a config", |r| {
            let p = r.join(".buckconfig.d/app.buckconfig");
            let text = fs::read_to_string(&p).unwrap();
            fs::write(p, format!("{text}\n# edited\n")).unwrap();
        }),
        ("a new file in a package", |r| {
            fs::write(r.join("lib/util/extra.h"), "").unwrap();
        }),
        ("a new sub-package", |r| {
            fs::create_dir_all(r.join("app/sub")).unwrap();
            fs::write(r.join("app/sub/TARGETS"), "").unwrap();
        }),
    ];
    let mut cache = cache;
    for (what, change) in changes {
        change(&repo);
        let (c, next) = fresh(&repo, "//app:main_server", Some(&cache), what);
        if what == "a new file in a package" {
            assert!(c
                .set
                .files
                .contains_key(&RepoPath::new("lib/util/extra.h").unwrap()));
        }
        if what == "a new sub-package" {
            assert!(!c
                .set
                .files
                .contains_key(&RepoPath::new("app/sub/TARGETS").unwrap()));
        }
        // Unchanged since: a hit again.
        assert!(
            run(&repo, "//app:main_server", Some(&next))
                .set
                .stats
                .cached,
            "{what}"
        );
        cache = next;
    }
}

#[test]
fn a_bad_or_foreign_cache_is_ignored() {
    let (_tmp, repo) = fixture();
    let (_, cache) = fresh(&repo, "//app:main_server", None, "first run");
    fresh(&repo, "//lib/util:util", Some(&cache), "other patterns");
    fresh(
        &repo,
        "//app:main_server",
        Some(&cache[..cache.len() / 2]),
        "truncated",
    );
    fresh(
        &repo,
        "//app:main_server",
        Some(b"\0\xffnot json"),
        "garbage",
    );
    let mut doc: serde_json::Value = serde_json::from_slice(&cache).unwrap();
    doc["format"] = serde_json::json!(0);
    let old = serde_json::to_vec(&doc).unwrap();
    fresh(&repo, "//app:main_server", Some(&old), "another format");
}

/// A source that counts what is read through it and can pin every file's
/// stat signature (as a file system with coarse timestamps would keep it
/// across a same-size edit within one tick).
struct Watched<S> {
    inner: S,
    reads: AtomicUsize,
    listings: AtomicUsize,
    /// `Some(t)`: every file's id is a stat signature with times `t`,
    /// whatever its content.
    pinned_ns: Option<i64>,
}

impl<S: Source> Watched<S> {
    fn new(inner: S, pinned_ns: Option<i64>) -> Self {
        Watched {
            inner,
            reads: AtomicUsize::new(0),
            listings: AtomicUsize::new(0),
            pinned_ns,
        }
    }

    fn pin(&self, mut e: TreeEntry) -> TreeEntry {
        if let (Some(t), EntryKind::File) = (self.pinned_ns, e.kind) {
            e.oid = ObjectId::stat(1, 1, e.size.unwrap_or(0), t, t);
        }
        e
    }

    fn counts(&self) -> (usize, usize) {
        (
            self.reads.load(Ordering::SeqCst),
            self.listings.load(Ordering::SeqCst),
        )
    }
}

impl<S: Source> Source for Watched<S> {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn revision(&self) -> Option<String> {
        self.inner.revision()
    }
    fn stat(&self, path: &RepoPath) -> antares_overlay::Result<Option<TreeEntry>> {
        Ok(self.inner.stat(path)?.map(|e| self.pin(e)))
    }
    fn list_dir(&self, dir: &RepoPath) -> antares_overlay::Result<Vec<TreeEntry>> {
        self.listings.fetch_add(1, Ordering::SeqCst);
        let entries = self.inner.list_dir(dir)?;
        Ok(entries.into_iter().map(|e| self.pin(e)).collect())
    }
    fn read(&self, entry: &TreeEntry) -> antares_overlay::Result<Vec<u8>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read(entry)
    }
}

fn run_on(source: &dyn Source, pattern: &str, cache: Option<&[u8]>) -> Computed {
    let request = GraphRequest {
        patterns: vec![pattern.to_string()],
        current_dir: RepoPath::root(),
    };
    compute_cached(source, &request, cache).unwrap()
}

fn nanos_ago(secs: i64) -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    now.as_nanos() as i64 - secs * 1_000_000_000
}

/// A fixture whose files are all older than the racy window (a second),
/// as a checkout is by the time it is synced again.
fn settled_fixture() -> (tempfile::TempDir, PathBuf) {
    let f = fixture();
    std::thread::sleep(Duration::from_millis(1100));
    f
}

#[test]
fn a_live_tree_checks_old_unchanged_files_by_stat_without_reading_them() {
    let (_tmp, repo) = settled_fixture();
    let (_, cache) = fresh(&repo, "//app:main_server", None, "first run");
    let source = Watched::new(DirSource::open(&repo).unwrap(), None);
    let hit = run_on(&source, "//app:main_server", Some(&cache));
    assert!(hit.set.stats.cached, "{:?}", hit.set.stats);
    assert_eq!(
        source.counts().0,
        0,
        "files read by a no-op check on a settled tree"
    );
}

#[test]
fn a_file_new_in_the_lower_of_a_merged_view_directory_recomputes() {
    // A View's merged directory is signed by its upper layer alone: a file
    // the lower gains must still be seen.
    let (tmp, repo) = fixture();
    let upper = tmp.path().join("upper");
    fs::create_dir_all(upper.join("app")).unwrap();
    fs::write(upper.join("app/notes.txt"), "mine\n").unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let view = || {
        let lower: Arc<dyn Source> = Arc::new(DirSource::open(&repo).unwrap());
        View::new(lower, &upper).unwrap()
    };
    let first = run_on(&view(), "//app:main_server", None);
    let cache = first.cache.expect("a fresh computation gives a cache");
    assert!(
        run_on(&view(), "//app:main_server", Some(&cache))
            .set
            .stats
            .cached
    );
    fs::write(repo.join("app/extra.c"), "int extra;\n").unwrap();
    let again = run_on(&view(), "//app:main_server", Some(&cache));
    assert!(
        !again.set.stats.cached,
        "a new lower file in a merged directory"
    );
    assert!(again
        .set
        .files
        .contains_key(&RepoPath::new("app/extra.c").unwrap()));
}

#[test]
fn a_same_size_edit_of_a_settled_bzl_recomputes() {
    let (_tmp, repo) = settled_fixture();
    let (_, cache) = fresh(&repo, "//app:main_server", None, "first run");
    let p = repo.join("build/flags.bzl");
    let before = fs::metadata(&p).unwrap();
    let text = fs::read_to_string(&p).unwrap();
    let edited = format!("{}#", &text[..text.len() - 1]);
    assert_eq!(edited.len(), text.len());
    fs::write(&p, edited).unwrap();
    // Same size and same mtime: only the ctime and the content differ.
    let f = fs::File::options().write(true).open(&p).unwrap();
    f.set_modified(before.modified().unwrap()).unwrap();
    drop(f);
    fresh(
        &repo,
        "//app:main_server",
        Some(&cache),
        "same-size .bzl edit",
    );
}

#[test]
fn a_new_file_matching_a_glob_in_a_settled_tree_recomputes() {
    let (_tmp, repo) = settled_fixture();
    let (_, cache) = fresh(&repo, "//app:main_server", None, "first run");
    fs::write(repo.join("app/extra.c"), "int extra;\n").unwrap();
    let (c, _) = fresh(&repo, "//app:main_server", Some(&cache), "new globbed file");
    assert!(c
        .set
        .files
        .contains_key(&RepoPath::new("app/extra.c").unwrap()));
}

#[test]
fn an_unchanged_stat_signature_is_not_trusted_within_the_racy_window() {
    // Racy git: a file changed in the same timestamp tick as it was read
    // keeps its signature; only a signature older than the read proves it.
    let (_tmp, repo) = fixture();
    let recent = Watched::new(DirSource::open(&repo).unwrap(), Some(nanos_ago(0)));
    let first = run_on(&recent, "//app:main_server", None);
    let cache = first.cache.expect("a fresh computation gives a cache");
    let p = repo.join("build/flags.bzl");
    let text = fs::read_to_string(&p).unwrap();
    fs::write(&p, format!("{}#", &text[..text.len() - 1])).unwrap();
    let again = run_on(&recent, "//app:main_server", Some(&cache));
    assert!(
        !again.set.stats.cached,
        "an edit hidden by a racy signature must still recompute"
    );

    // The same pinned signature an hour old is trusted: the edit is not seen
    // (which is why a signature inside the window must not be).
    let old = Watched::new(DirSource::open(&repo).unwrap(), Some(nanos_ago(3600)));
    let cache = run_on(&old, "//app:main_server", None).cache.unwrap();
    fs::write(&p, &text).unwrap();
    assert!(
        run_on(&old, "//app:main_server", Some(&cache))
            .set
            .stats
            .cached
    );
}

#[test]
fn a_git_source_at_the_recorded_commit_holds_without_reading() {
    let (_tmp, repo) = fixture();
    let git = |args: &[&str]| {
        Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@t", "-C"])
            .arg(&repo)
            .args(args)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
    };
    match git(&["init", "-q"]) {
        Ok(o) if o.status.success() => {}
        _ => {
            eprintln!("SKIPPED: git is not available");
            return;
        }
    }
    for args in [&["add", "-A"][..], &["commit", "-q", "-m", "fixture"]] {
        let o = git(args).unwrap();
        assert!(o.status.success(), "git {args:?}: {o:?}");
    }
    let first = run_on(
        &GitSource::open(&repo, None).unwrap(),
        "//app:main_server",
        None,
    );
    let cache = first.cache.expect("a fresh computation gives a cache");
    let source = Watched::new(GitSource::open(&repo, None).unwrap(), None);
    let hit = run_on(&source, "//app:main_server", Some(&cache));
    assert!(hit.set.stats.cached, "{:?}", hit.set.stats);
    assert_eq!(
        source.counts(),
        (0, 0),
        "(reads, listings) at the same commit"
    );

    // Another commit changing a .bzl: the unchanged files' blob ids hold,
    // the changed one does not.
    let p = repo.join("build/flags.bzl");
    let text = fs::read_to_string(&p).unwrap();
    fs::write(&p, format!("{text}\n# edited\n")).unwrap();
    for args in [&["add", "-A"][..], &["commit", "-q", "-m", "edit"]] {
        assert!(git(args).unwrap().status.success());
    }
    let next = run_on(
        &GitSource::open(&repo, None).unwrap(),
        "//app:main_server",
        Some(&cache),
    );
    assert!(!next.set.stats.cached, "a changed .bzl at a new commit");
}

#[test]
fn a_hit_that_re_hashed_racy_files_stores_a_cache_that_trusts_them() {
    let (_tmp, repo) = fixture();
    // Computed right after the checkout: every file is inside the window.
    let (_, racy) = fresh(&repo, "//app:main_server", None, "first run");
    std::thread::sleep(Duration::from_millis(1100));
    let source = Watched::new(DirSource::open(&repo).unwrap(), None);
    let hit = run_on(&source, "//app:main_server", Some(&racy));
    assert!(hit.set.stats.cached, "{:?}", hit.set.stats);
    assert!(source.counts().0 > 0, "racy files are re-hashed");
    let refreshed = hit
        .cache
        .expect("a hit that re-hashed gives a cache to store");

    let source = Watched::new(DirSource::open(&repo).unwrap(), None);
    let again = run_on(&source, "//app:main_server", Some(&refreshed));
    assert!(again.set.stats.cached, "{:?}", again.set.stats);
    assert_eq!(source.counts().0, 0, "files read with the refreshed cache");
    assert!(again.cache.is_none(), "nothing re-hashed, nothing to store");
}
