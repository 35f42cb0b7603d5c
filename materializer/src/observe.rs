//! Looking at one workspace path ("ours") against its manifest record.
//!
//! The fast path is git's: if the stat signature equals the one recorded at
//! placement, the file is trusted unread. Only when it differs is the file
//! hashed, so a touched-but-unchanged file is not reported as modified.

use crate::fsutil::StatKey;
use crate::hash::ContentHash;
use crate::manifest::{Kind, Record, Version};
use antares_overlay::ObjectId;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

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
}

/// A file modified within this window of the manifest's save time may share
/// its stat with the placed version (coarse kernel timestamps): such
/// "racily clean" files are hashed even when their stat matches.
const RACY_WINDOW_NS: i64 = 20_000_000;

/// Whether `rec` was placed too close to the manifest's save for its stat
/// to prove the content unchanged.
fn is_racy(rec: &Record, saved_at_ns: i64) -> bool {
    rec.stat.mtime_ns + RACY_WINDOW_NS >= saved_at_ns
}

/// [`observe`] of `rel` below the workspace `root`, with the common case —
/// the stat still matches the record — answered by one `fstatat` relative
/// to `root_dir` (the root, opened); anything else takes the full look.
pub fn observe_in(
    root_dir: &fs::File,
    root: &Path,
    rel: &str,
    record: Option<&Record>,
    saved_at_ns: i64,
) -> io::Result<Observed> {
    if let Some(rec) = record {
        if !is_racy(rec, saved_at_ns) && StatKey::at(root_dir, rel)? == Some(rec.stat) {
            return Ok(Observed::Unchanged { stat: rec.stat });
        }
    }
    observe(&root.join(rel), record, saved_at_ns)
}

/// Observes `path` (absolute) against `record`. `saved_at_ns` is when the
/// manifest holding `record` was written (for the racy-clean rule).
pub fn observe(path: &Path, record: Option<&Record>, saved_at_ns: i64) -> io::Result<Observed> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Observed::Missing),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Ok(Observed::Missing),
        Err(e) => return Err(e),
    };
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
            hash: Some(ContentHash::of_file(path)?),
            target: None,
            oid: ObjectId::opaque("workspace"),
        }
    } else if ft.is_symlink() {
        let target = fs::read_link(path)?;
        let target = target
            .to_str()
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, "symlink target is not UTF-8")
            })?
            .to_string();
        Version {
            kind: Kind::Symlink,
            executable: false,
            size: target.len() as u64,
            hash: None,
            target: Some(target),
            oid: ObjectId::opaque("workspace"),
        }
    } else if ft.is_dir() {
        return Ok(Observed::Other {
            what: "a directory",
        });
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
