//! Malformed input never stops the computation: broken `.bzl` files, load
//! cycles, runtime failures, odd bytes and bad symlinks become warnings and
//! a file set that is still a superset.

use antares_buck::{compute, FileSet, GraphRequest};
use antares_overlay::{DirSource, RepoPath};
use std::fs;
use std::path::Path;

fn repo(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let base: &[(&str, &[u8])] = &[(
        ".buckconfig",
        b"[cells]\n  root = .\n  prelude = prelude\n[external_cells]\n  prelude = bundled\n",
    )];
    for (path, bytes) in base.iter().chain(files) {
        let p = tmp.path().join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, bytes).unwrap();
    }
    tmp
}

fn run(root: &Path, pattern: &str) -> FileSet {
    let request = GraphRequest {
        patterns: vec![pattern.to_string()],
        current_dir: RepoPath::root(),
    };
    compute(&DirSource::open(root).unwrap(), &request).unwrap()
}

fn has(set: &FileSet, path: &str) -> bool {
    set.files.contains_key(&RepoPath::new(path).unwrap())
}

#[test]
fn load_cycles_and_broken_macros_fall_back_to_labels() {
    let tmp = repo(&[
        ("a/BUCK", b"load(\"//defs:one.bzl\", \"m\")\nm(name = \"a\")\n"),
        ("defs/one.bzl", b"load(\"//defs:two.bzl\", \"x\")\ndef m(name):\n    native.filegroup(name = name, srcs = [\"//dep:d\"])\n"),
        ("defs/two.bzl", b"load(\"//defs:one.bzl\", \"m\")\nx = 1\n"),
        ("dep/BUCK", b"filegroup(name = \"d\")\n"),
        ("dep/file.txt", b"x"),
    ]);
    let set = run(tmp.path(), "//a:a");
    for f in [
        "a/BUCK",
        "defs/one.bzl",
        "defs/two.bzl",
        "dep/BUCK",
        "dep/file.txt",
    ] {
        assert!(has(&set, f), "{f} missing: {:#?}", set.files.keys());
    }
    assert!(
        set.warnings
            .iter()
            .any(|w| w.to_string().contains("load cycle")),
        "{:#?}",
        set.warnings
    );
}

#[test]
fn runtime_failures_bad_bytes_and_unknown_names_do_not_stop_the_walk() {
    let tmp = repo(&[
        ("top/BUCK", b"group(name = \"t\", deps = [\"//fails:f\", \"//bytes:b\", \"//undefined:u\", \"//missing:m\"])\n"),
        ("fails/BUCK", b"fail(\"on purpose\")\nrule_x(name = \"f\", deps = [\"//leaf:l\"])\n"),
        ("bytes/BUCK", b"\xff\xfe not utf-8 \"//leaf:l2\"\n"),
        ("undefined/BUCK", b"load(\":m.bzl\", \"mac\")\nmac(name = \"u\")\n"),
        ("undefined/m.bzl", b"def mac(name):\n    some_prelude_macro(name = name, dep = paths.join(\"a\", \"b\"), x = \"//leaf:l3\")\n"),
        ("leaf/BUCK", b"x(name = \"l\")\nx(name = \"l3\")\n"),
        ("leaf/leaf.txt", b"leaf"),
    ]);
    let set = run(tmp.path(), "//top:t");
    assert!(
        has(&set, "leaf/leaf.txt"),
        "labels of a failing file were lost: {:#?}",
        set.warnings
    );
    assert!(has(&set, "bytes/BUCK") && has(&set, "undefined/m.bzl"));
    assert!(set
        .warnings
        .iter()
        .map(ToString::to_string)
        .any(|w| w.starts_with("could not evaluate fails/BUCK") && w.contains("on purpose")));
    assert!(set
        .warnings
        .iter()
        .any(|w| w.to_string().starts_with("could not evaluate bytes/BUCK")));
    assert!(
        set.warnings
            .iter()
            .any(|w| w.to_string().contains("declares no target \"l2\"")),
        "{:#?}",
        set.warnings
    );
    assert!(set.warnings.iter().any(|w| w
        .to_string()
        .contains("no build file for package root//missing")));
    assert_eq!(set.targets["//undefined:u"].kind, "some_prelude_macro");
    assert!(
        set.targets.contains_key("//leaf:l3"),
        "{:#?}",
        set.targets.keys()
    );
}

#[test]
fn escaping_and_dangling_symlinks_are_warnings() {
    let tmp = repo(&[("s/BUCK", b"x(name = \"s\")\n")]);
    std::os::unix::fs::symlink("../../../etc/passwd", tmp.path().join("s/escape")).unwrap();
    std::os::unix::fs::symlink("nothing-here", tmp.path().join("s/dangling")).unwrap();
    std::os::unix::fs::symlink("loop2", tmp.path().join("s/loop1")).unwrap();
    std::os::unix::fs::symlink("loop1", tmp.path().join("s/loop2")).unwrap();
    let set = run(tmp.path(), "//s:s");
    assert!(has(&set, "s/escape") && has(&set, "s/dangling"));
    let w = set
        .warnings
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        w.contains("leaves the project") && w.contains("dangles") && w.contains("too many levels"),
        "{w}"
    );
}
