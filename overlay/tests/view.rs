//! The View without FUSE: overlayfs semantics over a dir: lower.

use antares_overlay::view::upper;
use antares_overlay::{DirSource, EntryKind, RepoPath, Source, View, ViewError};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

fn p(s: &str) -> RepoPath {
    RepoPath::new(s).unwrap()
}

fn setup() -> (tempfile::TempDir, View) {
    let tmp = tempfile::tempdir().unwrap();
    let lower = tmp.path().join("lower");
    fs::create_dir_all(lower.join("a/b")).unwrap();
    fs::create_dir_all(lower.join("d")).unwrap();
    fs::write(lower.join("a/one"), "1").unwrap();
    fs::write(lower.join("a/b/two"), "2").unwrap();
    fs::write(lower.join("d/x"), "x").unwrap();
    fs::write(lower.join("top"), "top").unwrap();
    fs::set_permissions(lower.join("top"), fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("a/one", lower.join("ln")).unwrap();
    let src: Arc<dyn Source> = Arc::new(DirSource::open(&lower).unwrap());
    let view = View::new(src, tmp.path().join("upper")).unwrap();
    (tmp, view)
}

fn names(view: &View, dir: &str) -> Vec<String> {
    view.list_dir(&p(dir))
        .unwrap()
        .into_iter()
        .map(|e| e.path.file_name().unwrap().to_string())
        .collect()
}

fn is_whiteout(path: &Path) -> bool {
    let name = path.file_name().unwrap().to_str().unwrap();
    match fs::symlink_metadata(path) {
        Ok(m) => m.file_type().is_char_device() && m.rdev() == 0,
        Err(_) => path.with_file_name(format!(".wh.{name}")).exists(),
    }
}

#[test]
fn reads_through_to_the_lower() {
    let (_t, view) = setup();
    assert_eq!(names(&view, ""), ["a", "d", "ln", "top"]);
    assert_eq!(
        view.read(&view.stat(&p("a/b/two")).unwrap().unwrap())
            .unwrap(),
        b"2"
    );
    let top = view.stat(&p("top")).unwrap().unwrap();
    assert!(top.executable);
    assert_eq!(
        view.stat(&p("ln")).unwrap().unwrap().kind,
        EntryKind::Symlink
    );
    assert!(view.stat(&p("nope")).unwrap().is_none());
    assert!(view.stat(&p("top/under")).unwrap().is_none());
}

#[test]
fn writes_land_in_the_upper_with_stat_ids() {
    let (t, view) = setup();
    view.write_file(&p("a/one"), b"new", 0o644).unwrap();
    let up = t.path().join("upper");
    assert_eq!(fs::read(up.join("a/one")).unwrap(), b"new");
    let e = view.stat(&p("a/one")).unwrap().unwrap();
    assert!(e.oid.as_str().starts_with("stat:"));
    assert_eq!(view.read(&e).unwrap(), b"new");
    // The directory was copied up, its lower children still show.
    assert_eq!(names(&view, "a"), ["b", "one"]);
    // No temp files are left or listed.
    assert_eq!(fs::read_dir(up.join("a")).unwrap().count(), 1);
}

#[test]
fn remove_whiteouts_and_recreate_opaque() {
    let (t, view) = setup();
    let up = t.path().join("upper");
    view.remove(&p("d/x"), false).unwrap();
    assert!(is_whiteout(&up.join("d/x")));
    assert!(names(&view, "d").is_empty());
    view.remove(&p("d"), true).unwrap();
    assert!(view.stat(&p("d")).unwrap().is_none());
    view.mkdir(&p("d"), 0o755).unwrap();
    assert!(
        names(&view, "d").is_empty(),
        "recreated dir must hide the old lower one"
    );
    assert!(matches!(
        view.remove(&p("a"), true),
        Err(ViewError::NotEmpty(_))
    ));
    assert!(matches!(
        view.remove(&p("a"), false),
        Err(ViewError::IsADirectory(_))
    ));
    // Removing an upper-only file leaves no whiteout.
    view.write_file(&p("fresh"), b"f", 0o644).unwrap();
    view.remove(&p("fresh"), false).unwrap();
    assert!(fs::symlink_metadata(up.join("fresh")).is_err());
    assert!(!up.join(".wh.fresh").exists());
}

#[test]
fn rename_copies_up_and_whiteouts_the_source() {
    let (t, view) = setup();
    let up = t.path().join("upper");
    view.rename(&p("a/one"), &p("d/one"), 0, None).unwrap();
    assert!(view.stat(&p("a/one")).unwrap().is_none());
    assert!(is_whiteout(&up.join("a/one")));
    assert_eq!(fs::read(up.join("d/one")).unwrap(), b"1");
    assert!(matches!(
        view.rename(&p("a"), &p("z"), 0, None),
        Err(ViewError::CrossLayer(_))
    ));
    assert!(matches!(
        view.rename(&p("top"), &p("d/one"), libc::RENAME_NOREPLACE, None),
        Err(ViewError::Exists(_))
    ));
    view.rename(&p("top"), &p("d/one"), libc::RENAME_EXCHANGE, None)
        .unwrap();
    assert_eq!(
        view.read(&view.stat(&p("top")).unwrap().unwrap()).unwrap(),
        b"1"
    );
    assert_eq!(
        view.read(&view.stat(&p("d/one")).unwrap().unwrap())
            .unwrap(),
        b"top"
    );
    // Exec bit preserved by copy-up.
    assert!(view.stat(&p("d/one")).unwrap().unwrap().executable);
}

#[test]
fn reads_upper_dirs_made_by_other_tools() {
    let (t, view) = setup();
    let up = t.path().join("upper");
    // fuse-overlayfs unprivileged whiteout + opaque marker.
    fs::create_dir_all(up.join("a")).unwrap();
    fs::write(up.join("a/.wh.one"), "").unwrap();
    assert_eq!(names(&view, "a"), ["b"]);
    assert!(view.stat(&p("a/one")).unwrap().is_none());
    fs::create_dir_all(up.join("a/b")).unwrap();
    fs::write(up.join("a/b/.wh..wh..opq"), "").unwrap();
    assert!(names(&view, "a/b").is_empty());
    // Kernel overlayfs / Scorpio: 0/0 char device and the user xattr form.
    // SAFETY: mknod with valid path; needs CAP_MKNOD (skipped otherwise).
    let c = std::ffi::CString::new(up.join("top").as_os_str().as_encoded_bytes()).unwrap();
    if unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR, 0) } == 0 {
        assert!(view.stat(&p("top")).unwrap().is_none());
        assert!(!names(&view, "").contains(&"top".to_string()));
    } else {
        eprintln!("no CAP_MKNOD: char-device whiteout not checked");
    }
    fs::create_dir_all(up.join("d")).unwrap();
    let d = std::ffi::CString::new(up.join("d").as_os_str().as_encoded_bytes()).unwrap();
    let n = std::ffi::CString::new("user.overlay.opaque").unwrap();
    // SAFETY: valid path, name and value.
    if unsafe { libc::setxattr(d.as_ptr(), n.as_ptr(), b"y".as_ptr().cast(), 1, 0) } == 0 {
        assert!(names(&view, "d").is_empty());
    } else {
        eprintln!("no user xattrs here: user.overlay.opaque not checked");
    }
}

#[test]
fn never_writes_through_a_symlink() {
    let (t, view) = setup();
    let up = t.path().join("upper");
    let outside = t.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    // Someone plants a symlink in the upper dir where a directory is.
    fs::create_dir_all(&up).unwrap();
    std::os::unix::fs::symlink(&outside, up.join("a")).unwrap();
    let r = view.write_file(&p("a/evil"), b"x", 0o644);
    assert!(
        r.is_err(),
        "writing through a symlinked upper dir must fail"
    );
    assert!(!outside.join("evil").exists());
    // A symlink at the file's own path is replaced, not followed.
    std::os::unix::fs::symlink(outside.join("target"), up.join("top")).unwrap();
    view.write_file(&p("top"), b"safe", 0o644).unwrap();
    assert!(!outside.join("target").exists());
    assert_eq!(fs::read(up.join("top")).unwrap(), b"safe");
    assert!(upper::is_internal_name(".wh.x") && !upper::is_internal_name("x"));
}

#[test]
fn symlinks_and_modes() {
    let (t, view) = setup();
    view.symlink(&p("d/l"), "../top").unwrap();
    let e = view.stat(&p("d/l")).unwrap().unwrap();
    assert_eq!(e.kind, EntryKind::Symlink);
    assert_eq!(view.read(&e).unwrap(), b"../top");
    view.set_mode(&p("a/one"), 0o700, None).unwrap();
    let m = fs::metadata(t.path().join("upper/a/one")).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o700);
    assert_eq!(fs::read(t.path().join("upper/a/one")).unwrap(), b"1");
}

/// Child of `writes_the_unprivileged_form_without_caps`: runs with
/// CAP_MKNOD and CAP_SYS_ADMIN dropped.
#[test]
#[ignore]
fn child_unprivileged_writes() {
    let Ok(dir) = std::env::var("ANTARES_TEST_UNPRIV_DIR") else {
        return;
    };
    let dir = Path::new(&dir);
    let src: Arc<dyn Source> = Arc::new(DirSource::open(dir.join("lower")).unwrap());
    let view = View::new(src, dir.join("upper")).unwrap();
    view.remove(&p("d/x"), false).unwrap();
    view.remove(&p("d"), true).unwrap();
    view.mkdir(&p("d"), 0o755).unwrap();
    view.remove(&p("top"), false).unwrap();
}

#[test]
fn writes_the_unprivileged_form_without_caps() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 || which("setpriv").is_none() {
        eprintln!("SKIPPED: needs root and setpriv to drop capabilities");
        return;
    }
    let (t, view) = setup();
    let dir = t.path();
    let out = std::process::Command::new("setpriv")
        .args([
            "--bounding-set=-mknod,-sys_admin",
            "--inh-caps=-mknod,-sys_admin",
            "--",
        ])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "child_unprivileged_writes", "--ignored"])
        .env("ANTARES_TEST_UNPRIV_DIR", dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let up = dir.join("upper");
    // Since Linux 5.8 a 0/0 character device needs no CAP_MKNOD, so either
    // whiteout form may have been written; both are read.
    assert!(is_whiteout(&up.join("top")));
    assert!(up.join("d/.wh..wh..opq").is_file(), "opaque marker form");
    // And the View reads what it wrote.
    assert!(view.stat(&p("top")).unwrap().is_none());
    assert!(names(&view, "d").is_empty());
    assert!(!names(&view, "").contains(&"top".to_string()));
}

fn which(tool: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
}

#[test]
fn reserved_names_are_refused() {
    let (_t, view) = setup();
    for name in [".wh.top", ".wh..wh..opq", ".antares-tmp.1.x"] {
        assert!(matches!(
            view.write_file(&p(name), b"x", 0o644),
            Err(ViewError::Invalid(_))
        ));
        assert!(view.mkdir(&p(name), 0o755).is_err());
    }
    assert!(
        view.stat(&p("top")).unwrap().is_some(),
        "no whiteout was made"
    );
}

#[test]
fn reading_a_lower_entry_honours_what_the_upper_hides() {
    let (t, view) = setup();
    let up = t.path().join("upper");
    // Entries as a walk handed them out, before the upper changed.
    let one = view.stat(&p("a/one")).unwrap().unwrap();
    let two = view.stat(&p("a/b/two")).unwrap().unwrap();
    let x = view.stat(&p("d/x")).unwrap().unwrap();
    let top = view.stat(&p("top")).unwrap().unwrap();
    assert_eq!(view.read(&two).unwrap(), b"2");
    // Whited out; below an opaque directory; below a file that replaced a directory.
    fs::create_dir_all(up.join("a/b")).unwrap();
    fs::write(up.join("a/.wh.one"), "").unwrap();
    fs::write(up.join("a/b/.wh..wh..opq"), "").unwrap();
    fs::write(up.join("d"), "now a file").unwrap();
    for e in [&one, &two, &x] {
        assert!(
            matches!(view.read(e), Err(antares_overlay::SourceError::NotFound(_))),
            "{} should be hidden",
            e.path
        );
    }
    // An upper copy wins over the lower content.
    fs::write(up.join("top"), "upper top").unwrap();
    assert_eq!(view.read(&top).unwrap(), b"upper top");
}

/// The walk, by path, against listing every directory one by one (the
/// merge the walk must equal, whichever subtrees it takes from the lower
/// unmerged).
fn walk_by_listing(view: &View, dir: &str) -> Vec<(String, EntryKind, String)> {
    let mut out = Vec::new();
    for e in view.list_dir(&p(dir)).unwrap() {
        out.push((e.path.to_string(), e.kind, e.oid.to_string()));
        if e.kind == EntryKind::Dir {
            out.extend(walk_by_listing(view, e.path.as_str()));
        }
    }
    out
}

#[test]
fn walk_merges_edited_directories_and_passes_untouched_ones_through() {
    let (t, view) = setup();
    let lower = t.path().join("lower");
    fs::create_dir_all(lower.join("a/b/c")).unwrap();
    fs::write(lower.join("a/b/c/deep"), "deep").unwrap();
    fs::create_dir_all(lower.join("e/f")).unwrap();
    fs::write(lower.join("e/f/g"), "g").unwrap();
    view.forget_lower_listings();
    view.write_file(&p("a/b/new"), b"new", 0o644).unwrap(); // copies up a, a/b
    view.remove(&p("a/one"), false).unwrap(); // a whiteout in a
    view.remove(&p("d"), true).unwrap_err(); // not empty
    view.remove(&p("d/x"), false).unwrap();
    view.remove(&p("d"), true).unwrap();
    view.mkdir(&p("d"), 0o755).unwrap(); // opaque: hides the lower d
    view.write_file(&p("d/y"), b"y", 0o644).unwrap();

    let walked: Vec<(String, EntryKind, String)> = view
        .walk(&RepoPath::root())
        .unwrap()
        .into_iter()
        .map(|e| (e.path.to_string(), e.kind, e.oid.to_string()))
        .collect();
    assert_eq!(walked, walk_by_listing(&view, ""));
    let paths: Vec<&str> = walked.iter().map(|(p, _, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "a",
            "a/b",
            "a/b/c",
            "a/b/c/deep",
            "a/b/new",
            "a/b/two",
            "d",
            "d/y",
            "e",
            "e/f",
            "e/f/g",
            "ln",
            "top"
        ]
    );
    // A walk below an untouched directory is the lower's.
    let below_e: Vec<String> = view
        .walk(&p("e"))
        .unwrap()
        .into_iter()
        .map(|e| e.path.to_string())
        .collect();
    assert_eq!(below_e, ["e/f", "e/f/g"]);
}
