//! What a source says about one path: kind, mode, size and an object id.

use crate::path::RepoPath;
use std::fmt;

/// The kind of a tree entry. Git tree modes map as: 100644/100755 → `File`,
/// 120000 → `Symlink`, 040000 → `Dir`, 160000 → `Gitlink` (a submodule commit,
/// which has no content in this repository).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
    /// A directory.
    Dir,
    /// A submodule commit (shown as an empty directory).
    Gitlink,
}

impl EntryKind {
    /// Parses a git tree mode (octal text as in raw tree objects, e.g. `100755`, `40000`).
    pub fn from_git_mode(mode: &str) -> Option<(EntryKind, bool)> {
        match mode.trim_start_matches('0') {
            "100644" | "100664" => Some((EntryKind::File, false)),
            "100755" => Some((EntryKind::File, true)),
            "120000" => Some((EntryKind::Symlink, false)),
            "40000" => Some((EntryKind::Dir, false)),
            "160000" => Some((EntryKind::Gitlink, false)),
            _ => None,
        }
    }
}

/// Identifies one version of an entry's content within a source.
///
/// Git-backed sources (git, mono) use the lowercase hex git object id, which
/// identifies content globally and can be cached across workspaces. Live
/// directories use a `stat:` signature (device, inode, size, mtime, ctime):
/// it changes whenever the file changes, but says nothing about content.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct ObjectId(String);

impl ObjectId {
    /// A git object id (40 or 64 lowercase hex chars). Returns `None` if `hex` is not one.
    pub fn git(hex: &str) -> Option<Self> {
        let ok = (hex.len() == 40 || hex.len() == 64)
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        ok.then(|| ObjectId(hex.to_string()))
    }

    /// A stat signature for a file in a live directory.
    pub fn stat(dev: u64, ino: u64, size: u64, mtime_ns: i64, ctime_ns: i64) -> Self {
        ObjectId(format!(
            "stat:{dev:x}:{ino:x}:{size:x}:{mtime_ns:x}:{ctime_ns:x}"
        ))
    }

    /// The (mtime, ctime) in nanoseconds of a [`stat`](Self::stat)
    /// signature, `None` for any other id: a caller trusting an unchanged
    /// signature must know whether a later change could have kept it.
    pub fn stat_times(&self) -> Option<(i64, i64)> {
        let mut fields = self.0.strip_prefix("stat:")?.split(':');
        let mut next = || u64::from_str_radix(fields.next()?, 16).ok();
        let (_dev, _ino, _size) = (next()?, next()?, next()?);
        // Written with `{:x}` from i64: two's complement, so cast back.
        Some((next()? as i64, next()? as i64))
    }

    /// An id with no meaning beyond equality (e.g. directories of a live tree).
    pub fn opaque(s: impl Into<String>) -> Self {
        ObjectId(s.into())
    }

    /// The git hex id, if this is one: such ids name content globally.
    pub fn git_hex(&self) -> Option<&str> {
        (!self.0.contains(':')).then_some(self.0.as_str())
    }

    /// The id as lowercase hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One entry of a tree index.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TreeEntry {
    /// Where the entry is in the tree.
    pub path: RepoPath,
    /// File, directory, symlink or gitlink.
    pub kind: EntryKind,
    /// The owner-execute bit (files only).
    pub executable: bool,
    /// Size in bytes when the source knows it without fetching content
    /// (a symlink's size is the length of its target).
    pub size: Option<u64>,
    /// The source's id of the content (a git object id).
    pub oid: ObjectId,
}

impl TreeEntry {
    /// The permission bits to give a placed file: 0o755 or 0o644.
    pub fn file_mode(&self) -> u32 {
        if self.executable {
            0o755
        } else {
            0o644
        }
    }
}
