//! The FUSE file system over one or more [`View`]s: its state, and how an
//! inode number becomes a View node.
//!
//! View 0 is the tree; the others are *bind directories* (e.g. `buck-out`)
//! shown at the root under their names, each a View with an empty lower
//! whose upper dir is the local directory. With a kernel bind mount on top
//! they are never reached through FUSE; without one they are served here.
//!
//! The rooms of the daemon: `dispatch.rs` (the `fuser::Filesystem` impl,
//! one thin adapter per op), `inodes.rs` (inode numbers and their
//! lifetimes), `handles.rs` (open handles), `attr.rs` (attributes,
//! `setattr`), `open_files.rs` (which fd I/O uses; opens skipped; files
//! unlinked while open), `listing.rs` (readdir), `namespace.rs` (creating,
//! removing, renaming names), `passthrough.rs`, `xattr.rs`, `watch.rs`
//! (the upper-dir watcher), `errno.rs` (errors as errnos) and `sys.rs`
//! (every raw syscall).
//!
//! Layering (imports run one way, no cycle): `dispatch.rs` on top; below
//! it the rooms that answer ops (`attr`, `listing`, `open_files`,
//! `namespace`, `xattr`), each an `impl OverlayFs` block; then this file
//! (the state and how an inode becomes a node); then the tables it holds
//! (`inodes`, `handles`, `passthrough`) and the leaves (`errno`, `sys`).
//! A table or leaf never names `OverlayFs`: the types two of them share
//! (`DirEnt`, `Listing`) live in the lower one, `inodes.rs`.
//!
//! Caching and freshness: changes made in the upper dir behind the daemon's
//! back (the two-way sync) are pushed to the kernel as invalidations by an
//! inotify watcher (see `watch.rs`); entry and attribute TTLs are
//! [`LONG_TTL`] over an immutable lower and [`SHORT_TTL`] over a live one
//! (whose changes are not watched); negative lookups are cached only while
//! opens are skipped (then the watcher reports names that appear). No
//! direct I/O anywhere, so shared writable mmap (SQLite WAL's `-shm`)
//! works. File locks (POSIX and flock) are left to the kernel (the lock ops
//! are not implemented, so it keeps them locally), which is exact for a
//! single-host mount. `flush` is not implemented either (writes go straight
//! to the upper file, nothing is buffered here), so the kernel stops sending
//! it after the first close.

use super::errno::{errno, name_str};
use super::handles::Handles;
use super::inodes::{Inodes, Key};
use super::passthrough::Passthrough;
use super::sys;
use super::MountStats;
use crate::cache::BlobCache;
use crate::entry::EntryKind;
use crate::path::RepoPath;
use crate::view::{Node, View};
use fuser::{Errno, INodeNo};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// Entry and attribute TTL over a live lower (e.g. `dir:`, whose changes
/// are not watched): how long the kernel may trust a lookup or a getattr.
pub const SHORT_TTL: Duration = Duration::from_secs(1);

/// Entry and attribute TTL over an immutable lower (git, mono): changes to
/// the upper dir are pushed to the kernel by the upper-dir watcher, so the
/// TTL only bounds what a missed event could leave stale. (With 60 s, a
/// stat of 50,000 files a minute after the first pass paid one lookup per
/// file again: 0.83 s against 0.26 s native.)
pub const LONG_TTL: Duration = Duration::from_secs(3600);

/// How long a resolved directory node is reused for lookups below it.
const NODE_CACHE_TTL: Duration = Duration::from_secs(1);

/// The FUSE file system. Build it with [`OverlayFs::new`] and hand it to
/// [`super::mount`] (or to `fuser` directly).
pub struct OverlayFs {
    pub(super) views: Vec<Arc<View>>,
    /// Root names served by views other than 0.
    pub(super) binds: HashMap<String, usize>,
    pub(super) passthrough: Passthrough,
    pub(super) cache: Arc<dyn BlobCache>,
    pub(super) inodes: Arc<Mutex<Inodes>>,
    /// Entry and attribute TTL given to the kernel.
    pub(super) ttl: Duration,
    pub(super) handles: Handles,
    pub(super) mounted_at: SystemTime,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) is_root: bool,
    pub(super) stats: Arc<MountStats>,
    /// Bumped by every mutation: cached directory nodes older than the
    /// current generation are resolved again.
    generation: AtomicU64,
    /// Resolved directory nodes, so a lookup does not walk from the root;
    /// trusted for [`NODE_CACHE_TTL`].
    dir_nodes: Mutex<HashMap<Key, (Node, Instant, u64)>>,
}

impl OverlayFs {
    /// `views[0]` is the tree; `binds` maps root names to other views;
    /// files of views listed in `passthrough_views` are opened in kernel
    /// passthrough mode when the kernel supports it.
    pub fn new(
        views: Vec<Arc<View>>,
        binds: HashMap<String, usize>,
        passthrough_views: Vec<usize>,
        cache: Arc<dyn BlobCache>,
        stats: Arc<MountStats>,
        ttl: Duration,
    ) -> OverlayFs {
        let (uid, gid) = sys::effective_ids();
        OverlayFs {
            views,
            binds,
            passthrough: Passthrough::new(passthrough_views),
            cache,
            inodes: Arc::new(Mutex::new(Inodes::new())),
            ttl,
            handles: Handles::new(),
            mounted_at: SystemTime::now(),
            uid,
            gid,
            is_root: uid == 0,
            stats,
            generation: AtomicU64::new(0),
            dir_nodes: Mutex::new(HashMap::new()),
        }
    }

    /// The inode table, shared with the upper-dir watcher.
    pub(super) fn inode_table(&self) -> Arc<Mutex<Inodes>> {
        self.inodes.clone()
    }

    /// The inode table, locked (a panic while it was held leaves it usable).
    pub(super) fn inodes(&self) -> MutexGuard<'_, Inodes> {
        self.inodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What live inode `ino` names (`ENOENT` once it is retired).
    pub(super) fn key(&self, ino: INodeNo) -> Result<Key, Errno> {
        let inodes = self.inodes();
        let d = inodes.get(ino.0).ok_or(Errno::ENOENT)?;
        if d.retired {
            return Err(Errno::ENOENT);
        }
        Ok(d.key.clone())
    }

    /// View `v`.
    pub(super) fn view(&self, v: usize) -> Result<&Arc<View>, Errno> {
        self.views.get(v).ok_or(Errno::EIO)
    }

    /// The current node of an inode (resolved afresh, so outside changes to
    /// the upper dir are seen).
    pub(super) fn node(&self, ino: INodeNo) -> Result<(Key, Node), Errno> {
        let key = self.key(ino)?;
        let node = self.resolve(&key)?;
        Ok((key, node))
    }

    /// The current node at `key`: its parent directory from the short-lived
    /// cache, the entry itself looked up afresh.
    pub(super) fn resolve(&self, key: &Key) -> Result<Node, Errno> {
        match (key.1.parent(), key.1.file_name()) {
            (Some(pp), Some(n)) => {
                let parent = self.dir_node(&(key.0, pp))?;
                self.view(key.0)?
                    .child(&parent, n)
                    .map_err(|e| errno(&e))?
                    .ok_or(Errno::ENOENT)
            }
            _ => self
                .view(key.0)?
                .node(&key.1)
                .map_err(|e| errno(&e))?
                .ok_or(Errno::ENOENT),
        }
    }

    /// `readlink`: the target of symlink `ino`.
    pub(super) fn read_link(&self, ino: INodeNo) -> Result<Vec<u8>, Errno> {
        let (key, node) = self.node(ino)?;
        if node.kind != EntryKind::Symlink {
            return Err(Errno::EINVAL);
        }
        self.view(key.0)?.read_node(&node).map_err(|e| errno(&e))
    }

    /// Forgets cached directory nodes (after any change made through us).
    pub(super) fn forget_dir_nodes(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// The node of directory `key`, from the short-lived cache if fresh.
    pub(super) fn dir_node(&self, key: &Key) -> Result<Node, Errno> {
        let gen = self.generation.load(Ordering::Relaxed);
        {
            let cache = self.dir_nodes.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((n, at, g)) = cache.get(key) {
                if *g == gen && at.elapsed() < NODE_CACHE_TTL {
                    return Ok(n.clone());
                }
            }
        }
        let node = self
            .view(key.0)?
            .node(&key.1)
            .map_err(|e| errno(&e))?
            .ok_or(Errno::ENOENT)?;
        if node.kind == EntryKind::Dir {
            let mut cache = self.dir_nodes.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() > 100_000 {
                cache.clear();
            }
            cache.insert(key.clone(), (node.clone(), Instant::now(), gen));
        }
        Ok(node)
    }

    /// The key of `parent/name` (a bind directory's root for its name at
    /// the root of view 0).
    pub(super) fn child_key(&self, parent: INodeNo, name: &OsStr) -> Result<Key, Errno> {
        let name = name_str(name)?;
        let (v, path) = self.key(parent)?;
        if v == 0 && path.is_root() {
            if let Some(bv) = self.binds.get(name) {
                return Ok((*bv, RepoPath::root()));
            }
        }
        let p = path.join(name).map_err(|_| Errno::EINVAL)?;
        Ok((v, p))
    }
}
