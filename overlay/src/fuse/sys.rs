//! Every raw system call of the FUSE daemon, each behind a safe function.
//!
//! The rest of `fuse/` holds no `unsafe`: what the kernel is asked and why
//! lives with the callers, what makes each call sound lives here, in its
//! SAFETY note. Errors come back as `io::Error` (from `errno`).

#![allow(unsafe_code)] // raw syscalls, each with its SAFETY note

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

pub(super) use crate::ffi::cpath;
use crate::ffi::{check, check_len, cvt};

/// Raises the soft fd limit to the hard one and returns the soft limit in
/// force afterwards (0 when it cannot be read).
pub(super) fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write only the given structs.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    lim.rlim_cur
}

/// The daemon's effective user and group ids.
pub(super) fn effective_ids() -> (u32, u32) {
    // SAFETY: these getters take nothing and cannot fail.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

/// `fchown(f, uid, gid)`; `None` leaves that id unchanged.
pub(super) fn fchown(f: &File, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
    // SAFETY: fchown on an fd kept open by `f`; -1 (u32::MAX) leaves an
    // id unchanged.
    check(unsafe {
        libc::fchown(
            f.as_raw_fd(),
            uid.unwrap_or(u32::MAX),
            gid.unwrap_or(u32::MAX),
        )
    })
}

/// `futimens(f, [atime, mtime])`; `None` leaves that time unchanged.
pub(super) fn futimens(
    f: &File,
    atime: Option<libc::timespec>,
    mtime: Option<libc::timespec>,
) -> io::Result<()> {
    let omit = libc::timespec {
        tv_sec: 0,
        tv_nsec: libc::UTIME_OMIT,
    };
    let ts = [atime.unwrap_or(omit), mtime.unwrap_or(omit)];
    // SAFETY: futimens on an fd kept open by `f` with a two-element array.
    check(unsafe { libc::futimens(f.as_raw_fd(), ts.as_ptr()) })
}

/// Whether `f` was opened for writing (`fcntl(F_GETFL)`).
pub(super) fn is_open_for_writing(f: &File) -> bool {
    // SAFETY: fcntl F_GETFL on an fd kept open by `f` reads only its flags.
    let fl = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETFL) };
    fl >= 0 && fl & libc::O_ACCMODE != libc::O_RDONLY
}

/// `statvfs(p)`.
pub(super) fn statvfs(p: &Path) -> io::Result<libc::statvfs> {
    let c = cpath(p)?;
    // SAFETY: a zeroed statvfs is a valid out-buffer (plain integers).
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: NUL-terminated path and a valid out pointer.
    check(unsafe { libc::statvfs(c.as_ptr(), &mut s) })?;
    Ok(s)
}

/// `statfs(p)`, for its error only (a dead FUSE mount says `ENOTCONN`).
pub(super) fn statfs(p: &Path) -> io::Result<()> {
    let c = cpath(p)?;
    // SAFETY: a zeroed statfs is a valid out-buffer (plain integers).
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: NUL-terminated path and a valid out pointer.
    check(unsafe { libc::statfs(c.as_ptr(), &mut s) })
}

/// `lsetxattr(p, name, value, flags)`.
pub(super) fn lsetxattr(p: &CStr, name: &CStr, value: &[u8], flags: i32) -> io::Result<()> {
    // SAFETY: NUL-terminated path and name; value pointer and length
    // from one slice.
    check(unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    })
}

/// `lgetxattr(p, name)` into `buf`; returns the value's length.
pub(super) fn lgetxattr(p: &CStr, name: &CStr, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: NUL-terminated path and name; buffer pointer and length
    // from one slice.
    check_len(unsafe {
        libc::lgetxattr(
            p.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    })
}

/// `llistxattr(p)` into `buf`; returns the length of the name list.
pub(super) fn llistxattr(p: &CStr, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: NUL-terminated path; buffer pointer and length from one slice.
    check_len(unsafe { libc::llistxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) })
}

/// `lremovexattr(p, name)`.
pub(super) fn lremovexattr(p: &CStr, name: &CStr) -> io::Result<()> {
    // SAFETY: NUL-terminated path and name.
    check(unsafe { libc::lremovexattr(p.as_ptr(), name.as_ptr()) })
}

/// `fallocate(f, mode, offset, length)`.
pub(super) fn fallocate(f: &File, mode: i32, offset: u64, length: u64) -> io::Result<()> {
    // SAFETY: fallocate on an fd kept open by `f`; the kernel checks the
    // range and mode.
    check(unsafe {
        libc::fallocate(
            f.as_raw_fd(),
            mode,
            offset as libc::off_t,
            length as libc::off_t,
        )
    })
}

/// `umount2(p, flags)`.
pub(super) fn umount2(p: &Path, flags: i32) -> io::Result<()> {
    let c = cpath(p)?;
    // SAFETY: NUL-terminated path.
    check(unsafe { libc::umount2(c.as_ptr(), flags) })
}

/// `mount(src, target, MS_BIND | MS_REC)`: a recursive bind mount (needs CAP_SYS_ADMIN).
pub(super) fn bind_mount(src: &Path, target: &Path) -> io::Result<()> {
    let s = cpath(src)?;
    let t = cpath(target)?;
    // SAFETY: NUL-terminated paths; a bind mount needs no fs type or data.
    check(unsafe {
        libc::mount(
            s.as_ptr(),
            t.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND | libc::MS_REC,
            std::ptr::null(),
        )
    })
}

/// Installs `handler` for each of `signals`; returns the previous actions
/// for [`restore_signal_handlers`]. `handler` must be async-signal-safe.
pub(super) fn install_signal_handlers(
    signals: &[libc::c_int],
    handler: extern "C" fn(libc::c_int),
) -> Vec<libc::sigaction> {
    signals
        .iter()
        // SAFETY: zeroed sigactions are valid (no flags, empty mask once
        // sigemptyset ran); the handler is a plain `extern "C"` function,
        // async-signal-safe by this function's contract; the old action
        // is written into our own struct.
        .map(|&sig| unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = handler as libc::sighandler_t;
            libc::sigemptyset(&mut act.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(sig, &act, &mut old);
            old
        })
        .collect()
}

/// Puts back the actions [`install_signal_handlers`] returned.
pub(super) fn restore_signal_handlers(signals: &[libc::c_int], old: &[libc::sigaction]) {
    for (sig, act) in signals.iter().zip(old) {
        // SAFETY: restoring an action previously returned by sigaction.
        unsafe { libc::sigaction(*sig, act, std::ptr::null_mut()) };
    }
}

/// A non-blocking inotify instance.
pub(super) struct Inotify {
    fd: OwnedFd,
}

impl Inotify {
    /// `inotify_init1(IN_CLOEXEC | IN_NONBLOCK)`.
    pub(super) fn new() -> io::Result<Inotify> {
        // SAFETY: plain syscall; the fd is owned below.
        let fd = cvt(unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) })?;
        Ok(Inotify {
            // SAFETY: fd was just returned by inotify_init1 and is owned by
            // nothing else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Watches `path` for `mask`; the watch descriptor, `None` on failure.
    pub(super) fn add_watch(&self, path: &Path, mask: u32) -> Option<i32> {
        let c = cpath(path).ok()?;
        // SAFETY: a valid inotify fd and a NUL-terminated path.
        let wd = unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), c.as_ptr(), mask) };
        (wd >= 0).then_some(wd)
    }

    /// Drops watch `wd` (a descriptor from [`Self::add_watch`]).
    pub(super) fn rm_watch(&self, wd: i32) {
        // SAFETY: a valid inotify fd; a stale descriptor is only EINVAL.
        unsafe { libc::inotify_rm_watch(self.fd.as_raw_fd(), wd) };
    }

    /// Waits up to `timeout_ms` for events, then reads what is there into
    /// `buf`; returns the bytes read (0 when none came).
    pub(super) fn read(&self, buf: &mut [u8], timeout_ms: i32) -> usize {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, timeout_ms) } <= 0 {
            return 0;
        }
        // SAFETY: reading into a buffer of the given length.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        usize::try_from(n).unwrap_or(0)
    }
}

/// The events in `buf` (as filled by [`Inotify::read`]), each with its name
/// (empty for an event on the watched directory itself).
pub(super) fn inotify_events(buf: &[u8]) -> Vec<(libc::inotify_event, &[u8])> {
    let mut out = Vec::new();
    let mut off = 0usize;
    let n = buf.len();
    let head = std::mem::size_of::<libc::inotify_event>();
    while off + head <= n {
        // SAFETY: `off + head <= n`, so a whole inotify_event lies at `off`;
        // read_unaligned copes with the byte buffer's alignment.
        let ev: libc::inotify_event =
            unsafe { std::ptr::read_unaligned(buf[off..].as_ptr().cast()) };
        let name_bytes = &buf[off + head..(off + head + ev.len as usize).min(n)];
        let name = name_bytes.split(|b| *b == 0).next().unwrap_or(&[]);
        off += head + ev.len as usize;
        out.push((ev, name));
    }
    out
}
