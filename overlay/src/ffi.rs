//! The small conversions every raw system call of this crate needs (the
//! View's upper-dir calls in `view/upper.rs`, the FUSE daemon's in
//! `fuse/sys.rs`): C strings in, return codes out, each written once.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `bytes` as a NUL-terminated C string (`EINVAL` if they hold a NUL).
pub(crate) fn cstr(bytes: impl AsRef<[u8]>) -> io::Result<CString> {
    CString::new(bytes.as_ref()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// `p` as a NUL-terminated C string (`EINVAL` for a path holding a NUL).
pub(crate) fn cpath(p: &Path) -> io::Result<CString> {
    cstr(p.as_os_str().as_bytes())
}

/// A call's non-negative result, or the thread's `errno` for a negative one.
pub(crate) fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// `Ok(())` for a zero return, the thread's `errno` otherwise.
pub(crate) fn check(r: libc::c_int) -> io::Result<()> {
    match r {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// A byte count returned by a call, or the thread's `errno` for a negative one.
pub(crate) fn check_len(r: libc::ssize_t) -> io::Result<usize> {
    usize::try_from(r).map_err(|_| io::Error::last_os_error())
}
