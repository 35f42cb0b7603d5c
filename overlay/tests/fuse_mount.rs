//! Real FUSE mounts of a View. Needs root and /dev/fuse; otherwise every
//! test prints why it is skipped and passes.

use antares_overlay::fuse::{self, BindMode, MountConfig, MountHandle, Unmounted};
use antares_overlay::{BlobCache, DirSource, GitSource, Source, SourceError, TreeEntry, View};
use std::fs;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A blob cache for tests: one file per object id in a directory.
struct TestCache {
    dir: PathBuf,
}

impl BlobCache for TestCache {
    fn local_file(&self, source: &dyn Source, entry: &TreeEntry) -> Result<PathBuf, SourceError> {
        let name: String = entry
            .oid
            .as_str()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let path = self.dir.join(name);
        if !path.exists() {
            let bytes = source.read(entry)?;
            // A temp name per call: FUSE serves concurrent opens of the same
            // file on several threads.
            let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)
                .map_err(|e| SourceError::io(self.dir.display(), e))?;
            tmp.write_all(&bytes)
                .map_err(|e| SourceError::io(tmp.path().display(), e))?;
            tmp.persist(&path)
                .map_err(|e| SourceError::io(path.display(), e.error))?;
        }
        Ok(path)
    }
}

fn can_mount() -> bool {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root || !Path::new("/dev/fuse").exists() {
        eprintln!("SKIPPED: FUSE mount tests need root and /dev/fuse");
        return false;
    }
    true
}

/// A mounted fixture; unmounts in Drop (lazily if needed), even on panic.
struct Fixture {
    _tmp: tempfile::TempDir,
    lower: PathBuf,
    upper: PathBuf,
    local_buck_out: PathBuf,
    mnt: PathBuf,
    handle: Option<MountHandle>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        drop(self.handle.take());
        if fuse::is_stale(&self.mnt) || is_mountpoint(&self.mnt) {
            let _ = fuse::unmount(&self.mnt);
        }
    }
}

fn is_mountpoint(p: &Path) -> bool {
    let Ok(m) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let p = p.to_string_lossy();
    m.lines().any(|l| l.split(' ').nth(4) == Some(&*p))
}

fn lower_tree(root: &Path) {
    fs::create_dir_all(root.join("src/deep/er")).unwrap();
    fs::create_dir_all(root.join("docs")).unwrap();
    fs::write(root.join("README"), "hello from lower\n").unwrap();
    fs::write(root.join("src/main.rs"), "fn main() {}\n").unwrap();
    fs::write(root.join("src/lib.rs"), "pub fn lib() {}\n").unwrap();
    fs::write(root.join("src/deep/er/x.txt"), "x\n").unwrap();
    fs::write(root.join("docs/a.md"), "a\n").unwrap();
    fs::write(root.join("docs/b.md"), "b\n").unwrap();
    fs::write(root.join("run.sh"), "#!/bin/sh\necho ran\n").unwrap();
    fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("src/main.rs", root.join("link")).unwrap();
}

/// A fixture mounted with opens sent to the daemon or skipped (the two
/// ways the kernel can be told to open files; see `MountConfig::skip_opens`).
fn setup(skip_opens: bool) -> Option<Fixture> {
    setup_with(|c| c.skip_opens = Some(skip_opens))
}

fn setup_with(tweak: impl FnOnce(&mut MountConfig)) -> Option<Fixture> {
    if !can_mount() {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lower = tmp.path().join("lower");
    let upper = tmp.path().join("upper");
    let cache = tmp.path().join("cache");
    let local_buck_out = tmp.path().join("state/buck-out");
    let mnt = tmp.path().join("mnt");
    lower_tree(&lower);
    fs::create_dir_all(&cache).unwrap();
    let source: Arc<dyn Source> = Arc::new(DirSource::open(&lower).unwrap());
    let view = Arc::new(View::new(source, &upper).unwrap());
    let mut cfg = MountConfig::new(view, Arc::new(TestCache { dir: cache }), &mnt);
    cfg.bind_dirs = vec![("buck-out".into(), local_buck_out.clone())];
    tweak(&mut cfg);
    let handle = fuse::mount(cfg).unwrap();
    let mnt = handle.mountpoint().to_path_buf();
    Some(Fixture {
        _tmp: tmp,
        lower,
        upper,
        local_buck_out,
        mnt,
        handle: Some(handle),
    })
}

fn is_whiteout(p: &Path) -> bool {
    match fs::symlink_metadata(p) {
        Ok(m) => m.file_type().is_char_device() && m.rdev() == 0,
        Err(_) => {
            let wh = p
                .parent()
                .unwrap()
                .join(format!(".wh.{}", p.file_name().unwrap().to_str().unwrap()));
            wh.exists()
        }
    }
}

fn reads_lower_files_and_listings(skip_opens: bool) {
    let Some(f) = setup(skip_opens) else { return };
    assert_eq!(
        fs::read_to_string(f.mnt.join("README")).unwrap(),
        "hello from lower\n"
    );
    assert_eq!(
        fs::read_to_string(f.mnt.join("src/deep/er/x.txt")).unwrap(),
        "x\n"
    );
    let mut names: Vec<String> = fs::read_dir(&f.mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["README", "buck-out", "docs", "link", "run.sh", "src"]
    );
    assert_eq!(fs::metadata(f.mnt.join("README")).unwrap().len(), 17);
    // Nothing was copied up by reading.
    assert!(!f.upper.join("README").exists());
}

fn write_copies_up_and_lands_in_upper(skip_opens: bool) {
    let Some(f) = setup(skip_opens) else { return };
    let p = f.mnt.join("src/main.rs");
    let mut file = fs::OpenOptions::new().append(true).open(&p).unwrap();
    file.write_all(b"// edited\n").unwrap();
    drop(file);
    let want = "fn main() {}\n// edited\n";
    assert_eq!(fs::read_to_string(&p).unwrap(), want);
    assert_eq!(
        fs::read_to_string(f.upper.join("src/main.rs")).unwrap(),
        want
    );
    assert_eq!(
        fs::read_to_string(f.lower.join("src/main.rs")).unwrap(),
        "fn main() {}\n"
    );
    // New files and directories.
    fs::create_dir_all(f.mnt.join("new/dir")).unwrap();
    fs::write(f.mnt.join("new/dir/file"), "new").unwrap();
    assert_eq!(
        fs::read_to_string(f.upper.join("new/dir/file")).unwrap(),
        "new"
    );
    // Truncate through the mount.
    fs::OpenOptions::new()
        .write(true)
        .open(f.mnt.join("README"))
        .unwrap()
        .set_len(5)
        .unwrap();
    assert_eq!(fs::read_to_string(f.mnt.join("README")).unwrap(), "hello");
}

fn delete_writes_whiteouts(skip_opens: bool) {
    let Some(f) = setup(skip_opens) else { return };
    fs::remove_file(f.mnt.join("docs/a.md")).unwrap();
    assert!(!f.mnt.join("docs/a.md").exists());
    assert!(is_whiteout(&f.upper.join("docs/a.md")));
    assert!(f.lower.join("docs/a.md").exists());
    fs::remove_file(f.mnt.join("docs/b.md")).unwrap();
    fs::remove_dir(f.mnt.join("docs")).unwrap();
    assert!(!f.mnt.join("docs").exists());
    assert!(is_whiteout(&f.upper.join("docs")));
    // Recreating the directory makes it opaque: the old files stay gone.
    fs::create_dir(f.mnt.join("docs")).unwrap();
    assert_eq!(fs::read_dir(f.mnt.join("docs")).unwrap().count(), 0);
    // A non-empty directory cannot be removed.
    let e = fs::remove_dir(f.mnt.join("src")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOTEMPTY));
}

fn rename_across_layers(skip_opens: bool) {
    let Some(f) = setup(skip_opens) else { return };
    fs::rename(f.mnt.join("src/lib.rs"), f.mnt.join("lib2.rs")).unwrap();
    assert!(!f.mnt.join("src/lib.rs").exists());
    assert_eq!(
        fs::read_to_string(f.mnt.join("lib2.rs")).unwrap(),
        "pub fn lib() {}\n"
    );
    assert!(is_whiteout(&f.upper.join("src/lib.rs")));
    // Rename over an existing lower file.
    fs::rename(f.mnt.join("lib2.rs"), f.mnt.join("README")).unwrap();
    assert_eq!(
        fs::read_to_string(f.mnt.join("README")).unwrap(),
        "pub fn lib() {}\n"
    );
    // An upper-only directory moves; a lower directory gives EXDEV (mv copies).
    fs::create_dir(f.mnt.join("updir")).unwrap();
    fs::write(f.mnt.join("updir/f"), "f").unwrap();
    fs::rename(f.mnt.join("updir"), f.mnt.join("updir2")).unwrap();
    assert_eq!(fs::read_to_string(f.mnt.join("updir2/f")).unwrap(), "f");
    let e = fs::rename(f.mnt.join("src"), f.mnt.join("src2")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EXDEV));
    let st = Command::new("mv")
        .arg(f.mnt.join("src"))
        .arg(f.mnt.join("src2"))
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(
        fs::read_to_string(f.mnt.join("src2/main.rs")).unwrap(),
        "fn main() {}\n"
    );
    assert!(!f.mnt.join("src").exists());
}

fn opaque_directories_from_other_tools(skip_opens: bool) {
    let Some(f) = setup(skip_opens) else { return };
    // An upper dir written by overlayfs/Scorpio: opaque via xattr.
    fs::create_dir_all(f.upper.join("src")).unwrap();
    let st = Command::new("setfattr")
        .args(["-n", "trusted.overlay.opaque", "-v", "y"])
        .arg(f.upper.join("src"))
        .status();
    if !st.map(|s| s.success()).unwrap_or(false) {
        // No setfattr: use the fuse-overlayfs marker file instead.
        fs::write(f.upper.join("src/.wh..wh..opq"), "").unwrap();
    }
    fs::write(f.upper.join("src/only.rs"), "only").unwrap();
    std::thread::sleep(fuse::SHORT_TTL + std::time::Duration::from_millis(200));
    let names: Vec<_> = fs::read_dir(f.mnt.join("src"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["only.rs"]);
    // fuse-overlayfs style whiteout file.
    fs::create_dir_all(f.upper.join("docs")).unwrap();
    fs::write(f.upper.join("docs/.wh.a.md"), "").unwrap();
    let names: Vec<_> = fs::read_dir(f.mnt.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["b.md"]);
}

fn exec_bits_and_symlinks(skip_opens: bool) {
    let Some(f) = setup(skip_opens) else { return };
    let m = fs::metadata(f.mnt.join("run.sh")).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o755);
    let out = Command::new(f.mnt.join("run.sh")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ran\n");
    assert_eq!(
        fs::read_link(f.mnt.join("link")).unwrap(),
        Path::new("src/main.rs")
    );
    assert_eq!(
        fs::read_to_string(f.mnt.join("link")).unwrap(),
        "fn main() {}\n"
    );
    std::os::unix::fs::symlink("../README", f.mnt.join("src/up")).unwrap();
    assert_eq!(
        fs::read_link(f.upper.join("src/up")).unwrap(),
        Path::new("../README")
    );
    assert_eq!(
        fs::read_to_string(f.mnt.join("src/up")).unwrap(),
        "hello from lower\n"
    );
    fs::set_permissions(f.mnt.join("README"), fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(
        fs::metadata(f.upper.join("README"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    assert_eq!(
        fs::metadata(f.mnt.join("README"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
}

fn sqlite_wal(dir: &Path) {
    let db = dir.join("t.db");
    let sql = "PRAGMA journal_mode=WAL; CREATE TABLE t(a INTEGER, b TEXT); \
               BEGIN; INSERT INTO t VALUES (1,'x'); INSERT INTO t VALUES (2,'y'); COMMIT; \
               SELECT count(*) FROM t;";
    let out = Command::new("sqlite3").arg(&db).arg(sql).output().unwrap();
    assert!(
        out.status.success(),
        "sqlite3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "wal\n2\n");
    let out = Command::new("sqlite3")
        .arg(&db)
        .arg("SELECT b FROM t ORDER BY a;")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "x\ny\n");
}

fn sqlite_wal_on_the_mount(skip_opens: bool) {
    let Some(f) = setup(skip_opens) else { return };
    if Command::new("sqlite3").arg("-version").output().is_err() {
        eprintln!("SKIPPED: sqlite3 not installed");
        return;
    }
    sqlite_wal(&f.mnt);
    assert!(f.upper.join("t.db").exists());
    fs::create_dir(f.mnt.join("src/db")).unwrap();
    sqlite_wal(&f.mnt.join("src/db"));
}

fn buck_out_is_local_and_symlinks_resolve_inside(skip_opens: bool) {
    let Some(f) = setup(skip_opens) else { return };
    let handle = f.handle.as_ref().unwrap();
    assert_eq!(handle.binds()[0].mode, BindMode::Kernel);
    let bo = f.mnt.join("buck-out");
    let fuse_type = statfs_type(&f.mnt);
    let bo_type = statfs_type(&bo);
    assert_ne!(
        fuse_type, bo_type,
        "buck-out must not be on the FUSE file system"
    );
    assert_eq!(bo_type, statfs_type(&f.local_buck_out));
    assert!(!fs::symlink_metadata(&bo).unwrap().file_type().is_symlink());
    // A relative symlink under buck-out resolves inside the mount.
    fs::create_dir_all(bo.join("v2/art/__srcs")).unwrap();
    std::os::unix::fs::symlink("../../../../src/main.rs", bo.join("v2/art/__srcs/main.rs"))
        .unwrap();
    assert_eq!(
        fs::read_to_string(bo.join("v2/art/__srcs/main.rs")).unwrap(),
        "fn main() {}\n"
    );
    assert!(f.local_buck_out.join("v2/art/__srcs/main.rs").is_symlink());
    sqlite_wal(&bo);
    assert!(f.local_buck_out.join("t.db").exists());
    assert!(!f.upper.join("buck-out").exists());
}

fn statfs_type(p: &Path) -> i64 {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: zeroed statfs is a valid out-buffer; valid path.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statfs(c.as_ptr(), &mut s) }, 0);
    s.f_type
}

fn concurrent_readers(skip_opens: bool) {
    let Some(f) = setup(skip_opens) else { return };
    let big: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(f.mnt.join("big.bin"), &big).unwrap();
    let big = Arc::new(big);
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let mnt = f.mnt.clone();
            let big = big.clone();
            std::thread::spawn(move || {
                for _ in 0..5 {
                    assert_eq!(fs::read(mnt.join("big.bin")).unwrap(), *big);
                    let name = if i % 2 == 0 {
                        "README"
                    } else {
                        "src/deep/er/x.txt"
                    };
                    assert!(!fs::read(mnt.join(name)).unwrap().is_empty());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

fn unmount_with_open_files(skip_opens: bool) {
    let Some(mut f) = setup(skip_opens) else {
        return;
    };
    let mut open = fs::File::open(f.mnt.join("README")).unwrap();
    let handle = f.handle.take().unwrap();
    let t = std::thread::spawn(move || handle.unmount());
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Detached, but the open file still reads.
    assert!(!is_mountpoint(&f.mnt));
    let mut s = String::new();
    open.rewind().unwrap();
    open.read_to_string(&mut s).unwrap();
    assert_eq!(s, "hello from lower\n");
    drop(open);
    assert_eq!(t.join().unwrap().unwrap(), Unmounted::Lazy);
}

/// A file opened, then unlinked or replaced through the mount, still reads
/// (and, if it was in the upper dir, writes) through the open descriptor.
fn open_files_outlive_unlink_and_replace(skip_opens: bool) {
    let Some(f) = setup(skip_opens) else { return };
    // A lower file, never read before it is unlinked.
    let mut lower = fs::File::open(f.mnt.join("docs/a.md")).unwrap();
    fs::remove_file(f.mnt.join("docs/a.md")).unwrap();
    assert!(!f.mnt.join("docs/a.md").exists());
    let mut s = String::new();
    lower.read_to_string(&mut s).unwrap();
    assert_eq!(s, "a\n");
    assert_eq!(lower.metadata().unwrap().len(), 2);
    // An upper file, open read-write, unlinked.
    fs::write(f.mnt.join("notes.txt"), "first\n").unwrap();
    let mut upper = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(f.mnt.join("notes.txt"))
        .unwrap();
    fs::remove_file(f.mnt.join("notes.txt")).unwrap();
    assert!(!f.upper.join("notes.txt").exists());
    upper.seek(std::io::SeekFrom::End(0)).unwrap();
    upper.write_all(b"second\n").unwrap();
    upper.rewind().unwrap();
    let mut s = String::new();
    upper.read_to_string(&mut s).unwrap();
    assert_eq!(s, "first\nsecond\n");
    // A lower file replaced by a rename keeps its old content for its reader.
    let mut old = fs::File::open(f.mnt.join("docs/b.md")).unwrap();
    fs::write(f.mnt.join("new.md"), "replacement\n").unwrap();
    fs::rename(f.mnt.join("new.md"), f.mnt.join("docs/b.md")).unwrap();
    let mut s = String::new();
    old.read_to_string(&mut s).unwrap();
    assert_eq!(s, "b\n");
    assert_eq!(
        fs::read_to_string(f.mnt.join("docs/b.md")).unwrap(),
        "replacement\n"
    );
    // A lower file opened for writing is copied up by its first write.
    let mut w = fs::OpenOptions::new()
        .write(true)
        .open(f.mnt.join("src/lib.rs"))
        .unwrap();
    w.seek(std::io::SeekFrom::End(0)).unwrap();
    w.write_all(b"// more\n").unwrap();
    drop(w);
    assert_eq!(
        fs::read_to_string(f.upper.join("src/lib.rs")).unwrap(),
        "pub fn lib() {}\n// more\n"
    );
    assert_eq!(
        fs::read_to_string(f.mnt.join("src/lib.rs")).unwrap(),
        "pub fn lib() {}\n// more\n"
    );
}

/// With opens skipped the kernel sends no `release`: the daemon's fds of
/// created and read files are bounded all the same.
#[test]
fn kept_fds_are_bounded_when_opens_are_skipped() {
    let Some(f) = setup(true) else { return };
    let fds = || fs::read_dir("/proc/self/fd").unwrap().count();
    let before = fds();
    fs::create_dir(f.mnt.join("many")).unwrap();
    for i in 0..5_000 {
        fs::write(f.mnt.join(format!("many/f{i}")), "x").unwrap();
    }
    for i in 0..5_000 {
        assert_eq!(fs::read(f.mnt.join(format!("many/f{i}"))).unwrap(), b"x");
    }
    // At most 4,096 kept (fewer under a low fd limit); other tests running
    // in this process hold a few more.
    let grown = fds().saturating_sub(before);
    assert!(grown <= 4_096 + 200, "{grown} more fds after 5,000 files");
}

/// Opens are skipped by default over an immutable (git) lower only.
#[test]
fn opens_are_skipped_by_default_over_an_immutable_lower() {
    if !can_mount() {
        return;
    }
    for git in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let lower = tmp.path().join("lower");
        lower_tree(&lower);
        let source: Arc<dyn Source> = if git {
            let run = |args: &[&str]| {
                let st = Command::new("git")
                    .args(args)
                    .current_dir(&lower)
                    .env("GIT_CONFIG_GLOBAL", "/dev/null")
                    .status()
                    .unwrap();
                assert!(st.success(), "git {args:?}");
            };
            run(&["init", "-q"]);
            run(&["add", "-A"]);
            run(&[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-qm",
                "x",
            ]);
            Arc::new(GitSource::open(&lower, None).unwrap())
        } else {
            Arc::new(DirSource::open(&lower).unwrap())
        };
        let view = Arc::new(View::new(source, tmp.path().join("upper")).unwrap());
        fs::create_dir_all(tmp.path().join("cache")).unwrap();
        let cache = Arc::new(TestCache {
            dir: tmp.path().join("cache"),
        });
        let mut cfg = MountConfig::new(view, cache, tmp.path().join("mnt"));
        cfg.bind_dirs = vec![("buck-out".into(), tmp.path().join("buck-out"))];
        let handle = fuse::mount(cfg).unwrap();
        let skipped = handle.stats().skip_opens.load(Ordering::Relaxed);
        assert_eq!(skipped, git, "git lower: {git}");
        // A stat is answered without fetching the blob (git trees record no
        // sizes: the object header has it).
        assert_eq!(
            fs::metadata(handle.mountpoint().join("README"))
                .unwrap()
                .len(),
            17
        );
        assert_eq!(
            fs::read_dir(tmp.path().join("cache")).unwrap().count(),
            0,
            "a stat fetched a blob"
        );
        let before = handle.stats().opens.load(Ordering::Relaxed);
        for _ in 0..5 {
            assert_eq!(
                fs::read_to_string(handle.mountpoint().join("README")).unwrap(),
                "hello from lower\n"
            );
            assert_eq!(
                fs::read_dir(handle.mountpoint().join("docs"))
                    .unwrap()
                    .count(),
                2
            );
        }
        let opens = handle.stats().opens.load(Ordering::Relaxed) - before;
        if git {
            // Answered ENOSYS once each for files and directories.
            assert!(opens <= 2, "{opens} opens reached the daemon");
        } else {
            assert!(opens >= 10, "{opens} opens reached the daemon");
        }
        handle.unmount().unwrap();
    }
}

/// Runs each test with opens sent to the daemon and with opens skipped.
macro_rules! in_both_open_modes {
    ($($t:ident),* $(,)?) => {
        mod opens_sent {
            $( #[test] fn $t() { super::$t(false) } )*
        }
        mod opens_skipped {
            $( #[test] fn $t() { super::$t(true) } )*
        }
    };
}

in_both_open_modes!(
    outside_writes_to_the_upper_dir_are_seen,
    open_files_outlive_unlink_and_replace,
    reads_lower_files_and_listings,
    write_copies_up_and_lands_in_upper,
    delete_writes_whiteouts,
    rename_across_layers,
    opaque_directories_from_other_tools,
    exec_bits_and_symlinks,
    sqlite_wal_on_the_mount,
    buck_out_is_local_and_symlinks_resolve_inside,
    concurrent_readers,
    unmount_with_open_files,
    unmount_from_outside_takes_the_bind_mounts_too
);

/// Not a test on its own: the child process of `recovers_after_kill_9`.
#[test]
#[ignore]
fn child_mount_process() {
    let Ok(dir) = std::env::var("ANTARES_TEST_CHILD_MOUNT") else {
        return;
    };
    let dir = PathBuf::from(dir);
    // ANTARES_TEST_CHILD_LOWER=git: the lower is the git repository's HEAD
    // (immutable, as in production), else the directory itself.
    let source: Arc<dyn Source> = match std::env::var("ANTARES_TEST_CHILD_LOWER").as_deref() {
        Ok("git") => Arc::new(GitSource::open(dir.join("lower"), None).unwrap()),
        _ => Arc::new(DirSource::open(dir.join("lower")).unwrap()),
    };
    let view = Arc::new(View::new(source, dir.join("upper")).unwrap());
    let mut cfg = MountConfig::new(
        view,
        Arc::new(TestCache {
            dir: dir.join("cache"),
        }),
        dir.join("mnt"),
    );
    cfg.bind_dirs = vec![("buck-out".into(), dir.join("buck-out"))];
    if let Some(n) = std::env::var("ANTARES_TEST_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        cfg.threads = n;
    }
    fuse::run_foreground(cfg, |h| {
        let b = &h.binds()[0];
        let pt = h
            .stats()
            .passthrough
            .load(std::sync::atomic::Ordering::Relaxed);
        fs::write(dir.join("ready"), format!("{:?} passthrough={pt}", b.mode)).unwrap();
    })
    .unwrap();
}

#[test]
fn recovers_after_kill_9() {
    if !can_mount() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    lower_tree(&dir.join("lower"));
    fs::create_dir_all(dir.join("cache")).unwrap();
    let mnt = dir.join("mnt");
    let spawn = || {
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_mount_process", "--ignored", "--nocapture"])
            .env("ANTARES_TEST_CHILD_MOUNT", &dir)
            .spawn()
            .unwrap()
    };
    let wait_ready = || {
        for _ in 0..200 {
            if dir.join("ready").exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("child mount did not come up");
    };
    struct Cleanup(PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = fuse::unmount(&self.0);
        }
    }
    let _cleanup = Cleanup(mnt.clone());
    let mut child = spawn();
    wait_ready();
    assert_eq!(
        fs::read_to_string(mnt.join("README")).unwrap(),
        "hello from lower\n"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(fuse::is_stale(&mnt), "a killed daemon leaves ENOTCONN");
    fs::remove_file(dir.join("ready")).unwrap();
    // The next mount cleans the stale one up and works.
    let mut child = spawn();
    wait_ready();
    assert_eq!(
        fs::read_to_string(mnt.join("README")).unwrap(),
        "hello from lower\n"
    );
    assert!(is_mountpoint(&mnt.join("buck-out")));
    // SIGTERM unmounts cleanly (buck-out first).
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    assert!(!is_mountpoint(&mnt));
    assert!(!is_mountpoint(&mnt.join("buck-out")));
}

fn outside_writes_to_the_upper_dir_are_seen(skip_opens: bool) {
    // A long TTL: only the upper-dir watcher's invalidations can make the
    // change visible this fast.
    let Some(f) = setup_with(|c| {
        c.ttl = Some(fuse::LONG_TTL);
        c.skip_opens = Some(skip_opens);
    }) else {
        return;
    };
    // Prime the kernel caches.
    assert_eq!(
        fs::read_to_string(f.mnt.join("README")).unwrap(),
        "hello from lower\n"
    );
    assert_eq!(fs::metadata(f.mnt.join("README")).unwrap().len(), 17);
    assert_eq!(fs::read_dir(f.mnt.join("docs")).unwrap().count(), 2);
    assert!(!f.mnt.join("docs/c.md").exists());
    // Another writer (the two-way sync) changes the upper dir directly.
    let tmp = f.upper.join(".sync-tmp");
    fs::write(&tmp, "changed behind the mount\n").unwrap();
    fs::rename(&tmp, f.upper.join("README")).unwrap();
    fs::create_dir_all(f.upper.join("docs")).unwrap();
    fs::write(f.upper.join("docs/c.md"), "c\n").unwrap();
    fs::write(f.upper.join("docs/.wh.a.md"), "").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        fs::read_to_string(f.mnt.join("README")).unwrap(),
        "changed behind the mount\n"
    );
    assert_eq!(fs::metadata(f.mnt.join("README")).unwrap().len(), 25);
    let mut names: Vec<_> = fs::read_dir(f.mnt.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["b.md", "c.md"]);
    assert!(!f.mnt.join("docs/a.md").exists());
    assert_eq!(fs::read_to_string(f.mnt.join("docs/c.md")).unwrap(), "c\n");
}

#[test]
fn buck_out_served_through_fuse_when_not_bind_mounted() {
    if !can_mount() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    lower_tree(&dir.join("lower"));
    fs::create_dir_all(dir.join("cache")).unwrap();
    let source: Arc<dyn Source> = Arc::new(DirSource::open(dir.join("lower")).unwrap());
    let view = Arc::new(View::new(source, dir.join("upper")).unwrap());
    let mut cfg = MountConfig::new(
        view,
        Arc::new(TestCache {
            dir: dir.join("cache"),
        }),
        dir.join("mnt"),
    );
    cfg.bind_dirs = vec![("buck-out".into(), dir.join("buck-out"))];
    // What happens without CAP_SYS_ADMIN (the bind mount is refused).
    cfg.kernel_bind = false;
    let handle = fuse::mount(cfg).unwrap();
    let mnt = handle.mountpoint().to_path_buf();
    assert_eq!(handle.binds()[0].mode, BindMode::ThroughFuse);
    eprintln!(
        "passthrough negotiated: {}",
        handle
            .stats()
            .passthrough
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    let bo = mnt.join("buck-out");
    assert_eq!(
        statfs_type(&bo),
        statfs_type(&mnt),
        "served by the FUSE mount"
    );
    fs::create_dir_all(bo.join("v2/__srcs")).unwrap();
    std::os::unix::fs::symlink("../../../src/main.rs", bo.join("v2/__srcs/main.rs")).unwrap();
    assert_eq!(
        fs::read_to_string(bo.join("v2/__srcs/main.rs")).unwrap(),
        "fn main() {}\n"
    );
    assert!(dir.join("buck-out/v2/__srcs/main.rs").is_symlink());
    // Files there are opened in passthrough mode: writes, reads and the
    // shared mmap of SQLite's -shm go to the local file.
    sqlite_wal(&bo);
    assert!(dir.join("buck-out/t.db").exists());
    let mut f = fs::File::create(bo.join("out.bin")).unwrap();
    f.write_all(&[7u8; 100_000]).unwrap();
    drop(f);
    assert_eq!(
        fs::read(dir.join("buck-out/out.bin")).unwrap().len(),
        100_000
    );
    assert_eq!(fs::read(bo.join("out.bin")).unwrap(), vec![7u8; 100_000]);
    assert!(!dir.join("upper/buck-out").exists());
    assert_eq!(handle.unmount().unwrap(), Unmounted::Clean);
    assert!(!is_mountpoint(&mnt));
}

fn unmount_from_outside_takes_the_bind_mounts_too(skip_opens: bool) {
    let Some(mut f) = setup(skip_opens) else {
        return;
    };
    assert!(is_mountpoint(&f.mnt.join("buck-out")));
    // What `antares umount` does from another process.
    assert_eq!(fuse::unmount(&f.mnt).unwrap(), Unmounted::Clean);
    assert!(!is_mountpoint(&f.mnt.join("buck-out")));
    assert!(!is_mountpoint(&f.mnt));
    let handle = f.handle.take().unwrap();
    for _ in 0..50 {
        if handle.is_finished() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(handle.unmount().unwrap(), Unmounted::Clean);
}
