//! FUSE passthrough: files of some views (the bind directories) are opened
//! so the kernel reads and writes their backing file directly.
//!
//! Lifetimes. A backing id is registered with the kernel at the first open
//! of an inode and shared by every handle of that inode opened meanwhile
//! (counted on the inode, `InodeData::backing`); it is dropped (and the
//! kernel's registration with it) when the last such handle is released.

use super::inodes::{Inodes, Key};
use fuser::BackingId;
use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Which views use passthrough, and whether the kernel agreed to it.
pub(super) struct Passthrough {
    /// Views whose files are opened in passthrough mode.
    views: Vec<usize>,
    /// Set at `init` when the kernel accepted passthrough.
    enabled: AtomicBool,
}

impl Passthrough {
    /// Passthrough for the files of `views`, once [`Self::enable`]d.
    pub(super) fn new(views: Vec<usize>) -> Passthrough {
        Passthrough {
            views,
            enabled: AtomicBool::new(false),
        }
    }

    /// Whether any view asks for passthrough (so `init` should negotiate it).
    pub(super) fn wanted(&self) -> bool {
        !self.views.is_empty()
    }

    /// The kernel accepted passthrough.
    pub(super) fn enable(&self) {
        self.enabled.store(true, Ordering::Relaxed);
    }

    /// Registers `file` as the passthrough backing of `ino` (or reuses the
    /// inode's existing one). `None` when passthrough is not in use.
    pub(super) fn backing(
        &self,
        inodes: &Mutex<Inodes>,
        ino: u64,
        key: &Key,
        file: &File,
        open_backing: impl FnOnce(&File) -> io::Result<BackingId>,
    ) -> Option<Arc<BackingId>> {
        if !self.enabled.load(Ordering::Relaxed) || !self.views.contains(&key.0) {
            return None;
        }
        let mut inodes = inodes.lock().unwrap_or_else(|p| p.into_inner());
        let d = inodes.get_mut(ino)?;
        if let Some((b, n)) = &mut d.backing {
            *n += 1;
            return Some(b.clone());
        }
        match open_backing(file) {
            Ok(b) => {
                let b = Arc::new(b);
                d.backing = Some((b.clone(), 1));
                Some(b)
            }
            Err(e) => {
                tracing::debug!("passthrough unavailable for {}: {e}", key.1);
                None
            }
        }
    }

    /// A handle holding the backing of `ino` was released.
    pub(super) fn drop_backing(&self, inodes: &Mutex<Inodes>, ino: u64) {
        let mut inodes = inodes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = inodes.get_mut(ino) {
            if let Some((_, n)) = &mut d.backing {
                *n -= 1;
                if *n == 0 {
                    d.backing = None;
                }
            }
        }
    }
}
