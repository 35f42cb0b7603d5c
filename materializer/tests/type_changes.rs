//! A path that changes type between revisions (symlink → directory,
//! directory → file) is no conflict when nobody edited it, and resolving
//! conflicts one by one never leaves a directory that blocks the next.

mod common;

use antares_materializer::resolve::{resolve, Side};
use antares_materializer::{sync, NoProgress, Request, Summary};
use antares_overlay::RepoPath;
use common::{env, Env, MemSource};
use std::fs;

fn run(e: &Env, src: &MemSource) -> Summary {
    let req = Request {
        entries: src.entries(),
        scope: vec![RepoPath::root()],
        ..Default::default()
    };
    sync(&e.layout, &e.store, src, req, &NoProgress).unwrap()
}

#[test]
fn a_symlink_that_becomes_a_directory_is_no_conflict() {
    let e = env();
    let src = MemSource::new(&[("lib/f.txt", "lib f")]);
    src.link("x", "lib");
    run(&e, &src);
    src.remove("x");
    src.put("x/f.txt", "x f");
    let s = run(&e, &src);
    assert!(s.conflicts.is_empty() && s.errors.is_empty(), "{s:?}");
    let root = e.layout.root();
    assert_eq!(fs::read_to_string(root.join("x/f.txt")).unwrap(), "x f");
    assert_eq!(fs::read_to_string(root.join("lib/f.txt")).unwrap(), "lib f");
}

#[test]
fn a_directory_that_becomes_a_file_is_no_conflict() {
    let e = env();
    let src = MemSource::new(&[("d/a.txt", "a"), ("d/sub/b.txt", "b")]);
    run(&e, &src);
    src.remove("d/a.txt");
    src.remove("d/sub/b.txt");
    src.put("d", "now a file");
    let s = run(&e, &src);
    assert!(s.conflicts.is_empty() && s.errors.is_empty(), "{s:?}");
    assert_eq!(
        fs::read_to_string(e.layout.root().join("d")).unwrap(),
        "now a file"
    );
    // And back.
    src.remove("d");
    src.put("d/a.txt", "a again");
    let s = run(&e, &src);
    assert!(s.conflicts.is_empty() && s.errors.is_empty(), "{s:?}");
    assert_eq!(
        fs::read_to_string(e.layout.root().join("d/a.txt")).unwrap(),
        "a again"
    );
}

#[test]
fn resolving_theirs_one_by_one_leaves_no_directory_in_the_way() {
    let e = env();
    let src = MemSource::new(&[("d/a.txt", "a")]);
    run(&e, &src);
    fs::write(e.layout.root().join("d/a.txt"), "edited").unwrap();
    src.remove("d/a.txt");
    src.put("d", "now a file");
    let s = run(&e, &src);
    let mut c = s.conflicts.clone();
    c.sort();
    assert_eq!(c, ["d", "d/a.txt"], "{s:?}");
    let p = |s: &str| RepoPath::new(s).unwrap();
    resolve(&e.layout, &e.store, &p("d/a.txt"), Side::Theirs).unwrap();
    resolve(&e.layout, &e.store, &p("d"), Side::Theirs).unwrap();
    assert_eq!(
        fs::read_to_string(e.layout.root().join("d")).unwrap(),
        "now a file"
    );
    let s = run(&e, &src);
    assert!(s.conflicts.is_empty() && s.errors.is_empty(), "{s:?}");
}
