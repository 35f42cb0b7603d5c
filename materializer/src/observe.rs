//! Looking at one workspace path ("ours") against its manifest record.
//!
//! The fast path is git's: if the stat signature equals the one recorded at
//! placement, the file is trusted unread. Only when it differs is the file
//! hashed, so a touched-but-unchanged file is not reported as modified.

use crate::fsutil::{is_absent_or_behind_link, open_beneath, StatKey};
use crate::hash::ContentHash;
use crate::manifest::{Kind, Record, Version};
use antares_overlay::ObjectId;
use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;

/// What is in the workspace at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// Nothing there.
    Missing,
    /// Same content as the record (`stat` is the current stat, maybe refreshed).
    Unchanged { stat: StatKey },
    /// A file or symlink that differs from the record, or has no record.
    Present { version: Version, stat: StatKey },
    /// Something that is neither a file nor a symlink (a directory, a fifo).
    Other { what: &'static str },
    /// A directory on the way is a symlink (the user replaced a directory
    /// by a link to another place): what lies behind it is not looked at.
    BehindSymlink,
}

/// What [`Observed::Other`] says of a directory.
pub const A_DIRECTORY: &str = "a directory";

/// A file modified within this window of the manifest's save time may share
/// its stat with the placed version (coarse kernel timestamps): such
/// "racily clean" files are hashed even when their stat matches.
const RACY_WINDOW_NS: i64 = 20_000_000;

/// Whether `rec` was placed too close to the manifest's save for its stat
/// to prove the content unchanged.
fn is_racy(rec: &Record, saved_at_ns: i64) -> bool {
    rec.stat.mtime_ns + RACY_WINDOW_NS >= saved_at_ns
}

/// Observes `rel` below the workspace root `root_dir` (opened) against
/// `record`. `saved_at_ns` is when the manifest holding `record` was
/// written (for the racy-clean rule). The path is resolved without
/// following any symlink ([`open_beneath`]): a path behind a directory the
/// user replaced by a symlink is [`Observed::BehindSymlink`], never what the link
/// points to. The common case, a stat equal to the record's, reads nothing.
pub fn observe_in(
    root_dir: &fs::File,
    rel: &str,
    record: Option<&Record>,
    saved_at_ns: i64,
) -> io::Result<Observed> {
    let file = match open_beneath(root_dir, rel, libc::O_PATH | libc::O_NOFOLLOW) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Ok(Observed::BehindSymlink),
        Err(e) if is_absent_or_behind_link(&e) => return Ok(Observed::Missing),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    let stat = StatKey::of(&meta);
    let ft = meta.file_type();
    if let Some(rec) = record {
        if rec.stat == stat && !is_racy(rec, saved_at_ns) {
            return Ok(Observed::Unchanged { stat });
        }
    }
    let version = if ft.is_file() {
        Version {
            kind: Kind::File,
            executable: meta.permissions().mode() & 0o100 != 0,
            size: meta.len(),
            hash: Some(ContentHash::of_open(&open_beneath(
                root_dir,
                rel,
                libc::O_RDONLY | libc::O_NOFOLLOW,
            )?)?),
            target: None,
            oid: ObjectId::opaque("workspace"),
        }
    } else if ft.is_symlink() {
        let target = String::from_utf8(read_link_fd(&file)?).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidData, "symlink target is not UTF-8")
        })?;
        Version {
            kind: Kind::Symlink,
            executable: false,
            size: target.len() as u64,
            hash: None,
            target: Some(target),
            oid: ObjectId::opaque("workspace"),
        }
    } else if ft.is_dir() {
        return Ok(Observed::Other { what: A_DIRECTORY });
    } else {
        return Ok(Observed::Other {
            what: "a special file",
        });
    };
    match record {
        Some(rec) if rec.version.same_content(&version) => Ok(Observed::Unchanged { stat }),
        _ => Ok(Observed::Present { version, stat }),
    }
}

/// The target of the symlink `link` (opened with `O_PATH | O_NOFOLLOW`).
fn read_link_fd(link: &fs::File) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: valid fd, an empty NUL-terminated path (the fd itself), and a
    // buffer of the length passed.
    let n = unsafe {
        libc::readlinkat(
            link.as_raw_fd(),
            c"".as_ptr(),
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
