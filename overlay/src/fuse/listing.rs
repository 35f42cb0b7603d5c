//! Directory listings: `opendir`, `readdir`, `readdirplus`.
//!
//! Lifetimes. A listing is made once per directory handle, at its first
//! readdir, and handed out in pieces until the kernel has all of it. With
//! opens skipped there is no handle: the listing is kept on the inode from
//! the readdir at offset 0 to the one that reaches the end. The kernel
//! caches listings across opens only while the View's version of the
//! directory stays the same (`InodeData::dir_version`).

use super::attr::file_type;
use super::errno::errno;
use super::fs::OverlayFs;
use super::handles::Handle;
use super::inodes::{DirEnt, Listing};
use crate::path::RepoPath;
use fuser::{
    Errno, FileHandle, FileType, FopenFlags, Generation, INodeNo, ReplyDirectory,
    ReplyDirectoryPlus, ReplyOpen,
};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

impl OverlayFs {
    /// `opendir`: a handle whose listing the kernel may cache (and keep
    /// across opens while the directory is unchanged), or `ENOSYS` to have
    /// the kernel skip opens.
    pub(super) fn open_dir(&self, ino: INodeNo, reply: ReplyOpen) {
        self.stats.opens.fetch_add(1, Ordering::Relaxed);
        if self.skipping_opens() {
            return reply.error(Errno::ENOSYS);
        }
        let unchanged = match self.dir_unchanged(ino) {
            Ok(u) => u,
            Err(e) => return reply.error(e),
        };
        let fh = self.handles.insert(Handle::Dir {
            ino,
            listing: Arc::new(Mutex::new(None)),
        });
        let mut flags = FopenFlags::FOPEN_CACHE_DIR;
        if unchanged {
            flags |= FopenFlags::FOPEN_KEEP_CACHE;
        }
        reply.opened(fh, flags);
    }

    /// Whether directory `ino` has the version last handed to the kernel
    /// (and remembers the current one).
    fn dir_unchanged(&self, ino: INodeNo) -> Result<bool, Errno> {
        let (key, node) = self.node(ino)?;
        if node.kind != crate::entry::EntryKind::Dir {
            return Err(Errno::ENOTDIR);
        }
        let version = self
            .view(key.0)?
            .dir_version(&node)
            .map_err(|e| errno(&e))?;
        let mut inodes = self.inodes();
        let d = inodes.get_mut(ino.0).ok_or(Errno::ENOENT)?;
        let same = d.dir_version.as_deref() == Some(version.as_str());
        d.dir_version = Some(version);
        Ok(same)
    }

    /// `readdir`: names from `offset` on, as many as fit.
    pub(super) fn read_dir(
        &self,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let list = match self.listing(ino, fh, offset) {
            Ok(l) => l,
            Err(e) => return reply.error(e),
        };
        let full = list
            .iter()
            .enumerate()
            .skip(offset as usize)
            .any(|(i, e)| reply.add(INodeNo(e.ino), (i + 1) as u64, e.kind, &e.name));
        if !full {
            self.listing_done(ino, fh);
        }
        reply.ok();
    }

    /// `readdirplus`: entries with their attributes from `offset` on, each
    /// (but `.` and `..`) counted as a lookup.
    pub(super) fn read_dir_plus(
        &self,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let list = match self.listing(ino, fh, offset) {
            Ok(l) => l,
            Err(e) => return reply.error(e),
        };
        let mut full = false;
        for (i, e) in list.iter().enumerate().skip(offset as usize) {
            let attr = match &e.node {
                Some(n) => self.attr(e.ino, n),
                None => self
                    .node(if e.name == "." { ino } else { INodeNo(e.ino) })
                    .and_then(|(_, n)| self.attr(e.ino, &n)),
            };
            let Ok(attr) = attr else { continue };
            if reply.add(
                INodeNo(e.ino),
                (i + 1) as u64,
                &e.name,
                &self.ttl,
                &attr,
                Generation(0),
            ) {
                full = true;
                break;
            }
            // The kernel takes each entry but "." and ".." as a lookup.
            if e.name != "." && e.name != ".." {
                self.inodes().count_lookup(e.ino);
            }
        }
        if !full {
            self.listing_done(ino, fh);
        }
        reply.ok();
    }

    /// The listing readdir hands out at `offset`: the handle's, or (opens
    /// skipped) the inode's, made afresh at offset 0.
    fn listing(&self, ino: INodeNo, fh: FileHandle, offset: u64) -> Result<Listing, Errno> {
        if fh.0 != 0 {
            return self.dir_handle(fh);
        }
        if offset != 0 {
            if let Some(l) = self.inodes().get(ino.0).and_then(|d| d.listing.clone()) {
                return Ok(l);
            }
        }
        let l = Arc::new(self.list_dir(ino)?);
        if let Some(d) = self.inodes().get_mut(ino.0) {
            d.listing = Some(l.clone());
        }
        Ok(l)
    }

    /// The kernel has read the whole listing of `ino` (opens skipped).
    fn listing_done(&self, ino: INodeNo, fh: FileHandle) {
        if fh.0 == 0 {
            if let Some(d) = self.inodes().get_mut(ino.0) {
                d.listing = None;
            }
        }
    }

    /// The listing of directory handle `fh`, made at its first use.
    fn dir_handle(&self, fh: FileHandle) -> Result<Listing, Errno> {
        let (ino, listing) = self.handles.dir(fh)?;
        let mut l = listing.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = &*l {
            return Ok(d.clone());
        }
        let d = Arc::new(self.list_dir(ino)?);
        *l = Some(d.clone());
        Ok(d)
    }

    /// `.`, `..` and the View's children of `ino`; at the root, the bind
    /// directories in place of any tree entry of the same name.
    fn list_dir(&self, ino: INodeNo) -> Result<Vec<DirEnt>, Errno> {
        let (key, node) = self.node(ino)?;
        let view = self.view(key.0)?;
        let children = view.list(&node).map_err(|e| errno(&e))?;
        let mut out = Vec::with_capacity(children.len() + 2);
        let parent_ino = match key.1.parent() {
            Some(p) => self.inodes().ino_for((key.0, p)),
            None => 1,
        };
        out.push(DirEnt {
            ino: ino.0,
            kind: FileType::Directory,
            name: ".".into(),
            node: None,
        });
        out.push(DirEnt {
            ino: parent_ino,
            kind: FileType::Directory,
            name: "..".into(),
            node: None,
        });
        let at_root = key.0 == 0 && key.1.is_root();
        let mut inodes = self.inodes();
        for c in children {
            let Some(name) = c.path.file_name().map(str::to_string) else {
                continue;
            };
            if at_root && self.binds.contains_key(&name) {
                continue;
            }
            let ino = inodes.ino_for((key.0, c.path.clone()));
            out.push(DirEnt {
                ino,
                kind: file_type(&c),
                name,
                node: Some(c),
            });
        }
        if at_root {
            for (name, v) in &self.binds {
                let ino = inodes.ino_for((*v, RepoPath::root()));
                let node = self.views.get(*v).and_then(|v| v.root().ok());
                out.push(DirEnt {
                    ino,
                    kind: FileType::Directory,
                    name: name.clone(),
                    node,
                });
            }
        }
        Ok(out)
    }
}
