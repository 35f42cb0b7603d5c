//! The manifest: what the last sync placed, and therefore the *base* of every
//! three-way decision (base = manifest, theirs = source, ours = workspace).
//!
//! Stored as one postcard-encoded file behind a magic header, replaced
//! atomically at the end of each full sync. Until that rename, the previous
//! manifest stays authoritative; files placed by an interrupted sync are
//! recognised by content on the next run (see `sync`).
//!
//! A sync that changed few paths (every watcher cycle) appends them to a
//! journal beside it (`manifest.journal`) instead of rewriting the whole
//! file, which at 100,000 paths costs more than the sync itself. Each journal frame carries its
//! length and checksum: a torn last frame (a crash mid-append) is ignored,
//! which is the same as that sync never having saved. The journal names the
//! base it applies to (the base's save time), so a journal left behind by a
//! crash between a full save and the journal's removal is never replayed on
//! a newer base. A full save folds the journal in and removes it.

use crate::error::{Error, Result};
use crate::fsutil::{write_atomic, StatKey};
use crate::hash::ContentHash;
use antares_overlay::{ObjectId, RepoPath};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"ANTMF\0\0\x01";
const JOURNAL_MAGIC: &[u8; 8] = b"ANTMJ\0\0\x01";
/// Frame header: payload length (u32 LE) and the first 8 bytes of its BLAKE3.
const FRAME_HEAD: usize = 12;
/// A journal grows to this, or a quarter of the base, before a full save.
const JOURNAL_MIN_LIMIT: u64 = 256 * 1024;

/// One version of a path's content, as the source described it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Version {
    /// File or symlink.
    pub kind: Kind,
    /// The owner-execute bit (files only).
    pub executable: bool,
    /// Size in bytes (a symlink's: its target's length).
    pub size: u64,
    /// BLAKE3 of a file's bytes; `None` for symlinks.
    pub hash: Option<ContentHash>,
    /// A symlink's target; `None` for files.
    pub target: Option<String>,
    /// The source's id for this version.
    pub oid: ObjectId,
}

/// What a version is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
}

impl Version {
    /// Same content as far as the workspace can tell (the oid may differ,
    /// e.g. a stat id against a git id).
    pub fn same_content(&self, other: &Version) -> bool {
        self.kind == other.kind
            && self.hash == other.hash
            && self.target == other.target
            && (self.kind == Kind::Symlink || self.executable == other.executable)
    }
}

/// A placed path: the version placed and the stat of the file as placed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// The version placed.
    pub version: Version,
    /// The stat of the file as placed.
    pub stat: StatKey,
}

/// A path where the source and the workspace both changed, differently.
/// `theirs` is the source's version (`None`: the source deleted it); the
/// workspace keeps "ours" untouched.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Conflict {
    /// The source's side (`None`: the source deleted the path).
    pub theirs: Option<Version>,
}

/// What the last sync placed and which paths are in conflict: the base of
/// every three-way decision.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    /// The source revision of the last sync (None for live trees).
    pub revision: Option<String>,
    /// When this manifest was saved (ns since the epoch): files modified
    /// within a few ms of it are hashed even if their stat matches.
    pub saved_at_ns: i64,
    /// Every placed path.
    pub records: BTreeMap<RepoPath, Record>,
    /// Paths changed on both sides, until resolved.
    pub conflicts: BTreeMap<RepoPath, Conflict>,
    /// Where this copy stands against the files on disk.
    #[serde(skip)]
    disk: OnDisk,
}

/// What a loaded or saved manifest knows of its files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct OnDisk {
    /// The base file's `saved_at_ns`: the id the journal must name.
    base_id: i64,
    base_len: u64,
    /// Bytes of valid journal (0: none).
    journal_len: u64,
    /// The stat of the base and the journal as last read or written.
    stamp: (Option<StatKey>, Option<StatKey>),
}

/// One journal frame: the new state of some paths.
#[derive(serde::Serialize, serde::Deserialize)]
struct Delta {
    saved_at_ns: i64,
    revision: Option<String>,
    records: Vec<(RepoPath, Option<Record>)>,
    conflicts: Vec<(RepoPath, Option<Conflict>)>,
}

fn journal_path(manifest: &Path) -> PathBuf {
    let mut name = manifest.file_name().unwrap_or_default().to_os_string();
    name.push(".journal");
    manifest.with_file_name(name)
}

fn stat_of(path: &Path) -> Option<StatKey> {
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| StatKey::of(&m))
}

impl Manifest {
    /// Loads the manifest at `path` (and replays its journal); a missing
    /// file is an empty manifest.
    pub fn load(path: &Path) -> Result<Manifest> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut m = Manifest::default();
                m.disk.stamp = (None, stat_of(&journal_path(path)));
                return Ok(m);
            }
            Err(e) => return Err(Error::io(path.display(), e)),
        };
        let bad = |message: String| Error::Manifest {
            path: path.display().to_string(),
            message,
        };
        let body = bytes.strip_prefix(MAGIC.as_slice()).ok_or_else(|| {
            bad("not an antares manifest (bad header); remove it to start over".into())
        })?;
        let mut m: Manifest =
            postcard::from_bytes(body).map_err(|e| bad(format!("corrupt manifest: {e}")))?;
        m.disk.base_id = m.saved_at_ns;
        m.disk.base_len = bytes.len() as u64;
        m.replay(&journal_path(path))?;
        m.disk.stamp = (stat_of(path), stat_of(&journal_path(path)));
        tracing::debug!(records = m.records.len(), "manifest loaded");
        Ok(m)
    }

    /// Applies the journal's valid frames, if it belongs to this base.
    fn replay(&mut self, journal: &Path) -> Result<()> {
        let bytes = match std::fs::read(journal) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(journal.display(), e)),
        };
        let Some(rest) = bytes.strip_prefix(JOURNAL_MAGIC.as_slice()) else {
            tracing::warn!(journal = %journal.display(), "not a manifest journal; ignored");
            return Ok(());
        };
        if rest
            .get(..8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap_or_default()))
            != Some(self.disk.base_id)
        {
            // Left by a crash after a full save: already folded in.
            return Ok(());
        }
        let mut at = JOURNAL_MAGIC.len() + 8;
        while let Some(head) = bytes.get(at..at + FRAME_HEAD) {
            let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
            let Some(payload) = bytes.get(at + FRAME_HEAD..at + FRAME_HEAD + len) else {
                break;
            };
            if blake3::hash(payload).as_bytes()[..8] != head[4..FRAME_HEAD] {
                break;
            }
            let Ok(delta) = postcard::from_bytes::<Delta>(payload) else {
                break;
            };
            self.apply(delta);
            at += FRAME_HEAD + len;
        }
        if at < bytes.len() {
            tracing::warn!(journal = %journal.display(), "torn journal tail ignored");
        }
        self.disk.journal_len = at as u64;
        Ok(())
    }

    fn apply(&mut self, d: Delta) {
        self.saved_at_ns = d.saved_at_ns;
        self.revision = d.revision;
        for (p, r) in d.records {
            match r {
                Some(r) => self.records.insert(p, r),
                None => self.records.remove(&p),
            };
        }
        for (p, c) in d.conflicts {
            match c {
                Some(c) => self.conflicts.insert(p, c),
                None => self.conflicts.remove(&p),
            };
        }
    }

    /// Whether the files at `path` are still the ones this copy was loaded
    /// from or saved to (another process may have synced since).
    pub fn is_current(&self, path: &Path) -> bool {
        self.disk.stamp == (stat_of(path), stat_of(&journal_path(path)))
    }

    /// Replaces the manifest at `path` atomically, folding in the journal.
    pub fn save(&mut self, path: &Path) -> Result<()> {
        self.saved_at_ns = now_ns();
        let mut bytes = MAGIC.to_vec();
        let body = postcard::to_stdvec(self).map_err(|e| Error::Manifest {
            path: path.display().to_string(),
            message: format!("cannot encode: {e}"),
        })?;
        bytes.extend_from_slice(&body);
        write_atomic(path, &bytes)?;
        let journal = journal_path(path);
        match std::fs::remove_file(&journal) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(journal.display(), e)),
        }
        self.disk = OnDisk {
            base_id: self.saved_at_ns,
            base_len: bytes.len() as u64,
            journal_len: 0,
            stamp: (stat_of(path), None),
        };
        Ok(())
    }

    /// Records the current state of `paths` (and the revision) durably:
    /// appended to the journal, or a full [`save`](Self::save) when there
    /// is no base yet or the journal has grown large.
    pub fn save_paths<'p>(
        &mut self,
        path: &Path,
        paths: impl IntoIterator<Item = &'p RepoPath>,
    ) -> Result<()> {
        let limit = JOURNAL_MIN_LIMIT.max(self.disk.base_len / 4);
        if self.disk.base_len == 0 || self.disk.journal_len > limit || !self.is_current(path) {
            return self.save(path);
        }
        let now = now_ns();
        let mut delta = Delta {
            saved_at_ns: now,
            revision: self.revision.clone(),
            records: Vec::new(),
            conflicts: Vec::new(),
        };
        for p in paths {
            delta
                .records
                .push((p.clone(), self.records.get(p).cloned()));
            delta
                .conflicts
                .push((p.clone(), self.conflicts.get(p).cloned()));
        }
        let journal = journal_path(path);
        let err = |message: String| Error::Manifest {
            path: journal.display().to_string(),
            message,
        };
        let payload =
            postcard::to_stdvec(&delta).map_err(|e| err(format!("cannot encode: {e}")))?;
        let len =
            u32::try_from(payload.len()).map_err(|_| err("journal frame too large".into()))?;
        let mut frame = Vec::with_capacity(FRAME_HEAD + payload.len());
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(&blake3::hash(&payload).as_bytes()[..8]);
        frame.extend_from_slice(&payload);
        if self.disk.journal_len == 0 {
            // A new journal appears whole (temp + rename) with its header.
            let mut bytes = JOURNAL_MAGIC.to_vec();
            bytes.extend_from_slice(&self.disk.base_id.to_le_bytes());
            bytes.extend_from_slice(&frame);
            write_atomic(&journal, &bytes)?;
            self.disk.journal_len = bytes.len() as u64;
        } else {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&journal)
                .map_err(|e| Error::io(journal.display(), e))?;
            // Drop a torn tail first, so the new frame follows the last good one.
            let res = f
                .set_len(self.disk.journal_len)
                .and_then(|()| {
                    use std::io::Seek;
                    f.seek(std::io::SeekFrom::Start(self.disk.journal_len))
                })
                .and_then(|_| f.write_all(&frame))
                .and_then(|()| f.sync_data());
            res.map_err(|e| Error::io(journal.display(), e))?;
            self.disk.journal_len += frame.len() as u64;
        }
        self.saved_at_ns = now;
        self.disk.stamp = (stat_of(path), stat_of(&journal));
        Ok(())
    }
}

/// Nanoseconds since the epoch, on the same clock as file timestamps.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
