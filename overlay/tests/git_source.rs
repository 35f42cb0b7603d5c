//! The `git:` source against fixture repositories built with the git CLI.

mod common;

use common::{fixture, git, git_stdin, write, GITLINK};

use antares_overlay::source::{self, read_link, read_path};
use antares_overlay::{EntryKind, GitSource, RepoPath, Source, SourceError, SourceSpec};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

fn p(s: &str) -> RepoPath {
    RepoPath::new(s).unwrap()
}

fn names(entries: &[antares_overlay::TreeEntry]) -> Vec<String> {
    entries.iter().map(|e| e.path.to_string()).collect()
}

#[test]
fn walk_lists_everything_with_git_ids() {
    let f = fixture();
    let src = GitSource::open(&f.work, None).unwrap();
    assert_eq!(src.revision().as_deref(), Some(f.c2.as_str()));
    let all = src.walk(&RepoPath::root()).unwrap();
    use EntryKind::*;
    let summary: Vec<(String, EntryKind, bool)> = all
        .iter()
        .map(|e| (e.path.to_string(), e.kind, e.executable))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("a.txt".into(), File, false),
            ("abs".into(), Symlink, false),
            ("bin".into(), Dir, false),
            ("bin/run.sh".into(), File, true),
            ("rel".into(), Symlink, false),
            ("src".into(), Dir, false),
            ("src/lib".into(), Dir, false),
            ("src/lib/x.rs".into(), File, false),
            ("vendor".into(), Dir, false),
            ("vendor/sub".into(), Gitlink, false),
        ]
    );
    for e in &all {
        let expected = git(&f.work, &["rev-parse", &format!("HEAD:{}", e.path)]);
        assert_eq!(e.oid.as_str(), expected, "{}", e.path);
        assert_eq!(e.oid.git_hex(), Some(expected.as_str()));
    }
    assert_eq!(
        all.iter()
            .find(|e| e.path == p("vendor/sub"))
            .unwrap()
            .oid
            .as_str(),
        GITLINK
    );
    assert_eq!(
        names(&src.walk(&p("src")).unwrap()),
        ["src/lib", "src/lib/x.rs"]
    );
}

#[test]
fn list_dir_and_stat() {
    let f = fixture();
    let src = GitSource::open(&f.work, None).unwrap();
    assert_eq!(
        names(&src.list_dir(&RepoPath::root()).unwrap()),
        ["a.txt", "abs", "bin", "rel", "src", "vendor"]
    );
    let root = src.stat(&RepoPath::root()).unwrap().unwrap();
    assert_eq!(root.kind, EntryKind::Dir);
    assert_eq!(
        root.oid.as_str(),
        git(&f.work, &["rev-parse", "HEAD^{tree}"])
    );
    let run = src.stat(&p("bin/run.sh")).unwrap().unwrap();
    assert_eq!(
        (run.kind, run.executable, run.size),
        (EntryKind::File, true, None)
    );
    assert_eq!(
        src.stat(&p("vendor/sub")).unwrap().unwrap().kind,
        EntryKind::Gitlink
    );
    assert_eq!(
        src.stat(&p("src/lib")).unwrap().unwrap().oid.as_str(),
        git(&f.work, &["rev-parse", "HEAD:src/lib"])
    );
    assert_eq!(src.stat(&p("missing")).unwrap(), None);
    assert_eq!(src.stat(&p("a.txt/below")).unwrap(), None);
    assert_eq!(src.stat(&p("rel/x")).unwrap(), None);
    assert!(matches!(
        src.list_dir(&p("a.txt")),
        Err(SourceError::NotADirectory(_))
    ));
    assert!(matches!(
        src.list_dir(&p("nope")),
        Err(SourceError::NotFound(_))
    ));
    assert!(matches!(
        src.walk(&p("vendor/sub")),
        Err(SourceError::NotADirectory(_))
    ));
}

#[test]
fn reads_blobs_and_link_targets() {
    let f = fixture();
    let src = GitSource::open(&f.work, None).unwrap();
    assert_eq!(read_path(&src, &p("a.txt")).unwrap(), b"two\n");
    assert_eq!(
        read_path(&src, &p("bin/run.sh")).unwrap(),
        b"#!/bin/sh\necho hi\n"
    );
    let rel = src.stat(&p("rel")).unwrap().unwrap();
    assert_eq!(read_link(&src, &rel).unwrap(), "src/lib/x.rs");
    let abs = src.stat(&p("abs")).unwrap().unwrap();
    assert_eq!(src.read(&abs).unwrap(), b"/etc/hostname");
    let sub = src.stat(&p("vendor/sub")).unwrap().unwrap();
    let err = src.read(&sub).unwrap_err();
    assert!(err.to_string().contains("submodule"), "{err}");
    let dir = src.stat(&p("src")).unwrap().unwrap();
    assert!(src.read(&dir).is_err());
}

#[test]
fn revisions_resolve_like_rev_parse() {
    let f = fixture();
    for (rev, commit, a) in [
        ("HEAD", &f.c2, "two\n"),
        ("main", &f.c2, "two\n"),
        ("v1", &f.c1, "one\n"),
        ("light", &f.c1, "one\n"),
        ("HEAD~1", &f.c1, "one\n"),
        (f.c1.as_str(), &f.c1, "one\n"),
        (&f.c1[..10], &f.c1, "one\n"),
    ] {
        let src = GitSource::open(&f.work, Some(rev)).unwrap();
        assert_eq!(src.revision().as_deref(), Some(commit.as_str()), "{rev}");
        assert_eq!(read_path(&src, &p("a.txt")).unwrap(), a.as_bytes(), "{rev}");
        assert_eq!(src.stat(&p("feature.txt")).unwrap(), None, "{rev}");
    }
    let feat = GitSource::open(&f.work, Some("feature")).unwrap();
    assert_eq!(read_path(&feat, &p("feature.txt")).unwrap(), b"feat\n");
    assert_eq!(read_path(&feat, &p("a.txt")).unwrap(), b"one\n");
    assert!(feat
        .describe()
        .starts_with(&format!("git:{}@", f.work.display())));
}

#[test]
fn bare_repositories_work() {
    let f = fixture();
    let src = GitSource::open(&f.bare, Some("v1")).unwrap();
    assert_eq!(src.revision().as_deref(), Some(f.c1.as_str()));
    assert_eq!(read_path(&src, &p("a.txt")).unwrap(), b"one\n");
    let head = GitSource::open(&f.bare, None).unwrap();
    assert_eq!(head.revision().as_deref(), Some(f.c2.as_str()));
    assert_eq!(head.walk(&RepoPath::root()).unwrap().len(), 10);
    // The .git directory of a work tree opens too.
    let dotgit = GitSource::open(f.work.join(".git"), None).unwrap();
    assert_eq!(dotgit.revision().as_deref(), Some(f.c2.as_str()));
}

#[test]
fn bad_revisions_and_paths_are_clear_errors() {
    let f = fixture();
    let err = GitSource::open(&f.work, Some("no-such-branch")).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, SourceError::Git { .. }), "{err:?}");
    assert!(
        msg.contains("no-such-branch") && msg.contains(&f.work.display().to_string()),
        "{msg}"
    );
    // A tree is not a commit.
    let err = GitSource::open(&f.work, Some("HEAD^{tree}")).unwrap_err();
    assert!(err.to_string().contains("does not name a commit"), "{err}");
    let err = GitSource::open(f.work.join("src"), None).unwrap_err();
    assert!(matches!(err, SourceError::Git { .. }), "{err:?}");
}

#[test]
fn read_many_in_parallel_from_rayon() {
    let f = fixture();
    for i in 0..100 {
        write(&f.work, &format!("many/f{i:03}"), &format!("content {i}"));
    }
    git(&f.work, &["add", "many"]);
    git(&f.work, &["commit", "-q", "-m", "many"]);
    let src = GitSource::open(&f.work, None).unwrap();
    let files = src.walk(&p("many")).unwrap();
    assert_eq!(files.len(), 100);
    let got = Mutex::new(BTreeMap::new());
    src.read_many(&files, &|e, r| {
        got.lock()
            .unwrap()
            .insert(e.path.to_string(), String::from_utf8(r.unwrap()).unwrap());
    });
    let got = got.into_inner().unwrap();
    assert_eq!(got.len(), 100);
    assert_eq!(got["many/f042"], "content 42");
    // Shared across threads through an Arc: the type is Send + Sync.
    let shared: std::sync::Arc<dyn Source> = std::sync::Arc::new(src);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let s = shared.clone();
            std::thread::spawn(move || read_path(&*s, &p("many/f099")).unwrap())
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), b"content 99");
    }
}

/// Writes a raw tree object with one entry named `name` (bypassing git's
/// checks with `--literally`) and commits it; returns the commit id.
fn crafted_commit(repo: &Path, name: &[u8]) -> String {
    let blob = git_stdin(repo, &["hash-object", "-w", "--stdin"], Some(b"evil\n"));
    let mut raw = b"100644 ".to_vec();
    raw.extend_from_slice(name);
    raw.push(0);
    raw.extend((0..20).map(|i| u8::from_str_radix(&blob[2 * i..2 * i + 2], 16).unwrap()));
    let tree = git_stdin(
        repo,
        &["hash-object", "-t", "tree", "-w", "--literally", "--stdin"],
        Some(&raw),
    );
    // Nest it one level so the bad name is below a good one.
    let top = git_stdin(
        repo,
        &["mktree"],
        Some(format!("040000 tree {tree}\tok\n").as_bytes()),
    );
    git(repo, &["commit-tree", &top, "-m", "crafted"])
}

#[test]
fn crafted_tree_names_are_refused_naming_repo_and_path() {
    let f = fixture();
    for bad in [&b".."[..], b"a/b", b"", b"."] {
        let commit = crafted_commit(&f.work, bad);
        let src = GitSource::open(&f.work, Some(&commit)).unwrap();
        for result in [
            src.list_dir(&p("ok")).map(|_| ()),
            src.walk(&RepoPath::root()).map(|_| ()),
        ] {
            let err = result.unwrap_err();
            assert!(
                matches!(err, SourceError::BadPath { .. }),
                "{bad:?}: {err:?}"
            );
            let msg = err.to_string();
            assert!(
                msg.contains(&f.work.display().to_string()) && msg.contains("tree of ok"),
                "{msg}"
            );
        }
    }
    // A committed `.git` entry is left out rather than refused.
    let commit = crafted_commit(&f.work, b".git");
    let src = GitSource::open(&f.work, Some(&commit)).unwrap();
    assert_eq!(names(&src.walk(&RepoPath::root()).unwrap()), ["ok"]);
    assert_eq!(src.stat(&p("ok/.git")).unwrap(), None);
}

#[test]
fn committed_buck_out_is_excluded_at_the_root_only() {
    let f = fixture();
    write(&f.work, "buck-out/v2/x", "x");
    write(&f.work, "lib/buck-out/y", "y");
    git(&f.work, &["add", "-f", "buck-out", "lib"]);
    git(&f.work, &["commit", "-q", "-m", "outputs"]);
    let src = GitSource::open(&f.work, None).unwrap();
    let all = names(&src.walk(&RepoPath::root()).unwrap());
    assert!(!all.iter().any(|n| n.starts_with("buck-out")), "{all:?}");
    assert!(all.contains(&"lib/buck-out/y".to_string()), "{all:?}");
    assert_eq!(src.stat(&p("buck-out/v2/x")).unwrap(), None);
}

#[test]
fn open_by_spec() {
    let f = fixture();
    let s = source::open(
        &SourceSpec::Git {
            path: f.bare.clone(),
            rev: Some("v1".into()),
        },
        None,
    )
    .unwrap();
    assert_eq!(s.revision().as_deref(), Some(f.c1.as_str()));
    assert!(source::open(
        &SourceSpec::Git {
            path: f.bare.clone(),
            rev: Some("nope".into())
        },
        None
    )
    .is_err());
}
