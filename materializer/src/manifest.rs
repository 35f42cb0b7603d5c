//! The manifest: what the last sync placed, and therefore the *base* of every
//! three-way decision (base = manifest, theirs = source, ours = workspace).
//!
//! Stored as one postcard-encoded file behind a magic header, replaced
//! atomically at the end of each sync. Until that rename, the previous
//! manifest stays authoritative; files placed by an interrupted sync are
//! recognised by content on the next run (see `sync`).

use crate::error::{Error, Result};
use crate::fsutil::{write_atomic, StatKey};
use crate::hash::ContentHash;
use antares_overlay::{ObjectId, RepoPath};
use std::collections::BTreeMap;
use std::path::Path;

const MAGIC: &[u8; 8] = b"ANTMF\0\0\x01";

/// One version of a path's content, as the source described it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Version {
    pub kind: Kind,
    pub executable: bool,
    pub size: u64,
    /// BLAKE3 of a file's bytes; `None` for symlinks.
    pub hash: Option<ContentHash>,
    /// A symlink's target; `None` for files.
    pub target: Option<String>,
    /// The source's id for this version.
    pub oid: ObjectId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
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
    pub version: Version,
    pub stat: StatKey,
}

/// A path where the source and the workspace both changed, differently.
/// `theirs` is the source's version (`None`: the source deleted it); the
/// workspace keeps "ours" untouched.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Conflict {
    pub theirs: Option<Version>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    /// The source revision of the last sync (None for live trees).
    pub revision: Option<String>,
    /// When this manifest was saved (ns since the epoch): files modified
    /// within a few ms of it are hashed even if their stat matches.
    pub saved_at_ns: i64,
    pub records: BTreeMap<RepoPath, Record>,
    pub conflicts: BTreeMap<RepoPath, Conflict>,
}

impl Manifest {
    /// Loads the manifest at `path`; a missing file is an empty manifest.
    pub fn load(path: &Path) -> Result<Manifest> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Manifest::default()),
            Err(e) => return Err(Error::io(path.display(), e)),
        };
        let bad = |message: String| Error::Manifest {
            path: path.display().to_string(),
            message,
        };
        let body = bytes.strip_prefix(MAGIC.as_slice()).ok_or_else(|| {
            bad("not an antares manifest (bad header); remove it to start over".into())
        })?;
        postcard::from_bytes(body).map_err(|e| bad(format!("corrupt manifest: {e}")))
    }

    /// Replaces the manifest at `path` atomically.
    pub fn save(&mut self, path: &Path) -> Result<()> {
        self.saved_at_ns = now_ns();
        let mut bytes = MAGIC.to_vec();
        let body = postcard::to_stdvec(self).map_err(|e| Error::Manifest {
            path: path.display().to_string(),
            message: format!("cannot encode: {e}"),
        })?;
        bytes.extend_from_slice(&body);
        write_atomic(path, &bytes)
    }
}

/// Nanoseconds since the epoch, on the same clock as file timestamps.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
