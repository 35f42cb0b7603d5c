//! File handles: what `open`, `opendir` and `create` hand the kernel.
//!
//! Lifetimes. A handle lives from the open that made it to its `release`
//! (or `releasedir`); its number is never reused within a mount. With opens
//! skipped (see `open_files.rs`) the kernel opens without asking, no handle
//! is made and the ops name handle 0: the inode's own fd is used instead.

use super::inodes::Listing;
use fuser::{Errno, FileHandle, INodeNo};
use std::collections::HashMap;
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// A directory handle's listing, made at its first readdir.
pub(super) type ListingSlot = Arc<Mutex<Option<Listing>>>;

/// One open file or directory.
pub(super) enum Handle {
    /// A file, with the fd its reads and writes use.
    File {
        file: Arc<File>,
        /// The fd is of the upper file (not of a cached lower blob).
        upper: bool,
        ino: u64,
        /// Keeps the inode's passthrough registration alive while open.
        passthrough: bool,
    },
    /// A directory; its listing is made on the first readdir (none is
    /// needed when the kernel serves the listing from its cache).
    Dir { ino: INodeNo, listing: ListingSlot },
}

/// The open handles, by number.
pub(super) struct Handles {
    open: Mutex<HashMap<u64, Handle>>,
    next: AtomicU64,
}

impl Handles {
    /// No handle open yet; the first one is number 1 (0 means none).
    pub(super) fn new() -> Handles {
        Handles {
            open: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
        }
    }

    /// The table, locked (a panic while it was held leaves it usable).
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Handle>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `h` and returns its new number.
    pub(super) fn insert(&self, h: Handle) -> FileHandle {
        let fh = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(fh, h);
        FileHandle(fh)
    }

    /// Drops handle `fh` (at `release`), returning it.
    pub(super) fn remove(&self, fh: FileHandle) -> Option<Handle> {
        self.lock().remove(&fh.0)
    }

    /// The fd of file handle `fh`.
    pub(super) fn file(&self, fh: FileHandle) -> Result<Arc<File>, Errno> {
        match self.lock().get(&fh.0) {
            Some(Handle::File { file, .. }) => Ok(file.clone()),
            Some(Handle::Dir { .. }) => Err(Errno::EISDIR),
            None => Err(Errno::EBADF),
        }
    }

    /// An open upper fd of inode `ino`: handle `fh` first, else any handle
    /// of it (for a file unlinked while open).
    pub(super) fn upper_file_of(&self, ino: u64, fh: Option<FileHandle>) -> Option<Arc<File>> {
        let handles = self.lock();
        let of = |h: &Handle| match h {
            Handle::File {
                file,
                upper: true,
                ino: i,
                ..
            } if *i == ino => Some(file.clone()),
            _ => None,
        };
        fh.and_then(|fh| handles.get(&fh.0).and_then(of))
            .or_else(|| handles.values().find_map(of))
    }

    /// The directory handle `fh`: its inode and its listing slot.
    pub(super) fn dir(&self, fh: FileHandle) -> Result<(INodeNo, ListingSlot), Errno> {
        match self.lock().get(&fh.0) {
            Some(Handle::Dir { ino, listing }) => Ok((*ino, listing.clone())),
            Some(_) => Err(Errno::ENOTDIR),
            None => Err(Errno::EBADF),
        }
    }
}
