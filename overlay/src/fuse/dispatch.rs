//! The `fuser::Filesystem` impl: one thin adapter per FUSE op, in the order
//! of the kernel's protocol. Each unpacks the request, calls the room that
//! does the work (see `fs.rs` for the list) and answers the reply; the
//! replies carrying an entry or attributes are at the end of this file.

use super::attr::{negative_entry, AttrChange};
use super::errno::io_errno;
use super::fs::OverlayFs;
use super::inodes::Key;
use super::sys;
use super::xattr::reply_xattr;
use crate::view::Node;
use fuser::{
    Errno, FileAttr, FileHandle, Filesystem, Generation, INodeNo, InitFlags, KernelConfig,
    LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr,
    Request, TimeOrNow, WriteFlags,
};
use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

fn reply_empty(done: Result<(), Errno>, reply: ReplyEmpty) {
    match done {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

fn reply_data(data: Result<Vec<u8>, Errno>, reply: ReplyData) {
    match data {
        Ok(d) => reply.data(&d),
        Err(e) => reply.error(e),
    }
}

impl Filesystem for OverlayFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        let want = InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_READDIRPLUS_AUTO
            | InitFlags::FUSE_PARALLEL_DIROPS
            | InitFlags::FUSE_CACHE_SYMLINKS;
        let caps = config.capabilities();
        let _ = config.add_capabilities(want & caps);
        if self.passthrough.wanted() && caps.contains(InitFlags::FUSE_PASSTHROUGH) {
            // Passthrough needs a stacking depth; 1 is enough on ext4/xfs.
            if config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
                && config.set_max_stack_depth(1).is_ok()
            {
                self.passthrough.enable();
                self.stats.passthrough.store(true, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// The kernel is done with `ino`. Only a retired inode is dropped (with
    /// what was kept for its open files): a linked one keeps its number for
    /// as long as its path lives.
    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.inodes().forgot(ino.0, nlookup);
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.look_up(parent, name, reply);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        self.reply_attr(self.get_attr(ino, fh), reply);
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let change = AttrChange {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
        };
        self.reply_attr(self.set_attr(ino, fh, &change), reply);
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        reply_data(self.read_link(ino), reply);
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        self.reply_entry(self.make_node(req, parent, name, mode, umask, rdev), reply);
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        self.reply_entry(self.make_dir(req, parent, name, mode, umask), reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(self.remove_child(parent, name, false), reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(self.remove_child(parent, name, true), reply);
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        self.reply_entry(self.make_symlink(req, parent, link_name, target), reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply_empty(
            self.rename_child(parent, name, newparent, newname, flags),
            reply,
        );
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        self.reply_entry(self.link_child(ino, newparent, newname), reply);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.open_handle(ino, flags.0, reply);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        reply_data(self.read_at(ino, fh, offset, size), reply);
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.write_at(ino, fh, offset, data) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.release_handle(ino, fh);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply_empty(self.sync_file(ino, fh, datasync), reply);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.open_dir(ino, reply);
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectory,
    ) {
        self.read_dir(ino, fh, offset, reply);
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectoryPlus,
    ) {
        self.read_dir_plus(ino, fh, offset, reply);
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.handles.remove(fh);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    /// The upper dir's file system: where everything written goes.
    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let stat = self
            .view(0)
            .and_then(|view| sys::statvfs(view.upper_dir()).map_err(|e| io_errno(&e)));
        match stat {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                255,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply_empty(self.set_xattr(ino, name, value, flags), reply);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        reply_xattr(reply, size, self.get_xattr(ino, name));
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        reply_xattr(reply, size, self.list_xattr(ino));
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(self.remove_xattr(ino, name), reply);
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        self.create_file(req, parent, name, mode, umask, reply);
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        reply_empty(self.allocate(ino, fh, offset, length, mode), reply);
    }
}

/// The replies of ops that hand the kernel an entry or attributes.
impl OverlayFs {
    /// `lookup`: the entry of `parent/name`; with opens skipped, an
    /// absence the kernel may remember: it is told (by the upper dir
    /// watcher) when the name appears behind us, and the lower cannot
    /// change.
    pub(super) fn look_up(&self, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let key = match self.child_key(parent, name) {
            Ok(k) => k,
            Err(e) => return reply.error(e),
        };
        let found = self.resolve(&key);
        if self.skipping_opens() && found.as_ref().is_err_and(|e| *e == Errno::ENOENT) {
            return reply.entry(&self.ttl, &negative_entry(), Generation(0));
        }
        self.reply_entry_found(key, found, reply);
    }

    /// Answers an op that made `key` (or failed) with its entry.
    pub(super) fn reply_entry(&self, made: Result<Key, Errno>, reply: ReplyEntry) {
        match made {
            Ok(key) => {
                let found = self.resolve(&key);
                self.reply_entry_found(key, found, reply);
            }
            Err(e) => reply.error(e),
        }
    }

    /// Answers with the entry of `key` (node `found`), counted as a lookup.
    fn reply_entry_found(&self, key: Key, found: Result<Node, Errno>, reply: ReplyEntry) {
        let entry = found.and_then(|node| {
            let ino = self.inodes().ino_for(key);
            let attr = self.attr(ino, &node)?;
            self.inodes().count_lookup(ino);
            Ok(attr)
        });
        match entry {
            Ok(a) => reply.entry(&self.ttl, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    /// Answers an op that yields attributes.
    pub(super) fn reply_attr(&self, attr: Result<FileAttr, Errno>, reply: ReplyAttr) {
        match attr {
            Ok(a) => reply.attr(&self.ttl, &a),
            Err(e) => reply.error(e),
        }
    }
}
