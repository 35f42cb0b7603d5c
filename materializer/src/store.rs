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

use crate::error::{Error, IoContext, Result};
use crate::fsutil::{c_path, check_rc};
use crate::hash::ContentHash;
use antares_overlay::{BlobCache, ObjectId, Source, SourceError, TreeEntry};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// What the index knows about one source object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    pub hash: ContentHash,
    pub size: u64,
}

pub struct Store {
    root: PathBuf,
    /// Loaded on first use: a no-op re-sync never needs it.
    oids: OnceLock<Mutex<HashMap<ObjectId, Known>>>,
    oid_log: Mutex<Option<File>>,
    tmp_counter: AtomicU64,
}

/// Writes `bytes` to a new file at `dest` that has no name until it is
/// complete: `O_TMPFILE` in `dest`'s directory, then `linkat` (which, like
/// a rename that does not replace, fails with `AlreadyExists` if another
/// writer stored the object first). A crash leaves nothing behind, and the
/// inode is allocated beside its directory: staging every object in one
/// `tmp/` directory made ext4 search a single block group for free inodes
/// and serialized the cross-directory renames.
fn put_unnamed(dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let dir = dest
        .parent()
        .ok_or_else(|| std::io::Error::other("object path without a directory"))?;
    let mut f = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o444)
        .open(dir)?;
    f.write_all(bytes)?;
    let proc_path = c_path(Path::new(&format!("/proc/self/fd/{}", f.as_raw_fd())))?;
    let to = c_path(dest)?;
    // SAFETY: valid NUL-terminated paths; the fd stays open during the call.
    check_rc(unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            proc_path.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    })
}

/// The file system (or a missing `/proc`) cannot do [`put_unnamed`]: fall
/// back to a named temp file and a rename.
fn unnamed_unsupported(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::EOPNOTSUPP
                | libc::EISDIR
                | libc::EINVAL
                | libc::ENOENT
                | libc::EXDEV
                | libc::EPERM
        )
    )
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
            oid_log: Mutex::new(None),
            tmp_counter: AtomicU64::new(0),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the object with `hash` lives (whether or not it exists yet).
    pub fn object_path(&self, hash: &ContentHash) -> PathBuf {
        let hex = hash.to_hex();
        self.root.join("objects").join(&hex[..2]).join(&hex[2..])
    }

    pub fn contains(&self, hash: &ContentHash) -> bool {
        self.object_path(hash).exists()
    }

    /// A fresh path in the store's tmp dir, on the store's file system.
    fn tmp_path(&self) -> PathBuf {
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        self.root
            .join("tmp")
            .join(format!("{}-{}-{n}", std::process::id(), thread_id()))
    }

    /// Stores `bytes`; returns their hash. The hash is computed from exactly
    /// the bytes written, so the object is correct by construction.
    pub fn put(&self, bytes: &[u8]) -> Result<ContentHash> {
        let hash = ContentHash::of(bytes);
        let dest = self.object_path(&hash);
        if dest.exists() {
            return Ok(hash);
        }
        match put_unnamed(&dest, bytes) {
            Ok(()) => return Ok(hash),
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
        Ok(hash)
    }

    fn oid_map(&self) -> &Mutex<HashMap<ObjectId, Known>> {
        self.oids.get_or_init(|| Mutex::new(self.load_oids()))
    }

    fn oid_log_path(&self) -> PathBuf {
        self.root.join("oids")
    }

    fn load_oids(&self) -> HashMap<ObjectId, Known> {
        let mut map = HashMap::new();
        let Ok(text) = fs::read_to_string(self.oid_log_path()) else {
            return map;
        };
        for line in text.lines() {
            let mut it = line.split(' ');
            let (Some(oid), Some(hash), Some(size), None) =
                (it.next(), it.next(), it.next(), it.next())
            else {
                continue;
            };
            let (Some(hash), Ok(size)) = (ContentHash::from_hex(hash), size.parse()) else {
                continue;
            };
            if oid.is_empty() {
                continue;
            }
            map.insert(ObjectId::opaque(oid), Known { hash, size });
        }
        map
    }

    /// What the store knows of `oid`, if its object is still present.
    pub fn lookup(&self, oid: &ObjectId) -> Option<Known> {
        let known = self.oid_map().lock().ok()?.get(oid).copied()?;
        self.contains(&known.hash).then_some(known)
    }

    /// Records that source object `oid` has content `hash`.
    pub fn record(&self, oid: &ObjectId, known: Known) -> Result<()> {
        if oid.as_str().contains([' ', '\n']) {
            return Ok(());
        }
        let mut map = self.oid_map().lock().map_err(|_| poisoned(&self.root))?;
        if map.get(oid) == Some(&known) {
            return Ok(());
        }
        map.insert(oid.clone(), known);
        drop(map);
        let mut log = self.oid_log.lock().map_err(|_| poisoned(&self.root))?;
        if log.is_none() {
            let f = OpenOptions::new()
                .append(true)
                .create(true)
                .open(self.oid_log_path())
                .at(self.oid_log_path().display())?;
            *log = Some(f);
        }
        if let Some(f) = log.as_mut() {
            // One write per line: O_APPEND keeps concurrent writers' lines whole.
            let line = format!("{} {} {}\n", oid, known.hash, known.size);
            f.write_all(line.as_bytes())
                .at(self.oid_log_path().display())?;
        }
        Ok(())
    }

    /// Reads the entries not yet in the store from `source` (concurrently, as
    /// the source allows) and stores them. Returns the number fetched and the
    /// first error per entry.
    pub fn fetch(
        &self,
        source: &dyn Source,
        entries: &[TreeEntry],
        on_done: &(dyn Fn(u64) + Sync),
    ) -> Vec<Error> {
        let errors = Mutex::new(Vec::new());
        source.read_many(entries, &|entry, bytes| {
            let res = bytes.map_err(Error::from).and_then(|bytes| {
                let hash = self.put(&bytes)?;
                self.record(
                    &entry.oid,
                    Known {
                        hash,
                        size: bytes.len() as u64,
                    },
                )?;
                on_done(bytes.len() as u64);
                Ok(())
            });
            if let Err(e) = res {
                if let Ok(mut v) = errors.lock() {
                    v.push(e);
                }
            }
        });
        errors.into_inner().unwrap_or_default()
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
        let bytes = source.read(entry)?;
        let to_src = |e: Error| SourceError::Invalid {
            path: entry.path.to_string(),
            message: format!("content store: {e}"),
        };
        let hash = self.put(&bytes).map_err(to_src)?;
        self.record(
            &entry.oid,
            Known {
                hash,
                size: bytes.len() as u64,
            },
        )
        .map_err(to_src)?;
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
