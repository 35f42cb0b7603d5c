//! Changes to names: `mknod`, `mkdir`, `symlink`, `create`, `unlink`,
//! `rmdir`, `rename`, `link`. Each goes through the View (into the upper
//! dir) and then tells the inode table (`inodes.rs`) what moved, and the
//! directory-node cache that listings changed.

use super::errno::errno;
use super::fs::OverlayFs;
use super::handles::Handle;
use super::inodes::Key;
use super::sys;
use crate::view::upper;
use fuser::{
    Errno, FileHandle, FopenFlags, Generation, INodeNo, RenameFlags, ReplyCreate, Request,
};
use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;

impl OverlayFs {
    /// Gives a newly created upper entry to the requesting user (when we
    /// run as root; otherwise it belongs to us, as with any FUSE daemon).
    fn chown_new(&self, req: &Request, key: &Key) {
        if !self.is_root {
            return;
        }
        if let Ok(view) = self.view(key.0) {
            if let Err(e) = view.chown_upper(&key.1, req.uid(), req.gid()) {
                tracing::warn!("chown {}: {e}", key.1);
            }
        }
    }

    /// `mknod`.
    pub(super) fn make_node(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
    ) -> Result<Key, Errno> {
        let key = self.child_key(parent, name)?;
        let view = self.view(key.0)?;
        let mode = (mode & libc::S_IFMT) | (mode & 0o7777 & !umask);
        view.mknod(&key.1, mode, u64::from(rdev))
            .map_err(|e| errno(&e))?;
        self.chown_new(req, &key);
        Ok(key)
    }

    /// `mkdir`.
    pub(super) fn make_dir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
    ) -> Result<Key, Errno> {
        let key = self.child_key(parent, name)?;
        self.view(key.0)?
            .mkdir(&key.1, mode & 0o7777 & !umask)
            .map_err(|e| errno(&e))?;
        self.chown_new(req, &key);
        // A directory over a whiteout is made opaque: cached parents change.
        self.forget_dir_nodes();
        Ok(key)
    }

    /// `symlink`.
    pub(super) fn make_symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        target: &Path,
    ) -> Result<Key, Errno> {
        let key = self.child_key(parent, name)?;
        let target = target.to_str().ok_or(Errno::EINVAL)?;
        self.view(key.0)?
            .symlink(&key.1, target)
            .map_err(|e| errno(&e))?;
        self.chown_new(req, &key);
        Ok(key)
    }

    /// `unlink` (`dir == false`) and `rmdir` (`dir == true`): remove through
    /// the View (a whiteout over a lower entry) and retire the inode.
    pub(super) fn remove_child(
        &self,
        parent: INodeNo,
        name: &OsStr,
        dir: bool,
    ) -> Result<(), Errno> {
        let key = self.child_key(parent, name)?;
        if key.1.is_root() {
            return Err(Errno::EBUSY);
        }
        let pinned = match dir {
            false => self.keep_for_open_files(&key),
            true => None,
        };
        let removed = self.view(key.0)?.remove(&key.1, dir);
        if removed.is_ok() {
            self.inodes().retire(&key);
        }
        self.unpin(pinned);
        removed.map_err(|e| errno(&e))?;
        if dir {
            // Cached listings of the parent change.
            self.forget_dir_nodes();
        }
        Ok(())
    }

    /// `rename` (also `RENAME_NOREPLACE` and `RENAME_EXCHANGE`), within one view.
    pub(super) fn rename_child(
        &self,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
    ) -> Result<(), Errno> {
        let from = self.child_key(parent, name)?;
        let to = self.child_key(newparent, newname)?;
        if from.0 != to.0 || from.1.is_root() || to.1.is_root() {
            return Err(Errno::EXDEV);
        }
        if flags.contains(RenameFlags::RENAME_WHITEOUT) {
            return Err(Errno::EINVAL);
        }
        let pinned = match flags.contains(RenameFlags::RENAME_EXCHANGE) {
            false => self.keep_for_open_files(&to),
            true => None,
        };
        let renamed =
            self.view(from.0)?
                .rename(&from.1, &to.1, flags.bits(), Some(self.cache.as_ref()));
        if renamed.is_ok() {
            self.forget_dir_nodes();
            let mut inodes = self.inodes();
            if flags.contains(RenameFlags::RENAME_EXCHANGE) {
                inodes.exchange(from.0, &from.1, &to.1);
            } else {
                inodes.rename(from.0, &from.1, &to.1);
            }
        }
        self.unpin(pinned);
        renamed.map_err(|e| errno(&e))
    }

    /// `link`: a hard link, the same inode to the kernel.
    pub(super) fn link_child(
        &self,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
    ) -> Result<Key, Errno> {
        let (from, _) = self.node(ino)?;
        let to = self.child_key(newparent, newname)?;
        if from.0 != to.0 {
            return Err(Errno::EXDEV);
        }
        self.view(to.0)?
            .link(&from.1, &to.1, Some(self.cache.as_ref()))
            .map_err(|e| errno(&e))?;
        self.inodes().alias(to.clone(), ino.0);
        Ok(to)
    }

    /// `create`: a new empty upper file, opened read-write. (The open
    /// flags need no handling: the file is new and empty, and the kernel
    /// enforces the caller's access mode.)
    pub(super) fn create_file(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyCreate,
    ) {
        let run = || -> Result<_, Errno> {
            let key = self.child_key(parent, name)?;
            let view = self.view(key.0)?;
            let (pp, n) = match (key.1.parent(), key.1.file_name()) {
                (Some(pp), Some(n)) => (pp, n),
                _ => return Err(Errno::EEXIST),
            };
            let pnode = self.dir_node(&(key.0, pp))?;
            let (file, mut node) = view
                .create_file_at(&pnode, n, mode & 0o7777 & !umask)
                .map_err(|e| errno(&e))?;
            if self.is_root && sys::fchown(&file, Some(req.uid()), Some(req.gid())).is_ok() {
                node.upper = upper::fstat(&file).ok().or(node.upper);
            }
            let ino = self.inodes().looked_up(key.clone());
            let attr = self.attr(ino, &node)?;
            Ok((file, key, attr))
        };
        let (file, key, attr) = match run() {
            Ok(c) => c,
            Err(e) => return reply.error(e),
        };
        if self.skipping_opens() {
            // Opens skipped: the kernel sends no `release` for created files
            // either, so the fd becomes the inode's own and the handle is 0.
            self.inodes().keep_file(attr.ino.0, Arc::new(file), true);
            return reply.created(
                &self.ttl,
                &attr,
                Generation(0),
                FileHandle(0),
                FopenFlags::FOPEN_KEEP_CACHE,
            );
        }
        let backing = self
            .passthrough
            .backing(&self.inodes, attr.ino.0, &key, &file, |f| {
                reply.open_backing(f)
            });
        let fh = self.handles.insert(Handle::File {
            file: Arc::new(file),
            upper: true,
            ino: attr.ino.0,
            passthrough: backing.is_some(),
        });
        match backing {
            Some(b) => reply.created_passthrough(
                &self.ttl,
                &attr,
                Generation(0),
                fh,
                FopenFlags::empty(),
                &b,
            ),
            None => reply.created(&self.ttl, &attr, Generation(0), fh, FopenFlags::empty()),
        }
    }
}
