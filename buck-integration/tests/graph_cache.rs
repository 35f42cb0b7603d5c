//! The graph cache: an unchanged tree answers from the cache with no
//! evaluation; any change to a build file, `.bzl`, config or listing the
//! computation read recomputes; a bad cache is ignored.

mod common;

use antares_buck::{compute_cached, Computed, GraphRequest};
use antares_overlay::{DirSource, RepoPath};
use common::copy_restoring_symlinks;
use std::fs;
use std::path::{Path, PathBuf};

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
    assert!(
        again.cache.is_none(),
        "a cache hit has nothing new to store"
    );
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
