//! The content-addressed store: every blob once, keyed by its BLAKE3 hash,
//! shared by all workspaces on the machine.
//!
//! Layout under the store root:
//! - `objects/<2 hex>/<62 hex>`: the blobs, read-only (0444), written
//!   temp-then-rename so a reader never sees a partial object;
//! - `tmp/`: temp files of writers in progress (several processes may write
//!   at once; names are unique per process and call);
//! - `oids`: an append-only index "source object id → BLAKE3, size", so a
//!   warm sync of a git-backed source places files without reading a single
//!   blob from the source. Lines torn by a crash are skipped on load.
//! - `verified`: an append-only index "BLAKE3 → the object's inode, size,
//!   mtime and ctime when its bytes were last known to hash to its name".
//!   An object is used only while its stat still matches (a write changes
//!   mtime and ctime, and ctime cannot be set back; a replacement changes
//!   the inode); otherwise it is hashed again, and if its bytes are wrong it
//!   is moved into `quarantine/` and fetched again from the source. So a
//!   stray write into the cache is never placed nor served, at the cost of
//!   one stat per object (which the presence check paid already).

#![allow(unsafe_code)] // raw syscalls, each with its SAFETY note

use crate::error::{Error, IoContext, Result};
use crate::fsutil::{create_unnamed, link_unnamed, unnamed_unsupported};
use crate::hash::ContentHash;
use crate::sparse;
use antares_overlay::{BlobCache, ObjectId, RepoPath, Source, SourceError, TreeEntry};
use rayon::prelude::*;
use std::collections::HashMap;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// What the index knows about one source object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    /// The BLAKE3 of its bytes.
    pub hash: ContentHash,
    /// Its size in bytes.
    pub size: u64,
}

/// What an object looked like on disk when its bytes were last checked
/// against its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
}

impl Stamp {
    fn of(meta: &Metadata) -> Stamp {
        Stamp {
            ino: meta.ino(),
            size: meta.len(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
        }
    }

    fn parse(fields: &[&str]) -> Option<Stamp> {
        match fields {
            [ino, size, mtime, ctime] => Some(Stamp {
                ino: ino.parse().ok()?,
                size: size.parse().ok()?,
                mtime_ns: mtime.parse().ok()?,
                ctime_ns: ctime.parse().ok()?,
            }),
            _ => None,
        }
    }
}

/// Files at least this large are streamed into the store (hashed while
/// copied, holes kept) rather than read into memory first; below it one
/// read is cheaper than a temp file that may turn out to be a duplicate.
const STREAM_MIN_SIZE: u64 = 1 << 20;

/// An append-only index file of the store, opened on first append.
struct Log {
    path: PathBuf,
    file: Mutex<Option<File>>,
}

impl Log {
    fn new(path: PathBuf) -> Log {
        Log {
            path,
            file: Mutex::new(None),
        }
    }

    /// Appends `line` (ending in a newline) with one write: O_APPEND keeps
    /// concurrent writers' lines whole.
    fn append(&self, line: &str) -> Result<()> {
        let mut file = self.file.lock().map_err(|_| poisoned(&self.path))?;
        if file.is_none() {
            let f = OpenOptions::new()
                .append(true)
                .create(true)
                .open(&self.path)
                .at(self.path.display())?;
            *file = Some(f);
        }
        if let Some(f) = file.as_mut() {
            f.write_all(line.as_bytes()).at(self.path.display())?;
        }
        Ok(())
    }

    /// Hands `found` the space-separated fields of each line, in order.
    /// Lines garbled by a crash (not UTF-8, torn) are skipped, not the rest
    /// of the index; a missing index is an empty one.
    fn each_line(&self, mut found: impl FnMut(&[&str])) {
        use std::io::BufRead;
        let Ok(file) = File::open(&self.path) else {
            return;
        };
        let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
        let mut bytes = Vec::new();
        loop {
            bytes.clear();
            match reader.read_until(b'\n', &mut bytes) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let Some(line) = bytes
                .strip_suffix(b"\n")
                .and_then(|l| std::str::from_utf8(l).ok())
            else {
                continue;
            };
            // No index has more than five fields: a longer line is garbage.
            let mut fields = [""; 6];
            let mut n = 0;
            for f in line.split(' ') {
                if n == fields.len() {
                    break;
                }
                fields[n] = f;
                n += 1;
            }
            found(&fields[..n]);
        }
    }
}

/// The content-addressed store (see the module doc for its layout).
pub struct Store {
    root: PathBuf,
    /// The whole index, loaded by the first single [`lookup`](Self::lookup).
    oids: OnceLock<Mutex<HashMap<ObjectId, Known>>>,
    oid_log: Log,
    /// The verified stamps, loaded whole with `oids`.
    stamps: OnceLock<Mutex<HashMap<ContentHash, Stamp>>>,
    stamp_log: Log,
    tmp_counter: AtomicU64,
}

/// Writes `bytes` to a new file at `dest` that has no name until it is
/// complete (see [`create_unnamed`]): a crash leaves nothing behind, and a
/// concurrent writer of the same object makes the link fail with
/// `AlreadyExists`. Returns the file, for its stamp.
fn put_unnamed(dest: &Path, bytes: &[u8]) -> std::io::Result<File> {
    let dir = dest
        .parent()
        .ok_or_else(|| std::io::Error::other("object path without a directory"))?;
    let mut f = create_unnamed(dir, 0o444)?;
    f.write_all(bytes)?;
    link_unnamed(&f, dest)?;
    Ok(f)
}

impl Store {
    /// Opens (creating if needed) a store rooted at `root`.
    pub fn open(root: &Path) -> Result<Store> {
        for sub in ["objects", "tmp"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).at(p.display())?;
        }
        // All 256 shard directories up front: a put then never needs a mkdir.
        let objects = root.join("objects");
        if !objects.join("ff").is_dir() {
            for i in 0..=255u8 {
                let p = objects.join(format!("{i:02x}"));
                match fs::create_dir(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(Error::io(p.display(), e)),
                }
            }
        }
        Ok(Store {
            root: root.to_path_buf(),
            oids: OnceLock::new(),
            oid_log: Log::new(root.join("oids")),
            stamps: OnceLock::new(),
            stamp_log: Log::new(root.join("verified")),
            tmp_counter: AtomicU64::new(0),
        })
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the object with `hash` lives (whether or not it exists yet).
    pub fn object_path(&self, hash: &ContentHash) -> PathBuf {
        let hex = hash.to_hex();
        self.root.join("objects").join(&hex[..2]).join(&hex[2..])
    }

    /// A fresh path in the store's tmp dir, on the store's file system.
    fn tmp_path(&self) -> PathBuf {
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        self.root
            .join("tmp")
            .join(format!("{}-{}-{n}", std::process::id(), thread_id()))
    }

    /// Stores `bytes`; returns their hash. The hash is computed from exactly
    /// the bytes written, so the object is correct by construction. An
    /// object already there is kept only if it is intact.
    pub fn put(&self, bytes: &[u8]) -> Result<ContentHash> {
        let hash = ContentHash::of(bytes);
        if self.already_stored(&hash) {
            return Ok(hash);
        }
        let dest = self.object_path(&hash);
        match put_unnamed(&dest, bytes) {
            Ok(f) => {
                self.stamp_written(&hash, f.metadata());
                return Ok(hash);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(hash),
            Err(e) if unnamed_unsupported(&e) => {}
            Err(e) => return Err(Error::io(dest.display(), e)),
        }
        let tmp = self.tmp_path();
        let write = || -> std::io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o444)
                .open(&tmp)?;
            f.write_all(bytes)?;
            Ok(())
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io(tmp.display(), e));
        }
        if let Err(e) = fs::rename(&tmp, &dest) {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io(dest.display(), e));
        }
        // The rename itself may change the ctime: the stamp is taken after.
        self.stamp_written(&hash, fs::symlink_metadata(&dest));
        Ok(hash)
    }

    /// Stores `bytes` and says what they are.
    fn put_known(&self, bytes: &[u8]) -> Result<Known> {
        Ok(Known {
            hash: self.put(bytes)?,
            size: bytes.len() as u64,
        })
    }

    /// Stores the content of the open file `from` (named `origin` in
    /// errors). A large file is streamed: copied in bounded memory into a
    /// temp file, hashed on the way, its holes kept. A file that changes
    /// while it is copied is an error, not a mix of two versions.
    pub fn put_file(&self, from: &File, origin: &str) -> Result<Known> {
        let before = from.metadata().at(origin)?;
        let size = before.len();
        if size < STREAM_MIN_SIZE {
            let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            std::io::Read::read_to_end(&mut &*from, &mut bytes).at(origin)?;
            return self.put_known(&bytes);
        }
        let mut hasher = blake3::Hasher::new();
        let mut copy = |to: &File| {
            sparse::copy(from, to, size, &mut |b| {
                hasher.update(b);
            })
        };
        let tmp_dir = self.root.join("tmp");
        let staged = match create_unnamed(&tmp_dir, 0o444) {
            Ok(to) => {
                copy(&to).at(origin)?;
                Ok(to)
            }
            Err(e) if unnamed_unsupported(&e) => {
                let tmp = self.tmp_path();
                let to = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o444)
                    .open(&tmp)
                    .at(tmp.display())?;
                if let Err(e) = copy(&to) {
                    let _ = fs::remove_file(&tmp);
                    return Err(Error::io(origin, e));
                }
                Err(tmp)
            }
            Err(e) => return Err(Error::io(tmp_dir.display(), e)),
        };
        let after = from.metadata().at(origin)?;
        let hash = ContentHash(*hasher.finalize().as_bytes());
        let changed = Stamp::of(&before) != Stamp::of(&after);
        if changed || self.already_stored(&hash) {
            if let Err(tmp) = &staged {
                let _ = fs::remove_file(tmp);
            }
            if changed {
                return Err(Error::Invalid {
                    path: origin.to_string(),
                    message: "changed while it was being read".into(),
                });
            }
            return Ok(Known { hash, size });
        }
        let dest = self.object_path(&hash);
        match staged {
            Ok(to) => match link_unnamed(&to, &dest) {
                Ok(()) => self.stamp_written(&hash, to.metadata()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io(dest.display(), e)),
            },
            Err(tmp) => {
                if let Err(e) = fs::rename(&tmp, &dest) {
                    let _ = fs::remove_file(&tmp);
                    return Err(Error::io(dest.display(), e));
                }
                self.stamp_written(&hash, fs::symlink_metadata(&dest));
            }
        }
        Ok(Known { hash, size })
    }

    /// Records the stamp of an object this process just wrote. Failing to
    /// record costs one hash of the object on its next use, so it is only
    /// logged.
    fn stamp_written(&self, hash: &ContentHash, meta: std::io::Result<Metadata>) {
        let res = meta
            .map_err(|e| Error::io(self.object_path(hash).display(), e))
            .and_then(|m| self.record_stamp(hash, Stamp::of(&m)));
        if let Err(e) = res {
            tracing::debug!(object = %hash, error = %e, "verified stamp not recorded");
        }
    }

    fn record_stamp(&self, hash: &ContentHash, stamp: Stamp) -> Result<()> {
        if let Some(map) = self.stamps.get() {
            let mut map = map.lock().map_err(|_| poisoned(&self.root))?;
            map.insert(*hash, stamp);
        }
        self.stamp_log.append(&format!(
            "{hash} {} {} {} {}\n",
            stamp.ino, stamp.size, stamp.mtime_ns, stamp.ctime_ns
        ))
    }

    /// Whether the object `hash`, about to be written, is already there and
    /// intact. The stamps are loaded whole the first time one is needed
    /// (once per process): a writer meets existing objects in bulk (a `dir:`
    /// file touched but unchanged gets a new id, not new content), and
    /// hashing each again from disk would cost more than the load.
    fn already_stored(&self, hash: &ContentHash) -> bool {
        if !self.object_path(hash).exists() {
            return false;
        }
        let stamp = self
            .stamp_map()
            .lock()
            .ok()
            .and_then(|m| m.get(hash).copied());
        self.intact(hash, stamp)
    }

    fn stamp_map(&self) -> &Mutex<HashMap<ContentHash, Stamp>> {
        self.stamps.get_or_init(|| {
            let mut map = HashMap::new();
            self.scan_stamps(
                |_| true,
                |h, s| {
                    map.insert(h, s);
                },
            );
            Mutex::new(map)
        })
    }

    /// Reads the stamp index (the last line for a hash wins), handing
    /// `found` the stamps of the hashes `want` accepts.
    fn scan_stamps(
        &self,
        want: impl Fn(&ContentHash) -> bool,
        mut found: impl FnMut(ContentHash, Stamp),
    ) {
        self.stamp_log.each_line(|fields| {
            let Some((hash, rest)) = fields.split_first() else {
                return;
            };
            if let (Some(hash), Some(stamp)) = (ContentHash::from_hex(hash), Stamp::parse(rest)) {
                if want(&hash) {
                    found(hash, stamp);
                }
            }
        });
    }

    /// Whether the object `hash` is present with exactly its content: its
    /// stat matches `stamp` (recorded when its bytes were last checked), or
    /// its bytes hash to `hash` now (then the new stamp is recorded). An
    /// object whose bytes are wrong is moved into `quarantine/` (so it is
    /// absent and the next [`put`](Self::put) writes it again).
    fn intact(&self, hash: &ContentHash, stamp: Option<Stamp>) -> bool {
        let path = self.object_path(hash);
        let Ok(meta) = fs::symlink_metadata(&path) else {
            return false;
        };
        let now = Stamp::of(&meta);
        if meta.file_type().is_file() && stamp == Some(now) {
            return true;
        }
        let actual = if meta.file_type().is_file() {
            match ContentHash::of_file(&path) {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::warn!(object = %path.display(), error = %e, "cannot read store object");
                    return false;
                }
            }
        } else {
            None
        };
        if actual.as_ref() == Some(hash) {
            if let Err(e) = self.record_stamp(hash, now) {
                tracing::debug!(object = %hash, error = %e, "verified stamp not recorded");
            }
            return true;
        }
        self.quarantine(&path, actual.as_ref());
        false
    }

    /// Moves a corrupt object aside into `quarantine/` (kept for whoever
    /// wants to find out what wrote to it), with a warning.
    fn quarantine(&self, path: &Path, actual: Option<&ContentHash>) {
        let dir = self.root.join("quarantine");
        let name = path
            .strip_prefix(self.root.join("objects"))
            .map(|p| p.to_string_lossy().replace('/', ""))
            .unwrap_or_default();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let to = dir.join(format!("{name}.{}.{nanos}", std::process::id()));
        let moved = fs::create_dir_all(&dir).and_then(|()| fs::rename(path, &to));
        match moved {
            Ok(()) => tracing::warn!(
                object = %path.display(),
                quarantined = %to.display(),
                actual = %actual.map(|h| h.to_hex()).unwrap_or_else(|| "not a file".into()),
                "store object does not match its hash: moved aside, will be fetched again"
            ),
            // Another process moved it first: it is gone either way.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(
                object = %path.display(),
                error = %e,
                "store object does not match its hash and cannot be moved aside"
            ),
        }
    }

    fn oid_map(&self) -> &Mutex<HashMap<ObjectId, Known>> {
        self.oids.get_or_init(|| Mutex::new(self.load_oids()))
    }

    fn load_oids(&self) -> HashMap<ObjectId, Known> {
        let mut map = HashMap::new();
        self.scan_index(
            |oid| Some(ObjectId::opaque(oid)),
            |oid, known| {
                map.insert(oid, known);
            },
        );
        map
    }

    /// Reads the index line by line (the last line for an id wins), handing
    /// `found` each line whose id `want` accepts.
    fn scan_index(
        &self,
        want: impl Fn(&str) -> Option<ObjectId>,
        mut found: impl FnMut(ObjectId, Known),
    ) {
        self.oid_log.each_line(|fields| {
            let [oid, hash, size] = fields else {
                return;
            };
            if oid.is_empty() {
                return;
            }
            let Some(oid) = want(oid) else {
                return;
            };
            if let (Some(hash), Ok(size)) = (ContentHash::from_hex(hash), size.parse()) {
                found(oid, Known { hash, size });
            }
        });
    }

    /// What the store knows of each of `oids` whose object is present and
    /// intact. Unless this process already loaded the whole index (a mount's
    /// single reads do), the index is scanned for just these ids: loading it
    /// whole costs more than the few thousand lookups of a sync, and it only
    /// grows (a live `dir:` source adds a line per changed file).
    pub fn lookup_many<'a>(
        &self,
        oids: impl IntoIterator<Item = &'a ObjectId>,
    ) -> HashMap<ObjectId, Known> {
        let mut out = HashMap::new();
        match self.oids.get().and_then(|m| m.lock().ok()) {
            Some(map) => {
                for oid in oids {
                    if let Some(k) = map.get(oid) {
                        out.insert(oid.clone(), *k);
                    }
                }
            }
            None => {
                let wanted: std::collections::HashSet<&str> =
                    oids.into_iter().map(ObjectId::as_str).collect();
                if wanted.is_empty() {
                    return out;
                }
                self.scan_index(
                    |oid| wanted.contains(oid).then(|| ObjectId::opaque(oid)),
                    |oid, known| {
                        out.insert(oid, known);
                    },
                );
            }
        }
        let stamps = self.stamps_of(out.values().map(|k| k.hash).collect());
        out.into_par_iter()
            .filter(|(_, k)| self.intact(&k.hash, stamps.get(&k.hash).copied()))
            .collect()
    }

    /// The recorded stamps of `hashes`: from memory if loaded, else by one
    /// scan of the stamp index.
    fn stamps_of(
        &self,
        hashes: std::collections::HashSet<ContentHash>,
    ) -> HashMap<ContentHash, Stamp> {
        let mut stamps = HashMap::new();
        if let Some(map) = self.stamps.get().and_then(|m| m.lock().ok()) {
            for h in hashes {
                if let Some(s) = map.get(&h) {
                    stamps.insert(h, *s);
                }
            }
        } else if !hashes.is_empty() {
            self.scan_stamps(
                |h| hashes.contains(h),
                |h, s| {
                    stamps.insert(h, s);
                },
            );
        }
        stamps
    }

    /// The path of the object `hash` once checked intact, for content named
    /// by a manifest rather than just looked up (the source's version of a
    /// conflict, placed by `resolve --theirs`). A corrupt object is
    /// quarantined and an error.
    pub fn checked_object(&self, hash: &ContentHash) -> Result<PathBuf> {
        let stamp = self
            .stamps_of(std::collections::HashSet::from([*hash]))
            .get(hash)
            .copied();
        let path = self.object_path(hash);
        if self.intact(hash, stamp) {
            return Ok(path);
        }
        Err(Error::Invalid {
            path: path.display().to_string(),
            message: "missing from the content store, or corrupt (moved into quarantine/); \
                      a sync fetches it again"
                .into(),
        })
    }

    /// Loads the whole index (and the verified stamps) into memory, for a
    /// long-running process: every lookup after this is answered from
    /// memory, and [`record`](Self::record) and [`put`](Self::put) keep it
    /// current.
    pub fn load_index(&self) {
        self.oid_map();
        self.stamp_map();
    }

    /// What the store knows of `oid`, if its object is still present and
    /// intact. The first call loads the whole index, for processes that
    /// look up one id at a time (a mount serving reads).
    pub fn lookup(&self, oid: &ObjectId) -> Option<Known> {
        let known = self.oid_map().lock().ok()?.get(oid).copied()?;
        let stamp = self.stamp_map().lock().ok()?.get(&known.hash).copied();
        self.intact(&known.hash, stamp).then_some(known)
    }

    /// Records that source object `oid` has content `hash`.
    pub fn record(&self, oid: &ObjectId, known: Known) -> Result<()> {
        if oid.as_str().contains([' ', '\n']) {
            return Ok(());
        }
        // The index in memory, if loaded, is kept current; else the line is
        // just appended (a duplicate line is harmless: the last one wins).
        if let Some(map) = self.oids.get() {
            let mut map = map.lock().map_err(|_| poisoned(&self.root))?;
            if map.get(oid) == Some(&known) {
                return Ok(());
            }
            map.insert(oid.clone(), known);
        }
        self.oid_log
            .append(&format!("{} {} {}\n", oid, known.hash, known.size))
    }

    /// Reads `entries` from `source` (concurrently, as the source allows),
    /// stores them and records their ids. Returns what each path got: its
    /// object, or the error that kept it out. A path the source never
    /// answered for is absent. Files the source has as local files are
    /// streamed (see [`put_file`](Self::put_file)); the rest are read whole.
    pub fn fetch(
        &self,
        source: &dyn Source,
        entries: &[TreeEntry],
        on_done: &(dyn Fn(u64) + Sync),
    ) -> HashMap<RepoPath, Result<Known>> {
        let got = Mutex::new(HashMap::with_capacity(entries.len()));
        let finish = |entry: &TreeEntry, res: Result<Known>| {
            let res = res.and_then(|known| {
                self.record(&entry.oid, known)?;
                on_done(known.size);
                Ok(known)
            });
            if let Ok(mut got) = got.lock() {
                got.insert(entry.path.clone(), res);
            }
        };
        let rest: Vec<TreeEntry> = entries
            .par_iter()
            .filter_map(|entry| match source.open_file(entry) {
                Ok(Some(f)) => {
                    finish(entry, self.put_file(&f, entry.path.as_str()));
                    None
                }
                Ok(None) => Some(entry.clone()),
                Err(e) => {
                    finish(entry, Err(e.into()));
                    None
                }
            })
            .collect();
        source.read_many(&rest, &|entry, bytes| {
            finish(
                entry,
                bytes.map_err(Error::from).and_then(|b| self.put_known(&b)),
            );
        });
        got.into_inner().unwrap_or_default()
    }

    /// Removes leftovers of writers that died (kill -9) from `tmp/`. Only
    /// files older than an hour are removed, so live writers are safe.
    pub fn clean_tmp(&self) {
        let Ok(rd) = fs::read_dir(self.root.join("tmp")) else {
            return;
        };
        let hour = std::time::Duration::from_secs(3600);
        for e in rd.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > hour);
            if old {
                let _ = fs::remove_file(e.path());
            }
        }
    }

    /// Flushes the store's file system (objects written by this process).
    pub fn sync_fs(&self) {
        crate::fsutil::syncfs(&self.root);
    }
}

fn poisoned(root: &Path) -> Error {
    Error::Invalid {
        path: root.display().to_string(),
        message: "store index lock poisoned by a panicked thread".into(),
    }
}

fn thread_id() -> u64 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u64 }
}

impl BlobCache for Store {
    fn local_file(
        &self,
        source: &dyn Source,
        entry: &TreeEntry,
    ) -> antares_overlay::Result<PathBuf> {
        if let Some(k) = self.lookup(&entry.oid) {
            return Ok(self.object_path(&k.hash));
        }
        let to_src = |e: Error| SourceError::Invalid {
            path: entry.path.to_string(),
            message: format!("content store: {e}"),
        };
        let known = match source.open_file(entry)? {
            Some(f) => self.put_file(&f, entry.path.as_str()),
            None => self.put_known(&source.read(entry)?),
        }
        .map_err(to_src)?;
        self.record(&entry.oid, known).map_err(to_src)?;
        let hash = known.hash;
        let path = self.object_path(&hash);
        // Make sure the object is readable even if a umask or an old store made it otherwise.
        if let Ok(meta) = fs::metadata(&path) {
            if meta.permissions().mode() & 0o444 != 0o444 {
                let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o444));
            }
        }
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(store: &Store, bytes: &[u8]) -> Known {
        Known {
            hash: store.put(bytes).unwrap(),
            size: bytes.len() as u64,
        }
    }

    #[test]
    fn batch_lookups_read_the_index_without_loading_it() {
        let t = tempfile::tempdir().unwrap();
        let writer = Store::open(t.path()).unwrap();
        let (a, b) = (known(&writer, b"a"), known(&writer, b"bb"));
        let (x, y, z) = (
            ObjectId::opaque("stat:1:2"),
            ObjectId::opaque("stat:1:3"),
            ObjectId::opaque("stat:1:4"),
        );
        writer.record(&x, a).unwrap();
        writer.record(&y, a).unwrap();
        let mut log = OpenOptions::new()
            .append(true)
            .open(t.path().join("oids"))
            .unwrap();
        // A line of bytes that are not UTF-8 is skipped, not what follows.
        log.write_all(b"stat:\xff\xfe garbled 3\n").unwrap();
        // The last line for an id wins.
        writer.record(&y, b).unwrap();
        // A line naming a missing object, and a torn one (a crash mid-append).
        let gone = ContentHash::of(b"never stored");
        write!(log, "{z} {gone} 12\nstat:9:9 abc").unwrap();

        let reader = Store::open(t.path()).unwrap();
        let found = reader.lookup_many([&x, &y, &z, &ObjectId::opaque("stat:9:9")]);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[&x], a);
        assert_eq!(found[&y], b);
        assert!(reader.oids.get().is_none(), "a batch lookup loads no index");
        // Single lookups load it once and agree.
        assert_eq!(reader.lookup(&y), Some(b));
        assert_eq!(reader.lookup(&z), None);
        assert_eq!(reader.lookup_many([&x]).get(&x), Some(&a));
    }

    #[test]
    fn a_checked_object_is_refused_and_quarantined_when_corrupt() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(t.path()).unwrap();
        let k = known(&store, b"the source's version");
        assert_eq!(
            store.checked_object(&k.hash).unwrap(),
            store.object_path(&k.hash)
        );
        let path = store.object_path(&k.hash);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&path, b"the source's versioN").unwrap();
        let err = Store::open(t.path())
            .unwrap()
            .checked_object(&k.hash)
            .unwrap_err();
        assert!(err.to_string().contains("quarantine"), "{err}");
        assert!(!path.exists());
        assert_eq!(
            fs::read_dir(t.path().join("quarantine")).unwrap().count(),
            1
        );
    }

    #[test]
    fn fetch_reports_each_path() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::create_dir_all(src.join("d")).unwrap();
        fs::write(src.join("d/ok"), b"content").unwrap();
        let source = antares_overlay::DirSource::open(&src).unwrap();
        let ok = source
            .stat(&RepoPath::new("d/ok").unwrap())
            .unwrap()
            .unwrap();
        let mut gone = ok.clone();
        gone.path = RepoPath::new("d/gone").unwrap();
        gone.oid = ObjectId::opaque("stat:0:0");
        let store = Store::open(&t.path().join("store")).unwrap();
        let got = store.fetch(&source, &[ok.clone(), gone.clone()], &|_| {});
        let k = got[&ok.path].as_ref().unwrap();
        assert_eq!(fs::read(store.object_path(&k.hash)).unwrap(), b"content");
        assert!(got[&gone.path].is_err(), "{:?}", got[&gone.path]);
        assert_eq!(store.lookup_many([&ok.oid])[&ok.oid], *k);
    }
}
