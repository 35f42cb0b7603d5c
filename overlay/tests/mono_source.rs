//! The `mono:` source against the Mono-compatible test server, which serves
//! the same git fixture the `git:` source reads directly.

mod common;

use antares_mono_test_server::TestServer;
use antares_overlay::source::{MonoOptions, MonoSource};
use antares_overlay::{EntryKind, GitSource, RepoPath, Source, SourceError, TreeEntry};
use common::{fixture, git, write, Fixture};
use std::os::unix::fs::PermissionsExt;
use std::sync::Mutex;
use std::time::Duration;

fn p(s: &str) -> RepoPath {
    RepoPath::new(s).unwrap()
}

/// The shared fixture plus a commit with deep directories, a root
/// executable and names that need URL encoding.
fn repo() -> Fixture {
    let f = fixture();
    write(&f.work, "deep/a/b/c/file.txt", "deep\n");
    write(&f.work, "deep/a/side.txt", "side\n");
    write(&f.work, "sp ace/ü €&x=1.txt", "odd name\n");
    write(&f.work, "tool.sh", "#!/bin/sh\n");
    std::fs::set_permissions(
        f.work.join("tool.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    git(&f.work, &["add", "deep", "sp ace", "tool.sh"]);
    git(&f.work, &["commit", "-q", "-m", "three"]);
    f
}

fn quick() -> MonoOptions {
    MonoOptions {
        attempts: 3,
        backoff: Duration::from_millis(1),
        timeout: Duration::from_secs(10),
        ..MonoOptions::default()
    }
}

fn open(server: &TestServer, refs: Option<&str>, opts: MonoOptions) -> MonoSource {
    MonoSource::open(&server.url(), refs, opts).unwrap()
}

fn open_err(server: &TestServer, opts: MonoOptions) -> String {
    MonoSource::open(&server.url(), None, opts)
        .expect_err("open should fail")
        .to_string()
}

fn head(f: &Fixture) -> String {
    git(&f.work, &["rev-parse", "HEAD"])
}

#[test]
fn walk_stat_list_and_read_equal_the_git_source() {
    let f = repo();
    let server = TestServer::start(&f.work).unwrap();
    let mono = open(&server, None, quick());
    let git_src = GitSource::open(&f.work, None).unwrap();
    assert_eq!(mono.revision(), Some(head(&f)));
    assert!(mono
        .describe()
        .starts_with(&format!("mono:{}@", server.url())));

    let all = mono.walk(&RepoPath::root()).unwrap();
    assert_eq!(all, git_src.walk(&RepoPath::root()).unwrap());
    let kinds: Vec<_> = all
        .iter()
        .filter(|e| {
            ["tool.sh", "bin/run.sh", "rel", "vendor/sub", "a.txt"].contains(&e.path.as_str())
        })
        .map(|e| (e.path.as_str(), e.kind, e.executable))
        .collect();
    assert_eq!(
        kinds,
        [
            ("a.txt", EntryKind::File, false),
            ("bin/run.sh", EntryKind::File, true),
            ("rel", EntryKind::Symlink, false),
            ("tool.sh", EntryKind::File, true),
            ("vendor/sub", EntryKind::Gitlink, false),
        ]
    );
    let files: Vec<TreeEntry> = all
        .iter()
        .filter(|e| matches!(e.kind, EntryKind::File | EntryKind::Symlink))
        .cloned()
        .collect();
    for e in &files {
        assert_eq!(
            mono.read(e).unwrap(),
            git_src.read(e).unwrap(),
            "{}",
            e.path
        );
    }
    let got = Mutex::new(Vec::new());
    mono.read_many(&files, &|e, r| {
        got.lock().unwrap().push((e.path.clone(), r.unwrap()))
    });
    let mut got = got.into_inner().unwrap();
    got.sort();
    let want: Vec<_> = files
        .iter()
        .map(|e| (e.path.clone(), git_src.read(e).unwrap()))
        .collect();
    assert_eq!(got, want);

    for path in ["", "deep/a/b", "sp ace", "src/lib"] {
        assert_eq!(
            mono.list_dir(&p(path)).unwrap(),
            git_src.list_dir(&p(path)).unwrap()
        );
    }
    for path in [
        "deep/a/b/c/file.txt",
        "sp ace/ü €&x=1.txt",
        "nope",
        "a.txt/x",
        "vendor/sub",
    ] {
        assert_eq!(
            mono.stat(&p(path)).unwrap(),
            git_src.stat(&p(path)).unwrap(),
            "{path}"
        );
    }
    assert!(matches!(
        mono.list_dir(&p("nope")),
        Err(SourceError::NotFound(_))
    ));
    assert!(matches!(
        mono.list_dir(&p("a.txt")),
        Err(SourceError::NotADirectory(_))
    ));
    assert!(mono
        .read(&mono.stat(&p("vendor/sub")).unwrap().unwrap())
        .is_err());
}

#[test]
fn refs_pin_one_commit() {
    let f = repo();
    let server = TestServer::start(&f.work).unwrap();
    let v1 = open(&server, Some("v1"), quick());
    assert_eq!(v1.revision().as_deref(), Some(f.c1.as_str()));
    let a = v1.stat(&p("a.txt")).unwrap().unwrap();
    assert_eq!(v1.read(&a).unwrap(), b"one\n");
    assert!(v1.stat(&p("deep")).unwrap().is_none());
    // Mono resolves no branch names (a 500 there): the error says which
    // forms it takes; the branch's commit id works.
    let err = MonoSource::open(&server.url(), Some("feature"), quick())
        .expect_err("a branch name")
        .to_string();
    assert!(err.contains("full commit id, a tag name, or none"), "{err}");
    let feature_id = git(&f.work, &["rev-parse", "feature"]);
    let feature = open(&server, Some(&feature_id), quick());
    assert!(feature.stat(&p("feature.txt")).unwrap().is_some());
    let by_id = open(&server, Some(&f.c1), quick());
    assert_eq!(by_id.revision().as_deref(), Some(f.c1.as_str()));

    // An open source keeps its commit while the branch moves on.
    let before = open(&server, None, quick());
    write(&f.work, "deep/a/b/c/file.txt", "moved on\n");
    git(&f.work, &["commit", "-q", "-am", "four"]);
    server.reset_requests();
    let e = before.stat(&p("deep/a/b/c/file.txt")).unwrap().unwrap();
    assert_eq!(before.read(&e).unwrap(), b"deep\n");
    // Mono's `file/tree` no longer has the pinned trees below `deep` (200,
    // empty body): they were listed at the pinned commit instead.
    let pinned = format!("refs={}", before.revision().unwrap());
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.starts_with("/api/v1/tree/content-hash?path=/deep") && r.contains(&pinned)),
        "{:?}",
        server.requests()
    );
    let after = open(&server, None, quick());
    let e = after.stat(&p("deep/a/b/c/file.txt")).unwrap().unwrap();
    assert_eq!(after.read(&e).unwrap(), b"moved on\n");
    let err = MonoSource::open(&server.url(), Some(&"0".repeat(40)), quick())
        .expect_err("an unknown commit")
        .to_string();
    assert!(err.contains("no such commit"), "{err}");
}

/// A change list from the test server, with every action Mono lists, its
/// ids `sha1:`-prefixed as some Mono versions write them.
#[test]
fn a_change_list_is_laid_over_the_base() {
    let f = repo();
    let base = head(&f);
    write(&f.work, "a.txt", "changed by the cl\n");
    write(&f.work, "cl/new/file.txt", "new in the cl\n");
    write(&f.work, "buck-out/junk.txt", "never placed\n");
    git(&f.work, &["mv", "tool.sh", "tool-renamed.sh"]);
    git(&f.work, &["rm", "-q", "deep/a/side.txt"]);
    git(&f.work, &["add", "-A"]);
    git(&f.work, &["commit", "-q", "-m", "the cl"]);
    let cl_head = head(&f);
    git(&f.work, &["reset", "-q", "--hard", &base]);
    let server = TestServer::start(&f.work).unwrap();
    server.add_cl("CL42", &base, &cl_head);
    server.faults().prefix_ids(true);
    let mono = open(&server, None, quick());
    let changes = mono.change_list("CL42").unwrap();
    let cl = antares_overlay::source::cl::ClSource::new(Box::new(mono), "CL42", changes);
    let read = |path: &str| {
        let e = cl.stat(&p(path)).unwrap().unwrap();
        String::from_utf8(cl.read(&e).unwrap()).unwrap()
    };
    assert_eq!(read("a.txt"), "changed by the cl\n");
    assert_eq!(read("cl/new/file.txt"), "new in the cl\n");
    assert_eq!(read("tool-renamed.sh"), "#!/bin/sh\n");
    // A renamed file keeps its mode; the files list has none.
    assert!(cl.stat(&p("tool-renamed.sh")).unwrap().unwrap().executable);
    assert!(cl.stat(&p("tool.sh")).unwrap().is_none());
    assert!(cl.stat(&p("deep/a/side.txt")).unwrap().is_none());
    // What no source ever shows (buck-out at the root) is skipped.
    assert!(cl.stat(&p("buck-out/junk.txt")).unwrap().is_none());
    let names = |dir: &str| -> Vec<String> {
        cl.list_dir(&p(dir))
            .unwrap()
            .iter()
            .map(|e| e.path.file_name().unwrap().to_string())
            .collect()
    };
    assert!(names("").contains(&"cl".to_string()));
    assert!(!names("").contains(&"tool.sh".to_string()));
    assert!(names("").contains(&"tool-renamed.sh".to_string()));
    assert_eq!(names("deep/a"), ["b"]);
    assert_eq!(names("cl/new"), ["file.txt"]);
    // The walk sees the same tree.
    let walked: Vec<String> = cl
        .walk(&RepoPath::root())
        .unwrap()
        .iter()
        .map(|e| e.path.to_string())
        .collect();
    assert!(
        walked.contains(&"cl/new/file.txt".to_string()),
        "{walked:?}"
    );
    assert!(
        !walked.contains(&"deep/a/side.txt".to_string()),
        "{walked:?}"
    );

    // An unknown CL and a hostile link are errors naming them.
    let mono = open(&server, None, quick());
    let err = mono.change_list("NOPE").unwrap_err().to_string();
    assert!(err.contains("no change list \"NOPE\""), "{err}");
    assert!(mono.change_list("../x").is_err());
}

#[test]
fn a_rewalk_asks_only_for_the_changed_subtree() {
    let f = repo();
    let server = TestServer::start(&f.work).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let opts = || MonoOptions {
        tree_cache: Some(cache.path().to_path_buf()),
        ..quick()
    };
    let first = open(&server, None, opts()).walk(&RepoPath::root()).unwrap();
    assert!(server.request_count() > 8);

    // Unchanged: the root again, nothing below it.
    server.reset_requests();
    let src = open(&server, None, opts());
    assert_eq!(src.walk(&RepoPath::root()).unwrap(), first);
    assert_eq!(src.requests(), 3, "{:?}", server.requests());

    write(&f.work, "deep/a/b/c/file.txt", "changed\n");
    git(&f.work, &["commit", "-q", "-am", "change one directory"]);
    server.reset_requests();
    let src = open(&server, None, opts());
    let all = src.walk(&RepoPath::root()).unwrap();
    let mut trees: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| {
            r.starts_with("/api/v1/file/tree?") && !r.contains("path=/&") && !r.ends_with("path=/")
        })
        .map(|r| {
            r.split("path=")
                .nth(1)
                .unwrap()
                .split('&')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    trees.sort();
    assert_eq!(trees, ["/deep", "/deep/a", "/deep/a/b", "/deep/a/b/c"]);
    assert_eq!(src.requests(), 3 + 4, "{:?}", server.requests());
    let changed: Vec<_> = all
        .iter()
        .filter(|e| !first.contains(e))
        .map(|e| e.path.as_str())
        .collect();
    assert_eq!(
        changed,
        [
            "deep",
            "deep/a",
            "deep/a/b",
            "deep/a/b/c",
            "deep/a/b/c/file.txt"
        ]
    );
}

#[test]
fn a_deep_directory_is_found_with_one_dir_hash() {
    let f = repo();
    let server = TestServer::start(&f.work).unwrap();
    let src = open(&server, None, quick());
    server.reset_requests();
    let l = src.list_dir(&p("deep/a/b/c")).unwrap();
    assert_eq!(l.len(), 1);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert!(
        reqs[0].starts_with("/api/v1/tree/dir-hash?path=/deep/a/b/c"),
        "{reqs:?}"
    );
    assert!(
        reqs[1].starts_with("/api/v1/file/tree?path=/deep/a/b/c&oid="),
        "{reqs:?}"
    );
    // A path through a file, or missing, is still told apart.
    assert!(matches!(
        src.list_dir(&p("deep/a/side.txt")),
        Err(SourceError::NotADirectory(_))
    ));
    assert!(matches!(
        src.list_dir(&p("deep/a/nope/x")),
        Err(SourceError::NotFound(_))
    ));
    // Below a directory the root does not have: known missing, no request.
    server.reset_requests();
    assert!(matches!(
        src.list_dir(&p("no-such-top/a/b")),
        Err(SourceError::NotFound(_))
    ));
    assert_eq!(src.stat(&p("no-such-top/a/b/f")).unwrap(), None);
    assert_eq!(server.requests(), Vec::<String>::new());
}

#[test]
fn server_errors_are_retried_then_reported() {
    let f = repo();
    let server = TestServer::start(&f.work).unwrap();
    server.faults().fail_next(2);
    let src = open(&server, None, quick());
    assert_eq!(src.requests(), 3 + 2);

    server.faults().fail_always(true);
    let err = open_err(&server, quick());
    assert!(
        err.contains(&server.url()) && err.contains("/api/v1/"),
        "{err}"
    );
    assert!(err.contains("HTTP 500"), "{err}");
    assert!(err.contains("gave up after 3 attempts"), "{err}");
    server.faults().fail_always(false);

    // Blobs too; a 4xx is not retried.
    let e = src.stat(&p("a.txt")).unwrap().unwrap();
    server.faults().status_for_blobs(Some(403));
    server.reset_requests();
    let err = src.read(&e).unwrap_err().to_string();
    assert!(
        err.contains("HTTP 403") && err.contains("blob of a.txt"),
        "{err}"
    );
    assert!(
        err.contains(&format!("/api/v1/file/blob/{}", e.oid)),
        "{err}"
    );
    assert_eq!(server.request_count(), 1);
    server.faults().status_for_blobs(None);
    assert_eq!(src.read(&e).unwrap(), b"two\n");
}

#[test]
fn slow_answers_time_out() {
    let f = repo();
    let server = TestServer::start(&f.work).unwrap();
    let src = open(&server, None, quick());
    let e = src.stat(&p("a.txt")).unwrap().unwrap();
    server.faults().delay(Duration::from_millis(300));
    // Slow but within the limit: fine.
    assert_eq!(src.read(&e).unwrap(), b"two\n");
    let impatient = MonoOptions {
        timeout: Duration::from_millis(100),
        attempts: 2,
        ..quick()
    };
    let err = open_err(&server, impatient);
    assert!(
        err.contains("timed out") && err.contains("gave up after 2 attempts"),
        "{err}"
    );
}

#[test]
fn truncated_and_wrong_bytes_are_never_handed_out() {
    let f = repo();
    let server = TestServer::start(&f.work).unwrap();
    let src = open(&server, None, quick());
    let e = src.stat(&p("deep/a/b/c/file.txt")).unwrap().unwrap();

    server.faults().corrupt_blobs(true);
    let err = src.read(&e).unwrap_err().to_string();
    assert!(err.contains("does not match its object id"), "{err}");
    let results = Mutex::new(Vec::new());
    src.read_many(std::slice::from_ref(&e), &|_, r| {
        results.lock().unwrap().push(r.is_ok())
    });
    assert_eq!(results.into_inner().unwrap(), [false]);
    server.faults().corrupt_blobs(false);

    server.faults().truncate_blobs(true);
    let err = src.read(&e).unwrap_err().to_string();
    // Depending on when the connection breaks, the client sees a short body
    // or a closed connection; either way it retried and gave nothing out.
    assert!(err.contains("gave up after 3 attempts"), "{err}");
    assert!(
        err.contains("cut short") || err.contains("connection closed"),
        "{err}"
    );
    server.faults().truncate_blobs(false);
    assert_eq!(src.read(&e).unwrap(), b"deep\n");
}

#[test]
fn malformed_bodies_are_reported_not_retried() {
    let f = repo();
    let server = TestServer::start(&f.work).unwrap();
    server.faults().malformed_json(true);
    server.reset_requests();
    let err = open_err(&server, quick());
    assert!(err.contains("malformed response body"), "{err}");
    assert_eq!(server.request_count(), 1, "{:?}", server.requests());
}

#[test]
fn hostile_names_are_refused() {
    let f = repo();
    let server = TestServer::start(&f.work).unwrap();
    for name in ["..", ".", "a/b", "", "x\0y"] {
        server.faults().hostile_name(Some(name.to_string()));
        let err = open_err(&server, quick());
        assert!(err.contains("invalid path from"), "{name:?}: {err}");
    }
    server.faults().hostile_name(None);
    open(&server, None, quick());
}
