//! Invalidation of the kernel's caches when the upper dir changes behind
//! the daemon's back (the two-way sync writes into it directly).
//!
//! An inotify watch on every directory of the upper dir; each event
//! invalidates the kernel's entry for the name (`inval_entry`) and the
//! cached attributes and pages of the parent directory and of the entry
//! itself (`inval_inode`). Whiteout markers (`.wh.<name>`) invalidate
//! `<name>`. This lets entry and attribute TTLs be long without serving
//! stale data: what the sync writes is visible as soon as the event is read.
//! File content is watched with `IN_CLOSE_WRITE` and renames, not
//! `IN_MODIFY`, so writes through the mount itself (which also reach the
//! upper dir) do not drop the page cache on every `write`.

use super::inodes::Inodes;
use super::sys::{self, Inotify};
use crate::path::RepoPath;
use crate::view::upper;
use fuser::{INodeNo, Notifier};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

const MASK: u32 = libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_MOVED_FROM
    | libc::IN_MOVED_TO
    | libc::IN_CLOSE_WRITE
    | libc::IN_ATTRIB
    | libc::IN_DONT_FOLLOW
    | libc::IN_ONLYDIR;

struct Watcher {
    inotify: Inotify,
    root: PathBuf,
    /// Watch descriptor → directory of the upper dir.
    dirs: HashMap<i32, RepoPath>,
    inodes: Arc<Mutex<Inodes>>,
    notifier: Notifier,
}

/// Starts watching `upper_root` (the upper dir of view 0) until `stop`.
pub(super) fn spawn(
    upper_root: &Path,
    inodes: Arc<Mutex<Inodes>>,
    notifier: Notifier,
    stop: Arc<AtomicBool>,
) -> io::Result<JoinHandle<()>> {
    let mut w = Watcher {
        inotify: Inotify::new()?,
        root: upper_root.to_path_buf(),
        dirs: HashMap::new(),
        inodes,
        notifier,
    };
    w.add_tree(&RepoPath::root(), false);
    std::thread::Builder::new()
        .name("antares-upper-watch".into())
        .spawn(move || w.run(&stop))
}

impl Watcher {
    /// Watches `dir` and every directory below it (symlinks not followed).
    /// Watches `dir` and every directory below it. With `invalidate` (a
    /// directory that appeared while watching), the kernel also forgets
    /// what it cached of each name found: those made before the watch was
    /// in place raised no event.
    fn add_tree(&mut self, dir: &RepoPath, invalidate: bool) {
        let mut stack = vec![dir.clone()];
        while let Some(d) = stack.pop() {
            let path = d.to_fs_path(&self.root);
            let Some(wd) = self.inotify.add_watch(&path, MASK) else {
                continue;
            };
            self.dirs.insert(wd, d.clone());
            let Ok(rd) = std::fs::read_dir(&path) else {
                continue;
            };
            let d_ino = match invalidate {
                true => self
                    .inodes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .ino_of(0, &d),
                false => None,
            };
            for ent in rd.flatten() {
                let is_dir = ent.file_type().map(|t| t.is_dir()).unwrap_or(false);
                let name = ent.file_name();
                if let Some(di) = d_ino {
                    let name = name.to_string_lossy();
                    let name = name.strip_prefix(upper::WHITEOUT_PREFIX).unwrap_or(&name);
                    self.invalidate_name(di, &d, name);
                }
                if let (true, Some(name)) = (is_dir, name.to_str()) {
                    if let Ok(child) = d.join(name) {
                        stack.push(child);
                    }
                }
            }
        }
    }

    /// The kernel forgets what it knows of `dir/name` (in directory inode
    /// `dir_ino`). A name it was never given an inode for can only be a
    /// cached absence: its entry goes. A known one keeps its entry (its
    /// inode number does not change when it moves to the upper layer, and
    /// dropping a directory's entry would break the working directory of
    /// every process inside it); its attributes and pages go.
    fn invalidate_name(&self, dir_ino: u64, dir: &RepoPath, name: &str) {
        let known = dir.join(name).ok().and_then(|p| {
            let inodes = self.inodes.lock().unwrap_or_else(|p| p.into_inner());
            inodes.ino_of(0, &p)
        });
        let _ = match known {
            Some(ino) => self.notifier.inval_inode(INodeNo(ino), 0, 0),
            None => self
                .notifier
                .inval_entry(INodeNo(dir_ino), OsStr::new(name)),
        };
    }

    /// Stops watching `dir` and everything below it (it was moved away).
    fn remove_tree(&mut self, dir: &RepoPath) {
        let gone: Vec<i32> = self
            .dirs
            .iter()
            .filter(|(_, p)| p.starts_with(dir))
            .map(|(wd, _)| *wd)
            .collect();
        for wd in gone {
            self.dirs.remove(&wd);
            self.inotify.rm_watch(wd);
        }
    }

    fn run(mut self, stop: &AtomicBool) {
        let mut buf = vec![0u8; 64 * 1024];
        while !stop.load(Ordering::Relaxed) {
            let n = self.inotify.read(&mut buf, 200);
            for (ev, name) in sys::inotify_events(&buf[..n]) {
                self.handle(&ev, name);
            }
        }
    }

    fn handle(&mut self, ev: &libc::inotify_event, name: &[u8]) {
        if ev.mask & libc::IN_Q_OVERFLOW != 0 {
            self.invalidate_all();
            return;
        }
        if ev.mask & libc::IN_IGNORED != 0 {
            self.dirs.remove(&ev.wd);
            return;
        }
        let Some(dir) = self.dirs.get(&ev.wd).cloned() else {
            return;
        };
        let Ok(name) = std::str::from_utf8(name) else {
            return;
        };
        if name.is_empty() || name.starts_with(upper::TEMP_PREFIX) {
            return;
        }
        let target = match name.strip_prefix(upper::WHITEOUT_PREFIX) {
            Some(_) if name == upper::OPAQUE_MARKER => None,
            Some(t) => Some(t),
            None => Some(name),
        };
        let is_dir = ev.mask & libc::IN_ISDIR != 0;
        if let (Some(t), true) = (target, is_dir) {
            if let Ok(child) = dir.join(t) {
                if ev.mask & (libc::IN_CREATE | libc::IN_MOVED_TO) != 0 {
                    self.add_tree(&child, true);
                } else if ev.mask & libc::IN_MOVED_FROM != 0 {
                    self.remove_tree(&child);
                }
            }
        }
        let (dir_ino, child_ino) = {
            let mut inodes = self.inodes.lock().unwrap_or_else(|p| p.into_inner());
            let dir_ino = inodes.ino_of(0, &dir);
            let child = target.and_then(|t| dir.join(t).ok());
            let child_ino = child.as_ref().and_then(|c| inodes.ino_of(0, c));
            if let (Some(c), Some(path)) = (child_ino, &child) {
                // The daemon's own fd of it may be of a replaced file.
                if let Ok(m) = std::fs::symlink_metadata(path.to_fs_path(&self.root)) {
                    inodes.drop_file_if_replaced(c, (m.dev(), m.ino()));
                }
            }
            (dir_ino, child_ino)
        };
        // A name that went away (removed, moved out, whited out) loses its
        // entry. One the kernel knows and that is still there (a directory
        // copied up, a file replaced by rename) keeps it: its inode number
        // does not change, and dropping a directory's entry would break the
        // working directory of every process inside it.
        let gone = ev.mask & (libc::IN_DELETE | libc::IN_MOVED_FROM) != 0
            || (target.is_some() && name.starts_with(upper::WHITEOUT_PREFIX));
        // Errors (ENOENT: the kernel has no such entry cached) are expected.
        if let Some(d) = dir_ino {
            if let Some(t) = target.filter(|_| gone || child_ino.is_none()) {
                let _ = self.notifier.inval_entry(INodeNo(d), OsStr::new(t));
            }
            let _ = self.notifier.inval_inode(INodeNo(d), 0, 0);
        }
        if let Some(c) = child_ino {
            let _ = self.notifier.inval_inode(INodeNo(c), 0, 0);
        }
    }

    fn invalidate_all(&self) {
        let all: Vec<u64> = {
            let mut inodes = self.inodes.lock().unwrap_or_else(|p| p.into_inner());
            let all = inodes.all_of(0);
            for &ino in &all {
                inodes.drop_file(ino);
            }
            all
        };
        for ino in all {
            let _ = self.notifier.inval_inode(INodeNo(ino), 0, 0);
        }
    }
}
