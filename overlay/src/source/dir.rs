//! `dir:PATH` — a plain local directory as a source.
//!
//! The directory is live: nothing is snapshotted, every call looks at the file
//! system as it is now. Object ids are therefore `stat:` signatures (device,
//! inode, size, mtime, ctime), which change whenever a file changes but say
//! nothing about content; consumers hash the bytes they read.
//!
//! What is never part of the tree: `.git` at any depth (a repository's own
//! database, or a worktree/submodule link file), and `buck-out` and `.antares`
//! at the root (Buck2's output and antares' own state, when the source
//! directory is itself a workspace or a Buck2 project that was built in).
//! Sockets, fifos and device nodes cannot be materialized and are skipped with
//! a warning.

use crate::entry::{EntryKind, ObjectId, TreeEntry};
use crate::error::{Result, SourceError};
use crate::path::{PathError, RepoPath};
use crate::source::{is_excluded, is_excluded_path, walk_preorder, Source};
use rayon::prelude::*;
use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::io::{self, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A plain directory, read through the file system on every call.
#[derive(Debug, Clone)]
pub struct DirSource {
    /// Absolute, canonical path of the directory.
    root: PathBuf,
}

impl DirSource {
    /// Opens the directory at `path`. The path itself may be a symlink to a
    /// directory (it is canonicalized once here); symlinks *inside* the tree
    /// are never followed.
    pub fn open(path: impl AsRef<Path>) -> Result<DirSource> {
        let path = path.as_ref();
        let root = path
            .canonicalize()
            .map_err(|e| SourceError::io(path.display(), e))?;
        let meta = fs::metadata(&root).map_err(|e| SourceError::io(root.display(), e))?;
        if !meta.is_dir() {
            return Err(SourceError::Invalid {
                path: root.display().to_string(),
                message: "a dir: source must be a directory".into(),
            });
        }
        Ok(DirSource { root })
    }

    /// The directory this source reads.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `lstat` of `path`, treating "does not exist" and "a parent is not a
    /// directory" as absence rather than as errors.
    fn lstat_opt(&self, path: &RepoPath) -> Result<Option<Metadata>> {
        let fs_path = path.to_fs_path(&self.root);
        match fs::symlink_metadata(&fs_path) {
            Ok(m) => Ok(Some(m)),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(SourceError::io(fs_path.display(), e)),
        }
    }

    /// The metadata of `path` if it is part of the tree. Every ancestor is
    /// checked to be a real directory, so a path that runs through a symlink
    /// (`link/x` where `link -> elsewhere`) is absent, exactly as it would be
    /// in a listing.
    fn lookup(&self, path: &RepoPath) -> Result<Option<Metadata>> {
        if is_excluded_path(path) {
            return Ok(None);
        }
        let mut prefix = RepoPath::root();
        let mut comps = path.components().peekable();
        while let Some(name) = comps.next() {
            prefix = prefix
                .join(name)
                .map_err(|error| self.bad_path(&prefix, error))?;
            let Some(meta) = self.lstat_opt(&prefix)? else {
                return Ok(None);
            };
            if comps.peek().is_none() {
                return Ok(Some(meta));
            }
            if !meta.file_type().is_dir() {
                return Ok(None);
            }
        }
        // Only the root has no components.
        fs::metadata(&self.root)
            .map(Some)
            .map_err(|e| SourceError::io(self.root.display(), e))
    }

    fn bad_path(&self, at: &RepoPath, error: PathError) -> SourceError {
        SourceError::BadPath {
            origin: format!("directory {}", at.to_fs_path(&self.root).display()),
            error,
        }
    }

    /// The entries of the tree directory `rel` (read from the file system),
    /// sorted by name, skipped names left out.
    fn read_entries(&self, rel: &RepoPath) -> Result<Vec<TreeEntry>> {
        let fs_dir = rel.to_fs_path(&self.root);
        let rd = fs::read_dir(&fs_dir).map_err(|e| SourceError::io(fs_dir.display(), e))?;
        let mut out = Vec::new();
        for de in rd {
            let de = de.map_err(|e| SourceError::io(fs_dir.display(), e))?;
            let name = de.file_name();
            let name = utf8_name(&name).map_err(|error| SourceError::BadPath {
                origin: format!("directory {}", fs_dir.display()),
                error,
            })?;
            if is_excluded(rel, name) {
                continue;
            }
            let path = rel.join(name).map_err(|error| SourceError::BadPath {
                origin: format!("directory {}", fs_dir.display()),
                error,
            })?;
            // `DirEntry::metadata` is an lstat relative to the open directory.
            let meta = match de.metadata() {
                Ok(m) => m,
                // Removed between readdir and stat: it is simply gone now.
                Err(e) if is_absent(&e) => continue,
                Err(e) => return Err(SourceError::io(de.path().display(), e)),
            };
            if let Some(entry) = self.entry_from_meta(path, &meta) {
                out.push(entry);
            }
        }
        out.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Builds the entry for `path`; `None` (with a warning) for sockets,
    /// fifos and device nodes, which have no content to materialize.
    fn entry_from_meta(&self, path: RepoPath, meta: &Metadata) -> Option<TreeEntry> {
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            EntryKind::Dir
        } else if ft.is_symlink() {
            EntryKind::Symlink
        } else if ft.is_file() {
            EntryKind::File
        } else {
            tracing::warn!(
                path = %path.to_fs_path(&self.root).display(),
                "skipping a socket, fifo or device node in the dir: source"
            );
            return None;
        };
        let oid = ObjectId::stat(
            meta.dev(),
            meta.ino(),
            meta.len(),
            meta.mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.mtime_nsec()),
            meta.ctime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.ctime_nsec()),
        );
        Some(TreeEntry {
            path,
            kind,
            executable: kind == EntryKind::File && meta.mode() & 0o100 != 0,
            // A directory's st_size says nothing about its content.
            size: (kind != EntryKind::Dir).then_some(meta.len()),
            oid,
        })
    }

    /// Every entry below `dir`: pre-order, names sorted within each
    /// directory, so parents come before their children and the order is
    /// deterministic. Sibling subdirectories are walked in parallel (rayon):
    /// a walk is one `lstat` per entry, and on a loaded machine that syscall
    /// latency is the whole cost.
    fn walk_below(&self, dir: &RepoPath) -> Result<Vec<TreeEntry>> {
        walk_preorder(
            self.read_entries(dir)?,
            &|e: &TreeEntry| self.read_entries(&e.path),
            |e| e.kind == EntryKind::Dir,
        )
    }

    /// Checks that `dir` is a directory of the tree, for listing it.
    fn require_dir(&self, dir: &RepoPath) -> Result<()> {
        match self.lookup(dir)? {
            None => Err(SourceError::NotFound(dir.clone())),
            Some(m) if m.file_type().is_dir() => Ok(()),
            Some(_) => Err(SourceError::NotADirectory(dir.clone())),
        }
    }
}

impl Source for DirSource {
    fn describe(&self) -> String {
        format!("dir:{}", self.root.display())
    }

    fn revision(&self) -> Option<String> {
        None
    }

    fn stat(&self, path: &RepoPath) -> Result<Option<TreeEntry>> {
        Ok(self
            .lookup(path)?
            .and_then(|meta| self.entry_from_meta(path.clone(), &meta)))
    }

    fn list_dir(&self, dir: &RepoPath) -> Result<Vec<TreeEntry>> {
        self.require_dir(dir)?;
        self.read_entries(dir)
    }

    fn read(&self, entry: &TreeEntry) -> Result<Vec<u8>> {
        if is_excluded_path(&entry.path) {
            return Err(SourceError::NotFound(entry.path.clone()));
        }
        let fs_path = entry.path.to_fs_path(&self.root);
        match entry.kind {
            EntryKind::Symlink => fs::read_link(&fs_path)
                .map(|t| t.into_os_string().into_vec())
                .map_err(|e| SourceError::io(fs_path.display(), e)),
            EntryKind::File => {
                let (mut f, meta) = open_regular(&fs_path)?;
                let mut buf = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
                f.read_to_end(&mut buf)
                    .map_err(|e| SourceError::io(fs_path.display(), e))?;
                Ok(buf)
            }
            EntryKind::Dir | EntryKind::Gitlink => Err(SourceError::Invalid {
                path: fs_path.display().to_string(),
                message: "not a file or symlink; it has no content to read".into(),
            }),
        }
    }

    fn open_file(&self, entry: &TreeEntry) -> Result<Option<fs::File>> {
        if entry.kind != EntryKind::File {
            return Ok(None);
        }
        if is_excluded_path(&entry.path) {
            return Err(SourceError::NotFound(entry.path.clone()));
        }
        open_regular(&entry.path.to_fs_path(&self.root)).map(|(f, _)| Some(f))
    }

    /// Reads in parallel on the rayon pool: local reads of many small files
    /// are dominated by syscall latency, which parallelism hides.
    fn read_many(
        &self,
        entries: &[TreeEntry],
        sink: &(dyn Fn(&TreeEntry, Result<Vec<u8>>) + Sync),
    ) {
        entries.par_iter().for_each(|e| sink(e, self.read(e)));
    }

    /// One `read_dir` per directory and one `lstat` per entry (relative to
    /// the open directory), directories in parallel; no per-path ancestor
    /// checks.
    fn walk(&self, dir: &RepoPath) -> Result<Vec<TreeEntry>> {
        self.require_dir(dir)?;
        self.walk_below(dir)
    }
}

/// Opens the regular file at `fs_path`. O_NOFOLLOW: if the file was
/// replaced by a symlink since it was listed, refuse rather than read
/// whatever it points to.
fn open_regular(fs_path: &Path) -> Result<(fs::File, Metadata)> {
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(fs_path)
        .map_err(|e| SourceError::io(fs_path.display(), e))?;
    let meta = f
        .metadata()
        .map_err(|e| SourceError::io(fs_path.display(), e))?;
    if !meta.is_file() {
        return Err(SourceError::Invalid {
            path: fs_path.display().to_string(),
            message: "no longer a regular file".into(),
        });
    }
    Ok((f, meta))
}

fn utf8_name(name: &OsStr) -> Result<&str, PathError> {
    name.to_str()
        .ok_or_else(|| PathError::NotUtf8(String::from_utf8_lossy(name.as_bytes()).into_owned()))
}

/// ENOENT or ENOTDIR: the path is not there (anymore).
fn is_absent(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
}
