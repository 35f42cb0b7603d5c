//! `git:PATH[@REV]` — one commit of a local git repository (bare or not).
//!
//! Everything is read from the object database with gix; the work tree, the
//! index and the `git` binary are never consulted. Tree entry modes give the
//! kinds: `100644`/`100755` → file (exec bit), `120000` → symlink (its blob is
//! the target), `040000` → directory, `160000` → gitlink (a submodule commit:
//! reported as an entry so consumers can say so, but it has no content here).
//!
//! Object ids are git's own (blob id for files and symlinks, tree id for
//! directories, the submodule commit for gitlinks), so an unchanged directory
//! can be skipped by comparing one id. Entries every source excludes
//! ([`crate::source::is_excluded`]: `.git`, root `buck-out`/`.antares`) are
//! left out even when a tree contains them. Sizes are not reported (`None`): getting
//! them costs one object-header lookup per blob, which would dominate a walk.

use crate::entry::{EntryKind, ObjectId, TreeEntry};
use crate::error::{Result, SourceError};
use crate::path::{PathError, RepoPath};
use crate::source::{is_excluded, is_excluded_path, Source};
use gix::prelude::Find;
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use thread_local::ThreadLocal;

/// A commit of a local git repository.
///
/// `Send + Sync`: the shared [`gix::ThreadSafeRepository`] is turned into one
/// [`gix::Repository`] handle per thread on first use (a handle carries
/// per-thread caches and buffers and is not `Sync`), and kept for the life of
/// the source so rayon workers reuse theirs.
pub struct GitSource {
    shared: gix::ThreadSafeRepository,
    local: ThreadLocal<gix::Repository>,
    /// The path given to [`GitSource::open`], for messages.
    path: PathBuf,
    commit: gix::ObjectId,
    root_tree: gix::ObjectId,
}

impl std::fmt::Debug for GitSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitSource")
            .field("path", &self.path)
            .field("commit", &self.commit)
            .finish_non_exhaustive()
    }
}

/// What a path resolves to inside the commit's tree.
struct Resolved {
    mode: gix::object::tree::EntryMode,
    id: gix::ObjectId,
}

impl GitSource {
    /// Opens the repository at `path` (a work tree, its `.git` directory, or a
    /// bare repository) at `rev` (anything `git rev-parse` accepts that names
    /// a commit, directly or through tags; default `HEAD`).
    ///
    /// The repository is opened isolated from the environment (`GIT_DIR` and
    /// friends, global and system config are ignored) so that the same spec
    /// always means the same tree.
    pub fn open(path: impl AsRef<Path>, rev: Option<&str>) -> Result<GitSource> {
        let path = path.as_ref().to_path_buf();
        let git_err = |message: String| SourceError::Git {
            repo: path.display().to_string(),
            message,
        };
        let shared = gix::ThreadSafeRepository::open_opts(&path, gix::open::Options::isolated())
            .map_err(|e| git_err(format!("cannot open: {e}")))?;
        let repo = shared.to_thread_local();
        let rev = rev.unwrap_or("HEAD");
        let id = repo
            .rev_parse_single(rev)
            .map_err(|e| git_err(format!("cannot resolve revision {rev:?}: {e}")))?;
        let commit = id
            .object()
            .and_then(|o| o.peel_to_commit())
            .map_err(|e| git_err(format!("revision {rev:?} does not name a commit: {e}")))?;
        let root_tree = commit
            .tree_id()
            .map_err(|e| git_err(format!("commit {} has no readable tree: {e}", commit.id)))?
            .detach();
        let commit = commit.id;
        Ok(GitSource {
            shared,
            local: ThreadLocal::new(),
            path,
            commit,
            root_tree,
        })
    }

    /// This thread's handle on the repository.
    fn repo(&self) -> &gix::Repository {
        self.local.get_or(|| {
            let mut repo = self.shared.to_thread_local();
            // Blobs are read once each and go straight to the content store:
            // an object cache would only hold memory (tens of MB per thread).
            repo.object_cache_size(0);
            repo
        })
    }

    fn git_err(&self, message: String) -> SourceError {
        SourceError::Git {
            repo: self.path.display().to_string(),
            message,
        }
    }

    fn bad_name(&self, dir: &RepoPath, error: PathError) -> SourceError {
        SourceError::BadPath {
            origin: format!(
                "git repository {} at {}, tree of {dir}",
                self.path.display(),
                self.commit
            ),
            error,
        }
    }

    /// The git object id of `entry`.
    fn object_id(&self, entry: &TreeEntry) -> Result<gix::ObjectId> {
        let hex = entry.oid.git_hex().ok_or_else(|| SourceError::Invalid {
            path: format!("{}: {}", self.describe(), entry.path),
            message: format!("object id {} is not a git id", entry.oid),
        })?;
        gix::ObjectId::from_hex(hex.as_bytes()).map_err(|e| SourceError::Invalid {
            path: format!("{}: {}", self.describe(), entry.path),
            message: format!("object id {hex}: {e}"),
        })
    }

    /// Loads the tree `tree` (which is `dir` in the commit) and returns its
    /// entries, each with its raw object id, in git's tree order. Every name
    /// is validated: a crafted tree cannot smuggle `..`, `/` or an empty name
    /// past this point.
    fn read_tree(
        &self,
        repo: &gix::Repository,
        tree: &gix::oid,
        dir: &RepoPath,
        buf: &mut Vec<u8>,
    ) -> Result<Vec<(TreeEntry, gix::ObjectId)>> {
        let data = repo
            .try_find(tree, buf)
            .map_err(|e| self.git_err(format!("cannot read tree {tree} ({dir}): {e}")))?
            .ok_or_else(|| {
                self.git_err(format!(
                    "tree {tree} ({dir}) is missing from the object database"
                ))
            })?;
        if data.kind != gix::object::Kind::Tree {
            return Err(self.git_err(format!(
                "object {tree} ({dir}) is a {}, not a tree",
                data.kind
            )));
        }
        let mut out = Vec::new();
        let mut names = std::collections::HashSet::new();
        for e in gix::objs::TreeRefIter::from_bytes(data.data, data.object_hash) {
            let e = e.map_err(|err| self.git_err(format!("corrupt tree {tree} ({dir}): {err}")))?;
            let name = std::str::from_utf8(e.filename)
                .map_err(|_| self.bad_name(dir, PathError::NotUtf8(e.filename.to_string())))?;
            let path = dir.join(name).map_err(|err| self.bad_name(dir, err))?;
            if is_excluded(dir, name) {
                tracing::warn!(repo = %self.path.display(), %path, "skipping an excluded entry committed to the tree");
                continue;
            }
            if !names.insert(e.filename) {
                // git fsck's duplicateEntries: the first is used, every
                // time, so syncs agree on what the path holds.
                tracing::warn!(repo = %self.path.display(), %path, "the tree lists this name more than once; using its first entry");
                continue;
            }
            let entry = self.entry(path, e.mode, e.oid)?;
            out.push((entry, e.oid.to_owned()));
        }
        Ok(out)
    }

    /// The entry for `path`, with mode `mode` and object `id`.
    fn entry(
        &self,
        path: RepoPath,
        mode: gix::object::tree::EntryMode,
        id: &gix::oid,
    ) -> Result<TreeEntry> {
        let (kind, executable) = match mode.value() {
            0o040000 => (EntryKind::Dir, false),
            0o120000 => (EntryKind::Symlink, false),
            0o160000 => (EntryKind::Gitlink, false),
            m if m & 0o170000 == 0o100000 => (EntryKind::File, m & 0o100 != 0),
            m => {
                return Err(SourceError::Invalid {
                    path: format!("{}: {path}", self.describe()),
                    message: format!("unsupported git tree mode {m:o}"),
                })
            }
        };
        let hex = id.to_hex().to_string();
        let oid = ObjectId::git(&hex)
            .ok_or_else(|| self.git_err(format!("unexpected object id {hex:?}")))?;
        Ok(TreeEntry {
            path,
            kind,
            executable,
            size: None,
            oid,
        })
    }

    /// Follows `path` from the root tree; `None` if a component is missing or
    /// runs through something that is not a tree.
    fn resolve(&self, repo: &gix::Repository, path: &RepoPath) -> Result<Option<Resolved>> {
        let mut cur = Resolved {
            mode: gix::object::tree::EntryKind::Tree.into(),
            id: self.root_tree,
        };
        if is_excluded_path(path) {
            return Ok(None);
        }
        let mut buf = Vec::new();
        for name in path.components() {
            if !cur.mode.is_tree() {
                return Ok(None);
            }
            let data = repo
                .try_find(&cur.id, &mut buf)
                .map_err(|e| {
                    self.git_err(format!(
                        "cannot read tree {} (on the way to {path}): {e}",
                        cur.id
                    ))
                })?
                .ok_or_else(|| {
                    self.git_err(format!("tree {} (on the way to {path}) is missing", cur.id))
                })?;
            let mut found = None;
            for e in gix::objs::TreeRefIter::from_bytes(data.data, data.object_hash) {
                let e = e.map_err(|err| {
                    self.git_err(format!(
                        "corrupt tree {} (on the way to {path}): {err}",
                        cur.id
                    ))
                })?;
                if e.filename == name.as_bytes() {
                    found = Some(Resolved {
                        mode: e.mode,
                        id: e.oid.to_owned(),
                    });
                    break;
                }
            }
            match found {
                Some(r) => cur = r,
                None => return Ok(None),
            }
        }
        Ok(Some(cur))
    }

    /// Pre-order, names sorted within each directory (like `DirSource`).
    fn walk_into(
        &self,
        repo: &gix::Repository,
        tree: &gix::oid,
        dir: &RepoPath,
        buf: &mut Vec<u8>,
        out: &mut Vec<TreeEntry>,
    ) -> Result<()> {
        let mut entries = self.read_tree(repo, tree, dir, buf)?;
        entries.sort_unstable_by(|a, b| a.0.path.cmp(&b.0.path));
        for (entry, id) in entries {
            let sub = (entry.kind == EntryKind::Dir).then(|| entry.path.clone());
            out.push(entry);
            if let Some(sub) = sub {
                self.walk_into(repo, &id, &sub, buf, out)?;
            }
        }
        Ok(())
    }

    /// The tree id of directory `dir`, or the matching error.
    fn dir_tree(&self, repo: &gix::Repository, dir: &RepoPath) -> Result<gix::ObjectId> {
        match self.resolve(repo, dir)? {
            None => Err(SourceError::NotFound(dir.clone())),
            Some(r) if r.mode.is_tree() => Ok(r.id),
            Some(_) => Err(SourceError::NotADirectory(dir.clone())),
        }
    }
}

impl Source for GitSource {
    fn describe(&self) -> String {
        format!(
            "git:{}@{}",
            self.path.display(),
            self.commit.to_hex_with_len(12)
        )
    }

    fn revision(&self) -> Option<String> {
        Some(self.commit.to_string())
    }

    fn stat(&self, path: &RepoPath) -> Result<Option<TreeEntry>> {
        let repo = self.repo();
        match self.resolve(repo, path)? {
            None => Ok(None),
            Some(r) => self.entry(path.clone(), r.mode, &r.id).map(Some),
        }
    }

    fn list_dir(&self, dir: &RepoPath) -> Result<Vec<TreeEntry>> {
        let repo = self.repo();
        let tree = self.dir_tree(repo, dir)?;
        let mut out: Vec<TreeEntry> = self
            .read_tree(repo, &tree, dir, &mut Vec::new())?
            .into_iter()
            .map(|(e, _)| e)
            .collect();
        // Git orders a tree "name/" for directories; callers expect plain names.
        out.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    fn read(&self, entry: &TreeEntry) -> Result<Vec<u8>> {
        match entry.kind {
            EntryKind::File | EntryKind::Symlink => {}
            EntryKind::Dir => {
                return Err(SourceError::Invalid {
                    path: format!("{}: {}", self.describe(), entry.path),
                    message: "a directory has no content to read".into(),
                })
            }
            EntryKind::Gitlink => {
                return Err(SourceError::Invalid {
                    path: format!("{}: {}", self.describe(), entry.path),
                    message: "a submodule (gitlink) has no content in this repository".into(),
                })
            }
        }
        let id = self.object_id(entry)?;
        let obj = self
            .repo()
            .find_object(id)
            .map_err(|e| self.git_err(format!("cannot read blob {id} ({}): {e}", entry.path)))?;
        if obj.kind != gix::object::Kind::Blob {
            return Err(self.git_err(format!(
                "object {id} ({}) is a {}, not a blob",
                entry.path, obj.kind
            )));
        }
        Ok(obj.detach().data)
    }

    /// From the object's header: git trees record no sizes, and a stat of
    /// the mount must not fetch every blob it lists.
    fn size_hint(&self, entry: &TreeEntry) -> Option<u64> {
        let id = self.object_id(entry).ok()?;
        self.repo().find_header(id).ok().map(|h| h.size())
    }

    /// Reads in parallel on the rayon pool, each worker through its own
    /// thread-local repository handle: inflating blobs is CPU-bound.
    fn read_many(
        &self,
        entries: &[TreeEntry],
        sink: &(dyn Fn(&TreeEntry, Result<Vec<u8>>) + Sync),
    ) {
        entries.par_iter().for_each(|e| sink(e, self.read(e)));
    }

    /// Decodes each tree once, with one reused buffer, and never looks at a
    /// blob: the cost is one object lookup per directory.
    fn walk(&self, dir: &RepoPath) -> Result<Vec<TreeEntry>> {
        let repo = self.repo();
        let tree = self.dir_tree(repo, dir)?;
        let mut out = Vec::new();
        self.walk_into(repo, &tree, dir, &mut Vec::new(), &mut out)?;
        Ok(out)
    }
}
