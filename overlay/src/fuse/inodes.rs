//! The inode table: which `(view, path)` each inode number names, and what
//! the daemon keeps per inode for the kernel.
//!
//! Lifetimes. An inode number names `(view, path)` for the life of the
//! mount: it is made at the first lookup (or readdir) of the path, moves
//! with the path on a rename, and is shared by the extra names of a hard
//! link made through the mount. When the path is unlinked or replaced the
//! number is *retired* (a new file there gets a new one), and a retired
//! inode is dropped when the kernel has forgotten every lookup of it
//! (`forget`), together with what was kept for its open files (its fd, its
//! lower node). A linked inode is never dropped, so the table grows with
//! the number of distinct paths looked up. Kept fds of linked inodes are
//! bounded (see [`fd_budget`]): the oldest are closed and reopened on use.
//!
//! The table is shared with the upper-dir watcher (`watch.rs`), which asks
//! it which inode a changed path has and drops fds made stale.

use super::sys;
use crate::entry::ObjectId;
use crate::path::RepoPath;
use crate::view::{upper, Node};
use fuser::{BackingId, FileType};
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::sync::Arc;

/// One entry of a listing.
pub(super) struct DirEnt {
    pub(super) ino: u64,
    pub(super) kind: FileType,
    pub(super) name: String,
    /// The entry's node, when the listing had it (not for `.` and `..`).
    pub(super) node: Option<Node>,
}

/// A whole listing, shared between the readdirs that hand it out.
pub(super) type Listing = Arc<Vec<DirEnt>>;

/// `(view, path)`: what an inode number names. View 0 is the tree, the
/// others bind directories.
pub(super) type Key = (usize, RepoPath);

/// What is kept for one inode number.
pub(super) struct InodeData {
    pub(super) key: Key,
    /// Other paths of the same inode (hard links made through the mount).
    aliases: Vec<Key>,
    /// Set when the path was unlinked or replaced: the number is retired.
    pub(super) retired: bool,
    /// Set while the path is being unlinked or replaced through us: its kept
    /// fd (what its open files read) must outlive the watcher's events.
    pub(super) pinned: bool,
    /// The passthrough backing file shared by all open handles of this inode.
    pub(super) backing: Option<(Arc<BackingId>, usize)>,
    /// For directories: the View's version of the listing last handed to
    /// the kernel; while it stays the same the kernel keeps its cache.
    pub(super) dir_version: Option<String>,
    /// With opens skipped: the fd this inode's reads and writes use, and
    /// whether it is the upper file opened read-write.
    pub(super) file: Option<(Arc<File>, bool)>,
    /// With opens skipped: a lower file unlinked through the mount, still
    /// readable by the kernel's open files of it until `forget`.
    pub(super) orphan: Option<(usize, Node)>,
    /// With opens skipped: the listing being handed to the kernel, from
    /// the readdir at offset 0 to the one that reaches the end.
    pub(super) listing: Option<Listing>,
    /// The size of the lower blob last reported for this inode (git trees
    /// record none, and finding it takes a cache lookup and a stat).
    pub(super) lower_size: Option<(ObjectId, u64)>,
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
    usize::try_from(sys::raise_fd_limit() / 4)
        .unwrap_or(MAX_INODE_FILES)
        .clamp(16, MAX_INODE_FILES)
}

/// The inode table (see the module doc for the lifetimes it keeps).
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
    /// A table holding only the root (inode 1, the root of view 0), whose
    /// kept fds are bounded by the process's fd limit.
    pub(super) fn new() -> Inodes {
        let mut inodes = Inodes {
            next: 1,
            max_files: fd_budget(),
            ..Default::default()
        };
        let root = (0, RepoPath::root());
        inodes.by_key.insert(root.clone(), 1);
        inodes.by_ino.insert(1, InodeData::new(root));
        inodes
    }

    /// What is kept for `ino`, if it is in the table.
    pub(super) fn get(&self, ino: u64) -> Option<&InodeData> {
        self.by_ino.get(&ino)
    }

    /// What is kept for `ino`, to change it.
    pub(super) fn get_mut(&mut self, ino: u64) -> Option<&mut InodeData> {
        self.by_ino.get_mut(&ino)
    }

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
    pub(super) fn looked_up(&mut self, key: Key) -> u64 {
        let ino = self.ino_for(key);
        self.count_lookup(ino);
        ino
    }

    pub(super) fn count_lookup(&mut self, ino: u64) {
        if let Some(d) = self.by_ino.get_mut(&ino) {
            d.lookups += 1;
        }
    }

    /// The kernel dropped `nlookup` of its lookups of `ino`. A retired
    /// inode with none left is dropped, with what it kept for open files.
    pub(super) fn forgot(&mut self, ino: u64, nlookup: u64) {
        let Some(d) = self.by_ino.get_mut(&ino) else {
            return;
        };
        d.lookups = d.lookups.saturating_sub(nlookup);
        if d.retired && d.lookups == 0 {
            self.by_ino.remove(&ino);
        }
    }

    pub(super) fn ino_for(&mut self, key: Key) -> u64 {
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
    pub(super) fn keep_file(&mut self, ino: u64, file: Arc<File>, writable: bool) {
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
    pub(super) fn alias(&mut self, key: Key, ino: u64) {
        self.retire(&key);
        if let Some(d) = self.by_ino.get_mut(&ino) {
            d.aliases.push(key.clone());
            self.by_key.insert(key, ino);
        }
    }

    /// `key` is gone; its inode number is retired with its last path.
    pub(super) fn retire(&mut self, key: &Key) {
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
    pub(super) fn rename(&mut self, view: usize, from: &RepoPath, to: &RepoPath) {
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
    pub(super) fn exchange(&mut self, view: usize, a: &RepoPath, b: &RepoPath) {
        let tmp = match RepoPath::new(&format!("{}\u{1}xchg", a.as_str())) {
            Ok(t) => t,
            Err(_) => return,
        };
        self.rename(view, a, &tmp);
        self.rename(view, b, a);
        self.rename(view, &tmp, b);
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
