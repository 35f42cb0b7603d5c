//! The overlay View: a read-only lower [`Source`] merged with a writable
//! local upper directory, with overlayfs semantics.
//!
//! - An entry present in the upper dir wins over the lower one.
//! - A deleted lower entry is hidden by a *whiteout* in the upper dir.
//! - An *opaque* upper directory hides the lower directory of the same path.
//! - Mutating a lower entry first copies it up (its parent directories are
//!   created in the upper dir as needed).
//!
//! The upper dir's on-disk format is the one kernel overlayfs, Scorpio and
//! fuse-overlayfs use (see [`upper`] for the exact markers), so an upper dir
//! written by any of them can be read here and vice versa.
//!
//! The View is usable without FUSE: it implements [`Source`] (upper entries
//! get `stat:` object ids), so the materializer and the build-graph code
//! read the merged tree through it, and it has small mutation methods that
//! the FUSE face and the two-way sync call. Whole files are written to a
//! temporary file in the upper dir and renamed into place; no write ever
//! follows a symlink (every upper path is walked with `O_NOFOLLOW`).

pub mod upper;

use crate::cache::BlobCache;
use crate::entry::{EntryKind, ObjectId, TreeEntry};
use crate::error::SourceError;
use crate::path::{PathError, RepoPath};
use crate::source::{preorder, Source};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why a View operation failed. [`ViewError::errno`] maps each to the errno
/// a file system would return.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// Nothing at the path.
    #[error("{0}: no such file or directory")]
    NotFound(RepoPath),
    /// Something is already at the path.
    #[error("{0}: already exists")]
    Exists(RepoPath),
    /// Removing a directory that is not empty.
    #[error("{0}: directory not empty")]
    NotEmpty(RepoPath),
    /// A directory was expected.
    #[error("{0}: not a directory")]
    NotADirectory(RepoPath),
    /// A non-directory was expected.
    #[error("{0}: is a directory")]
    IsADirectory(RepoPath),
    /// Renaming a directory that has lower content (overlayfs without
    /// `redirect_dir` answers the same; `mv` then copies).
    #[error("{0}: cannot rename a directory with lower-layer content")]
    CrossLayer(RepoPath),
    /// An argument the operation does not take.
    #[error("{0}: invalid argument")]
    Invalid(RepoPath),
    /// The upper dir could not be read or written.
    #[error("upper dir {path}: {source}")]
    Io {
        /// Where.
        path: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The lower source failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A path was refused.
    #[error(transparent)]
    BadPath(#[from] PathError),
}

impl ViewError {
    fn io(path: &RepoPath, source: io::Error) -> Self {
        ViewError::Io {
            path: path.to_string(),
            source,
        }
    }

    /// The errno this error stands for.
    pub fn errno(&self) -> i32 {
        match self {
            ViewError::NotFound(_) => libc::ENOENT,
            ViewError::Exists(_) => libc::EEXIST,
            ViewError::NotEmpty(_) => libc::ENOTEMPTY,
            ViewError::NotADirectory(_) => libc::ENOTDIR,
            ViewError::IsADirectory(_) => libc::EISDIR,
            ViewError::CrossLayer(_) => libc::EXDEV,
            ViewError::Invalid(_) => libc::EINVAL,
            ViewError::Io { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
            ViewError::Source(SourceError::NotFound(_)) => libc::ENOENT,
            ViewError::Source(SourceError::NotADirectory(_)) => libc::ENOTDIR,
            ViewError::Source(SourceError::Io { source, .. }) => {
                source.raw_os_error().unwrap_or(libc::EIO)
            }
            ViewError::Source(_) => libc::EIO,
            ViewError::BadPath(PathError::Nul(_) | PathError::Slash(_)) => libc::EINVAL,
            ViewError::BadPath(_) => libc::EINVAL,
        }
    }
}

impl From<ViewError> for SourceError {
    fn from(e: ViewError) -> SourceError {
        match e {
            ViewError::Source(s) => s,
            ViewError::NotFound(p) => SourceError::NotFound(p),
            ViewError::NotADirectory(p) => SourceError::NotADirectory(p),
            ViewError::Io { path, source } => SourceError::Io { path, source },
            other => SourceError::Invalid {
                path: String::new(),
                message: other.to_string(),
            },
        }
    }
}

/// A result whose error is a [`ViewError`].
pub type Result<T, E = ViewError> = std::result::Result<T, E>;

/// One entry of the merged tree.
#[derive(Debug, Clone)]
pub struct Node {
    /// Where the entry is in the tree.
    pub path: RepoPath,
    /// What it is (the upper entry's kind when there is one).
    pub kind: EntryKind,
    /// `lstat` of the upper entry when the entry is served from the upper dir.
    pub upper: Option<libc::stat>,
    /// The lower entry at this path, if the lower layer is visible here (it
    /// may be shadowed by `upper`; removing the path then needs a whiteout).
    pub lower: Option<TreeEntry>,
    /// For directories: whether the lower directory's children show through
    /// (a lower directory exists here and the upper one is not opaque).
    pub merge_lower: bool,
}

impl Node {
    /// Whether the entry is served from the upper dir.
    pub fn is_upper(&self) -> bool {
        self.upper.is_some()
    }

    /// The permission bits (and setuid/setgid/sticky) of the entry.
    pub fn mode(&self) -> u32 {
        match (&self.upper, &self.lower) {
            (Some(st), _) => st.st_mode & 0o7777,
            (None, Some(e)) => match e.kind {
                EntryKind::Dir | EntryKind::Gitlink => 0o755,
                EntryKind::Symlink => 0o777,
                EntryKind::File => e.file_mode(),
            },
            (None, None) => 0o755,
        }
    }

    /// The merged entry as a [`TreeEntry`]: upper entries get a `stat:` id.
    pub fn to_entry(&self) -> TreeEntry {
        match (&self.upper, &self.lower) {
            (Some(st), _) => TreeEntry {
                path: self.path.clone(),
                kind: self.kind,
                executable: self.kind == EntryKind::File && st.st_mode & 0o100 != 0,
                size: match self.kind {
                    EntryKind::File | EntryKind::Symlink => Some(st.st_size as u64),
                    _ => None,
                },
                oid: ObjectId::stat(
                    st.st_dev,
                    st.st_ino,
                    st.st_size as u64,
                    st.st_mtime * 1_000_000_000 + st.st_mtime_nsec,
                    st.st_ctime * 1_000_000_000 + st.st_ctime_nsec,
                ),
            },
            (None, Some(e)) => e.clone(),
            (None, None) => TreeEntry {
                path: self.path.clone(),
                kind: self.kind,
                executable: false,
                size: None,
                oid: ObjectId::opaque("empty-dir"),
            },
        }
    }
}

fn kind_of_stat(st: &libc::stat) -> Option<EntryKind> {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => Some(EntryKind::File),
        libc::S_IFDIR => Some(EntryKind::Dir),
        libc::S_IFLNK => Some(EntryKind::Symlink),
        // Fifos, sockets and device nodes made through the mount are shown as
        // files by the Source API (they have no content to materialize).
        _ => Some(EntryKind::File),
    }
}

/// A source with nothing in it but the root: the lower of a View that is
/// only its upper dir (e.g. a bind directory served through FUSE).
#[derive(Debug, Default)]
pub struct EmptySource;

impl Source for EmptySource {
    fn describe(&self) -> String {
        "empty".into()
    }
    fn revision(&self) -> Option<String> {
        None
    }
    fn stat(&self, path: &RepoPath) -> crate::Result<Option<TreeEntry>> {
        Ok(path.is_root().then(|| TreeEntry {
            path: RepoPath::root(),
            kind: EntryKind::Dir,
            executable: false,
            size: None,
            oid: ObjectId::opaque("empty"),
        }))
    }
    fn list_dir(&self, _dir: &RepoPath) -> crate::Result<Vec<TreeEntry>> {
        Ok(Vec::new())
    }
    fn read(&self, entry: &TreeEntry) -> crate::Result<Vec<u8>> {
        Err(SourceError::NotFound(entry.path.clone()))
    }
}

type Listing = Arc<HashMap<String, TreeEntry>>;

/// How long a listing of a live lower (one without a revision, e.g. a
/// `dir:` source) is reused before the source is asked again. Immutable
/// lowers are listed once.
pub const LIVE_LISTING_TTL: Duration = Duration::from_secs(1);

/// Lower `Source` + upper directory, merged.
pub struct View {
    lower: Arc<dyn Source>,
    upper: PathBuf,
    /// The upper root, opened once: every upper path is resolved beneath it.
    root: OwnedFd,
    /// Lower directory listings, so a lookup lists a lower directory once
    /// instead of asking per name: for good when the lower is immutable (it
    /// has a revision), for [`LIVE_LISTING_TTL`] when it is live.
    lower_dirs: Mutex<HashMap<RepoPath, (Listing, Option<Instant>)>>,
    live: bool,
}

impl std::fmt::Debug for View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View")
            .field("lower", &self.lower.describe())
            .field("upper", &self.upper)
            .finish()
    }
}

impl View {
    /// A View of `lower` with the upper dir `upper` (created if missing).
    pub fn new(lower: Arc<dyn Source>, upper: impl AsRef<Path>) -> Result<View> {
        let upper = upper.as_ref();
        std::fs::create_dir_all(upper).map_err(|e| ViewError::Io {
            path: upper.display().to_string(),
            source: e,
        })?;
        let upper = upper.canonicalize().map_err(|e| ViewError::Io {
            path: upper.display().to_string(),
            source: e,
        })?;
        let root = upper::open_root(&upper).map_err(|e| ViewError::Io {
            path: upper.display().to_string(),
            source: e,
        })?;
        let live = lower.revision().is_none();
        Ok(View {
            lower,
            upper,
            root,
            lower_dirs: Mutex::new(HashMap::new()),
            live,
        })
    }

    /// The lower source.
    pub fn lower(&self) -> &Arc<dyn Source> {
        &self.lower
    }

    /// The upper directory.
    pub fn upper_dir(&self) -> &Path {
        &self.upper
    }

    fn root_fd(&self) -> Result<OwnedFd> {
        self.root
            .try_clone()
            .map_err(|e| ViewError::io(&RepoPath::root(), e))
    }

    /// Opens the upper directory `dir` if it exists as a real directory
    /// (never through a symlink). `Ok(None)` when absent.
    fn upper_dir_fd(&self, dir: &RepoPath) -> Result<Option<OwnedFd>> {
        match upper::open_dir_beneath(&self.root, dir.as_str()) {
            Ok(f) => Ok(Some(f)),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOENT)
                        | Some(libc::ENOTDIR)
                        | Some(libc::ELOOP)
                        | Some(libc::EXDEV)
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(ViewError::io(dir, e)),
        }
    }

    /// Opens the upper directory `dir`, creating it and its ancestors in the
    /// upper dir (copy-up of directories) as needed. The caller has checked
    /// that `dir` is a directory of the merged tree.
    fn ensure_upper_dir(&self, dir: &RepoPath) -> Result<OwnedFd> {
        let mut fd = self.root_fd()?;
        let mut at = RepoPath::root();
        for name in dir.components() {
            at = at.join(name)?;
            fd = match upper::open_dir(&fd, name) {
                Ok(f) => f,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    upper::clear_whiteout(&fd, name).map_err(|e| ViewError::io(&at, e))?;
                    match upper::mkdirat(&fd, name, 0o755) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(ViewError::io(&at, e)),
                    }
                    upper::open_dir(&fd, name).map_err(|e| ViewError::io(&at, e))?
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTDIR) | Some(libc::ELOOP)) => {
                    return Err(ViewError::NotADirectory(at))
                }
                Err(e) => return Err(ViewError::io(&at, e)),
            };
        }
        Ok(fd)
    }

    /// The lower entries of `dir`, by name (cached for immutable lowers).
    /// Forgets the cached lower listings, so the next lookups ask the lower
    /// again. A sync starts with this: a live lower (a `dir:` source) must
    /// not be seen through a listing made before an edit the sync is for.
    pub fn forget_lower_listings(&self) {
        if let Ok(mut dirs) = self.lower_dirs.lock() {
            dirs.clear();
        }
    }

    fn lower_listing(&self, dir: &RepoPath) -> Result<Listing> {
        let now = Instant::now();
        if let Some((l, expires)) = self.lower_dirs.lock().map_err(|_| poisoned(dir))?.get(dir) {
            if expires.is_none_or(|t| now < t) {
                return Ok(l.clone());
            }
        }
        let entries = match self.lower.list_dir(dir) {
            Ok(v) => v,
            Err(SourceError::NotFound(_)) | Err(SourceError::NotADirectory(_)) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let map: Listing = Arc::new(
            entries
                .into_iter()
                .filter_map(|e| Some((e.path.file_name()?.to_string(), e)))
                .collect(),
        );
        let expires = self.live.then(|| now + LIVE_LISTING_TTL);
        self.lower_dirs
            .lock()
            .map_err(|_| poisoned(dir))?
            .insert(dir.clone(), (map.clone(), expires));
        Ok(map)
    }

    fn lower_child(&self, parent: &Node, name: &str) -> Result<Option<TreeEntry>> {
        if !parent.merge_lower {
            return Ok(None);
        }
        Ok(self.lower_listing(&parent.path)?.get(name).cloned())
    }

    /// A string that changes whenever the listing of directory `node` may
    /// have changed (upper dir inode and times, lower dir object id), so a
    /// consumer can keep a cached listing while it stays the same.
    pub fn dir_version(&self, node: &Node) -> Result<String> {
        let mut v = String::new();
        if let Some(fd) = self.upper_dir_fd(&node.path)? {
            let st = upper::fstat(&fd).map_err(|e| ViewError::io(&node.path, e))?;
            v = format!(
                "{}:{}.{}:{}.{}",
                st.st_ino, st.st_mtime, st.st_mtime_nsec, st.st_ctime, st.st_ctime_nsec
            );
        }
        if node.merge_lower {
            let lower = match node.path.parent() {
                Some(p) => node
                    .path
                    .file_name()
                    .and_then(|n| self.lower_listing(&p).ok()?.get(n).cloned()),
                None => self.lower.stat(&node.path)?,
            };
            if let Some(e) = lower {
                v.push('/');
                v.push_str(e.oid.as_str());
            }
        }
        Ok(v)
    }

    /// The root of the merged tree.
    pub fn root(&self) -> Result<Node> {
        let root = RepoPath::root();
        let fd = self.root_fd()?;
        let st = upper::fstat(&fd).map_err(|e| ViewError::io(&root, e))?;
        let opaque = upper::is_opaque(&fd).map_err(|e| ViewError::io(&root, e))?;
        let lower = self.lower.stat(&root)?;
        let merge_lower = !opaque && lower.as_ref().is_some_and(|e| e.kind == EntryKind::Dir);
        Ok(Node {
            path: root,
            kind: EntryKind::Dir,
            upper: Some(st),
            lower,
            merge_lower,
        })
    }

    /// The child `name` of the merged directory `parent`, `None` if absent.
    pub fn child(&self, parent: &Node, name: &str) -> Result<Option<Node>> {
        let path = parent.path.join(name)?;
        if parent.kind != EntryKind::Dir || upper::is_internal_name(name) {
            return Ok(None);
        }
        let mut up = None;
        let mut opaque = false;
        // The upper dir is looked at even if `parent` was not in it when it
        // was resolved: another writer may have created it since.
        {
            if let Some(dfd) = self.upper_dir_fd(&parent.path)? {
                if upper::is_whited_out(&dfd, name).map_err(|e| ViewError::io(&path, e))? {
                    return Ok(None);
                }
                if let Some(st) = upper::lstatat(&dfd, name).map_err(|e| ViewError::io(&path, e))? {
                    if upper::is_dir_stat(&st) {
                        let fd =
                            upper::open_dir(&dfd, name).map_err(|e| ViewError::io(&path, e))?;
                        opaque = upper::is_opaque(&fd).map_err(|e| ViewError::io(&path, e))?;
                    }
                    up = Some(st);
                }
            }
        }
        let lower = self.lower_child(parent, name)?;
        Ok(self.make_node(path, up, lower, opaque))
    }

    fn make_node(
        &self,
        path: RepoPath,
        up: Option<libc::stat>,
        lower: Option<TreeEntry>,
        opaque: bool,
    ) -> Option<Node> {
        let lower_is_dir = lower.as_ref().is_some_and(|e| e.kind == EntryKind::Dir);
        match up {
            Some(st) => {
                let kind = kind_of_stat(&st)?;
                Some(Node {
                    path,
                    kind,
                    upper: Some(st),
                    merge_lower: kind == EntryKind::Dir && lower_is_dir && !opaque,
                    lower,
                })
            }
            None => {
                let l = lower?;
                Some(Node {
                    path,
                    kind: l.kind,
                    upper: None,
                    merge_lower: l.kind == EntryKind::Dir,
                    lower: Some(l),
                })
            }
        }
    }

    /// The merged entry at `path`, `None` if absent.
    pub fn node(&self, path: &RepoPath) -> Result<Option<Node>> {
        let mut node = self.root()?;
        for name in path.components() {
            node = match self.child(&node, name)? {
                Some(n) => n,
                None => return Ok(None),
            };
        }
        Ok(Some(node))
    }

    fn require(&self, path: &RepoPath) -> Result<Node> {
        self.node(path)?
            .ok_or_else(|| ViewError::NotFound(path.clone()))
    }

    fn require_dir(&self, path: &RepoPath) -> Result<Node> {
        let n = self.require(path)?;
        if n.kind != EntryKind::Dir {
            return Err(ViewError::NotADirectory(path.clone()));
        }
        Ok(n)
    }

    /// The merged children of `dir`, sorted by name.
    pub fn list(&self, dir: &Node) -> Result<Vec<Node>> {
        if dir.kind != EntryKind::Dir {
            return Err(ViewError::NotADirectory(dir.path.clone()));
        }
        let mut lower: BTreeMap<String, TreeEntry> = BTreeMap::new();
        if dir.merge_lower {
            for (name, e) in self.lower_listing(&dir.path)?.iter() {
                lower.insert(name.clone(), e.clone());
            }
        }
        let mut out: BTreeMap<String, Node> = BTreeMap::new();
        let mut whiteouts = Vec::new();
        if let Some(dfd) = self.upper_dir_fd(&dir.path)? {
            let names = upper::list_names(&dfd).map_err(|e| ViewError::io(&dir.path, e))?;
            for name in names {
                if let Some(target) = name.strip_prefix(upper::WHITEOUT_PREFIX) {
                    if name != upper::OPAQUE_MARKER {
                        whiteouts.push(target.to_string());
                    }
                    continue;
                }
                if name.starts_with(upper::TEMP_PREFIX) {
                    continue;
                }
                let path = dir.path.join(&name)?;
                let Some(st) = upper::lstatat(&dfd, &name).map_err(|e| ViewError::io(&path, e))?
                else {
                    continue;
                };
                if upper::is_whiteout(&dfd, &name, &st).map_err(|e| ViewError::io(&path, e))? {
                    whiteouts.push(name);
                    continue;
                }
                let l = lower.remove(&name);
                let opaque = if upper::is_dir_stat(&st)
                    && l.as_ref().is_some_and(|e| e.kind == EntryKind::Dir)
                {
                    let fd = upper::open_dir(&dfd, &name).map_err(|e| ViewError::io(&path, e))?;
                    upper::is_opaque(&fd).map_err(|e| ViewError::io(&path, e))?
                } else {
                    false
                };
                if let Some(n) = self.make_node(path, Some(st), l, opaque) {
                    out.insert(name, n);
                }
            }
        }
        for w in whiteouts {
            lower.remove(&w);
        }
        for (name, e) in lower {
            if let Some(n) = self.make_node(e.path.clone(), None, Some(e), false) {
                out.insert(name, n);
            }
        }
        Ok(out.into_values().collect())
    }

    /// Everything below the directory `dir`, pre-order. Where the upper dir
    /// has nothing (no directory there, so no edit, whiteout or opaque
    /// marker below), the View is the lower as it is: that subtree is the
    /// lower's own walk, unmerged and not kept in the listing cache. A
    /// user edits a few packages, so that is most of a large tree.
    fn walk_below(&self, dir: &Node) -> crate::Result<Vec<TreeEntry>> {
        if dir.upper.is_none() && dir.merge_lower {
            return match self.lower.walk(&dir.path) {
                // Gone from a live lower since its parent was listed.
                Err(SourceError::NotFound(_)) | Err(SourceError::NotADirectory(_)) => {
                    Ok(Vec::new())
                }
                r => r,
            };
        }
        preorder(
            self.list(dir)?,
            &|n: &Node| {
                (n.kind == EntryKind::Dir)
                    .then(|| self.walk_below(n))
                    .transpose()
            },
            |n| n.to_entry(),
        )
    }

    /// The bytes of a file, or a symlink's target.
    pub fn read_node(&self, node: &Node) -> Result<Vec<u8>> {
        if node.is_upper() {
            let (dfd, name) = self.upper_parent(&node.path)?;
            return match node.kind {
                EntryKind::Symlink => {
                    upper::readlinkat(&dfd, name).map_err(|e| ViewError::io(&node.path, e))
                }
                EntryKind::Dir => Err(ViewError::IsADirectory(node.path.clone())),
                _ => {
                    let fd = upper::openat(&dfd, name, libc::O_RDONLY, 0)
                        .map_err(|e| ViewError::io(&node.path, e))?;
                    let mut f = File::from(fd);
                    let mut buf = Vec::new();
                    io::Read::read_to_end(&mut f, &mut buf)
                        .map_err(|e| ViewError::io(&node.path, e))?;
                    Ok(buf)
                }
            };
        }
        match &node.lower {
            Some(e) => Ok(self.lower.read(e)?),
            None => Err(ViewError::NotFound(node.path.clone())),
        }
    }

    /// The existing upper parent directory of `path` and the last name.
    fn upper_parent<'p>(&self, path: &'p RepoPath) -> Result<(OwnedFd, &'p str)> {
        let (parent, name) = split(path)?;
        let fd = self
            .upper_dir_fd(&parent)?
            .ok_or_else(|| ViewError::NotFound(path.clone()))?;
        Ok((fd, name))
    }

    /// Like `upper_parent`, creating the parent in the upper dir if needed.
    /// Names the upper dir's format reserves (`.wh.*`, our temp prefix)
    /// cannot be created: they would be read back as markers.
    fn ensure_upper_parent<'p>(&self, path: &'p RepoPath) -> Result<(OwnedFd, &'p str)> {
        let (parent, name) = split(path)?;
        if upper::is_internal_name(name) {
            return Err(ViewError::Invalid(path.clone()));
        }
        self.require_dir(&parent)?;
        Ok((self.ensure_upper_dir(&parent)?, name))
    }

    /// Copies `path` up into the upper dir if it is only in the lower layer
    /// and returns its node (now served from the upper dir). Files get their
    /// content from `cache` when given (a local file, copied with
    /// `copy_file_range`), else from the lower source; directories are
    /// created empty (their lower children keep showing through).
    pub fn copy_up(&self, path: &RepoPath, cache: Option<&dyn BlobCache>) -> Result<Node> {
        let node = self.require(path)?;
        if node.is_upper() {
            return Ok(node);
        }
        let Some(entry) = node.lower.clone() else {
            return Err(ViewError::NotFound(path.clone()));
        };
        match entry.kind {
            EntryKind::Dir | EntryKind::Gitlink => {
                self.ensure_upper_dir(path)?;
            }
            EntryKind::Symlink => {
                let target = self.lower.read(&entry)?;
                self.symlink_bytes(path, &target)?;
            }
            EntryKind::File => {
                let (dfd, name) = self.ensure_upper_parent(path)?;
                let (tmp, mut f) =
                    upper::create_temp(&dfd, name, 0o600).map_err(|e| ViewError::io(path, e))?;
                let filled = match cache {
                    Some(c) => c.local_file(self.lower.as_ref(), &entry).and_then(|local| {
                        let mut src =
                            File::open(&local).map_err(|e| SourceError::io(local.display(), e))?;
                        io::copy(&mut src, &mut f)
                            .map(drop)
                            .map_err(|e| SourceError::io(local.display(), e))
                    }),
                    None => self.lower.read(&entry).and_then(|bytes| {
                        f.write_all(&bytes).map_err(|e| SourceError::io(path, e))
                    }),
                };
                let done = filled
                    .map_err(ViewError::from)
                    .and_then(|()| {
                        set_file_mode(&f, entry.file_mode()).map_err(|e| ViewError::io(path, e))
                    })
                    .and_then(|()| {
                        upper::renameat2(&dfd, &tmp, &dfd, name, libc::RENAME_NOREPLACE)
                            .map_err(|e| ViewError::io(path, e))
                    });
                if let Err(e) = done {
                    let _ = upper::unlinkat(&dfd, &tmp, 0);
                    // Another writer may have copied it up meanwhile: fine.
                    if !matches!(&e, ViewError::Io { source, .. } if source.kind() == io::ErrorKind::AlreadyExists)
                    {
                        return Err(e);
                    }
                }
            }
        }
        self.require(path)
    }

    /// Writes a whole file (temp file + rename in the upper dir), replacing
    /// any file or symlink at `path` and clearing a whiteout there.
    ///
    /// Not flushed: a caller that writes many files makes them durable at
    /// once with [`View::sync_upper`] (one `fsync` per file costs more than
    /// everything else a two-way sync does with it).
    pub fn write_file(&self, path: &RepoPath, contents: &[u8], mode: u32) -> Result<Node> {
        if let Some(n) = self.node(path)? {
            if n.kind == EntryKind::Dir {
                return Err(ViewError::IsADirectory(path.clone()));
            }
        }
        let (dfd, name) = self.ensure_upper_parent(path)?;
        let (tmp, mut f) =
            upper::create_temp(&dfd, name, 0o600).map_err(|e| ViewError::io(path, e))?;
        let done = f
            .write_all(contents)
            .and_then(|()| set_file_mode(&f, mode))
            .and_then(|()| upper::clear_whiteout(&dfd, name).map(drop))
            .and_then(|()| upper::renameat2(&dfd, &tmp, &dfd, name, 0));
        if let Err(e) = done {
            let _ = upper::unlinkat(&dfd, &tmp, 0);
            return Err(ViewError::io(path, e));
        }
        self.require(path)
    }

    /// Flushes upper writes to disk: each of `paths` and its directory, or
    /// (`None`) the upper dir's whole file system with one `syncfs`.
    pub fn sync_upper(&self, paths: Option<&[RepoPath]>) -> Result<()> {
        let Some(paths) = paths else {
            let root = self.root_fd()?;
            return upper::syncfs(&root).map_err(|e| ViewError::io(&RepoPath::root(), e));
        };
        for p in paths {
            let Ok((dfd, name)) = self.upper_parent(p) else {
                continue; // gone again: nothing to flush
            };
            // A symlink cannot be opened (O_NOFOLLOW); its directory holds it.
            if let Ok(fd) = upper::openat(&dfd, name, libc::O_RDONLY, 0) {
                File::from(fd).sync_all().map_err(|e| ViewError::io(p, e))?;
            }
            File::from(dfd)
                .sync_all()
                .map_err(|e| ViewError::io(p, e))?;
        }
        Ok(())
    }

    /// Creates a new, empty regular file `name` in the already resolved
    /// directory `parent` of the upper dir and opens it read-write (for
    /// FUSE `create`); returns the new file's node too. Fails with
    /// `Exists` if something is there.
    pub fn create_file_at(&self, parent: &Node, name: &str, mode: u32) -> Result<(File, Node)> {
        let path = parent.path.join(name)?;
        if parent.kind != EntryKind::Dir {
            return Err(ViewError::NotADirectory(parent.path.clone()));
        }
        if upper::is_internal_name(name) {
            return Err(ViewError::Invalid(path));
        }
        if self.child(parent, name)?.is_some() {
            return Err(ViewError::Exists(path));
        }
        let path = &path;
        let dfd = self.ensure_upper_dir(&parent.path)?;
        upper::clear_whiteout(&dfd, name).map_err(|e| ViewError::io(path, e))?;
        let fd = upper::openat(
            &dfd,
            name,
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
            mode & 0o7777,
        )
        .map_err(|e| ViewError::io(path, e))?;
        let f = File::from(fd);
        set_file_mode(&f, mode).map_err(|e| ViewError::io(path, e))?;
        let st = upper::fstat(&f).map_err(|e| ViewError::io(path, e))?;
        let node = Node {
            path: path.clone(),
            kind: EntryKind::File,
            upper: Some(st),
            lower: None,
            merge_lower: false,
        };
        Ok((f, node))
    }

    /// Gives an entry that is already in the upper dir to `uid`/`gid`
    /// (e.g. one just created on behalf of another user). Never copies up.
    pub fn chown_upper(&self, path: &RepoPath, uid: u32, gid: u32) -> Result<()> {
        let (dfd, name) = self.upper_parent(path)?;
        upper::fchownat(&dfd, name, uid, gid).map_err(|e| ViewError::io(path, e))
    }

    /// Opens the upper file at `path` (copying it up first) with `flags`
    /// (`O_RDWR`, `O_WRONLY`, `O_APPEND`, `O_TRUNC`...; never follows a
    /// symlink). Read-only opens of lower files should go through the blob
    /// cache instead; this is for writers.
    pub fn open_upper(
        &self,
        path: &RepoPath,
        flags: i32,
        cache: Option<&dyn BlobCache>,
    ) -> Result<File> {
        let node = self.copy_up(path, cache)?;
        if node.kind == EntryKind::Dir {
            return Err(ViewError::IsADirectory(path.clone()));
        }
        let (dfd, name) = self.upper_parent(path)?;
        let flags = flags & !(libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW);
        let fd = upper::openat(&dfd, name, flags, 0).map_err(|e| ViewError::io(path, e))?;
        Ok(File::from(fd))
    }

    /// Opens a file read-only where it is stored now: the upper file, or
    /// `None` for a lower-only file (the caller then reads the blob).
    pub fn open_upper_read(&self, node: &Node) -> Result<Option<File>> {
        if !node.is_upper() {
            return Ok(None);
        }
        let (dfd, name) = self.upper_parent(&node.path)?;
        let fd = upper::openat(&dfd, name, libc::O_RDONLY, 0)
            .map_err(|e| ViewError::io(&node.path, e))?;
        Ok(Some(File::from(fd)))
    }

    /// Creates a directory. If a lower entry was deleted at this path before
    /// (a whiteout), the new directory is made opaque so the old lower
    /// content stays hidden.
    pub fn mkdir(&self, path: &RepoPath, mode: u32) -> Result<Node> {
        if self.node(path)?.is_some() {
            return Err(ViewError::Exists(path.clone()));
        }
        let (dfd, name) = self.ensure_upper_parent(path)?;
        let had_whiteout = upper::clear_whiteout(&dfd, name).map_err(|e| ViewError::io(path, e))?;
        upper::mkdirat(&dfd, name, mode & 0o7777).map_err(|e| ViewError::io(path, e))?;
        upper::fchmodat(&dfd, name, mode & 0o7777).map_err(|e| ViewError::io(path, e))?;
        if had_whiteout {
            let fd = upper::open_dir(&dfd, name).map_err(|e| ViewError::io(path, e))?;
            upper::set_opaque(&fd).map_err(|e| ViewError::io(path, e))?;
        }
        self.require(path)
    }

    /// Creates a symlink (temp + rename; fails if `path` exists).
    pub fn symlink(&self, path: &RepoPath, target: &str) -> Result<Node> {
        if self.node(path)?.is_some() {
            return Err(ViewError::Exists(path.clone()));
        }
        self.symlink_bytes(path, target.as_bytes())?;
        self.require(path)
    }

    fn symlink_bytes(&self, path: &RepoPath, target: &[u8]) -> Result<()> {
        let (dfd, name) = self.ensure_upper_parent(path)?;
        let tmp = upper::temp_name(name);
        upper::symlinkat(target, &dfd, &tmp).map_err(|e| ViewError::io(path, e))?;
        let done = upper::clear_whiteout(&dfd, name)
            .and_then(|_| upper::renameat2(&dfd, &tmp, &dfd, name, libc::RENAME_NOREPLACE));
        if let Err(e) = done {
            let _ = upper::unlinkat(&dfd, &tmp, 0);
            return Err(ViewError::io(path, e));
        }
        Ok(())
    }

    /// Creates a special file (fifo, socket, device) or an empty regular
    /// file with `mknod(2)` semantics.
    pub fn mknod(&self, path: &RepoPath, mode: u32, rdev: u64) -> Result<Node> {
        if self.node(path)?.is_some() {
            return Err(ViewError::Exists(path.clone()));
        }
        let (dfd, name) = self.ensure_upper_parent(path)?;
        upper::clear_whiteout(&dfd, name).map_err(|e| ViewError::io(path, e))?;
        let made = if mode & libc::S_IFMT == libc::S_IFCHR && rdev == 0 {
            // The form of a whiteout: escaped (see upper.rs).
            upper::make_device_0_0(&dfd, name, mode & 0o7777)
        } else {
            upper::mknodat(&dfd, name, mode, rdev)
                .and_then(|()| upper::fchmodat(&dfd, name, mode & 0o7777))
        };
        made.map_err(|e| ViewError::io(path, e))?;
        self.require(path)
    }

    /// Makes a hard link `to` of the file `from` (copied up first).
    pub fn link(
        &self,
        from: &RepoPath,
        to: &RepoPath,
        cache: Option<&dyn BlobCache>,
    ) -> Result<Node> {
        if self.node(to)?.is_some() {
            return Err(ViewError::Exists(to.clone()));
        }
        let n = self.copy_up(from, cache)?;
        if n.kind == EntryKind::Dir {
            return Err(ViewError::IsADirectory(from.clone()));
        }
        let (sfd, sname) = self.upper_parent(from)?;
        let (dfd, dname) = self.ensure_upper_parent(to)?;
        upper::clear_whiteout(&dfd, dname).map_err(|e| ViewError::io(to, e))?;
        upper::linkat(&sfd, sname, &dfd, dname).map_err(|e| ViewError::io(to, e))?;
        self.require(to)
    }

    /// Removes a file or symlink (`dir == false`, like `unlink`) or an empty
    /// directory (`dir == true`, like `rmdir`). A lower entry is hidden with
    /// a whiteout.
    pub fn remove(&self, path: &RepoPath, dir: bool) -> Result<()> {
        let node = self.require(path)?;
        match (dir, node.kind == EntryKind::Dir) {
            (true, false) => return Err(ViewError::NotADirectory(path.clone())),
            (false, true) => return Err(ViewError::IsADirectory(path.clone())),
            (true, true) if !self.list(&node)?.is_empty() => {
                return Err(ViewError::NotEmpty(path.clone()))
            }
            _ => {}
        }
        let (dfd, name) = self.ensure_upper_parent(path)?;
        if node.is_upper() {
            if dir {
                // Only markers (whiteouts of lower children) can be left.
                upper::remove_tree(&dfd, name).map_err(|e| ViewError::io(path, e))?;
            } else {
                upper::unlinkat(&dfd, name, 0).map_err(|e| ViewError::io(path, e))?;
            }
        }
        if node.lower.is_some() {
            upper::make_whiteout(&dfd, name).map_err(|e| ViewError::io(path, e))?;
        }
        Ok(())
    }

    /// Renames `from` to `to` with `renameat2` flags (`RENAME_NOREPLACE`,
    /// `RENAME_EXCHANGE`). Lower files and symlinks are copied up first and
    /// whited out at the old path; a directory with lower content cannot be
    /// moved (`EXDEV`, as overlayfs without `redirect_dir`: `mv` then copies).
    pub fn rename(
        &self,
        from: &RepoPath,
        to: &RepoPath,
        flags: u32,
        cache: Option<&dyn BlobCache>,
    ) -> Result<()> {
        if from == to {
            return Ok(());
        }
        if to.starts_with(from) {
            return Err(ViewError::Invalid(to.clone()));
        }
        let src = self.require(from)?;
        let dst = self.node(to)?;
        let exchange = flags & libc::RENAME_EXCHANGE != 0;
        if flags & libc::RENAME_NOREPLACE != 0 && dst.is_some() {
            return Err(ViewError::Exists(to.clone()));
        }
        if exchange && dst.is_none() {
            return Err(ViewError::NotFound(to.clone()));
        }
        let movable = |n: &Node| n.kind != EntryKind::Dir || !n.merge_lower;
        if !movable(&src) {
            return Err(ViewError::CrossLayer(from.clone()));
        }
        if let Some(d) = &dst {
            if exchange && !movable(d) {
                return Err(ViewError::CrossLayer(to.clone()));
            }
            if !exchange {
                match (src.kind == EntryKind::Dir, d.kind == EntryKind::Dir) {
                    (true, false) => return Err(ViewError::NotADirectory(to.clone())),
                    (false, true) => return Err(ViewError::IsADirectory(to.clone())),
                    (true, true) if !self.list(d)?.is_empty() => {
                        return Err(ViewError::NotEmpty(to.clone()))
                    }
                    _ => {}
                }
            }
        }
        let src = self.copy_up(from, cache)?;
        let dst = match dst {
            Some(_) if exchange => Some(self.copy_up(to, cache)?),
            d => d,
        };
        let (sfd, sname) = self.upper_parent(from)?;
        let (dfd, dname) = self.ensure_upper_parent(to)?;
        let dst_had_whiteout =
            upper::clear_whiteout(&dfd, dname).map_err(|e| ViewError::io(to, e))?;
        if let Some(d) = dst
            .as_ref()
            .filter(|d| !exchange && d.kind == EntryKind::Dir && d.is_upper())
        {
            // An empty merged directory may still hold whiteout markers.
            upper::remove_tree(&dfd, dname).map_err(|e| ViewError::io(&d.path, e))?;
        }
        let rflags = if exchange { libc::RENAME_EXCHANGE } else { 0 };
        upper::renameat2(&sfd, sname, &dfd, dname, rflags).map_err(|e| ViewError::io(to, e))?;
        // A directory moved over a path that had lower content must hide it.
        let over_lower = dst.as_ref().is_some_and(|d| d.lower.is_some()) || dst_had_whiteout;
        if src.kind == EntryKind::Dir && over_lower {
            let fd = upper::open_dir(&dfd, dname).map_err(|e| ViewError::io(to, e))?;
            upper::set_opaque(&fd).map_err(|e| ViewError::io(to, e))?;
        }
        if exchange {
            if let Some(d) = &dst {
                if d.kind == EntryKind::Dir && src.lower.is_some() {
                    let fd = upper::open_dir(&sfd, sname).map_err(|e| ViewError::io(from, e))?;
                    upper::set_opaque(&fd).map_err(|e| ViewError::io(from, e))?;
                }
            }
        } else if src.lower.is_some() {
            upper::make_whiteout(&sfd, sname).map_err(|e| ViewError::io(from, e))?;
        }
        Ok(())
    }

    /// Sets the permission bits (copies up first).
    pub fn set_mode(
        &self,
        path: &RepoPath,
        mode: u32,
        cache: Option<&dyn BlobCache>,
    ) -> Result<Node> {
        let n = self.copy_up(path, cache)?;
        if n.kind != EntryKind::Symlink {
            let (dfd, name) = self.upper_parent(path)?;
            upper::fchmodat(&dfd, name, mode & 0o7777).map_err(|e| ViewError::io(path, e))?;
        }
        self.require(path)
    }

    /// Sets the owner (copies up first; needs privilege for other owners).
    pub fn set_owner(
        &self,
        path: &RepoPath,
        uid: Option<u32>,
        gid: Option<u32>,
        cache: Option<&dyn BlobCache>,
    ) -> Result<Node> {
        self.copy_up(path, cache)?;
        let (dfd, name) = self.upper_parent(path)?;
        upper::fchownat(&dfd, name, uid.unwrap_or(u32::MAX), gid.unwrap_or(u32::MAX))
            .map_err(|e| ViewError::io(path, e))?;
        self.require(path)
    }

    /// Sets access and/or modification times (copies up first).
    pub fn set_times(
        &self,
        path: &RepoPath,
        atime: Option<libc::timespec>,
        mtime: Option<libc::timespec>,
        cache: Option<&dyn BlobCache>,
    ) -> Result<Node> {
        self.copy_up(path, cache)?;
        let (dfd, name) = self.upper_parent(path)?;
        upper::utimensat(&dfd, name, atime, mtime).map_err(|e| ViewError::io(path, e))?;
        self.require(path)
    }

    /// The upper entry's path on disk, for xattr calls (`l*xattr`, which do
    /// not follow a final symlink). `None` for lower-only entries.
    pub fn upper_path(&self, node: &Node) -> Option<PathBuf> {
        node.is_upper().then(|| node.path.to_fs_path(&self.upper))
    }
}

fn poisoned(dir: &RepoPath) -> ViewError {
    ViewError::io(dir, io::Error::other("lower listing cache lock poisoned"))
}

fn split(path: &RepoPath) -> Result<(RepoPath, &str)> {
    match (path.parent(), path.file_name()) {
        (Some(p), Some(n)) => Ok((p, n)),
        _ => Err(ViewError::Invalid(path.clone())),
    }
}

fn set_file_mode(f: &File, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))
}

/// Reads `len` bytes at `offset` of an upper or cached file.
pub fn read_at(f: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        match f.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(done);
    Ok(buf)
}

impl Source for View {
    fn describe(&self) -> String {
        format!("{} + upper {}", self.lower.describe(), self.upper.display())
    }

    /// A View is live (its upper dir changes), so it has no revision.
    fn revision(&self) -> Option<String> {
        None
    }

    fn stat(&self, path: &RepoPath) -> crate::Result<Option<TreeEntry>> {
        Ok(self.node(path)?.map(|n| n.to_entry()))
    }

    fn list_dir(&self, dir: &RepoPath) -> crate::Result<Vec<TreeEntry>> {
        let node = self
            .node(dir)?
            .ok_or_else(|| SourceError::NotFound(dir.clone()))?;
        Ok(self.list(&node)?.iter().map(Node::to_entry).collect())
    }

    /// Each directory listed once, merged, from the node its parent's
    /// listing gave: no lookup from the root per directory (which re-listed
    /// a live lower's root whenever its short-lived listing expired).
    fn walk(&self, dir: &RepoPath) -> crate::Result<Vec<TreeEntry>> {
        let node = self
            .node(dir)?
            .ok_or_else(|| SourceError::NotFound(dir.clone()))?;
        self.walk_below(&node)
    }

    /// Reads what is at `entry.path` now: the upper file if there is one,
    /// else the lower entry.
    fn read(&self, entry: &TreeEntry) -> crate::Result<Vec<u8>> {
        match self.shadow(&entry.path)? {
            Shadow::Lower => self.lower.read(entry),
            Shadow::Hidden => Err(SourceError::NotFound(entry.path.clone())),
            Shadow::Upper => {
                let node = self
                    .node(&entry.path)?
                    .ok_or_else(|| SourceError::NotFound(entry.path.clone()))?;
                Ok(self.read_node(&node)?)
            }
        }
    }

    /// A lower file's own open file; an upper file is read (edits are small).
    fn open_file(&self, entry: &TreeEntry) -> crate::Result<Option<std::fs::File>> {
        match self.shadow(&entry.path)? {
            Shadow::Lower => self.lower.open_file(entry),
            Shadow::Hidden => Err(SourceError::NotFound(entry.path.clone())),
            Shadow::Upper => Ok(None),
        }
    }
}

/// Which layer a path's content comes from.
enum Shadow {
    Upper,
    /// Whited out, or below an opaque or non-directory upper entry.
    Hidden,
    Lower,
}

impl View {
    /// Which layer `path` comes from, found by one lookup per component in
    /// the upper dir alone. Reading a lower file this way needs no lower
    /// listing (a sync reads thousands of files; re-listing each one's
    /// directory once the live listing expired cost more than the reads).
    fn shadow(&self, path: &RepoPath) -> Result<Shadow> {
        let names: Vec<&str> = path.components().collect();
        let mut dir = self.root_fd()?;
        let mut opaque = false;
        for (i, name) in names.iter().enumerate() {
            if upper::is_internal_name(name) {
                return Ok(Shadow::Hidden);
            }
            let io = |e| ViewError::io(path, e);
            if upper::is_whited_out(&dir, name).map_err(io)? {
                return Ok(Shadow::Hidden);
            }
            let Some(st) = upper::lstatat(&dir, name).map_err(io)? else {
                return Ok(if opaque {
                    Shadow::Hidden
                } else {
                    Shadow::Lower
                });
            };
            if i + 1 == names.len() {
                return Ok(Shadow::Upper);
            }
            if !upper::is_dir_stat(&st) {
                return Ok(Shadow::Hidden);
            }
            dir = upper::open_dir(&dir, name).map_err(io)?;
            opaque |= upper::is_opaque(&dir).map_err(io)?;
        }
        Ok(Shadow::Upper)
    }
}
