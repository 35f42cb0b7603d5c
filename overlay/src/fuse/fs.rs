//! The `fuser::Filesystem` over one or more [`View`]s.
//!
//! View 0 is the tree; the others are *bind directories* (e.g. `buck-out`)
//! shown at the root under their names, each a View with an empty lower
//! whose upper dir is the local directory. With a kernel bind mount on top
//! they are never reached through FUSE; without one they are served here.
//!
//! Inodes are path-based: an inode number names `(view, path)` for the life
//! of the mount (renames move the numbers along; an unlinked path's number
//! is retired so a new file there gets a new one, and dropped at its
//! `forget`). The table grows with the number of distinct paths looked up.
//!
//! Caching and freshness: changes made in the upper dir behind the daemon's
//! back (the two-way sync) are pushed to the kernel as invalidations by an
//! inotify watcher (see `watch.rs`); entry and attribute TTLs are
//! [`LONG_TTL`] over an immutable lower and [`SHORT_TTL`] over a live one
//! (whose changes are not watched); negative lookups are not cached. No
//! direct I/O anywhere, so shared writable mmap (SQLite WAL's `-shm`)
//! works. File locks (POSIX and flock) are left to the kernel (the lock ops
//! are not implemented, so it keeps them locally), which is exact for a
//! single-host mount. `flush` is not implemented either (writes go straight
//! to the upper file, nothing is buffered here), so the kernel stops sending
//! it after the first close.
//!
//! Opening, two ways. Over an immutable lower with the watcher running,
//! `open` and `opendir` are answered `ENOSYS` once, after which the kernel
//! opens files and directories without asking ("opens skipped"): no round
//! trip per open or close, page and directory caches kept across opens
//! (the watcher drops them when the upper file changes). Reads and writes
//! then name only the inode, and each inode keeps its own fd (a bounded
//! number of them). Otherwise every open is a handle: upper files are
//! opened without `FOPEN_KEEP_CACHE` (close-to-open consistency), lower
//! files, immutable for a given object id, keep their cache.

use super::MountStats;
use crate::cache::BlobCache;
use crate::entry::{EntryKind, ObjectId, TreeEntry};
use crate::path::RepoPath;
use crate::view::{upper, Node, View, ViewError};
use fuser::{
    BackingId, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    InitFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite,
    ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use std::collections::{HashMap, VecDeque};
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

type Key = (usize, RepoPath);

struct InodeData {
    key: Key,
    /// Other paths of the same inode (hard links made through the mount).
    aliases: Vec<Key>,
    /// Set when the path was unlinked or replaced: the number is retired.
    retired: bool,
    /// Set while the path is being unlinked or replaced through us: its kept
    /// fd (what its open files read) must outlive the watcher's events.
    pinned: bool,
    /// The passthrough backing file shared by all open handles of this inode.
    backing: Option<(Arc<BackingId>, usize)>,
    /// For directories: the View's version of the listing last handed to
    /// the kernel; while it stays the same the kernel keeps its cache.
    dir_version: Option<String>,
    /// With opens skipped: the fd this inode's reads and writes use, and
    /// whether it is the upper file opened read-write.
    file: Option<(Arc<File>, bool)>,
    /// With opens skipped: a lower file unlinked through the mount, still
    /// readable by the kernel's open files of it until `forget`.
    orphan: Option<(usize, Node)>,
    /// With opens skipped: the listing being handed to the kernel, from
    /// the readdir at offset 0 to the one that reaches the end.
    listing: Option<Arc<Vec<DirEnt>>>,
    /// The size of the lower blob last reported for this inode (git trees
    /// record none, and finding it takes a cache lookup and a stat).
    lower_size: Option<(ObjectId, u64)>,
    /// Lookups the kernel holds (entries handed to it, less those it
    /// forgot). A retired inode is dropped only when this reaches 0: a
    /// `forget` of an earlier use of the number can arrive after a newer
    /// lookup of it, and dropping on any `forget` then lost the fd an open,
    /// unlinked file still wrote through.
    lookups: u64,
}

impl InodeData {
    fn new(key: Key) -> InodeData {
        InodeData {
            key,
            aliases: Vec::new(),
            retired: false,
            pinned: false,
            backing: None,
            dir_version: None,
            file: None,
            orphan: None,
            listing: None,
            lower_size: None,
            lookups: 0,
        }
    }
}

/// How many inode fds are kept open when opens are skipped, at most; beyond
/// it the oldest are closed (and reopened on their next read). A quarter of
/// the process's fd limit when that is lower (see [`fd_budget`]).
const MAX_INODE_FILES: usize = 4096;

/// Raises the soft fd limit to the hard one (as FUSE daemons do: every open
/// file and kept inode holds an fd) and returns how many inode fds to keep.
fn fd_budget() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    usize::try_from(lim.rlim_cur / 4)
        .unwrap_or(MAX_INODE_FILES)
        .clamp(16, MAX_INODE_FILES)
}

#[derive(Default)]
pub(super) struct Inodes {
    by_ino: HashMap<u64, InodeData>,
    by_key: HashMap<Key, u64>,
    next: u64,
    /// Inodes holding an fd in `file`, oldest first (may hold stale ones).
    with_file: VecDeque<u64>,
    /// How many of them may hold one.
    max_files: usize,
}

impl Inodes {
    /// The inode number of `(view, path)` if the kernel has been given one.
    pub(super) fn ino_of(&self, view: usize, path: &RepoPath) -> Option<u64> {
        self.by_key.get(&(view, path.clone())).copied()
    }

    /// Every live inode number of `view`.
    pub(super) fn all_of(&self, view: usize) -> Vec<u64> {
        self.by_key
            .iter()
            .filter(|((v, _), _)| *v == view)
            .map(|(_, i)| *i)
            .collect()
    }

    /// The inode number of `key`, counted as handed to the kernel in an
    /// entry (lookup, create, readdirplus).
    fn looked_up(&mut self, key: Key) -> u64 {
        let ino = self.ino_for(key);
        self.count_lookup(ino);
        ino
    }

    fn count_lookup(&mut self, ino: u64) {
        if let Some(d) = self.by_ino.get_mut(&ino) {
            d.lookups += 1;
        }
    }

    /// The kernel dropped `nlookup` of its lookups of `ino`. A retired
    /// inode with none left is dropped, with what it kept for open files.
    fn forgot(&mut self, ino: u64, nlookup: u64) {
        let Some(d) = self.by_ino.get_mut(&ino) else {
            return;
        };
        d.lookups = d.lookups.saturating_sub(nlookup);
        if d.retired && d.lookups == 0 {
            self.by_ino.remove(&ino);
        }
    }

    fn ino_for(&mut self, key: Key) -> u64 {
        if let Some(i) = self.by_key.get(&key) {
            return *i;
        }
        self.next += 1;
        let ino = self.next;
        self.by_key.insert(key.clone(), ino);
        self.by_ino.insert(ino, InodeData::new(key));
        ino
    }

    /// Closes the fd kept for `ino` (say, its lower file was copied up);
    /// an unlinked inode keeps its fd until `forget`.
    pub(super) fn drop_file(&mut self, ino: u64) {
        if let Some(d) = self.by_ino.get_mut(&ino) {
            if !d.retired && !d.pinned {
                d.file = None;
            }
        }
    }

    /// Closes the fd kept for `ino` if the file now at its upper path is
    /// another one (`now`: its device and inode number). An fd of the same
    /// file is never stale, whoever wrote it; and with no file there the
    /// old one is what open files of it still read (a file that appears
    /// there later raises its own event).
    pub(super) fn drop_file_if_replaced(&mut self, ino: u64, now: (u64, u64)) {
        let same = self
            .by_ino
            .get(&ino)
            .and_then(|d| d.file.as_ref())
            .is_none_or(|(f, _)| upper::fstat(&**f).is_ok_and(|st| (st.st_dev, st.st_ino) == now));
        if !same {
            self.drop_file(ino);
        }
    }

    /// Keeps `file` as the fd of `ino`, closing the oldest kept fds of
    /// linked inodes beyond `max_files`.
    fn keep_file(&mut self, ino: u64, file: Arc<File>, writable: bool) {
        let Some(d) = self.by_ino.get_mut(&ino) else {
            return;
        };
        d.file = Some((file, writable));
        self.with_file.push_back(ino);
        while self.with_file.len() > self.max_files {
            let Some(old) = self.with_file.pop_front() else {
                break;
            };
            // (A stale or repeated number only closes an fd early.)
            self.drop_file(old);
        }
    }

    /// Gives `key` the inode `ino` too (a hard link).
    fn alias(&mut self, key: Key, ino: u64) {
        self.retire(&key);
        if let Some(d) = self.by_ino.get_mut(&ino) {
            d.aliases.push(key.clone());
            self.by_key.insert(key, ino);
        }
    }

    /// `key` is gone; its inode number is retired with its last path.
    fn retire(&mut self, key: &Key) {
        let Some(ino) = self.by_key.remove(key) else {
            return;
        };
        let Some(d) = self.by_ino.get_mut(&ino) else {
            return;
        };
        if d.key == *key {
            match d.aliases.pop() {
                Some(a) => d.key = a,
                None => d.retired = true,
            }
        } else {
            d.aliases.retain(|k| k != key);
        }
    }

    /// Moves `from` and everything below it to `to` (after a rename).
    fn rename(&mut self, view: usize, from: &RepoPath, to: &RepoPath) {
        self.retire(&(view, to.clone()));
        let moved: Vec<(Key, u64)> = self
            .by_key
            .iter()
            .filter(|((v, p), _)| *v == view && p.starts_with(from) && !p.starts_with(to))
            .map(|(k, i)| (k.clone(), *i))
            .collect();
        for ((v, p), ino) in moved {
            let rest = &p.as_str()[from.as_str().len()..];
            let new = RepoPath::new(&format!("{}{}", to.as_str(), rest));
            let old = (v, p);
            self.by_key.remove(&old);
            if let Ok(new) = new {
                let new = (v, new);
                self.by_key.insert(new.clone(), ino);
                if let Some(d) = self.by_ino.get_mut(&ino) {
                    if d.key == old {
                        d.key = new;
                    } else if let Some(a) = d.aliases.iter_mut().find(|a| **a == old) {
                        *a = new;
                    }
                }
            }
        }
    }

    /// Swaps `a` and `b` (after `RENAME_EXCHANGE`).
    fn exchange(&mut self, view: usize, a: &RepoPath, b: &RepoPath) {
        let tmp = match RepoPath::new(&format!("{}\u{1}xchg", a.as_str())) {
            Ok(t) => t,
            Err(_) => return,
        };
        self.rename(view, a, &tmp);
        self.rename(view, b, a);
        self.rename(view, &tmp, b);
    }
}

enum Handle {
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
    Dir {
        ino: INodeNo,
        listing: Arc<Mutex<Option<Arc<Vec<DirEnt>>>>>,
    },
}

struct DirEnt {
    ino: u64,
    kind: FileType,
    name: String,
    node: Option<Node>,
}

/// The FUSE file system. Build it with [`OverlayFs::new`] and hand it to
/// [`super::mount`] (or to `fuser` directly).
pub struct OverlayFs {
    views: Vec<Arc<View>>,
    /// Root names served by views other than 0.
    binds: HashMap<String, usize>,
    /// Views whose files are opened in FUSE passthrough mode.
    passthrough_views: Vec<usize>,
    cache: Arc<dyn BlobCache>,
    inodes: Arc<Mutex<Inodes>>,
    /// Entry and attribute TTL given to the kernel.
    ttl: Duration,
    handles: Mutex<HashMap<u64, Handle>>,
    next_fh: AtomicU64,
    mounted_at: SystemTime,
    uid: u32,
    gid: u32,
    is_root: bool,
    passthrough_ok: AtomicU64,
    stats: Arc<MountStats>,
    /// Bumped by every mutation: cached directory nodes older than the
    /// current generation are resolved again.
    generation: AtomicU64,
    /// Resolved directory nodes, so a lookup does not walk from the root;
    /// trusted for [`NODE_CACHE_TTL`].
    dir_nodes: Mutex<HashMap<Key, (Node, Instant, u64)>>,
}

fn errno(e: &ViewError) -> Errno {
    Errno::from_i32(e.errno())
}

fn io_errno(e: &io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

fn file_type(node: &Node) -> FileType {
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

fn timespec(t: TimeOrNow) -> libc::timespec {
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
fn orphan_node(st: libc::stat) -> Node {
    Node {
        path: RepoPath::root(),
        kind: EntryKind::File,
        upper: Some(st),
        lower: None,
        merge_lower: false,
    }
}

/// `setattr` through an fd (for a file that has no path any more).
fn setattr_fd(
    f: &File,
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    size: Option<u64>,
    atime: Option<TimeOrNow>,
    mtime: Option<TimeOrNow>,
) -> Result<(), Errno> {
    use std::os::unix::fs::PermissionsExt;
    let last = || io_errno(&io::Error::last_os_error());
    if let Some(size) = size {
        f.set_len(size).map_err(|e| io_errno(&e))?;
    }
    if uid.is_some() || gid.is_some() {
        // SAFETY: fchown on a valid fd; -1 leaves an id unchanged.
        let r = unsafe {
            libc::fchown(
                f.as_raw_fd(),
                uid.unwrap_or(u32::MAX),
                gid.unwrap_or(u32::MAX),
            )
        };
        if r != 0 {
            return Err(last());
        }
    }
    if let Some(mode) = mode {
        f.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))
            .map_err(|e| io_errno(&e))?;
    }
    if atime.is_some() || mtime.is_some() {
        let omit = libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        };
        let ts = [
            atime.map(timespec).unwrap_or(omit),
            mtime.map(timespec).unwrap_or(omit),
        ];
        // SAFETY: futimens on a valid fd with a two-element array.
        if unsafe { libc::futimens(f.as_raw_fd(), ts.as_ptr()) } != 0 {
            return Err(last());
        }
    }
    Ok(())
}

fn name_str(name: &OsStr) -> Result<&str, Errno> {
    let s = name.to_str().ok_or(Errno::EINVAL)?;
    if s.len() > 255 {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(s)
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
        let mut inodes = Inodes {
            next: 1,
            max_files: fd_budget(),
            ..Default::default()
        };
        inodes.by_key.insert((0, RepoPath::root()), 1);
        inodes
            .by_ino
            .insert(1, InodeData::new((0, RepoPath::root())));
        // SAFETY: these getters cannot fail.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        OverlayFs {
            views,
            binds,
            passthrough_views,
            cache,
            inodes: Arc::new(Mutex::new(inodes)),
            ttl,
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            mounted_at: SystemTime::now(),
            uid,
            gid,
            is_root: uid == 0,
            passthrough_ok: AtomicU64::new(0),
            stats,
            generation: AtomicU64::new(0),
            dir_nodes: Mutex::new(HashMap::new()),
        }
    }

    /// The inode table, shared with the upper-dir watcher.
    pub(super) fn inode_table(&self) -> Arc<Mutex<Inodes>> {
        self.inodes.clone()
    }

    fn inodes(&self) -> MutexGuard<'_, Inodes> {
        self.inodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn handles(&self) -> MutexGuard<'_, HashMap<u64, Handle>> {
        self.handles.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn key(&self, ino: INodeNo) -> Result<Key, Errno> {
        let inodes = self.inodes();
        let d = inodes.by_ino.get(&ino.0).ok_or(Errno::ENOENT)?;
        if d.retired {
            return Err(Errno::ENOENT);
        }
        Ok(d.key.clone())
    }

    fn view(&self, v: usize) -> Result<&Arc<View>, Errno> {
        self.views.get(v).ok_or(Errno::EIO)
    }

    /// The current node of an inode (resolved afresh, so outside changes to
    /// the upper dir are seen).
    fn node(&self, ino: INodeNo) -> Result<(Key, Node), Errno> {
        let key = self.key(ino)?;
        let node = self.resolve(&key)?;
        Ok((key, node))
    }

    /// The current node at `key`: its parent directory from the short-lived
    /// cache, the entry itself looked up afresh.
    fn resolve(&self, key: &Key) -> Result<Node, Errno> {
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

    /// Forgets cached directory nodes (after any change made through us).
    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// The node of directory `key`, from the short-lived cache if fresh.
    fn dir_node(&self, key: &Key) -> Result<Node, Errno> {
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

    /// The key of `parent/name`.
    fn child_key(&self, parent: INodeNo, name: &OsStr) -> Result<Key, Errno> {
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

    fn attr(&self, ino: u64, node: &Node) -> Result<FileAttr, Errno> {
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
        if let Some(d) = self.inodes().by_ino.get(&ino) {
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
        if let Some(d) = self.inodes().by_ino.get_mut(&ino) {
            d.lower_size = Some((e.oid.clone(), size));
        }
        Ok(size)
    }

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

    fn entry_reply(&self, key: Key, reply: ReplyEntry) {
        let found = self.resolve(&key);
        self.entry_reply_found(key, found, reply);
    }

    fn entry_reply_found(&self, key: Key, found: Result<Node, Errno>, reply: ReplyEntry) {
        match found {
            Ok(node) => {
                let ino = self.inodes().ino_for(key);
                match self.attr(ino, &node) {
                    Ok(a) => {
                        self.inodes().count_lookup(ino);
                        reply.entry(&self.ttl, &a, Generation(0))
                    }
                    Err(e) => reply.error(e),
                }
            }
            Err(e) => reply.error(e),
        }
    }

    /// An open upper fd of inode `ino` (`fh` first, else any handle of it),
    /// for a file that was unlinked while open.
    fn orphan_fd(&self, ino: INodeNo, fh: Option<FileHandle>) -> Option<Arc<File>> {
        let handles = self.handles();
        let of = |h: &Handle| match h {
            Handle::File {
                file,
                upper: true,
                ino: i,
                ..
            } if *i == ino.0 => Some(file.clone()),
            _ => None,
        };
        fh.and_then(|fh| handles.get(&fh.0).and_then(of))
            .or_else(|| handles.values().find_map(of))
            .or_else(|| {
                let inodes = self.inodes();
                match &inodes.by_ino.get(&ino.0)?.file {
                    Some((f, true)) => Some(f.clone()),
                    _ => None,
                }
            })
    }

    fn new_fh(&self, h: Handle) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles().insert(fh, h);
        fh
    }

    fn file(&self, fh: FileHandle) -> Result<Arc<File>, Errno> {
        match self.handles().get(&fh.0) {
            Some(Handle::File { file, .. }) => Ok(file.clone()),
            Some(Handle::Dir { .. }) => Err(Errno::EISDIR),
            None => Err(Errno::EBADF),
        }
    }

    /// Opens the file of `node` for the given open flags: lower files
    /// read-only from the blob cache, everything written through the upper
    /// dir (copied up first).
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

    /// Whether opens are skipped: `open` and `opendir` are answered
    /// `ENOSYS`, so the kernel stops sending them (and `release`) and keeps
    /// page and directory caches across opens; reads and writes then name
    /// only the inode. Two round trips per opened file saved, and warm
    /// reads never reach us. The mount turns it on only over an immutable
    /// lower with the upper-dir watcher running, which invalidates what
    /// the kernel caches of an upper file changed behind our back.
    fn skipping_opens(&self) -> bool {
        self.stats.skip_opens.load(Ordering::Relaxed)
    }

    /// The fd for I/O on `ino`: the handle `fh` when the file was opened
    /// (or created) through us, else the inode's own, opened on first use
    /// and kept. `write` copies a lower file up first.
    fn io_file(&self, ino: INodeNo, fh: FileHandle, write: bool) -> Result<Arc<File>, Errno> {
        if fh.0 != 0 {
            return self.file(fh);
        }
        let orphan = {
            let inodes = self.inodes();
            let d = inodes.by_ino.get(&ino.0).ok_or(Errno::ENOENT)?;
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
    fn keep_for_open_files(&self, key: &Key) -> Option<u64> {
        let ino = {
            let mut inodes = self.inodes();
            // Never looked up: nobody can have it open.
            let ino = inodes.ino_of(key.0, &key.1)?;
            inodes.by_ino.get_mut(&ino)?.pinned = true;
            ino
        };
        self.keep_node_for_open_files(key, ino);
        Some(ino)
    }

    /// The unlink or replacement of a path given to
    /// [`Self::keep_for_open_files`] is over (done or failed).
    fn unpin(&self, ino: Option<u64>) {
        if let Some(ino) = ino {
            if let Some(d) = self.inodes().by_ino.get_mut(&ino) {
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
        if let Some(d) = self.inodes().by_ino.get_mut(&ino) {
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

    /// The listing readdir hands out at `offset`: the handle's, or (opens
    /// skipped) the inode's, made afresh at offset 0.
    fn listing(
        &self,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
    ) -> Result<Arc<Vec<DirEnt>>, Errno> {
        if fh.0 != 0 {
            return self.dir_handle(fh);
        }
        if offset != 0 {
            if let Some(l) = self
                .inodes()
                .by_ino
                .get(&ino.0)
                .and_then(|d| d.listing.clone())
            {
                return Ok(l);
            }
        }
        let l = Arc::new(self.list_dir(ino)?);
        if let Some(d) = self.inodes().by_ino.get_mut(&ino.0) {
            d.listing = Some(l.clone());
        }
        Ok(l)
    }

    /// The kernel has read the whole listing of `ino` (opens skipped).
    fn listing_done(&self, ino: INodeNo, fh: FileHandle) {
        if fh.0 == 0 {
            if let Some(d) = self.inodes().by_ino.get_mut(&ino.0) {
                d.listing = None;
            }
        }
    }

    /// Registers `file` as the passthrough backing of `ino` (or reuses the
    /// inode's existing one). `None` when passthrough is not in use.
    fn backing(
        &self,
        ino: u64,
        key: &Key,
        file: &File,
        open_backing: impl FnOnce(&File) -> io::Result<BackingId>,
    ) -> Option<Arc<BackingId>> {
        if self.passthrough_ok.load(Ordering::Relaxed) == 0
            || !self.passthrough_views.contains(&key.0)
        {
            return None;
        }
        let mut inodes = self.inodes();
        let d = inodes.by_ino.get_mut(&ino)?;
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

    fn drop_backing(&self, ino: u64) {
        let mut inodes = self.inodes();
        if let Some(d) = inodes.by_ino.get_mut(&ino) {
            if let Some((_, n)) = &mut d.backing {
                *n -= 1;
                if *n == 0 {
                    d.backing = None;
                }
            }
        }
    }

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

    fn dir_handle(&self, fh: FileHandle) -> Result<Arc<Vec<DirEnt>>, Errno> {
        let (ino, listing) = match self.handles().get(&fh.0) {
            Some(Handle::Dir { ino, listing }) => (*ino, listing.clone()),
            Some(_) => return Err(Errno::ENOTDIR),
            None => return Err(Errno::EBADF),
        };
        let mut l = listing.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = &*l {
            return Ok(d.clone());
        }
        let d = Arc::new(self.list_dir(ino)?);
        *l = Some(d.clone());
        Ok(d)
    }

    fn xattr_path(&self, ino: INodeNo, copy_up: bool) -> Result<Option<CString>, Errno> {
        let (key, node) = self.node(ino)?;
        let view = self.view(key.0)?;
        let node = if copy_up && !node.is_upper() {
            view.copy_up(&key.1, Some(self.cache.as_ref()))
                .map_err(|e| errno(&e))?
        } else {
            node
        };
        match view.upper_path(&node) {
            Some(p) => Ok(Some(
                CString::new(p.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?,
            )),
            None => Ok(None),
        }
    }

    fn reply_xattr(reply: ReplyXattr, size: u32, data: &[u8]) {
        if size == 0 {
            reply.size(data.len() as u32);
        } else if data.len() > size as usize {
            reply.error(Errno::ERANGE);
        } else {
            reply.data(data);
        }
    }
}

impl OverlayFs {
    /// `unlink` (`dir == false`) and `rmdir` (`dir == true`): remove through
    /// the View (a whiteout over a lower entry) and retire the inode.
    fn remove_child(&self, parent: INodeNo, name: &OsStr, dir: bool) -> Result<(), Errno> {
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
            self.changed();
        }
        Ok(())
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
        if !self.passthrough_views.is_empty() && caps.contains(InitFlags::FUSE_PASSTHROUGH) {
            // Passthrough needs a stacking depth; 1 is enough on ext4/xfs.
            if config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
                && config.set_max_stack_depth(1).is_ok()
            {
                self.passthrough_ok.store(1, Ordering::Relaxed);
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
        let key = match self.child_key(parent, name) {
            Ok(k) => k,
            Err(e) => return reply.error(e),
        };
        let found = self.resolve(&key);
        if self.skipping_opens() && found.as_ref().is_err_and(|e| *e == Errno::ENOENT) {
            // An absence the kernel may remember: it is told (by the upper
            // dir watcher) when the name appears behind us, and the lower
            // cannot change. Inode 0 makes a negative entry with a TTL.
            let attr = FileAttr {
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
            };
            return reply.entry(&self.ttl, &attr, Generation(0));
        }
        self.entry_reply_found(key, found, reply);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let attr = self.node(ino).and_then(|(_, n)| self.attr(ino.0, &n));
        // Unlinked but still open: the attributes come from an open upper
        // fd, or from the lower node kept for it.
        let attr = attr.or_else(|e| match self.orphan_fd(ino, fh) {
            Some(f) => upper::fstat(&*f)
                .map_err(|e| io_errno(&e))
                .and_then(|st| self.attr(ino.0, &orphan_node(st))),
            None => {
                let orphan = self
                    .inodes()
                    .by_ino
                    .get(&ino.0)
                    .and_then(|d| d.orphan.clone());
                match orphan {
                    Some((_, node)) => self.attr(ino.0, &node),
                    None => Err(e),
                }
            }
        });
        match attr {
            Ok(a) => reply.attr(&self.ttl, &a),
            Err(e) => reply.error(e),
        }
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
        // An unlinked file still open: change it through its fd.
        if self.key(ino).is_err() {
            let r = match self.orphan_fd(ino, fh) {
                Some(f) => setattr_fd(&f, mode, uid, gid, size, atime, mtime).and_then(|()| {
                    let st = upper::fstat(&*f).map_err(|e| io_errno(&e))?;
                    self.attr(ino.0, &orphan_node(st))
                }),
                None => Err(Errno::ENOENT),
            };
            return match r {
                Ok(a) => reply.attr(&self.ttl, &a),
                Err(e) => reply.error(e),
            };
        }
        let run = || -> Result<FileAttr, Errno> {
            let (key, _) = self.node(ino)?;
            let view = self.view(key.0)?;
            let cache = Some(self.cache.as_ref());
            if let Some(size) = size {
                let via_fh = fh.and_then(|fh| self.file(fh).ok()).filter(|f| {
                    // Only an upper fd opened for writing can be truncated.
                    // SAFETY: fcntl F_GETFL on a valid fd.
                    let fl = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETFL) };
                    fl >= 0 && fl & libc::O_ACCMODE != libc::O_RDONLY
                });
                let f = match via_fh {
                    Some(f) => f,
                    None => Arc::new(
                        view.open_upper(&key.1, libc::O_WRONLY, cache)
                            .map_err(|e| errno(&e))?,
                    ),
                };
                f.set_len(size).map_err(|e| io_errno(&e))?;
            }
            if uid.is_some() || gid.is_some() {
                view.set_owner(&key.1, uid, gid, cache)
                    .map_err(|e| errno(&e))?;
            }
            if let Some(mode) = mode {
                view.set_mode(&key.1, mode, cache).map_err(|e| errno(&e))?;
            }
            if atime.is_some() || mtime.is_some() {
                view.set_times(&key.1, atime.map(timespec), mtime.map(timespec), cache)
                    .map_err(|e| errno(&e))?;
            }
            // A kept fd of the lower file is stale once the file is copied up.
            self.inodes().drop_file(ino.0);
            let (_, node) = self.node(ino)?;
            self.attr(ino.0, &node)
        };
        match run() {
            Ok(a) => reply.attr(&self.ttl, &a),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let run = || -> Result<Vec<u8>, Errno> {
            let (key, node) = self.node(ino)?;
            if node.kind != EntryKind::Symlink {
                return Err(Errno::EINVAL);
            }
            self.view(key.0)?.read_node(&node).map_err(|e| errno(&e))
        };
        match run() {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(e),
        }
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
        let run = || -> Result<Key, Errno> {
            let key = self.child_key(parent, name)?;
            let view = self.view(key.0)?;
            let mode = (mode & libc::S_IFMT) | (mode & 0o7777 & !umask);
            view.mknod(&key.1, mode, u64::from(rdev))
                .map_err(|e| errno(&e))?;
            self.chown_new(req, &key);
            Ok(key)
        };
        match run() {
            Ok(key) => self.entry_reply(key, reply),
            Err(e) => reply.error(e),
        }
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
        let run = || -> Result<Key, Errno> {
            let key = self.child_key(parent, name)?;
            self.view(key.0)?
                .mkdir(&key.1, mode & 0o7777 & !umask)
                .map_err(|e| errno(&e))?;
            self.chown_new(req, &key);
            // A directory over a whiteout is made opaque: cached parents change.
            self.changed();
            Ok(key)
        };
        match run() {
            Ok(key) => self.entry_reply(key, reply),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.remove_child(parent, name, false) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.remove_child(parent, name, true) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let run = || -> Result<Key, Errno> {
            let key = self.child_key(parent, link_name)?;
            let target = target.to_str().ok_or(Errno::EINVAL)?;
            self.view(key.0)?
                .symlink(&key.1, target)
                .map_err(|e| errno(&e))?;
            self.chown_new(req, &key);
            Ok(key)
        };
        match run() {
            Ok(key) => self.entry_reply(key, reply),
            Err(e) => reply.error(e),
        }
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
        let run = || -> Result<(), Errno> {
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
                self.changed();
                let mut inodes = self.inodes();
                if flags.contains(RenameFlags::RENAME_EXCHANGE) {
                    inodes.exchange(from.0, &from.1, &to.1);
                } else {
                    inodes.rename(from.0, &from.1, &to.1);
                }
            }
            self.unpin(pinned);
            renamed.map_err(|e| errno(&e))
        };
        match run() {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let run = || -> Result<Key, Errno> {
            let (from, _) = self.node(ino)?;
            let to = self.child_key(newparent, newname)?;
            if from.0 != to.0 {
                return Err(Errno::EXDEV);
            }
            self.view(to.0)?
                .link(&from.1, &to.1, Some(self.cache.as_ref()))
                .map_err(|e| errno(&e))?;
            // The new name is the same inode to the kernel.
            self.inodes().alias(to.clone(), ino.0);
            Ok(to)
        };
        match run() {
            Ok(key) => self.entry_reply(key, reply),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.stats.opens.fetch_add(1, Ordering::Relaxed);
        if self.skipping_opens() {
            return reply.error(Errno::ENOSYS);
        }
        let run = || -> Result<(File, bool, Key), Errno> {
            let (key, node) = self.node(ino)?;
            if node.kind == EntryKind::Dir {
                return Err(Errno::EISDIR);
            }
            let (f, immutable) = self.open_file(&key, &node, flags.0)?;
            Ok((f, immutable, key))
        };
        match run() {
            Ok((file, immutable, key)) => {
                let fopen = if immutable {
                    FopenFlags::FOPEN_KEEP_CACHE
                } else {
                    FopenFlags::empty()
                };
                match self.backing(ino.0, &key, &file, |f| reply.open_backing(f)) {
                    Some(b) => {
                        let fh = self.new_fh(Handle::File {
                            file: Arc::new(file),
                            upper: !immutable,
                            ino: ino.0,
                            passthrough: true,
                        });
                        reply.opened_passthrough(FileHandle(fh), fopen, &b);
                    }
                    None => {
                        let fh = self.new_fh(Handle::File {
                            file: Arc::new(file),
                            upper: !immutable,
                            ino: ino.0,
                            passthrough: false,
                        });
                        reply.opened(FileHandle(fh), fopen);
                    }
                }
            }
            Err(e) => reply.error(e),
        }
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
        let run = || -> Result<Vec<u8>, Errno> {
            let f = self.io_file(ino, fh, false)?;
            crate::view::read_at(&f, offset, size as usize).map_err(|e| io_errno(&e))
        };
        match run() {
            Ok(d) => reply.data(&d),
            Err(e) => reply.error(e),
        }
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
        let run = || -> Result<u32, Errno> {
            let f = self.io_file(ino, fh, true)?;
            f.write_all_at(data, offset).map_err(|e| io_errno(&e))?;
            Ok(data.len() as u32)
        };
        match run() {
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
        if let Some(Handle::File {
            passthrough: true, ..
        }) = self.handles().remove(&fh.0)
        {
            self.drop_backing(ino.0);
        }
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
        let run = || -> Result<(), Errno> {
            let f = if fh.0 != 0 {
                self.file(fh)?
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
        };
        match run() {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.stats.opens.fetch_add(1, Ordering::Relaxed);
        if self.skipping_opens() {
            return reply.error(Errno::ENOSYS);
        }
        let run = || -> Result<bool, Errno> {
            let (key, node) = self.node(ino)?;
            if node.kind != EntryKind::Dir {
                return Err(Errno::ENOTDIR);
            }
            let version = self
                .view(key.0)?
                .dir_version(&node)
                .map_err(|e| errno(&e))?;
            let mut inodes = self.inodes();
            let d = inodes.by_ino.get_mut(&ino.0).ok_or(Errno::ENOENT)?;
            let same = d.dir_version.as_deref() == Some(version.as_str());
            d.dir_version = Some(version);
            Ok(same)
        };
        match run() {
            Ok(unchanged) => {
                let fh = self.new_fh(Handle::Dir {
                    ino,
                    listing: Arc::new(Mutex::new(None)),
                });
                // The kernel caches the listing; it keeps it across opens
                // only while the directory's version is unchanged.
                let mut flags = FopenFlags::FOPEN_CACHE_DIR;
                if unchanged {
                    flags |= FopenFlags::FOPEN_KEEP_CACHE;
                }
                reply.opened(FileHandle(fh), flags);
            }
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        match self.listing(ino, fh, offset) {
            Ok(list) => {
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
            Err(e) => reply.error(e),
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
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

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.handles().remove(&fh.0);
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

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let run = || -> Result<libc::statvfs, Errno> {
            let view = self.view(0)?;
            let p =
                CString::new(view.upper_dir().as_os_str().as_bytes()).map_err(|_| Errno::EIO)?;
            // SAFETY: zeroed statvfs is a valid out-buffer.
            let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
            // SAFETY: valid path and out pointer.
            if unsafe { libc::statvfs(p.as_ptr(), &mut s) } != 0 {
                return Err(io_errno(&io::Error::last_os_error()));
            }
            Ok(s)
        };
        match run() {
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
        let run = || -> Result<(), Errno> {
            let n = name_str(name)?;
            if upper::is_internal_xattr(n) {
                return Err(Errno::EPERM);
            }
            let p = self.xattr_path(ino, true)?.ok_or(Errno::EIO)?;
            let cn = CString::new(n).map_err(|_| Errno::EINVAL)?;
            // SAFETY: valid path, name and value buffer.
            let r = unsafe {
                libc::lsetxattr(
                    p.as_ptr(),
                    cn.as_ptr(),
                    value.as_ptr().cast(),
                    value.len(),
                    flags,
                )
            };
            if r != 0 {
                return Err(io_errno(&io::Error::last_os_error()));
            }
            Ok(())
        };
        match run() {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let run = || -> Result<Vec<u8>, Errno> {
            let n = name_str(name)?;
            if upper::is_internal_xattr(n) {
                return Err(Errno::NO_XATTR);
            }
            let Some(p) = self.xattr_path(ino, false)? else {
                return Err(Errno::NO_XATTR);
            };
            let cn = CString::new(n).map_err(|_| Errno::EINVAL)?;
            let mut buf = vec![0u8; 64 * 1024];
            // SAFETY: valid path, name and buffer.
            let r = unsafe {
                libc::lgetxattr(p.as_ptr(), cn.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
            };
            if r < 0 {
                return Err(io_errno(&io::Error::last_os_error()));
            }
            buf.truncate(r as usize);
            Ok(buf)
        };
        match run() {
            Ok(d) => Self::reply_xattr(reply, size, &d),
            Err(e) => reply.error(e),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let run = || -> Result<Vec<u8>, Errno> {
            let Some(p) = self.xattr_path(ino, false)? else {
                return Ok(Vec::new());
            };
            let mut buf = vec![0u8; 64 * 1024];
            // SAFETY: valid path and buffer.
            let r = unsafe { libc::llistxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
            if r < 0 {
                return Err(io_errno(&io::Error::last_os_error()));
            }
            buf.truncate(r as usize);
            let mut out = Vec::new();
            for n in buf.split(|b| *b == 0).filter(|n| !n.is_empty()) {
                if !upper::is_internal_xattr(&String::from_utf8_lossy(n)) {
                    out.extend_from_slice(n);
                    out.push(0);
                }
            }
            Ok(out)
        };
        match run() {
            Ok(d) => Self::reply_xattr(reply, size, &d),
            Err(e) => reply.error(e),
        }
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let run = || -> Result<(), Errno> {
            let n = name_str(name)?;
            if upper::is_internal_xattr(n) {
                return Err(Errno::NO_XATTR);
            }
            let Some(p) = self.xattr_path(ino, false)? else {
                return Err(Errno::NO_XATTR);
            };
            let cn = CString::new(n).map_err(|_| Errno::EINVAL)?;
            // SAFETY: valid path and name.
            if unsafe { libc::lremovexattr(p.as_ptr(), cn.as_ptr()) } != 0 {
                return Err(io_errno(&io::Error::last_os_error()));
            }
            Ok(())
        };
        match run() {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let run = || -> Result<(File, Key, FileAttr), Errno> {
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
            if self.is_root {
                // SAFETY: fchown on the fd we just created.
                if unsafe { libc::fchown(file.as_raw_fd(), req.uid(), req.gid()) } == 0 {
                    node.upper = upper::fstat(&file).ok().or(node.upper);
                }
            }
            let ino = self.inodes().looked_up(key.clone());
            let attr = self.attr(ino, &node)?;
            Ok((file, key, attr))
        };
        // `flags` needs no handling: the file is new and empty, and our fd is
        // always read-write (the kernel enforces the caller's access mode).
        let _ = flags;
        match run() {
            // Opens skipped: the kernel sends no `release` for created files
            // either, so the fd becomes the inode's own and the handle is 0.
            Ok((file, _, attr)) if self.skipping_opens() => {
                self.inodes().keep_file(attr.ino.0, Arc::new(file), true);
                reply.created(
                    &self.ttl,
                    &attr,
                    Generation(0),
                    FileHandle(0),
                    FopenFlags::FOPEN_KEEP_CACHE,
                );
            }
            Ok((file, key, attr)) => {
                let backing = self.backing(attr.ino.0, &key, &file, |f| reply.open_backing(f));
                let fh = self.new_fh(Handle::File {
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
                        FileHandle(fh),
                        FopenFlags::empty(),
                        &b,
                    ),
                    None => reply.created(
                        &self.ttl,
                        &attr,
                        Generation(0),
                        FileHandle(fh),
                        FopenFlags::empty(),
                    ),
                }
            }
            Err(e) => reply.error(e),
        }
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
        let run = || -> Result<(), Errno> {
            let f = self.io_file(ino, fh, true)?;
            // SAFETY: fallocate on a valid fd.
            let r = unsafe {
                libc::fallocate(
                    f.as_raw_fd(),
                    mode,
                    offset as libc::off_t,
                    length as libc::off_t,
                )
            };
            if r != 0 {
                return Err(io_errno(&io::Error::last_os_error()));
            }
            Ok(())
        };
        match run() {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_forget_of_an_earlier_lookup_keeps_a_retired_inode() {
        let mut inodes = Inodes::default();
        let key = (0, RepoPath::new("notes.txt").unwrap());
        let ino = inodes.looked_up(key.clone());
        // The kernel evicts the inode and queues forget(1); before that
        // arrives the name is looked up again (same number), opened, and
        // unlinked through the mount.
        assert_eq!(inodes.looked_up(key.clone()), ino);
        inodes.retire(&key);
        inodes.forgot(ino, 1);
        assert!(
            inodes.by_ino.contains_key(&ino),
            "the open file's inode was dropped"
        );
        // The open file is closed: the kernel forgets its lookup too.
        inodes.forgot(ino, 1);
        assert!(!inodes.by_ino.contains_key(&ino));
        // A live inode is never dropped by a forget.
        let live = inodes.looked_up((0, RepoPath::new("kept").unwrap()));
        inodes.forgot(live, 5);
        assert!(inodes.by_ino.contains_key(&live));
    }
}
