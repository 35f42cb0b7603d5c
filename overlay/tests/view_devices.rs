//! A user's 0/0 character device on the View: kept, listed and removable,
//! never taken for a whiteout (and a plain whiteout still is one).

use antares_overlay::view::upper;
use antares_overlay::{DirSource, RepoPath, Source, View};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::sync::Arc;

fn p(s: &str) -> RepoPath {
    RepoPath::new(s).unwrap()
}

fn names(view: &View, dir: &str) -> Vec<String> {
    view.list_dir(&p(dir))
        .unwrap()
        .into_iter()
        .map(|e| e.path.file_name().unwrap().to_string())
        .collect()
}

#[test]
fn a_0_0_character_device_is_the_users_not_a_whiteout() {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("SKIPPED: needs root (trusted xattrs)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lower = tmp.path().join("lower");
    fs::create_dir_all(lower.join("d")).unwrap();
    fs::write(lower.join("d/over"), "lower file").unwrap();
    fs::write(lower.join("d/plain"), "hidden by a plain whiteout").unwrap();
    let src: Arc<dyn Source> = Arc::new(DirSource::open(&lower).unwrap());
    let up = tmp.path().join("upper");
    let view = View::new(src, up.clone()).unwrap();

    let dev = view.mknod(&p("d/dev"), libc::S_IFCHR | 0o644, 0).unwrap();
    assert!(dev.is_upper());
    // Over a lower file: the device replaces it.
    view.remove(&p("d/over"), false).unwrap();
    view.mknod(&p("d/over"), libc::S_IFCHR | 0o600, 0).unwrap();
    assert_eq!(names(&view, "d"), ["dev", "over", "plain"]);
    let m = fs::symlink_metadata(up.join("d/over")).unwrap();
    assert!(m.file_type().is_char_device() && m.rdev() == 0);
    assert_eq!(m.mode() & 0o7777, 0o600);

    // Renamed, it stays a device; removed, the lower file stays hidden.
    view.rename(&p("d/dev"), &p("d/dev2"), 0, None).unwrap();
    assert!(view.stat(&p("d/dev2")).unwrap().is_some());
    view.remove(&p("d/over"), false).unwrap();
    assert_eq!(names(&view, "d"), ["dev2", "plain"]);

    // A plain 0/0 device, as kernel overlayfs or Scorpio writes it.
    let d = upper::open_root(&up.join("d")).unwrap();
    upper::unlinkat(&d, "plain", 0).ok();
    upper::make_whiteout(&d, "plain").unwrap();
    assert_eq!(names(&view, "d"), ["dev2"]);
}
