//! Nothing outside the workspace changes, whatever the workspace or the
//! source holds: a directory the user replaced by a symlink to another
//! place is never looked through, removed from or pruned.

mod common;

use antares_materializer::resolve::{resolve, Side};
use antares_materializer::{sync, NoProgress, Request, Summary};
use antares_overlay::RepoPath;
use common::{env, tree_checksum, Env, MemSource};
use std::fs;
use std::path::Path;

fn request(src: &MemSource) -> Request<'static> {
    Request {
        entries: src.entries(),
        scope: vec![RepoPath::root()],
        ..Default::default()
    }
}

fn run(e: &Env, src: &MemSource) -> Summary {
    sync(&e.layout, &e.store, src, request(src), &NoProgress).unwrap()
}

/// Copies the directory tree `from` to `to` (files and directories).
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            fs::copy(e.path(), &dest).unwrap();
        }
    }
}

#[test]
fn a_directory_replaced_by_a_symlink_is_never_followed() {
    let e = env();
    let src = MemSource::new(&[
        ("keep.txt", "keep"),
        ("moved/f.txt", "moved f"),
        ("moved/sub/g.txt", "moved g"),
        ("copied/f.txt", "copied f"),
        ("copied/sub/g.txt", "copied g"),
    ]);
    run(&e, &src);
    let root = e.layout.root().to_path_buf();
    let outside = root.parent().unwrap().join("elsewhere");
    fs::create_dir(&outside).unwrap();
    // One directory moved out (same inodes: its stat still matches the
    // manifest), one copied out (same content); each replaced by a symlink.
    fs::rename(root.join("moved"), outside.join("moved")).unwrap();
    std::os::unix::fs::symlink(outside.join("moved"), root.join("moved")).unwrap();
    copy_tree(&root.join("copied"), &outside.join("copied"));
    fs::remove_dir_all(root.join("copied")).unwrap();
    std::os::unix::fs::symlink(outside.join("copied"), root.join("copied")).unwrap();
    fs::write(outside.join("sentinel"), "not antares'").unwrap();
    let before = tree_checksum(&outside);

    // Deleted by the source: removal and pruning would reach outside.
    src.remove("moved/f.txt");
    src.remove("moved/sub/g.txt");
    src.remove("copied/f.txt");
    src.remove("copied/sub/g.txt");
    let s = run(&e, &src);
    assert_eq!(tree_checksum(&outside), before, "{s:?}");
    assert_eq!(s.removed, 0, "{s:?}");
    // A new version there: not placed through the symlink either.
    src.put("moved/f.txt", "new f");
    src.put("copied/sub/g.txt", "new g");
    let s = run(&e, &src);
    assert_eq!(tree_checksum(&outside), before, "{s:?}");
    assert!(fs::read_link(root.join("moved")).is_ok());
    assert_eq!(fs::read_to_string(root.join("keep.txt")).unwrap(), "keep");
}

#[test]
fn a_request_that_drops_a_symlinked_directory_removes_nothing_behind_it() {
    let e = env();
    let src = MemSource::new(&[("a/f.txt", "f"), ("a/deep/g.txt", "g"), ("b.txt", "b")]);
    run(&e, &src);
    let root = e.layout.root().to_path_buf();
    let outside = root.parent().unwrap().join("elsewhere");
    fs::rename(root.join("a"), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("a")).unwrap();
    let before = tree_checksum(&outside);
    // No longer requested at all.
    let req = Request {
        entries: src
            .entries()
            .into_iter()
            .filter(|e| e.path.as_str() == "b.txt")
            .collect(),
        scope: vec![],
        ..Default::default()
    };
    let s = sync(&e.layout, &e.store, &src, req, &NoProgress).unwrap();
    assert_eq!(tree_checksum(&outside), before, "{s:?}");
    assert!(outside.join("deep").is_dir());
}

#[test]
fn resolve_theirs_never_deletes_behind_a_symlinked_directory() {
    let e = env();
    let src = MemSource::new(&[("a/f.txt", "f"), ("a/g.txt", "g")]);
    run(&e, &src);
    let root = e.layout.root().to_path_buf();
    fs::write(root.join("a/f.txt"), "mine").unwrap();
    src.remove("a/f.txt");
    assert_eq!(run(&e, &src).conflicts, ["a/f.txt"]);
    let outside = root.parent().unwrap().join("elsewhere");
    fs::rename(root.join("a"), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("a")).unwrap();
    let before = tree_checksum(&outside);
    let path = RepoPath::new("a/f.txt").unwrap();
    resolve(&e.layout, &e.store, &path, Side::Theirs).unwrap();
    assert_eq!(tree_checksum(&outside), before);
}

/// Swaps `a` and `b` atomically (`renameat2(RENAME_EXCHANGE)`).
fn exchange(a: &Path, b: &Path) -> bool {
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let (a, b) = (c(a), c(b));
    // SAFETY: valid NUL-terminated paths.
    unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        ) == 0
    }
}

/// A directory swapped for a symlink to another place *while* a sync runs
/// (after it planned, before or while it places) never redirects a write:
/// a thread keeps exchanging `d` with a symlink to `outside` while syncs
/// place new versions into `d`; `outside` stays as it was, and once the
/// swapping stops a sync converges.
#[test]
fn a_directory_swapped_for_a_symlink_during_placement_is_never_written_through() {
    let e = env();
    let names: Vec<String> = (0..16).map(|i| format!("d/sub/f{i}")).collect();
    let files: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v0")).collect();
    let src = MemSource::new(&files);
    run(&e, &src);
    let root = e.layout.root().to_path_buf();
    let outside = root.parent().unwrap().join("outside");
    fs::create_dir_all(outside.join("sub")).unwrap();
    fs::write(outside.join("sub/f0"), "not antares'").unwrap();
    fs::write(outside.join("sentinel"), "not antares'").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("swap")).unwrap();
    let before = tree_checksum(&outside);

    let stop = std::sync::atomic::AtomicBool::new(false);
    let swaps = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if exchange(&root.join("d"), &root.join("swap")) {
                    swaps.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        });
        for round in 1..=150 {
            for n in &names {
                src.put(n, &format!("v{round}"));
            }
            // Errors (a symlink where a directory is needed) are expected.
            let _ = sync(&e.layout, &e.store, &src, request(&src), &NoProgress);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    assert!(swaps.into_inner() > 100, "the race never ran");
    assert_eq!(tree_checksum(&outside), before);
    // Put the directory back where it belongs, then converge.
    if root.join("d").is_symlink() {
        assert!(exchange(&root.join("d"), &root.join("swap")));
    }
    let s = run(&e, &src);
    assert!(s.errors.is_empty(), "{s:?}");
    for n in &names {
        assert_eq!(fs::read_to_string(root.join(n)).unwrap(), "v150", "{n}");
    }
    assert_eq!(tree_checksum(&outside), before);
}
