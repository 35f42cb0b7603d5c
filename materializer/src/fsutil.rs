//! Small file-system primitives shared by the store, placement and state
//! files: atomic writes, directory creation that never follows symlinks,
//! and the stat signature used by the no-read fast path.

use crate::error::{Error, IoContext, Result};
use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// The stat data that, when unchanged, lets a sync trust a file without
/// reading it (the same idea as git's index): inode, size, mode, mtime and
/// ctime in nanoseconds. Any write, chmod, rename-over or touch changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatKey {
    pub ino: u64,
    pub size: u64,
    pub mode: u32,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl StatKey {
    /// The key of `rel` (no symlink followed) below the directory `dir`,
    /// `None` if nothing is there. A path relative to an open directory is
    /// cheaper for the kernel to resolve than the absolute one, which counts
    /// when a sync checks every file of a large workspace.
    pub fn at(dir: &fs::File, rel: &str) -> std::io::Result<Option<StatKey>> {
        use std::os::fd::AsRawFd;
        let c = std::ffi::CString::new(rel).map_err(std::io::Error::other)?;
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: valid fd, NUL-terminated path, and a buffer of the right type.
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
    let mut cur = root.to_path_buf();
    for comp in rel.split('/').filter(|c| !c.is_empty()) {
        cur.push(comp);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => continue,
            Ok(m) => {
                return Err(Error::Invalid {
                    path: cur.display().to_string(),
                    message: if m.file_type().is_symlink() {
                        "is a symlink in the workspace where a directory is needed; not following it".into()
                    } else {
                        "is a file in the workspace where a directory is needed".into()
                    },
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match fs::create_dir(&cur) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    // Raced with another creator: re-check what is there now.
                    let m = fs::symlink_metadata(&cur).at(cur.display())?;
                    if !m.is_dir() {
                        return Err(Error::Invalid {
                            path: cur.display().to_string(),
                            message: "appeared as a non-directory while creating it".into(),
                        });
                    }
                }
                Err(e) => return Err(Error::io(cur.display(), e)),
            },
            Err(e) => return Err(Error::io(cur.display(), e)),
        }
    }
    Ok(())
}

/// A path as the C string a raw syscall takes.
pub fn c_path(p: &Path) -> std::io::Result<std::ffi::CString> {
    std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).map_err(std::io::Error::other)
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

/// Names the file of [`create_unnamed`] `dest`. Like a rename that does not
/// replace, fails with `AlreadyExists` if `dest` is taken.
pub fn link_unnamed(file: &fs::File, dest: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let from = c_path(Path::new(&format!("/proc/self/fd/{}", file.as_raw_fd())))?;
    let to = c_path(dest)?;
    // SAFETY: valid NUL-terminated paths; the fd stays open during the call.
    check_rc(unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    })
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
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
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
}
