//! Attributes: a View node as the kernel's `FileAttr`, and `setattr`.
//!
//! An upper node reports its own `stat`. A lower node has none: it is
//! shown as owned by the daemon's user, dated at mount time, with the
//! size from the tree, the source's object metadata or the cached blob
//! (remembered per inode, see `InodeData::lower_size`).

use super::errno::{errno, io_errno};
use super::fs::OverlayFs;
use super::sys;
use crate::entry::{EntryKind, TreeEntry};
use crate::path::RepoPath;
use crate::view::{upper, Node};
use fuser::{Errno, FileAttr, FileHandle, FileType, INodeNo, TimeOrNow};
use std::fs::File;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The kernel's file type of `node`.
pub(super) fn file_type(node: &Node) -> FileType {
    match &node.upper {
        Some(st) => match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => FileType::Directory,
            libc::S_IFLNK => FileType::Symlink,
            libc::S_IFIFO => FileType::NamedPipe,
            libc::S_IFSOCK => FileType::Socket,
            libc::S_IFCHR => FileType::CharDevice,
            libc::S_IFBLK => FileType::BlockDevice,
            _ => FileType::RegularFile,
        },
        None => match node.kind {
            EntryKind::Dir | EntryKind::Gitlink => FileType::Directory,
            EntryKind::Symlink => FileType::Symlink,
            EntryKind::File => FileType::RegularFile,
        },
    }
}

fn time(sec: i64, nsec: i64) -> SystemTime {
    if sec >= 0 {
        UNIX_EPOCH + Duration::new(sec as u64, nsec as u32)
    } else {
        UNIX_EPOCH - Duration::from_secs(sec.unsigned_abs())
    }
}

/// A FUSE time as a `timespec` for `utimensat`/`futimens`.
pub(super) fn timespec(t: TimeOrNow) -> libc::timespec {
    match t {
        TimeOrNow::Now => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        TimeOrNow::SpecificTime(t) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => libc::timespec {
                tv_sec: d.as_secs() as i64,
                tv_nsec: d.subsec_nanos() as i64,
            },
            Err(e) => libc::timespec {
                tv_sec: -(e.duration().as_secs() as i64),
                tv_nsec: 0,
            },
        },
    }
}

/// A node for an unlinked file known only by its fd's `fstat`.
pub(super) fn orphan_node(st: libc::stat) -> Node {
    Node {
        path: RepoPath::root(),
        kind: EntryKind::File,
        upper: Some(st),
        lower: None,
        merge_lower: false,
    }
}

/// The attributes of a negative entry: inode 0 tells the kernel the name
/// does not exist, for as long as the entry's TTL.
pub(super) fn negative_entry() -> FileAttr {
    FileAttr {
        ino: INodeNo(0),
        size: 0,
        blocks: 0,
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind: FileType::RegularFile,
        perm: 0,
        nlink: 0,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 0,
        flags: 0,
    }
}

/// What `setattr` asks to change (each `None` stays as it is).
pub(super) struct AttrChange {
    pub(super) mode: Option<u32>,
    pub(super) uid: Option<u32>,
    pub(super) gid: Option<u32>,
    pub(super) size: Option<u64>,
    pub(super) atime: Option<TimeOrNow>,
    pub(super) mtime: Option<TimeOrNow>,
}

/// `setattr` through an fd (for a file that has no path any more).
fn setattr_fd(f: &File, c: &AttrChange) -> Result<(), Errno> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(size) = c.size {
        f.set_len(size).map_err(|e| io_errno(&e))?;
    }
    if c.uid.is_some() || c.gid.is_some() {
        sys::fchown(f, c.uid, c.gid).map_err(|e| io_errno(&e))?;
    }
    if let Some(mode) = c.mode {
        f.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))
            .map_err(|e| io_errno(&e))?;
    }
    if c.atime.is_some() || c.mtime.is_some() {
        sys::futimens(f, c.atime.map(timespec), c.mtime.map(timespec)).map_err(|e| io_errno(&e))?;
    }
    Ok(())
}

impl OverlayFs {
    /// The attributes of `node`, inode `ino`.
    pub(super) fn attr(&self, ino: u64, node: &Node) -> Result<FileAttr, Errno> {
        let kind = file_type(node);
        if let Some(st) = &node.upper {
            return Ok(FileAttr {
                ino: INodeNo(ino),
                size: st.st_size as u64,
                blocks: st.st_blocks as u64,
                atime: time(st.st_atime, st.st_atime_nsec),
                mtime: time(st.st_mtime, st.st_mtime_nsec),
                ctime: time(st.st_ctime, st.st_ctime_nsec),
                crtime: time(st.st_ctime, st.st_ctime_nsec),
                kind,
                perm: (st.st_mode & 0o7777) as u16,
                nlink: st.st_nlink as u32,
                uid: st.st_uid,
                gid: st.st_gid,
                rdev: st.st_rdev as u32,
                blksize: st.st_blksize as u32,
                flags: 0,
            });
        }
        let size = match (&node.lower, kind) {
            (Some(e), FileType::RegularFile) => match e.size {
                Some(s) => s,
                None => self.lower_size(ino, e)?,
            },
            (Some(e), FileType::Symlink) => e
                .size
                .or_else(|| self.views[0].lower().size_hint(e))
                .unwrap_or(0),
            _ => 4096,
        };
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: self.mounted_at,
            mtime: self.mounted_at,
            ctime: self.mounted_at,
            crtime: self.mounted_at,
            kind,
            perm: node.mode() as u16,
            nlink: if kind == FileType::Directory { 2 } else { 1 },
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    /// The size of lower file `e` of inode `ino`: remembered, or from the
    /// source's object metadata, or read off its blob in the cache (which
    /// fetches it).
    fn lower_size(&self, ino: u64, e: &TreeEntry) -> Result<u64, Errno> {
        if let Some(d) = self.inodes().get(ino) {
            if let Some((oid, size)) = &d.lower_size {
                if *oid == e.oid {
                    return Ok(*size);
                }
            }
        }
        let lower = self.view(0)?.lower();
        let size = match lower.size_hint(e) {
            Some(s) => s,
            None => {
                let local = self
                    .cache
                    .local_file(lower.as_ref(), e)
                    .map_err(|_| Errno::EIO)?;
                std::fs::metadata(local).map_err(|e| io_errno(&e))?.len()
            }
        };
        if let Some(d) = self.inodes().get_mut(ino) {
            d.lower_size = Some((e.oid.clone(), size));
        }
        Ok(size)
    }

    /// `getattr`: the node's attributes; for a file unlinked but still
    /// open, those of an open upper fd, or of the lower node kept for it.
    pub(super) fn get_attr(&self, ino: INodeNo, fh: Option<FileHandle>) -> Result<FileAttr, Errno> {
        let attr = self.node(ino).and_then(|(_, n)| self.attr(ino.0, &n));
        attr.or_else(|e| match self.orphan_fd(ino, fh) {
            Some(f) => upper::fstat(&*f)
                .map_err(|e| io_errno(&e))
                .and_then(|st| self.attr(ino.0, &orphan_node(st))),
            None => {
                let orphan = self.inodes().get(ino.0).and_then(|d| d.orphan.clone());
                match orphan {
                    Some((_, node)) => self.attr(ino.0, &node),
                    None => Err(e),
                }
            }
        })
    }

    /// `setattr`: through the View (copying a lower file up), or through
    /// an fd for a file unlinked while open.
    pub(super) fn set_attr(
        &self,
        ino: INodeNo,
        fh: Option<FileHandle>,
        c: &AttrChange,
    ) -> Result<FileAttr, Errno> {
        if self.key(ino).is_err() {
            let f = self.orphan_fd(ino, fh).ok_or(Errno::ENOENT)?;
            setattr_fd(&f, c)?;
            let st = upper::fstat(&*f).map_err(|e| io_errno(&e))?;
            return self.attr(ino.0, &orphan_node(st));
        }
        let (key, _) = self.node(ino)?;
        let view = self.view(key.0)?;
        let cache = Some(self.cache.as_ref());
        if let Some(size) = c.size {
            // Only an upper fd opened for writing can be truncated.
            let via_fh = fh
                .and_then(|fh| self.handles.file(fh).ok())
                .filter(|f| sys::is_open_for_writing(f));
            let f = match via_fh {
                Some(f) => f,
                None => Arc::new(
                    view.open_upper(&key.1, libc::O_WRONLY, cache)
                        .map_err(|e| errno(&e))?,
                ),
            };
            f.set_len(size).map_err(|e| io_errno(&e))?;
        }
        if c.uid.is_some() || c.gid.is_some() {
            view.set_owner(&key.1, c.uid, c.gid, cache)
                .map_err(|e| errno(&e))?;
        }
        if let Some(mode) = c.mode {
            view.set_mode(&key.1, mode, cache).map_err(|e| errno(&e))?;
        }
        if c.atime.is_some() || c.mtime.is_some() {
            view.set_times(&key.1, c.atime.map(timespec), c.mtime.map(timespec), cache)
                .map_err(|e| errno(&e))?;
        }
        // A kept fd of the lower file is stale once the file is copied up.
        self.inodes().drop_file(ino.0);
        let (_, node) = self.node(ino)?;
        self.attr(ino.0, &node)
    }
}
