//! Looking at one workspace path ("ours") against its manifest record.
//!
//! The fast path is git's: if the stat signature equals the one recorded at
//! placement, the file is trusted unread. Only when it differs is the file
//! hashed, so a touched-but-unchanged file is not reported as modified.

use crate::fsutil::{is_absent_or_behind_link, open_beneath, StatKey};
use crate::hash::ContentHash;
use crate::manifest::{Kind, Record, Version};
use antares_overlay::{ObjectId, RepoPath};
use rayon::prelude::*;
use std::fs;
use std::io;

/// What is in the workspace at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// Nothing there.
    Missing,
    /// Same content as the record (`stat` is the current stat, maybe refreshed).
    Unchanged {
        /// The current stat.
        stat: StatKey,
    },
    /// A file or symlink that differs from the record, or has no record.
    Present {
        /// What is there.
        version: Version,
        /// Its stat.
        stat: StatKey,
    },
    /// Something that is neither a file nor a symlink (a directory, a fifo).
    Other {
        /// What it is, for messages ([`A_DIRECTORY`] for a directory).
        what: &'static str,
    },
    /// A directory on the way is a symlink (the user replaced a directory
    /// by a link to another place): what lies behind it is not looked at.
    BehindSymlink,
}

/// What [`Observed::Other`] says of a directory.
pub const A_DIRECTORY: &str = "a directory";

/// A file modified within this window of the manifest's save time may share
/// its stat with the placed version (coarse kernel timestamps): such
/// "racily clean" files are hashed even when their stat matches.
const RACY_WINDOW_NS: i64 = 20_000_000;

/// Whether `rec` was placed too close to the manifest's save for its stat
/// to prove the content unchanged.
fn is_racy(rec: &Record, saved_at_ns: i64) -> bool {
    rec.stat.mtime_ns + RACY_WINDOW_NS >= saved_at_ns
}

/// Observes `rel` below the workspace root `root_dir` (opened): [`Dir::open`]
/// of its directory, then [`Dir::observe`].
pub fn observe_in(
    root_dir: &fs::File,
    rel: &str,
    record: Option<&Record>,
    saved_at_ns: i64,
) -> io::Result<Observed> {
    let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
    Dir::open(root_dir, parent)?.observe(name, record, saved_at_ns)
}

/// How one path is looked at by [`in_directories`]: given its record and
/// the manifest's save time, what is there.
pub type Look<'l> = dyn Fn(Option<&Record>, i64) -> io::Result<Observed> + 'l;

/// Calls `f` for every path of `paths` (sorted), in parallel, with a way
/// to observe it; collects what `f` returns. Each directory is opened once
/// (beneath `root_dir`, no symlink on the way) for the paths in it, and a
/// path costs one `fstatat` of a single name: as cheap as a stat from the
/// root, and nothing on the way is followed.
pub fn in_directories<'a, T: Send>(
    root_dir: &fs::File,
    paths: &[&'a RepoPath],
    f: impl Fn(&'a RepoPath, &Look) -> Option<T> + Sync,
) -> Vec<T> {
    let runs: Vec<&[&RepoPath]> = paths.chunk_by(|a, b| split(a).0 == split(b).0).collect();
    runs.into_par_iter()
        .flat_map_iter(|run| {
            let dir = Dir::open(root_dir, split(run[0]).0);
            run.iter()
                .filter_map(|path| {
                    let look = |record: Option<&Record>, saved_at_ns: i64| match &dir {
                        Ok(d) => d.observe(split(path).1, record, saved_at_ns),
                        Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
                    };
                    f(path, &look)
                })
                .collect::<Vec<T>>()
        })
        .collect()
}

/// A path's directory and name ("" for the root's entries).
fn split(p: &RepoPath) -> (&str, &str) {
    let s = p.as_str();
    s.rsplit_once('/').unwrap_or(("", s))
}

/// A workspace directory, opened once to observe the entries in it.
pub enum Dir {
    /// The directory, open.
    Open(fs::File),
    /// Nothing there (or a file where a directory should be).
    Missing,
    /// A symlink on the way: what lies behind it is not looked at.
    BehindSymlink,
}

impl Dir {
    /// Opens the directory `rel` below the workspace root `root_dir`
    /// without following a symlink at any component ([`open_beneath`]).
    pub fn open(root_dir: &fs::File, rel: &str) -> io::Result<Dir> {
        match open_beneath(root_dir, rel, libc::O_PATH | libc::O_DIRECTORY) {
            Ok(f) => Ok(Dir::Open(f)),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Ok(Dir::BehindSymlink),
            Err(e) if is_absent_or_behind_link(&e) => Ok(Dir::Missing),
            Err(e) => Err(e),
        }
    }

    /// Observes the entry `name` of this directory against `record`.
    /// `saved_at_ns` is when the manifest holding `record` was written (for
    /// the racy-clean rule). A path behind a directory the user replaced by
    /// a symlink is [`Observed::BehindSymlink`], never what the link points
    /// to. The common case, a stat equal to the record's, is one `fstatat`
    /// of a single name and reads nothing.
    pub fn observe(
        &self,
        name: &str,
        record: Option<&Record>,
        saved_at_ns: i64,
    ) -> io::Result<Observed> {
        let dir = match self {
            Dir::Open(f) => f,
            Dir::Missing => return Ok(Observed::Missing),
            Dir::BehindSymlink => return Ok(Observed::BehindSymlink),
        };
        let Some(stat) = StatKey::of_entry(dir, name)? else {
            return Ok(Observed::Missing);
        };
        if let Some(rec) = record {
            if rec.stat == stat && !is_racy(rec, saved_at_ns) {
                return Ok(Observed::Unchanged { stat });
            }
        }
        let version = match stat.mode & libc::S_IFMT {
            libc::S_IFREG => Version {
                kind: Kind::File,
                executable: stat.mode & 0o100 != 0,
                size: stat.size,
                hash: Some(ContentHash::of_open(&open_beneath(
                    dir,
                    name,
                    libc::O_RDONLY | libc::O_NOFOLLOW,
                )?)?),
                target: None,
                oid: ObjectId::opaque("workspace"),
            },
            libc::S_IFLNK => {
                let target =
                    String::from_utf8(antares_overlay::view::upper::readlinkat(dir, name)?)
                        .map_err(|_| {
                            io::Error::new(
                                io::ErrorKind::InvalidData,
                                "symlink target is not UTF-8",
                            )
                        })?;
                Version {
                    kind: Kind::Symlink,
                    executable: false,
                    size: target.len() as u64,
                    hash: None,
                    target: Some(target),
                    oid: ObjectId::opaque("workspace"),
                }
            }
            libc::S_IFDIR => return Ok(Observed::Other { what: A_DIRECTORY }),
            _ => {
                return Ok(Observed::Other {
                    what: "a special file",
                })
            }
        };
        match record {
            Some(rec) if rec.version.same_content(&version) => Ok(Observed::Unchanged { stat }),
            _ => Ok(Observed::Present { version, stat }),
        }
    }
}
