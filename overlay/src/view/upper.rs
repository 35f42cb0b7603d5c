//! The upper directory on disk: symlink-safe `*at` operations, whiteouts and
//! opaque markers.
//!
//! Every path into the upper dir is walked one component at a time from an
//! fd of the upper root with `O_NOFOLLOW`, so a symlink planted in the upper
//! dir (by a user, or by another writer racing with us) is never followed
//! when we write.
//!
//! # On-disk format (compatible with kernel overlayfs, Scorpio, fuse-overlayfs)
//!
//! - A **whiteout** for `name` is a character device `name` with device
//!   number 0/0 (what kernel overlayfs and Scorpio write). Since Linux 5.8
//!   creating a 0/0 device needs no privilege; where `mknod` is still
//!   refused (older kernels, some file systems) we write fuse-overlayfs's
//!   unprivileged form instead: an empty regular file `.wh.<name>` next to
//!   it. Both are read.
//! - An **opaque** directory carries the xattr `trusted.overlay.opaque`,
//!   `user.overlay.opaque` or `user.fuseoverlayfs.opaque` with value `y`, or
//!   contains an empty file `.wh..wh..opq` (fuse-overlayfs). We write the
//!   trusted xattr when permitted, else the `.wh..wh..opq` file.
//! - A **user's 0/0 character device** (`mknod c 0 0` on the mount, which
//!   plain files systems allow and pjdfstest checks) is a 0/0 character
//!   device carrying the escape xattr `trusted.antares.escaped` = `y`, in
//!   the spirit of Linux 6.7's escaped overlay xattrs for nested overlays:
//!   the marker says "this entry is content, not a marker". It is not in
//!   the `trusted.overlay.` namespace because kernel overlayfs treats every
//!   0/0 device as a whiteout whatever its xattrs; so to kernel overlayfs
//!   and Scorpio an escaped device reads as a plain whiteout (the safe
//!   direction: the lower entry stays hidden), and a plain whiteout written
//!   by them stays a whiteout here. Setting a trusted xattr needs
//!   CAP_SYS_ADMIN: without it such a `mknod` is refused (EPERM), as kernel
//!   overlayfs always refuses it.
//! - Names starting with `.wh.` are markers and never appear in listings;
//!   neither do our temporary files (`.antares-tmp.` prefix).

#![allow(unsafe_code)] // raw syscalls, each with its SAFETY note

use crate::ffi::{cstr, cvt};
use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Prefix of whiteout files and the opaque marker in the unprivileged form.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The unprivileged opaque-directory marker (fuse-overlayfs).
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// Prefix of our temporary files (hidden from listings).
pub const TEMP_PREFIX: &str = ".antares-tmp.";
/// Xattrs that mark a directory opaque, in the order they are checked.
pub const OPAQUE_XATTRS: [&str; 3] = [
    "trusted.overlay.opaque",
    "user.overlay.opaque",
    "user.fuseoverlayfs.opaque",
];

/// Marks a 0/0 character device as the user's, not a whiteout.
pub const ESCAPE_XATTR: &str = "trusted.antares.escaped";

/// Whether `name` is one of the upper dir's own markers or temp files.
pub fn is_internal_name(name: &str) -> bool {
    name.starts_with(WHITEOUT_PREFIX) || name.starts_with(TEMP_PREFIX)
}

/// Whether an xattr name belongs to the overlay format (hidden from users).
pub fn is_internal_xattr(name: &str) -> bool {
    name.starts_with("trusted.overlay.")
        || name.starts_with("trusted.antares.")
        || name.starts_with("user.overlay.")
        || name.starts_with("user.fuseoverlayfs.")
}

/// `openat(dir, name, flags | O_NOFOLLOW | O_CLOEXEC, mode)`.
pub fn openat(dir: &impl AsFd, name: &str, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let c = cstr(name)?;
    // SAFETY: plain syscall on a valid fd and NUL-terminated name; the
    // returned fd is owned by nobody else.
    let fd = cvt(unsafe {
        libc::openat(
            dir.as_fd().as_raw_fd(),
            c.as_ptr(),
            flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    })?;
    // SAFETY: fd was just returned by openat and is not owned elsewhere.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens a directory below `dir` without following symlinks.
pub fn open_dir(dir: &impl AsFd, name: &str) -> io::Result<OwnedFd> {
    openat(dir, name, libc::O_RDONLY | libc::O_DIRECTORY, 0)
}

/// Opens `rel` (a `/`-separated relative path, "" for `dir` itself) below
/// `dir` as a directory in one `openat2` call that refuses to traverse any
/// symlink or to leave `dir`.
pub fn open_dir_beneath(dir: &impl AsFd, rel: &str) -> io::Result<OwnedFd> {
    let c = cstr(if rel.is_empty() { "." } else { rel })?;
    // SAFETY: open_how is plain data; zeroed then filled.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_BENEATH;
    // SAFETY: valid fd, NUL-terminated path, pointer to a live open_how and its size.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_fd().as_raw_fd(),
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by openat2 and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Opens the directory at `root` (the upper root itself).
pub fn open_root(root: &Path) -> io::Result<OwnedFd> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags_dir()
        .open(root)?;
    Ok(f.into())
}

trait DirFlags {
    fn custom_flags_dir(&mut self) -> &mut Self;
}

impl DirFlags for std::fs::OpenOptions {
    fn custom_flags_dir(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_DIRECTORY)
    }
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`; `Ok(None)` when absent (or a
/// parent is not a directory).
pub fn lstatat(dir: &impl AsFd, name: &str) -> io::Result<Option<libc::stat>> {
    let c = cstr(name)?;
    // SAFETY: zeroed stat is a valid out-buffer for fstatat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd, NUL-terminated name, valid out pointer.
    let r = unsafe {
        libc::fstatat(
            dir.as_fd().as_raw_fd(),
            c.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r == 0 {
        return Ok(Some(st));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => Ok(None),
        _ => Err(e),
    }
}

/// `fstat` of an open fd.
pub fn fstat(fd: &impl AsFd) -> io::Result<libc::stat> {
    // SAFETY: zeroed stat is a valid out-buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and out pointer.
    cvt(unsafe { libc::fstat(fd.as_fd().as_raw_fd(), &mut st) })?;
    Ok(st)
}

/// `syncfs` of the file system holding `fd`.
pub fn syncfs(fd: &impl AsFd) -> io::Result<()> {
    // SAFETY: plain syscall on a valid fd; no memory is passed.
    cvt(unsafe { libc::syncfs(fd.as_fd().as_raw_fd()) }).map(drop)
}

/// Whether a stat result has the form of an overlayfs whiteout (character
/// device 0/0); [`is_whiteout`] also rules out a user's escaped device.
pub fn is_whiteout_stat(st: &libc::stat) -> bool {
    (st.st_mode & libc::S_IFMT) == libc::S_IFCHR && st.st_rdev == 0
}

/// Whether `name` in `dir`, whose lstat is `st`, is a whiteout: a 0/0
/// character device without the escape xattr.
pub fn is_whiteout(dir: &impl AsFd, name: &str, st: &libc::stat) -> io::Result<bool> {
    if !is_whiteout_stat(st) {
        return Ok(false);
    }
    let path = cstr(format!("/proc/self/fd/{}/{name}", dir.as_fd().as_raw_fd()))?;
    let xattr = cstr(ESCAPE_XATTR)?;
    let mut buf = [0u8; 4];
    // SAFETY: valid NUL-terminated path and name, and a buffer of its length.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            xattr.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n >= 0 {
        return Ok(&buf[..n as usize] != b"y");
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENODATA | libc::ENOTSUP | libc::ERANGE | libc::EPERM | libc::EACCES) => Ok(true),
        _ => Err(e),
    }
}

/// Creates the user's 0/0 character device `name` in `dir` with permission
/// bits `perm`: made and escaped under a temp name, then renamed into
/// place, so it is never seen as a whiteout. Fails with `AlreadyExists` if
/// `name` is taken, EPERM where trusted xattrs cannot be set.
pub fn make_device_0_0(dir: &impl AsFd, name: &str, perm: u32) -> io::Result<()> {
    let tmp = temp_name(name);
    mknodat(dir, &tmp, libc::S_IFCHR | perm, 0)?;
    let escape = || -> io::Result<()> {
        let path = cstr(format!("/proc/self/fd/{}/{tmp}", dir.as_fd().as_raw_fd()))?;
        let xattr = cstr(ESCAPE_XATTR)?;
        // SAFETY: valid NUL-terminated path and name, and a 1-byte value.
        cvt(unsafe { libc::lsetxattr(path.as_ptr(), xattr.as_ptr(), b"y".as_ptr().cast(), 1, 0) })?;
        fchmodat(dir, &tmp, perm)?;
        renameat2(dir, &tmp, dir, name, libc::RENAME_NOREPLACE)
    };
    escape().inspect_err(|_| {
        let _ = unlinkat(dir, &tmp, 0);
    })
}

/// Whether `st` is a directory.
pub fn is_dir_stat(st: &libc::stat) -> bool {
    (st.st_mode & libc::S_IFMT) == libc::S_IFDIR
}

/// `unlinkat(dir, name, flags)`.
pub fn unlinkat(dir: &impl AsFd, name: &str, flags: i32) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: valid fd and NUL-terminated name.
    cvt(unsafe { libc::unlinkat(dir.as_fd().as_raw_fd(), c.as_ptr(), flags) }).map(drop)
}

/// `mkdirat(dir, name, mode)`.
pub fn mkdirat(dir: &impl AsFd, name: &str, mode: u32) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: valid fd and NUL-terminated name.
    cvt(unsafe { libc::mkdirat(dir.as_fd().as_raw_fd(), c.as_ptr(), mode as libc::mode_t) })
        .map(drop)
}

/// `mknodat(dir, name, mode, rdev)`.
pub fn mknodat(dir: &impl AsFd, name: &str, mode: u32, rdev: u64) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: valid fd and NUL-terminated name.
    cvt(unsafe {
        libc::mknodat(
            dir.as_fd().as_raw_fd(),
            c.as_ptr(),
            mode as libc::mode_t,
            rdev as libc::dev_t,
        )
    })
    .map(drop)
}

/// `symlinkat(target, dir, name)`.
pub fn symlinkat(target: &[u8], dir: &impl AsFd, name: &str) -> io::Result<()> {
    let t = cstr(target)?;
    let c = cstr(name)?;
    // SAFETY: valid fd and NUL-terminated strings.
    cvt(unsafe { libc::symlinkat(t.as_ptr(), dir.as_fd().as_raw_fd(), c.as_ptr()) }).map(drop)
}

/// `readlinkat(dir, name)`: the link's target.
pub fn readlinkat(dir: &impl AsFd, name: &str) -> io::Result<Vec<u8>> {
    let c = cstr(name)?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: valid fd, name and buffer of the given length.
    let n = unsafe {
        libc::readlinkat(
            dir.as_fd().as_raw_fd(),
            c.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// `renameat2(from_dir, from, to_dir, to, flags)`.
pub fn renameat2(
    from_dir: &impl AsFd,
    from: &str,
    to_dir: &impl AsFd,
    to: &str,
    flags: u32,
) -> io::Result<()> {
    let a = cstr(from)?;
    let b = cstr(to)?;
    // SAFETY: valid fds and NUL-terminated names.
    cvt(unsafe {
        libc::renameat2(
            from_dir.as_fd().as_raw_fd(),
            a.as_ptr(),
            to_dir.as_fd().as_raw_fd(),
            b.as_ptr(),
            flags,
        )
    })
    .map(drop)
}

/// `linkat(from_dir, from, to_dir, to)`: a hard link, never following a symlink.
pub fn linkat(from_dir: &impl AsFd, from: &str, to_dir: &impl AsFd, to: &str) -> io::Result<()> {
    let a = cstr(from)?;
    let b = cstr(to)?;
    // SAFETY: valid fds and NUL-terminated names; flags 0 = do not follow.
    cvt(unsafe {
        libc::linkat(
            from_dir.as_fd().as_raw_fd(),
            a.as_ptr(),
            to_dir.as_fd().as_raw_fd(),
            b.as_ptr(),
            0,
        )
    })
    .map(drop)
}

/// `fchmodat` without following a final symlink (symlinks have no mode on
/// Linux; callers never chmod one).
pub fn fchmodat(dir: &impl AsFd, name: &str, mode: u32) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: valid fd and NUL-terminated name.
    cvt(unsafe { libc::fchmodat(dir.as_fd().as_raw_fd(), c.as_ptr(), mode as libc::mode_t, 0) })
        .map(drop)
}

/// `fchownat(dir, name, uid, gid, AT_SYMLINK_NOFOLLOW)`.
pub fn fchownat(dir: &impl AsFd, name: &str, uid: u32, gid: u32) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: valid fd and NUL-terminated name.
    cvt(unsafe {
        libc::fchownat(
            dir.as_fd().as_raw_fd(),
            c.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

/// `utimensat(.., AT_SYMLINK_NOFOLLOW)`; `None` leaves a time unchanged.
pub fn utimensat(
    dir: &impl AsFd,
    name: &str,
    atime: Option<libc::timespec>,
    mtime: Option<libc::timespec>,
) -> io::Result<()> {
    let c = cstr(name)?;
    let omit = libc::timespec {
        tv_sec: 0,
        tv_nsec: libc::UTIME_OMIT,
    };
    let ts = [atime.unwrap_or(omit), mtime.unwrap_or(omit)];
    // SAFETY: valid fd, name and a two-element timespec array.
    cvt(unsafe {
        libc::utimensat(
            dir.as_fd().as_raw_fd(),
            c.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

/// Reads an xattr of an fd; `Ok(None)` when it is not set or not supported.
fn fgetxattr_small(fd: &impl AsFd, name: &CStr) -> io::Result<Option<Vec<u8>>> {
    let mut buf = [0u8; 16];
    // SAFETY: valid fd, name and buffer.
    let n = unsafe {
        libc::fgetxattr(
            fd.as_fd().as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n >= 0 {
        return Ok(Some(buf[..n as usize].to_vec()));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENODATA) | Some(libc::ENOTSUP) | Some(libc::ERANGE) | Some(libc::EPERM)
        | Some(libc::EACCES) => Ok(None),
        _ => Err(e),
    }
}

/// Whether the open directory `dir` is opaque (any of the xattrs or the
/// unprivileged marker file).
pub fn is_opaque(dir: &impl AsFd) -> io::Result<bool> {
    for x in OPAQUE_XATTRS {
        let name = cstr(x)?;
        if fgetxattr_small(dir, &name)?.as_deref() == Some(b"y") {
            return Ok(true);
        }
    }
    Ok(lstatat(dir, OPAQUE_MARKER)?.is_some())
}

/// Marks the open directory `dir` opaque: the trusted xattr where we may
/// set it (root), else the `.wh..wh..opq` marker file.
pub fn set_opaque(dir: &impl AsFd) -> io::Result<()> {
    let name = cstr(OPAQUE_XATTRS[0])?;
    // SAFETY: valid fd, name and value buffer.
    let r = unsafe {
        libc::fsetxattr(
            dir.as_fd().as_raw_fd(),
            name.as_ptr(),
            b"y".as_ptr().cast(),
            1,
            0,
        )
    };
    if r == 0 {
        return Ok(());
    }
    drop(openat(
        dir,
        OPAQUE_MARKER,
        libc::O_WRONLY | libc::O_CREAT,
        0o600,
    )?);
    Ok(())
}

/// The name of the unprivileged whiteout file for `name`, if it fits in
/// `NAME_MAX` (a 252+ byte name can only be whited out with a device).
fn whiteout_file(name: &str) -> Option<String> {
    (name.len() + WHITEOUT_PREFIX.len() <= 255).then(|| format!("{WHITEOUT_PREFIX}{name}"))
}

/// Whether `name` in `dir` is whited out (either form).
pub fn is_whited_out(dir: &impl AsFd, name: &str) -> io::Result<bool> {
    if let Some(st) = lstatat(dir, name)? {
        return is_whiteout(dir, name, &st);
    }
    match whiteout_file(name) {
        Some(w) => Ok(lstatat(dir, &w)?.is_some()),
        None => Ok(false),
    }
}

/// Writes a whiteout for `name` in `dir`, replacing whatever upper entry is
/// there (the caller has already removed it). A 0/0 character device where
/// permitted, else the `.wh.<name>` file.
pub fn make_whiteout(dir: &impl AsFd, name: &str) -> io::Result<()> {
    match mknodat(dir, name, libc::S_IFCHR, 0) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EPERM) | Some(libc::EACCES) | Some(libc::EOPNOTSUPP)
            ) =>
        {
            let Some(w) = whiteout_file(name) else {
                return Err(e);
            };
            let f = openat(dir, &w, libc::O_WRONLY | libc::O_CREAT, 0o600)?;
            drop(f);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Removes any whiteout for `name` in `dir`. Returns whether there was one.
pub fn clear_whiteout(dir: &impl AsFd, name: &str) -> io::Result<bool> {
    let mut had = false;
    if let Some(st) = lstatat(dir, name)? {
        if is_whiteout(dir, name, &st)? {
            unlinkat(dir, name, 0)?;
            had = true;
        }
    }
    let Some(w) = whiteout_file(name) else {
        return Ok(had);
    };
    match unlinkat(dir, &w, 0) {
        Ok(()) => had = true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(had)
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh temporary name in the upper dir (hidden from listings).
pub fn temp_name(for_name: &str) -> String {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    // Keep the name short enough even for a 255-byte `for_name`.
    let stem: String = for_name.chars().take(64).collect();
    format!("{TEMP_PREFIX}{}.{n}.{stem}", std::process::id())
}

/// Creates a new exclusive temp file in `dir`; returns its name and file.
pub fn create_temp(dir: &impl AsFd, for_name: &str, mode: u32) -> io::Result<(String, File)> {
    loop {
        let name = temp_name(for_name);
        match openat(
            dir,
            &name,
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
            mode,
        ) {
            Ok(fd) => return Ok((name, File::from(fd))),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Removes `name` in `dir` and, if it is a directory, everything below it
/// (without following symlinks).
pub fn remove_tree(dir: &impl AsFd, name: &str) -> io::Result<()> {
    let Some(st) = lstatat(dir, name)? else {
        return Ok(());
    };
    if !is_dir_stat(&st) {
        return unlinkat(dir, name, 0);
    }
    let sub = open_dir(dir, name)?;
    for child in list_names(&sub)? {
        remove_tree(&sub, &child)?;
    }
    unlinkat(dir, name, libc::AT_REMOVEDIR)
}

/// The names in an open directory (without `.` and `..`), unfiltered.
pub fn list_names(dir: &impl AsFd) -> io::Result<Vec<String>> {
    // Re-open through /proc so the caller's fd offset is untouched.
    let path = format!("/proc/self/fd/{}", dir.as_fd().as_raw_fd());
    let mut out = Vec::new();
    for ent in std::fs::read_dir(path)? {
        let ent = ent?;
        match ent.file_name().into_string() {
            Ok(n) => out.push(n),
            Err(n) => tracing::warn!("skipping non-UTF-8 name {n:?} in the upper dir"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    fn setup() -> (tempfile::TempDir, OwnedFd) {
        let t = tempfile::tempdir().unwrap();
        let fd = open_root(t.path()).unwrap();
        (t, fd)
    }

    fn root() -> bool {
        // SAFETY: no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if !root {
            println!("SKIPPED: needs root (device nodes, trusted xattrs)");
        }
        root
    }

    #[test]
    fn a_device_gets_the_number_asked_for_and_a_whiteout_is_0_0() {
        let (t, dir) = setup();
        if !root() {
            return;
        }
        let null = libc::makedev(1, 3);
        mknodat(&dir, "null", libc::S_IFCHR | 0o600, null).unwrap();
        let m = std::fs::symlink_metadata(t.path().join("null")).unwrap();
        assert!(m.file_type().is_char_device());
        assert_eq!(m.rdev(), null);
        make_whiteout(&dir, "gone").unwrap();
        let m = std::fs::symlink_metadata(t.path().join("gone")).unwrap();
        assert!(m.file_type().is_char_device() && m.rdev() == 0, "{m:?}");
        assert!(is_whited_out(&dir, "gone").unwrap());
    }

    #[test]
    fn a_users_0_0_device_is_escaped_and_not_a_whiteout() {
        let (t, dir) = setup();
        if !root() {
            return;
        }
        make_device_0_0(&dir, "dev", 0o640).unwrap();
        let m = std::fs::symlink_metadata(t.path().join("dev")).unwrap();
        assert!(m.file_type().is_char_device() && m.rdev() == 0);
        assert_eq!(m.mode() & 0o7777, 0o640);
        let st = lstatat(&dir, "dev").unwrap().unwrap();
        assert!(!is_whiteout(&dir, "dev", &st).unwrap());
        assert!(!is_whited_out(&dir, "dev").unwrap());
        assert!(!clear_whiteout(&dir, "dev").unwrap(), "the device stays");
        assert!(lstatat(&dir, "dev").unwrap().is_some());
        // A plain 0/0 device (kernel overlayfs, Scorpio) is still a whiteout.
        make_whiteout(&dir, "plain").unwrap();
        let st = lstatat(&dir, "plain").unwrap().unwrap();
        assert!(is_whiteout(&dir, "plain", &st).unwrap());
        assert!(clear_whiteout(&dir, "plain").unwrap());
    }
}
