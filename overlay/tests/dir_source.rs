//! The `dir:` source against a real directory built in a temp dir.

use antares_overlay::source::{self, read_link, read_path};
use antares_overlay::{DirSource, EntryKind, RepoPath, Source, SourceError, SourceSpec};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::sync::Mutex;

fn p(s: &str) -> RepoPath {
    RepoPath::new(s).unwrap()
}

fn write(root: &Path, rel: &str, content: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

/// a.txt, bin/run.sh (755), sub/deep/x.rs, sub/buck-out/kept.txt, empty/,
/// rel -> sub/deep/x.rs, abs -> /etc/hostname, linkdir -> sub, plus things
/// that must not show: .git/, sub/.git (file), buck-out/, .antares/, a fifo.
fn fixture() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    write(r, "a.txt", "hello\n");
    write(r, "bin/run.sh", "#!/bin/sh\necho hi\n");
    fs::set_permissions(r.join("bin/run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    write(r, "sub/deep/x.rs", "fn main() {}\n");
    write(r, "sub/buck-out/kept.txt", "not at the root\n");
    fs::create_dir(r.join("empty")).unwrap();
    symlink("sub/deep/x.rs", r.join("rel")).unwrap();
    symlink("/etc/hostname", r.join("abs")).unwrap();
    symlink("sub", r.join("linkdir")).unwrap();
    write(r, ".git/config", "[core]\n");
    write(r, "sub/.git", "gitdir: ../.git/modules/sub\n");
    write(r, "buck-out/v2/log", "x");
    write(r, ".antares/config.toml", "x");
    let fifo = std::ffi::CString::new(r.join("fifo").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    t
}

fn summary(entries: &[antares_overlay::TreeEntry]) -> Vec<(String, EntryKind, bool, Option<u64>)> {
    entries
        .iter()
        .map(|e| (e.path.to_string(), e.kind, e.executable, e.size))
        .collect()
}

#[test]
fn lists_root_sorted_without_excluded_entries() {
    let t = fixture();
    let src = DirSource::open(t.path()).unwrap();
    let names: Vec<String> = src
        .list_dir(&RepoPath::root())
        .unwrap()
        .iter()
        .map(|e| e.path.to_string())
        .collect();
    assert_eq!(
        names,
        ["a.txt", "abs", "bin", "empty", "linkdir", "rel", "sub"]
    );
    let sub: Vec<String> = src
        .list_dir(&p("sub"))
        .unwrap()
        .iter()
        .map(|e| e.path.to_string())
        .collect();
    assert_eq!(sub, ["sub/buck-out", "sub/deep"]);
    assert!(src.list_dir(&p("empty")).unwrap().is_empty());
}

#[test]
fn walk_is_preorder_and_exact() {
    let t = fixture();
    let src = DirSource::open(t.path()).unwrap();
    let all = src.walk(&RepoPath::root()).unwrap();
    use EntryKind::*;
    assert_eq!(
        summary(&all),
        vec![
            ("a.txt".into(), File, false, Some(6)),
            ("abs".into(), Symlink, false, Some(13)),
            ("bin".into(), Dir, false, None),
            ("bin/run.sh".into(), File, true, Some(18)),
            ("empty".into(), Dir, false, None),
            ("linkdir".into(), Symlink, false, Some(3)),
            ("rel".into(), Symlink, false, Some(13)),
            ("sub".into(), Dir, false, None),
            ("sub/buck-out".into(), Dir, false, None),
            ("sub/buck-out/kept.txt".into(), File, false, Some(16)),
            ("sub/deep".into(), Dir, false, None),
            ("sub/deep/x.rs".into(), File, false, Some(13)),
        ]
    );
    let below: Vec<String> = src
        .walk(&p("sub"))
        .unwrap()
        .iter()
        .map(|e| e.path.to_string())
        .collect();
    assert_eq!(
        below,
        [
            "sub/buck-out",
            "sub/buck-out/kept.txt",
            "sub/deep",
            "sub/deep/x.rs"
        ]
    );
    // The default (trait) walk over list_dir gives the same set.
    let mut via_list = Vec::new();
    let mut stack = vec![RepoPath::root()];
    while let Some(d) = stack.pop() {
        for e in src.list_dir(&d).unwrap() {
            if e.kind == Dir {
                stack.push(e.path.clone());
            }
            via_list.push(e);
        }
    }
    via_list.sort_by(|a, b| a.path.cmp(&b.path));
    let mut sorted = all.clone();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(via_list, sorted);
}

#[test]
fn stat_reports_kinds_and_never_follows_symlinks() {
    let t = fixture();
    let src = DirSource::open(t.path()).unwrap();
    let root = src.stat(&RepoPath::root()).unwrap().unwrap();
    assert_eq!(root.kind, EntryKind::Dir);
    assert!(root.oid.as_str().starts_with("stat:"));
    let run = src.stat(&p("bin/run.sh")).unwrap().unwrap();
    assert_eq!(
        (run.kind, run.executable, run.size),
        (EntryKind::File, true, Some(18))
    );
    let a = src.stat(&p("a.txt")).unwrap().unwrap();
    assert_eq!((a.kind, a.executable), (EntryKind::File, false));
    assert_eq!(
        src.stat(&p("linkdir")).unwrap().unwrap().kind,
        EntryKind::Symlink
    );
    // Through a symlinked directory: not part of the tree.
    assert_eq!(src.stat(&p("linkdir/deep")).unwrap(), None);
    assert_eq!(src.stat(&p("a.txt/x")).unwrap(), None);
    assert_eq!(src.stat(&p("missing")).unwrap(), None);
    for excluded in [
        ".git",
        ".git/config",
        "sub/.git",
        "buck-out",
        "buck-out/v2/log",
        ".antares/config.toml",
    ] {
        assert_eq!(src.stat(&p(excluded)).unwrap(), None, "{excluded}");
    }
    assert!(src.stat(&p("sub/buck-out/kept.txt")).unwrap().is_some());
    // A fifo is skipped, not an error.
    assert_eq!(src.stat(&p("fifo")).unwrap(), None);
}

#[test]
fn reads_files_and_link_targets() {
    let t = fixture();
    let src = DirSource::open(t.path()).unwrap();
    assert_eq!(read_path(&src, &p("a.txt")).unwrap(), b"hello\n");
    assert_eq!(
        read_path(&src, &p("bin/run.sh")).unwrap(),
        b"#!/bin/sh\necho hi\n"
    );
    let rel = src.stat(&p("rel")).unwrap().unwrap();
    assert_eq!(read_link(&src, &rel).unwrap(), "sub/deep/x.rs");
    let abs = src.stat(&p("abs")).unwrap().unwrap();
    assert_eq!(src.read(&abs).unwrap(), b"/etc/hostname");
    let dir = src.stat(&p("sub")).unwrap().unwrap();
    assert!(matches!(src.read(&dir), Err(SourceError::Invalid { .. })));
}

#[test]
fn read_many_reads_everything_in_parallel() {
    let t = fixture();
    for i in 0..200 {
        write(t.path(), &format!("many/f{i:03}"), &format!("content {i}"));
    }
    let src = DirSource::open(t.path()).unwrap();
    let files: Vec<_> = src.walk(&p("many")).unwrap();
    assert_eq!(files.len(), 200);
    let got = Mutex::new(BTreeMap::new());
    src.read_many(&files, &|e, r| {
        got.lock()
            .unwrap()
            .insert(e.path.to_string(), String::from_utf8(r.unwrap()).unwrap());
    });
    let got = got.into_inner().unwrap();
    assert_eq!(got.len(), 200);
    assert_eq!(got["many/f007"], "content 7");
    assert_eq!(got["many/f199"], "content 199");
}

#[test]
fn oid_changes_when_a_file_changes() {
    let t = fixture();
    let src = DirSource::open(t.path()).unwrap();
    let before = src.stat(&p("a.txt")).unwrap().unwrap().oid;
    assert_eq!(src.stat(&p("a.txt")).unwrap().unwrap().oid, before);
    fs::write(t.path().join("a.txt"), "changed, longer\n").unwrap();
    let after = src.stat(&p("a.txt")).unwrap().unwrap();
    assert_ne!(after.oid, before);
    assert_eq!(after.size, Some(16));
}

#[test]
fn listing_errors_are_typed() {
    let t = fixture();
    let src = DirSource::open(t.path()).unwrap();
    assert!(
        matches!(src.list_dir(&p("a.txt")), Err(SourceError::NotADirectory(x)) if x == p("a.txt"))
    );
    assert!(matches!(
        src.list_dir(&p("nope")),
        Err(SourceError::NotFound(_))
    ));
    assert!(matches!(
        src.list_dir(&p("linkdir")),
        Err(SourceError::NotADirectory(_))
    ));
    assert!(matches!(
        src.walk(&p("buck-out")),
        Err(SourceError::NotFound(_))
    ));
    assert!(DirSource::open(t.path().join("a.txt")).is_err());
    assert!(DirSource::open(t.path().join("does-not-exist")).is_err());
}

#[test]
fn non_utf8_name_is_an_error_naming_the_directory() {
    use std::os::unix::ffi::OsStrExt;
    let t = tempfile::tempdir().unwrap();
    fs::create_dir(t.path().join("d")).unwrap();
    fs::write(
        t.path()
            .join("d")
            .join(std::ffi::OsStr::from_bytes(b"bad\xff")),
        "x",
    )
    .unwrap();
    let src = DirSource::open(t.path()).unwrap();
    let err = src.list_dir(&p("d")).unwrap_err();
    assert!(matches!(err, SourceError::BadPath { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&t.path().join("d").display().to_string()),
        "{msg}"
    );
    assert!(msg.contains("not valid UTF-8"), "{msg}");
    assert!(src.walk(&RepoPath::root()).is_err());
}

#[test]
fn open_by_spec() {
    let t = fixture();
    let s = source::open(
        &SourceSpec::Dir {
            path: t.path().into(),
        },
        None,
    )
    .unwrap();
    assert_eq!(
        s.describe(),
        format!("dir:{}", t.path().canonicalize().unwrap().display())
    );
    assert_eq!(s.revision(), None);
    // Nothing listens on port 1: the error names the URL and says why.
    let err = source::open(
        &SourceSpec::Mono {
            url: "http://127.0.0.1:1".into(),
            refs: None,
            cl: None,
        },
        None,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("http://127.0.0.1:1/api/v1/"), "{err}");
    assert!(err.contains("cannot connect"), "{err}");
}
