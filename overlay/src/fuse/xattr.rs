//! Extended attributes, kept on the upper file (a lower file is copied up
//! to be given one). The overlay's own xattrs (opaque markers) are hidden:
//! not listed, not readable, not settable through the mount.

use super::errno::{errno, io_errno, name_str};
use super::fs::OverlayFs;
use super::sys;
use crate::view::upper;
use fuser::{Errno, INodeNo, ReplyXattr};
use std::ffi::{CString, OsStr};

/// The most a value or a name list may hold (the kernel's own limit).
const XATTR_BUF: usize = 64 * 1024;

/// Answers a get or list of `data`: its size when the caller asks
/// (`size == 0`), else the data if it fits.
pub(super) fn reply_xattr(reply: ReplyXattr, size: u32, data: Result<Vec<u8>, Errno>) {
    match data {
        Ok(data) if size == 0 => reply.size(data.len() as u32),
        Ok(data) if data.len() > size as usize => reply.error(Errno::ERANGE),
        Ok(data) => reply.data(&data),
        Err(e) => reply.error(e),
    }
}

/// A user-given xattr name, refused (`internal`) when it is one of ours.
fn user_name(name: &OsStr, internal: Errno) -> Result<CString, Errno> {
    let n = name_str(name)?;
    if upper::is_internal_xattr(n) {
        return Err(internal);
    }
    crate::ffi::cstr(n).map_err(|_| Errno::EINVAL)
}

impl OverlayFs {
    /// The upper path of `ino` as a C string (`None`: it has no upper
    /// file); with `copy_up`, a lower file is copied up first.
    fn xattr_path(&self, ino: INodeNo, copy_up: bool) -> Result<Option<CString>, Errno> {
        let (key, node) = self.node(ino)?;
        let view = self.view(key.0)?;
        let node = if copy_up && !node.is_upper() {
            view.copy_up(&key.1, Some(self.cache.as_ref()))
                .map_err(|e| errno(&e))?
        } else {
            node
        };
        match view.upper_path(&node) {
            Some(p) => Ok(Some(sys::cpath(&p).map_err(|_| Errno::EINVAL)?)),
            None => Ok(None),
        }
    }

    /// `setxattr`.
    pub(super) fn set_xattr(
        &self,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
    ) -> Result<(), Errno> {
        let name = user_name(name, Errno::EPERM)?;
        let p = self.xattr_path(ino, true)?.ok_or(Errno::EIO)?;
        sys::lsetxattr(&p, &name, value, flags).map_err(|e| io_errno(&e))
    }

    /// `getxattr`.
    pub(super) fn get_xattr(&self, ino: INodeNo, name: &OsStr) -> Result<Vec<u8>, Errno> {
        let name = user_name(name, Errno::NO_XATTR)?;
        let p = self.xattr_path(ino, false)?.ok_or(Errno::NO_XATTR)?;
        let mut buf = vec![0u8; XATTR_BUF];
        let n = sys::lgetxattr(&p, &name, &mut buf).map_err(|e| io_errno(&e))?;
        buf.truncate(n);
        Ok(buf)
    }

    /// `listxattr`: the upper file's names but ours.
    pub(super) fn list_xattr(&self, ino: INodeNo) -> Result<Vec<u8>, Errno> {
        let Some(p) = self.xattr_path(ino, false)? else {
            return Ok(Vec::new());
        };
        let mut buf = vec![0u8; XATTR_BUF];
        let n = sys::llistxattr(&p, &mut buf).map_err(|e| io_errno(&e))?;
        buf.truncate(n);
        let mut out = Vec::new();
        for n in buf.split(|b| *b == 0).filter(|n| !n.is_empty()) {
            if !upper::is_internal_xattr(&String::from_utf8_lossy(n)) {
                out.extend_from_slice(n);
                out.push(0);
            }
        }
        Ok(out)
    }

    /// `removexattr`.
    pub(super) fn remove_xattr(&self, ino: INodeNo, name: &OsStr) -> Result<(), Errno> {
        let name = user_name(name, Errno::NO_XATTR)?;
        let p = self.xattr_path(ino, false)?.ok_or(Errno::NO_XATTR)?;
        sys::lremovexattr(&p, &name).map_err(|e| io_errno(&e))
    }
}
