//! Open files: which fd a read or write goes to, and what is kept so files
//! unlinked while open stay readable.
//!
//! Opening, two ways. Over an immutable lower with the watcher running,
//! `open` and `opendir` are answered `ENOSYS` once, after which the kernel
//! opens files and directories without asking ("opens skipped"): no round
//! trip per open or close, page and directory caches kept across opens
//! (the watcher drops them when the upper file changes). Reads and writes
//! then name only the inode, and each inode keeps its own fd (a bounded
//! number of them, see `inodes.rs`). Otherwise every open is a handle
//! (`handles.rs`): upper files are opened without `FOPEN_KEEP_CACHE`
//! (close-to-open consistency), lower files, immutable for a given object
//! id, keep their cache.
//!
//! Orphans. Before a path is unlinked or replaced through the mount, what
//! the kernel's open files of it need is kept on its inode until `forget`:
//! its lower node, or (opens skipped, so no handle holds one) an fd of its
//! upper file. The inode is *pinned* meanwhile, so the watcher's events
//! for the removal do not close that fd.

use super::attr::file_type;
use super::errno::{errno, io_errno};
use super::fs::OverlayFs;
use super::handles::Handle;
use super::inodes::Key;
use super::sys;
use crate::entry::EntryKind;
use crate::view::Node;
use fuser::{Errno, FileHandle, FileType, FopenFlags, INodeNo, ReplyOpen};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl OverlayFs {
    /// Whether opens are skipped: `open` and `opendir` are answered
    /// `ENOSYS`, so the kernel stops sending them (and `release`) and keeps
    /// page and directory caches across opens; reads and writes then name
    /// only the inode. Two round trips per opened file saved, and warm
    /// reads never reach us. The mount turns it on only over an immutable
    /// lower with the upper-dir watcher running, which invalidates what
    /// the kernel caches of an upper file changed behind our back.
    pub(super) fn skipping_opens(&self) -> bool {
        self.stats.skip_opens.load(Ordering::Relaxed)
    }

    /// `open`: a handle for the file of `ino` (with its passthrough backing
    /// where in use), or `ENOSYS` to have the kernel skip opens.
    pub(super) fn open_handle(&self, ino: INodeNo, flags: i32, reply: ReplyOpen) {
        self.stats.opens.fetch_add(1, Ordering::Relaxed);
        if self.skipping_opens() {
            return reply.error(Errno::ENOSYS);
        }
        let opened = self.node(ino).and_then(|(key, node)| {
            if node.kind == EntryKind::Dir {
                return Err(Errno::EISDIR);
            }
            let (f, immutable) = self.open_file(&key, &node, flags)?;
            Ok((f, immutable, key))
        });
        let (file, immutable, key) = match opened {
            Ok(o) => o,
            Err(e) => return reply.error(e),
        };
        let fopen = if immutable {
            FopenFlags::FOPEN_KEEP_CACHE
        } else {
            FopenFlags::empty()
        };
        let backing = self
            .passthrough
            .backing(&self.inodes, ino.0, &key, &file, |f| reply.open_backing(f));
        let fh = self.handles.insert(Handle::File {
            file: Arc::new(file),
            upper: !immutable,
            ino: ino.0,
            passthrough: backing.is_some(),
        });
        match backing {
            Some(b) => reply.opened_passthrough(fh, fopen, &b),
            None => reply.opened(fh, fopen),
        }
    }

    /// `release`: drops the handle (and its hold on the passthrough backing).
    pub(super) fn release_handle(&self, ino: INodeNo, fh: FileHandle) {
        if let Some(Handle::File {
            passthrough: true, ..
        }) = self.handles.remove(fh)
        {
            self.passthrough.drop_backing(&self.inodes, ino.0);
        }
    }

    /// `read`.
    pub(super) fn read_at(
        &self,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
    ) -> Result<Vec<u8>, Errno> {
        let f = self.io_file(ino, fh, false)?;
        crate::view::read_at(&f, offset, size as usize).map_err(|e| io_errno(&e))
    }

    /// `write`: into the upper file (a lower one is copied up first).
    pub(super) fn write_at(
        &self,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
    ) -> Result<u32, Errno> {
        let f = self.io_file(ino, fh, true)?;
        f.write_all_at(data, offset).map_err(|e| io_errno(&e))?;
        Ok(data.len() as u32)
    }

    /// `fsync`.
    pub(super) fn sync_file(
        &self,
        ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
    ) -> Result<(), Errno> {
        let f = if fh.0 != 0 {
            self.handles.file(fh)?
        } else {
            // Opens skipped: only a file written through us has
            // anything of ours to sync.
            match self.orphan_fd(ino, None) {
                Some(f) => f,
                None => return Ok(()),
            }
        };
        let r = if datasync {
            f.sync_data()
        } else {
            f.sync_all()
        };
        r.map_err(|e| io_errno(&e))
    }

    /// `fallocate`.
    pub(super) fn allocate(
        &self,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
    ) -> Result<(), Errno> {
        let f = self.io_file(ino, fh, true)?;
        sys::fallocate(&f, mode, offset, length).map_err(|e| io_errno(&e))
    }

    /// An open upper fd of inode `ino` (`fh` first, else any handle of it,
    /// else the inode's own), for a file that was unlinked while open.
    pub(super) fn orphan_fd(&self, ino: INodeNo, fh: Option<FileHandle>) -> Option<Arc<File>> {
        self.handles.upper_file_of(ino.0, fh).or_else(|| {
            let inodes = self.inodes();
            match &inodes.get(ino.0)?.file {
                Some((f, true)) => Some(f.clone()),
                _ => None,
            }
        })
    }

    /// Opens the file of `node` for the given open flags: lower files
    /// read-only from the blob cache, everything written through the upper
    /// dir (copied up first). Also says whether it is a lower (immutable) file.
    fn open_file(&self, key: &Key, node: &Node, flags: i32) -> Result<(File, bool), Errno> {
        let view = self.view(key.0)?;
        let acc = flags & libc::O_ACCMODE;
        let writes = acc != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
        if writes {
            // Read-write where permitted, so the kernel may read pages of a
            // file opened write-only (partial page writes, mmap).
            let extra = flags & (libc::O_TRUNC | libc::O_SYNC | libc::O_DSYNC);
            let f = view
                .open_upper(&key.1, libc::O_RDWR | extra, Some(self.cache.as_ref()))
                .or_else(|_| view.open_upper(&key.1, acc | extra, Some(self.cache.as_ref())))
                .map_err(|e| errno(&e))?;
            return Ok((f, false));
        }
        if let Some(f) = view.open_upper_read(node).map_err(|e| errno(&e))? {
            return Ok((f, false));
        }
        Ok((self.open_lower(key.0, node)?, true))
    }

    /// Opens the lower file of `node` (in view `view`) from the blob cache,
    /// fetching it first if needed.
    fn open_lower(&self, view: usize, node: &Node) -> Result<File, Errno> {
        let view = self.view(view)?;
        let entry = node.lower.as_ref().ok_or(Errno::ENOENT)?;
        let local = self
            .cache
            .local_file(view.lower().as_ref(), entry)
            .map_err(|e| {
                tracing::warn!("fetching {}: {e}", entry.path);
                Errno::EIO
            })?;
        File::open(&local).map_err(|e| io_errno(&e))
    }

    /// The fd for I/O on `ino`: the handle `fh` when the file was opened
    /// (or created) through us, else the inode's own, opened on first use
    /// and kept. `write` copies a lower file up first.
    fn io_file(&self, ino: INodeNo, fh: FileHandle, write: bool) -> Result<Arc<File>, Errno> {
        if fh.0 != 0 {
            return self.handles.file(fh);
        }
        let orphan = {
            let inodes = self.inodes();
            let d = inodes.get(ino.0).ok_or(Errno::ENOENT)?;
            match &d.file {
                Some((f, writable)) if *writable || !write => return Ok(f.clone()),
                _ => {}
            }
            d.retired.then(|| d.orphan.clone())
        };
        let (file, writable) = match orphan {
            // Unlinked while open: what is left is its lower content.
            Some(Some((view, node))) if !write => (self.open_lower(view, &node)?, false),
            // (A lower file opened for writing, unlinked before its first
            // write: there is no copy to write to.)
            Some(_) => {
                tracing::warn!(
                    "inode {}: {} after it was unlinked, and nothing of it was kept",
                    ino.0,
                    if write { "written" } else { "read" }
                );
                return Err(Errno::EIO);
            }
            None => {
                let (key, node) = self.node(ino)?;
                if !write && !node.is_upper() {
                    (self.open_lower(key.0, &node)?, false)
                } else {
                    self.open_upper_own(&key, &node, write)?
                }
            }
        };
        let file = Arc::new(file);
        self.inodes().keep_file(ino.0, file.clone(), writable);
        Ok(file)
    }

    /// The kernel may hold `key`'s file open. Before the path is unlinked
    /// or replaced, keep what reads and `fstat`s of it need until `forget`:
    /// its lower node, or (opens skipped, so no handle holds one) an fd of
    /// its upper file.
    /// Returns the inode, pinned (see [`Self::unpin`]).
    pub(super) fn keep_for_open_files(&self, key: &Key) -> Option<u64> {
        let ino = {
            let mut inodes = self.inodes();
            // Never looked up: nobody can have it open.
            let ino = inodes.ino_of(key.0, &key.1)?;
            inodes.get_mut(ino)?.pinned = true;
            ino
        };
        self.keep_node_for_open_files(key, ino);
        Some(ino)
    }

    /// The unlink or replacement of a path given to
    /// [`Self::keep_for_open_files`] is over (done or failed).
    pub(super) fn unpin(&self, ino: Option<u64>) {
        if let Some(ino) = ino {
            if let Some(d) = self.inodes().get_mut(ino) {
                d.pinned = false;
            }
        }
    }

    fn keep_node_for_open_files(&self, key: &Key, ino: u64) {
        let Ok(node) = self.resolve(key) else {
            return;
        };
        if file_type(&node) != FileType::RegularFile {
            return;
        }
        let (file, orphan) = if node.is_upper() {
            if !self.skipping_opens() {
                return;
            }
            let Ok((f, writable)) = self.open_upper_own(key, &node, false) else {
                return;
            };
            (Some((Arc::new(f), writable)), None)
        } else {
            (None, Some((key.0, node)))
        };
        if let Some(d) = self.inodes().get_mut(ino) {
            if d.file.is_none() {
                d.file = file;
            }
            d.orphan = orphan;
        }
    }

    /// The upper file at `key` (node `node`) for the daemon's own fd:
    /// read-write, so later writes can use it (a lower file is copied up
    /// first), or, when that is refused and `write` is false, read-only.
    /// Also says whether it is writable.
    fn open_upper_own(&self, key: &Key, node: &Node, write: bool) -> Result<(File, bool), Errno> {
        let view = self.view(key.0)?;
        match view.open_upper(&key.1, libc::O_RDWR, Some(self.cache.as_ref())) {
            Ok(f) => Ok((f, true)),
            Err(e) if write => Err(errno(&e)),
            Err(e) => match view.open_upper_read(node) {
                Ok(Some(f)) => Ok((f, false)),
                _ => Err(errno(&e)),
            },
        }
    }
}
