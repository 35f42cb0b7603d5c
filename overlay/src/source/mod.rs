//! Source backends: where the lower (read-only) tree comes from.
//!
//! Every backend answers the same few questions (what is at this path, what
//! is in this directory, what are these bytes), so the materializer, the
//! build-graph evaluator and the FUSE face never know which one they read.

pub mod cl;
pub mod dir;
pub mod git;
pub mod mono;

use crate::entry::{EntryKind, TreeEntry};
use crate::error::{Result, SourceError};
use crate::path::RepoPath;
use crate::spec::SourceSpec;

pub use dir::DirSource;
pub use git::GitSource;
pub use mono::{MonoOptions, MonoSource};

/// Opens the source a spec names. `cache_dir` is a directory the source may
/// keep verified metadata in across runs (the mono source keeps raw trees
/// there); the binary passes one beside the content store. A mono source
/// with a `cl` gets that change list laid over it ([`cl::ClSource`]).
pub fn open(spec: &SourceSpec, cache_dir: Option<&std::path::Path>) -> Result<Box<dyn Source>> {
    match spec {
        SourceSpec::Dir { path } => Ok(Box::new(DirSource::open(path)?)),
        SourceSpec::Git { path, rev } => Ok(Box::new(GitSource::open(path, rev.as_deref())?)),
        SourceSpec::Mono { url, refs, cl } => {
            let opts = MonoOptions {
                tree_cache: cache_dir.map(|d| d.join("mono-trees")),
                ..MonoOptions::default()
            }
            .from_env();
            let mono = MonoSource::open(url, refs.as_deref(), opts)?;
            match cl {
                Some(link) => {
                    let changes = mono.change_list(link)?;
                    Ok(Box::new(cl::ClSource::new(Box::new(mono), link, changes)))
                }
                None => Ok(Box::new(mono)),
            }
        }
    }
}

/// A read-only tree with content on demand.
///
/// Implementations must be cheap to call from many threads at once (the
/// materializer reads blobs from a rayon pool) and must validate every name
/// they hand out (see [`crate::path`]).
pub trait Source: Send + Sync {
    /// A one-line description for messages, e.g. `git:/src/repo@1a2b3c4`.
    fn describe(&self) -> String;

    /// The revision being served (a commit id), or `None` for a live tree.
    fn revision(&self) -> Option<String>;

    /// The entry at `path`, `None` if absent. The root is always a directory.
    fn stat(&self, path: &RepoPath) -> Result<Option<TreeEntry>>;

    /// The entries of directory `dir`, sorted by name.
    fn list_dir(&self, dir: &RepoPath) -> Result<Vec<TreeEntry>>;

    /// The content of a file, or the target of a symlink as bytes.
    fn read(&self, entry: &TreeEntry) -> Result<Vec<u8>>;

    /// An open file holding exactly the content of the file `entry`, for
    /// backends whose content already sits in local files (`dir:`): a
    /// consumer can then stream it, holes and all, instead of holding it in
    /// memory. `None` means: use [`read`](Self::read).
    fn open_file(&self, entry: &TreeEntry) -> Result<Option<std::fs::File>> {
        let _ = entry;
        Ok(None)
    }

    /// The size of a file or symlink when it can be had without reading
    /// the content: the entry's own, or (overridden) from object metadata.
    /// `None` means: read it to know.
    fn size_hint(&self, entry: &TreeEntry) -> Option<u64> {
        entry.size
    }

    /// Reads many entries, handing each result to `sink` as it arrives, in
    /// any order and possibly from several threads. Backends that gain from
    /// concurrency (a network source, a git object database) override this
    /// with bounded parallelism; the default reads one at a time.
    fn read_many(
        &self,
        entries: &[TreeEntry],
        sink: &(dyn Fn(&TreeEntry, Result<Vec<u8>>) + Sync),
    ) {
        for e in entries {
            sink(e, self.read(e));
        }
    }

    /// Every entry below `dir` (not `dir` itself), parents before children.
    /// The default lists one level at a time, its directories in parallel
    /// (listing a live tree is a stat per entry); backends with a cheaper
    /// bulk walk override this.
    fn walk(&self, dir: &RepoPath) -> Result<Vec<TreeEntry>> {
        use rayon::prelude::*;
        let mut out = Vec::new();
        let mut level = vec![dir.clone()];
        while !level.is_empty() {
            let listed = level
                .par_iter()
                .map(|d| self.list_dir(d))
                .collect::<Result<Vec<_>>>()?;
            level = Vec::new();
            for e in listed.into_iter().flatten() {
                if e.kind == EntryKind::Dir {
                    level.push(e.path.clone());
                }
                out.push(e);
            }
        }
        Ok(out)
    }
}

/// Everything below a directory, parents before children: `entries` are the
/// directory's own, `list` lists one of them that `is_dir`, and the
/// subdirectories of each level are walked in parallel. For trees whose
/// listing is a syscall per entry (a live directory, an overlay), where one
/// core cannot keep the file system busy.
pub(crate) fn walk_preorder<T, E, F>(
    entries: Vec<T>,
    list: &F,
    is_dir: fn(&T) -> bool,
) -> std::result::Result<Vec<T>, E>
where
    T: Send + Sync,
    E: Send,
    F: Fn(&T) -> std::result::Result<Vec<T>, E> + Sync,
{
    preorder(
        entries,
        &|e: &T| {
            is_dir(e)
                .then(|| walk_preorder(list(e)?, list, is_dir))
                .transpose()
        },
        |e| e,
    )
}

/// The pre-order sequence of `entries`, each (turned `into` the output
/// type) followed by the subtree `below` gives for it (`None`: not a
/// directory). The subtrees are computed in parallel.
pub(crate) fn preorder<T, U, E, B>(
    entries: Vec<T>,
    below: &B,
    into: fn(T) -> U,
) -> std::result::Result<Vec<U>, E>
where
    T: Send + Sync,
    U: Send,
    E: Send,
    B: Fn(&T) -> std::result::Result<Option<Vec<U>>, E> + Sync,
{
    use rayon::prelude::*;
    let below: Vec<Option<Vec<U>>> = entries
        .par_iter()
        .map(below)
        .collect::<std::result::Result<_, E>>()?;
    let total = entries.len() + below.iter().flatten().map(Vec::len).sum::<usize>();
    let mut out = Vec::with_capacity(total);
    for (e, sub) in entries.into_iter().zip(below) {
        out.push(into(e));
        out.extend(sub.into_iter().flatten());
    }
    Ok(out)
}

/// Whether the entry `name` in directory `parent` is left out of every
/// source's tree: `.git` at any depth (a repository's database or a
/// worktree/submodule link; git itself refuses to check out such an entry),
/// `.antares` at any depth (antares' state: one committed below the root
/// would make its directory look like a workspace whose source and cache
/// the repository chose; refused with a warning naming it) and, at the
/// root, `buck-out` (Buck2's outputs, which must never be materialized over
/// the workspace's own).
pub fn is_excluded(parent: &RepoPath, name: &str) -> bool {
    if name == STATE_DIR && !parent.is_root() {
        warn_refused_state_dir(&format!("{parent}/{name}"));
    }
    excluded_name(name, parent.is_root())
}

/// The rule of [`is_excluded`] for one name (`at_root`: its directory is
/// the root), written once for both checks.
fn excluded_name(name: &str, at_root: bool) -> bool {
    name == GIT_DIR || name == STATE_DIR || (at_root && name == BUCK_OUT)
}

/// Whether `path` is, or lies below, an entry [`is_excluded`] leaves out.
pub fn is_excluded_path(path: &RepoPath) -> bool {
    let mut at_root = true;
    for name in path.components() {
        if excluded_name(name, at_root) {
            return true;
        }
        at_root = false;
    }
    false
}

/// antares' state directory name, never taken from a source (and, at a
/// workspace's root, where its state lives).
pub const STATE_DIR: &str = ".antares";
/// Buck2's output directory at the project root.
pub const BUCK_OUT: &str = "buck-out";
/// Git's own directory.
pub const GIT_DIR: &str = ".git";

/// Warns, once per path and process, that a source's `.antares` below the
/// root is left out.
fn warn_refused_state_dir(path: &str) {
    use std::collections::BTreeSet;
    static WARNED: std::sync::Mutex<BTreeSet<String>> = std::sync::Mutex::new(BTreeSet::new());
    if let Ok(mut warned) = WARNED.lock() {
        if warned.insert(path.to_string()) {
            tracing::warn!(
                path,
                "the source has a {STATE_DIR} directory here; left out (antares' state is never taken from a source)"
            );
        }
    }
}

/// Reads the whole file at `path`.
pub fn read_path(source: &dyn Source, path: &RepoPath) -> Result<Vec<u8>> {
    match source.stat(path)? {
        Some(e) if e.kind == EntryKind::File || e.kind == EntryKind::Symlink => source.read(&e),
        Some(_) => Err(SourceError::Invalid {
            path: path.to_string(),
            message: "not a file".into(),
        }),
        None => Err(SourceError::NotFound(path.clone())),
    }
}

/// The target of the symlink `entry`, as text.
pub fn read_link(source: &dyn Source, entry: &TreeEntry) -> Result<String> {
    let bytes = source.read(entry)?;
    String::from_utf8(bytes).map_err(|_| SourceError::Invalid {
        path: entry.path.to_string(),
        message: "symlink target is not valid UTF-8".into(),
    })
}
