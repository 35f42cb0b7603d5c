//! Errors as the kernel takes them: errnos of View and I/O errors, and the
//! names the kernel hands in. A leaf every room of the daemon uses.

use crate::view::ViewError;
use fuser::Errno;
use std::ffi::OsStr;
use std::io;

/// The errno a View error is reported as.
pub(super) fn errno(e: &ViewError) -> Errno {
    Errno::from_i32(e.errno())
}

/// The errno of an I/O error (`EIO` when it has none).
pub(super) fn io_errno(e: &io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

/// A name from the kernel as UTF-8 of at most 255 bytes.
pub(super) fn name_str(name: &OsStr) -> Result<&str, Errno> {
    let s = name.to_str().ok_or(Errno::EINVAL)?;
    if s.len() > 255 {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(s)
}
