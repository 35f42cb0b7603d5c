//! Small file-system primitives shared by the store, placement and state
//! files: atomic writes, directory creation that never follows symlinks,
//! and the stat signature used by the no-read fast path.

#![allow(unsafe_code)] // raw syscalls, each with its SAFETY note

use crate::error::{Error, IoContext, Result};
use std::ffi::{CStr, CString};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// The stat data that, when unchanged, lets a sync trust a file without
/// reading it (the same idea as git's index): inode, size, mode, mtime and
/// ctime in nanoseconds. Any write, chmod, rename-over or touch changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatKey {
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// File type and permission bits.
    pub mode: u32,
    /// Modification time, in ns since the epoch.
    pub mtime_ns: i64,
    /// Status change time, in ns since the epoch.
    pub ctime_ns: i64,
}

impl StatKey {
    /// The key of `rel` below the directory `dir`, `None` if nothing is
    /// there or a symlink is on the way ([`open_beneath`]: no symlink is
    /// followed at any component, so a directory the user replaced by a
    /// symlink never shows what lies behind it).
    pub fn at(dir: &fs::File, rel: &str) -> std::io::Result<Option<StatKey>> {
        match open_beneath(dir, rel, libc::O_PATH | libc::O_NOFOLLOW) {
            Ok(f) => Ok(Some(StatKey::of(&f.metadata()?))),
            Err(e) if is_absent_or_behind_link(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The key of the entry `name` (one component, no '/') of the
    /// directory `dir`, not following a symlink; `None` if nothing is
    /// there. One `fstatat` of a single name: nothing on the way to follow.
    pub fn of_entry(dir: &fs::File, name: &str) -> std::io::Result<Option<StatKey>> {
        if name.contains('/') {
            return Err(std::io::Error::other(format!(
                "{name:?} is a path, not one directory entry"
            )));
        }
        let c = cstr(name)?;
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: valid fd, NUL-terminated name, and a buffer of the right type.
        let rc = unsafe {
            libc::fstatat(
                dir.as_raw_fd(),
                c.as_ptr(),
                st.as_mut_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOENT | libc::ENOTDIR) => Ok(None),
                _ => Err(e),
            };
        }
        // SAFETY: fstatat succeeded, so it filled `st`.
        let st = unsafe { st.assume_init() };
        Ok(Some(StatKey {
            ino: st.st_ino,
            size: st.st_size as u64,
            mode: st.st_mode,
            mtime_ns: st.st_mtime * 1_000_000_000 + st.st_mtime_nsec,
            ctime_ns: st.st_ctime * 1_000_000_000 + st.st_ctime_nsec,
        }))
    }

    /// The key of `meta`.
    pub fn of(meta: &fs::Metadata) -> StatKey {
        StatKey {
            ino: meta.ino(),
            size: meta.size(),
            mode: meta.mode(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
        }
    }
}

/// Writes `bytes` to `path` atomically: a temp file beside it, fsync, rename,
/// fsync of the directory. A crash leaves the old file or the new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_in(path, bytes, path.parent().unwrap_or(Path::new(".")))
}

/// [`write_atomic`] with the temp file in `staging` (a directory on the same
/// file system), for a file in a directory that must never show a stray
/// temp file, such as the workspace root. The content is written and
/// flushed while the file has no name; it gets its temp name only for the
/// rename, so a crash leaves a temp file only between those two calls, and
/// never a partial one.
pub fn write_atomic_in(path: &Path, bytes: &[u8], staging: &Path) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Unique per process and call: threads of one process (a server) may
    // write the same file at once; the last rename wins, none fails.
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = staging.join(format!(".{name}.tmp.{}.{n}", std::process::id()));
    let res = (|| -> std::io::Result<()> {
        let (mut f, unnamed) = match create_unnamed(staging, 0o644) {
            Ok(f) => (f, true),
            Err(e) if unnamed_unsupported(&e) => {
                let named = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .mode(0o644)
                    .open(&tmp)?;
                (named, false)
            }
            Err(e) => return Err(e),
        };
        f.write_all(bytes)?;
        f.sync_all()?;
        if unnamed {
            link_unnamed(&f, &tmp)?;
        }
        fs::rename(&tmp, path)?;
        fs::File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res.at(path.display())
}

/// Creates `rel` (a '/'-separated relative directory path) under `root`,
/// component by component, refusing to go through a symlink or a
/// non-directory: writes must never be redirected outside the workspace.
pub fn create_dirs_nofollow(root: &Path, rel: &str) -> Result<()> {
    let mut cur = fs::File::open(root).at(root.display())?;
    let mut shown = root.to_path_buf();
    for comp in rel.split('/').filter(|c| !c.is_empty()) {
        shown.push(comp);
        let name = cstr(comp).map_err(|e| Error::io(shown.display(), e))?;
        // SAFETY: valid fd and NUL-terminated name.
        let rc = unsafe { libc::mkdirat(cur.as_raw_fd(), name.as_ptr(), 0o777) };
        if let Err(e) = check_rc(rc) {
            if e.kind() != std::io::ErrorKind::AlreadyExists {
                return Err(Error::io(shown.display(), e));
            }
        }
        cur = match open_dir_step(&cur, &name) {
            Ok(next) => next,
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(Error::Invalid {
                path: shown.display().to_string(),
                message:
                    "is a symlink in the workspace where a directory is needed; not following it"
                        .into(),
            }),
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                return Err(Error::Invalid {
                    path: shown.display().to_string(),
                    message: "is a file in the workspace where a directory is needed".into(),
                })
            }
            Err(e) => return Err(Error::io(shown.display(), e)),
        };
    }
    Ok(())
}

/// Opens the directory `name` in `dir`, failing with `ELOOP` if it is a
/// symlink and `ENOTDIR` if it is something else: one step of a walk that
/// never leaves the tree it started in.
fn open_dir_step(dir: &fs::File, name: &std::ffi::CStr) -> std::io::Result<fs::File> {
    match open_at(
        dir,
        name,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
    ) {
        // O_DIRECTORY is checked first: tell a symlink from a file.
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
            match open_at(dir, name, libc::O_PATH | libc::O_NOFOLLOW)?.metadata() {
                Ok(m) if m.file_type().is_symlink() => {
                    Err(std::io::Error::from_raw_os_error(libc::ELOOP))
                }
                _ => Err(e),
            }
        }
        other => other,
    }
}

/// Opens the entry `name` of the directory `dir` with `flags` (and `O_CLOEXEC`).
pub fn open_at(dir: &fs::File, name: &CStr, flags: libc::c_int) -> std::io::Result<fs::File> {
    // SAFETY: valid fd and NUL-terminated name; a returned fd is ours to own.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and nothing else owns it.
    Ok(unsafe { fs::File::from_raw_fd(fd) })
}

/// `struct open_how` of openat2(2) (libc's cannot be built outside it).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Whether openat2 is missing (kernels before 5.6, some seccomp filters):
/// then [`open_beneath`] walks component by component.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// Opens `rel` (a '/'-separated relative path, "" for `dir` itself) below
/// the directory `dir` with `flags`, never following a symlink at any
/// component and never leaving `dir`: `openat2` with `RESOLVE_BENEATH |
/// RESOLVE_NO_SYMLINKS`, or one `O_NOFOLLOW` step per component where the
/// kernel lacks it. A symlink on the way fails with `ELOOP`; a symlink as
/// the last component opens only with `O_PATH | O_NOFOLLOW` (the fd then
/// refers to the link). Every workspace operation resolves its paths this
/// way, so a directory the user replaced by a symlink to another place is
/// never looked into, removed from or written through.
pub fn open_beneath(dir: &fs::File, rel: &str, flags: libc::c_int) -> std::io::Result<fs::File> {
    let path = cstr(if rel.is_empty() { "." } else { rel })?;
    if !NO_OPENAT2.load(Ordering::Relaxed) {
        let how = OpenHow {
            flags: (flags | libc::O_CLOEXEC) as u64,
            mode: 0,
            resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS,
        };
        // SAFETY: valid fd, NUL-terminated path, and an open_how of the size passed.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd >= 0 {
            // SAFETY: a new fd that nothing else owns.
            return Ok(unsafe { fs::File::from_raw_fd(fd as libc::c_int) });
        }
        let e = std::io::Error::last_os_error();
        if !matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) {
            return Err(e);
        }
        NO_OPENAT2.store(true, Ordering::Relaxed);
    }
    walk_beneath(dir, rel, flags)
}

/// [`open_beneath`] without openat2: one `O_NOFOLLOW` open per component.
fn walk_beneath(dir: &fs::File, rel: &str, flags: libc::c_int) -> std::io::Result<fs::File> {
    let mut comps = rel
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .peekable();
    let mut cur: Option<fs::File> = None;
    while let Some(comp) = comps.next() {
        if comp == ".." {
            return Err(std::io::Error::from_raw_os_error(libc::EXDEV));
        }
        let name = cstr(comp)?;
        let at = cur.as_ref().unwrap_or(dir);
        if comps.peek().is_none() {
            if flags & libc::O_DIRECTORY != 0 {
                // A symlink there is ELOOP, as openat2 reports it.
                return open_dir_step(at, &name);
            }
            return open_at(at, &name, flags | libc::O_NOFOLLOW);
        }
        cur = Some(open_dir_step(at, &name)?);
    }
    open_at(cur.as_ref().unwrap_or(dir), c".", flags)
}

/// Whether an error of [`open_beneath`] means nothing is at the path, or a
/// symlink or a file is where a directory was expected on the way there.
pub fn is_absent_or_behind_link(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)
    )
}

/// The directory holding `rel` below `dir` ([`open_beneath`]), and the
/// last component of `rel`.
pub fn parent_beneath(dir: &fs::File, rel: &str) -> std::io::Result<(fs::File, CString)> {
    let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
    let parent = open_beneath(dir, parent, libc::O_PATH | libc::O_DIRECTORY)?;
    Ok((parent, cstr(name)?))
}

/// Removes the file or symlink `rel` below `dir` if it still has the stat
/// `expect` (what the plan saw). `Ok(false)`: it changed, is gone, or lies
/// behind a symlink; it is left alone.
pub fn remove_file_beneath(dir: &fs::File, rel: &str, expect: StatKey) -> std::io::Result<bool> {
    let (parent, name) = match parent_beneath(dir, rel) {
        Ok(x) => x,
        Err(e) if is_absent_or_behind_link(&e) => return Ok(false),
        Err(e) => return Err(e),
    };
    let now = match open_at(&parent, &name, libc::O_PATH | libc::O_NOFOLLOW) {
        Ok(f) => StatKey::of(&f.metadata()?),
        Err(e) if is_absent_or_behind_link(&e) => return Ok(false),
        Err(e) => return Err(e),
    };
    if now != expect {
        return Ok(false);
    }
    unlink_at(&parent, &name)?;
    Ok(true)
}

/// Removes the directory `rel` below `dir` if it is empty (and a real
/// directory, reached without a symlink); anything else is left alone.
pub fn remove_empty_dir_beneath(dir: &fs::File, rel: &str) {
    if let Ok((parent, name)) = parent_beneath(dir, rel) {
        let _ = rmdir_at(&parent, &name);
    }
}

/// A path naming `rel` below `dir` that no later rename or symlink can
/// redirect: the parent is the open directory (through `/proc/self/fd`),
/// so std's path functions that do not follow the last component (remove,
/// rename, `symlink_metadata`, `remove_dir_all`) act inside `dir`. The
/// parent fd must stay open while the path is used.
pub fn pinned_path(dir: &fs::File, rel: &str) -> std::io::Result<(fs::File, PathBuf)> {
    let (parent, name) = parent_beneath(dir, rel)?;
    let path = PathBuf::from(format!("/proc/self/fd/{}", parent.as_raw_fd()))
        .join(std::ffi::OsStr::from_bytes(name.as_bytes()));
    Ok((parent, path))
}

/// A name or path (`bytes`) as the C string a raw syscall takes; one
/// holding a NUL is an error.
pub fn cstr(bytes: impl AsRef<[u8]>) -> std::io::Result<CString> {
    CString::new(bytes.as_ref()).map_err(std::io::Error::other)
}

/// A raw syscall's return code as a result (`errno` on failure).
pub fn check_rc(rc: libc::c_int) -> std::io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A new, empty file with no name in the directory `dir` (`O_TMPFILE`)
/// and permission bits `mode`. Until [`link_unnamed`] names it nobody can
/// see it, and a crash leaves nothing behind. Its inode is allocated near
/// `dir`: creating every new file in one staging directory made ext4 scan a
/// single block group, full of recently freed inodes, for each one.
pub fn create_unnamed(dir: &Path, mode: u32) -> std::io::Result<fs::File> {
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(mode)
        .open(dir)
}

/// [`create_unnamed`] in the open directory `dir` (an `O_PATH` fd will
/// do): nothing is resolved by path, so a directory swapped for a symlink
/// after `dir` was opened cannot redirect the file.
pub fn create_unnamed_in(dir: &fs::File, mode: u32) -> std::io::Result<fs::File> {
    // SAFETY: valid fd and NUL-terminated name; a returned fd is ours to own.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c".".as_ptr(),
            libc::O_TMPFILE | libc::O_WRONLY | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and nothing else owns it.
    Ok(unsafe { fs::File::from_raw_fd(fd) })
}

/// Names the file of [`create_unnamed`] `dest`. Like a rename that does not
/// replace, fails with `AlreadyExists` if `dest` is taken.
pub fn link_unnamed(file: &fs::File, dest: &Path) -> std::io::Result<()> {
    link_unnamed_raw(file, libc::AT_FDCWD, &cstr(dest.as_os_str().as_bytes())?)
}

/// [`link_unnamed`] as the entry `name` of the open directory `dir`.
pub fn link_unnamed_at(file: &fs::File, dir: &fs::File, name: &CStr) -> std::io::Result<()> {
    link_unnamed_raw(file, dir.as_raw_fd(), name)
}

fn link_unnamed_raw(file: &fs::File, dir: libc::c_int, to: &CStr) -> std::io::Result<()> {
    // The file's own magic link: AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH.
    let from = cstr(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    // SAFETY: valid NUL-terminated paths and fds; both stay open during the call.
    check_rc(unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            dir,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    })
}

/// Renames the entry `from` of the directory `from_dir` to the entry `to`
/// of `to_dir` (`renameat2` with `flags`, e.g. `RENAME_NOREPLACE`): both
/// ends are fixed by open directories, never by a path.
pub fn rename_at(
    from_dir: &fs::File,
    from: &CStr,
    to_dir: &fs::File,
    to: &CStr,
    flags: libc::c_uint,
) -> std::io::Result<()> {
    // SAFETY: valid fds and NUL-terminated names.
    check_rc(unsafe {
        libc::renameat2(
            from_dir.as_raw_fd(),
            from.as_ptr(),
            to_dir.as_raw_fd(),
            to.as_ptr(),
            flags,
        )
    })
}

/// Removes the entry `name` (not a directory) of the directory `dir`.
pub fn unlink_at(dir: &fs::File, name: &CStr) -> std::io::Result<()> {
    // SAFETY: valid fd and NUL-terminated name; unlink never follows it.
    check_rc(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) })
}

/// Removes the empty directory `name` of the directory `dir`.
pub fn rmdir_at(dir: &fs::File, name: &CStr) -> std::io::Result<()> {
    // SAFETY: valid fd and NUL-terminated name; rmdir never follows it.
    check_rc(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR) })
}

/// Whether an error of [`create_unnamed`] or [`link_unnamed`] means the file
/// system (or a missing `/proc`) cannot do it: the caller falls back to a
/// named temp file and a rename.
pub fn unnamed_unsupported(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::EOPNOTSUPP
                | libc::EISDIR
                | libc::EINVAL
                | libc::ENOENT
                | libc::EXDEV
                | libc::EPERM
        )
    )
}

/// Flushes the whole file system holding `path` (one call instead of an
/// fsync per placed file; makes the manifest commit durable after the data).
pub fn syncfs(path: &Path) {
    let Ok(c) = cstr(path.as_os_str().as_bytes()) else {
        return;
    };
    // SAFETY: plain syscalls on a valid NUL-terminated path; the fd is closed.
    unsafe {
        let fd = libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd >= 0 {
            libc::syncfs(fd);
            libc::close(fd);
        }
    }
}

/// The names in `dir`, sorted (for tests that check what a write left).
#[cfg(test)]
pub(crate) fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_atomic_write_staged_elsewhere_leaves_nothing_behind() {
        let t = tempfile::tempdir().unwrap();
        let (root, staging) = (t.path().join("ws"), t.path().join("ws/.state"));
        fs::create_dir_all(&staging).unwrap();
        let dest = root.join("config");
        write_atomic_in(&dest, b"one", &staging).unwrap();
        write_atomic_in(&dest, b"two", &staging).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"two");
        assert_eq!(names(&root), [".state", "config"]);
        assert!(names(&staging).is_empty(), "{:?}", names(&staging));
        write_atomic(&dest, b"three").unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"three");
        assert_eq!(names(&root), [".state", "config"]);
    }

    #[test]
    fn a_path_through_a_symlink_is_refused_with_and_without_openat2() {
        let t = tempfile::tempdir().unwrap();
        let (root, outside) = (t.path().join("ws"), t.path().join("outside"));
        fs::create_dir_all(root.join("d/sub")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(root.join("d/sub/f"), "in").unwrap();
        fs::write(outside.join("f"), "out").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("d/link")).unwrap();
        std::os::unix::fs::symlink("sub/f", root.join("d/flink")).unwrap();
        let dir = fs::File::open(&root).unwrap();
        let ro = libc::O_RDONLY;
        type Opener = fn(&fs::File, &str, libc::c_int) -> std::io::Result<fs::File>;
        for opener in [open_beneath as Opener, walk_beneath] {
            let open = |rel: &str, flags| opener(&dir, rel, flags);
            let mut f = open("d/sub/f", ro).unwrap();
            let mut s = String::new();
            std::io::Read::read_to_string(&mut f, &mut s).unwrap();
            assert_eq!(s, "in");
            let e = open("d/link/f", ro).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");
            // A trailing symlink: refused to read, opened as itself with O_PATH.
            assert!(open("d/flink", ro).is_err());
            let l = open("d/flink", libc::O_PATH | libc::O_NOFOLLOW).unwrap();
            assert!(l.metadata().unwrap().file_type().is_symlink());
            let e = open("d/../../outside/f", ro).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EXDEV), "{e}");
            assert!(open("", libc::O_PATH | libc::O_DIRECTORY).is_ok());
        }
        let expect = StatKey::at(&dir, "d/sub/f").unwrap().unwrap();
        assert_eq!(StatKey::at(&dir, "d/link/f").unwrap(), None);
        assert!(!remove_file_beneath(&dir, "d/link/f", expect).unwrap());
        assert!(outside.join("f").exists());
        assert!(remove_file_beneath(&dir, "d/sub/f", expect).unwrap());
        remove_empty_dir_beneath(&dir, "d/link");
        assert!(root.join("d/link").is_symlink());
        remove_empty_dir_beneath(&dir, "d/sub");
        assert!(!root.join("d/sub").exists());
    }
}
