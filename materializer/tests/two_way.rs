//! Two-way sync: the workspace's edits, new files and deletions flow back to
//! the source side (the mount's upper layer), the source's flow in, and a
//! change on both sides is a conflict that keeps both.

mod common;

use antares_materializer::{sync, NoProgress, Request, Summary};
use antares_overlay::RepoPath;
use common::{env, Env, MemSource};
use std::collections::BTreeSet;
use std::fs;

impl Env {
    fn two_way(&self, src: &MemSource, only: Option<&[&str]>) -> Summary {
        let req = Request {
            entries: src.entries(),
            scope: vec![RepoPath::root()],
            write_back: Some(src),
            only: only.map(|o| {
                o.iter()
                    .map(|p| RepoPath::new(p).unwrap())
                    .collect::<BTreeSet<_>>()
            }),
            ..Default::default()
        };
        sync(&self.layout, &self.store, src, req, &NoProgress).unwrap()
    }
    fn ws(&self, p: &str) -> std::path::PathBuf {
        self.layout.root().join(p)
    }
}

fn sample() -> MemSource {
    MemSource::new(&[("pkg/a.txt", "a"), ("pkg/b.txt", "b"), ("other/c.txt", "c")])
}

#[test]
fn workspace_edit_new_file_and_deletion_flow_back() {
    let e = env();
    let src = sample();
    e.two_way(&src, None);
    fs::write(e.ws("pkg/a.txt"), "edited in ws").unwrap();
    fs::write(e.ws("pkg/new.txt"), "new in ws").unwrap();
    std::os::unix::fs::symlink("a.txt", e.ws("pkg/alias")).unwrap();
    fs::remove_file(e.ws("pkg/b.txt")).unwrap();
    let s = e.two_way(&src, None);
    assert_eq!(
        s.written_back,
        vec!["pkg/a.txt", "pkg/alias", "pkg/new.txt"],
        "{s:?}"
    );
    assert_eq!(s.deleted_back, vec!["pkg/b.txt"]);
    assert!(s.conflicts.is_empty() && s.errors.is_empty(), "{s:?}");
    assert_eq!(src.content("pkg/a.txt").as_deref(), Some("edited in ws"));
    assert_eq!(src.content("pkg/new.txt").as_deref(), Some("new in ws"));
    assert_eq!(src.content("pkg/alias").as_deref(), Some("-> a.txt"));
    assert_eq!(src.content("pkg/b.txt"), None);
    // Converged: the next sync has nothing to do in either direction.
    let s = e.two_way(&src, None);
    assert!(
        s.written_back.is_empty()
            && s.deleted_back.is_empty()
            && s.added + s.updated + s.removed == 0,
        "{s:?}"
    );
}

#[test]
fn source_side_edits_flow_in() {
    let e = env();
    let src = sample();
    e.two_way(&src, None);
    src.put("pkg/a.txt", "edited on the mount");
    src.remove("other/c.txt");
    src.put("pkg/d.txt", "created on the mount");
    let s = e.two_way(&src, None);
    assert_eq!((s.updated, s.removed, s.added), (1, 1, 1), "{s:?}");
    assert_eq!(
        fs::read_to_string(e.ws("pkg/a.txt")).unwrap(),
        "edited on the mount"
    );
    assert!(!e.ws("other/c.txt").exists());
    assert!(s.written_back.is_empty());
}

#[test]
fn both_sides_conflict_keeps_both_and_same_bytes_just_record() {
    let e = env();
    let src = sample();
    e.two_way(&src, None);
    fs::write(e.ws("pkg/a.txt"), "ws version").unwrap();
    src.put("pkg/a.txt", "mount version");
    fs::write(e.ws("pkg/b.txt"), "same").unwrap();
    src.put("pkg/b.txt", "same");
    let s = e.two_way(&src, None);
    assert_eq!(s.conflicts, vec!["pkg/a.txt"]);
    assert_eq!(s.adopted, 1);
    assert_eq!(fs::read_to_string(e.ws("pkg/a.txt")).unwrap(), "ws version");
    assert_eq!(src.content("pkg/a.txt").as_deref(), Some("mount version"));
    assert!(
        s.written_back.is_empty(),
        "a conflict was written back: {s:?}"
    );
}

#[test]
fn delete_modify_conflicts_in_both_directions() {
    let e = env();
    let src = sample();
    e.two_way(&src, None);
    // ws edits, mount deletes.
    fs::write(e.ws("pkg/a.txt"), "ws edit").unwrap();
    src.remove("pkg/a.txt");
    // ws deletes, mount edits.
    fs::remove_file(e.ws("pkg/b.txt")).unwrap();
    src.put("pkg/b.txt", "mount edit");
    let s = e.two_way(&src, None);
    assert_eq!(s.conflicts, vec!["pkg/a.txt", "pkg/b.txt"], "{s:?}");
    assert_eq!(fs::read_to_string(e.ws("pkg/a.txt")).unwrap(), "ws edit");
    assert_eq!(src.content("pkg/b.txt").as_deref(), Some("mount edit"));
    assert!(!e.ws("pkg/b.txt").exists());
}

#[test]
fn restricted_sync_touches_only_the_given_paths() {
    let e = env();
    let src = sample();
    e.two_way(&src, None);
    fs::write(e.ws("pkg/a.txt"), "edit a").unwrap();
    fs::write(e.ws("pkg/b.txt"), "edit b").unwrap();
    fs::write(e.ws("pkg/n.txt"), "new").unwrap();
    let s = e.two_way(&src, Some(&["pkg/a.txt", "pkg/n.txt"]));
    assert_eq!(s.written_back, vec!["pkg/a.txt", "pkg/n.txt"], "{s:?}");
    assert_eq!(src.content("pkg/b.txt").as_deref(), Some("b"));
    let s = e.two_way(&src, None);
    assert_eq!(s.written_back, vec!["pkg/b.txt"]);
}

#[test]
fn new_file_colliding_with_an_unrequested_source_path_is_not_written() {
    let e = env();
    let src = sample();
    let only_pkg: Vec<_> = src
        .entries()
        .into_iter()
        .filter(|x| x.path.as_str().starts_with("pkg/"))
        .collect();
    let req = Request {
        entries: only_pkg.clone(),
        scope: vec![RepoPath::new("pkg").unwrap()],
        write_back: Some(&src),
        ..Default::default()
    };
    sync(&e.layout, &e.store, &src, req, &NoProgress).unwrap();
    fs::create_dir_all(e.ws("other")).unwrap();
    fs::write(e.ws("other/c.txt"), "mine").unwrap();
    let req = Request {
        entries: only_pkg,
        scope: vec![
            RepoPath::new("pkg").unwrap(),
            RepoPath::new("other").unwrap(),
        ],
        write_back: Some(&src),
        ..Default::default()
    };
    // `other` is in scope but its entries were not requested: c.txt exists in the source.
    let s = sync(&e.layout, &e.store, &src, req, &NoProgress).unwrap();
    assert_eq!(src.content("other/c.txt").as_deref(), Some("c"), "{s:?}");
    assert!(
        s.errors
            .iter()
            .any(|x| x.path == "other/c.txt" && x.error.contains("not written back")),
        "{s:?}"
    );
    assert_eq!(fs::read_to_string(e.ws("other/c.txt")).unwrap(), "mine");
}
