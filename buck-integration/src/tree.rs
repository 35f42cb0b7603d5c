//! Cached reads of the source tree: directory listings, build-file text and
//! symlink resolution. One computation lists the same directories many times
//! (package detection, globs, whole-package walks), so every listing is
//! fetched from the [`Source`] once. What was listed and read, hashed
//! ([`Seen`]), is the computation's footprint: when it still holds, so does
//! the answer (the graph cache builds and checks it; this module only reads).

use antares_overlay::source::read_link;
use antares_overlay::{EntryKind, ObjectId, RepoPath, Source, SourceError, TreeEntry};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

/// How many symlinks one resolution may pass through (as `SYMLOOP_MAX`).
const MAX_LINKS: usize = 40;

/// A path after following relative symlinks.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    /// The entry finally reached, `None` when the chain dangles.
    pub entry: Option<TreeEntry>,
    /// Every symlink passed through, in order (their targets are needed too).
    pub links: Vec<RepoPath>,
    /// Why resolution stopped early: an absolute or escaping target, a loop.
    pub problem: Option<String>,
}

/// One listing or file as read: its hash, and the source's id for it when
/// it was read (`None`: absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Seen {
    pub hash: String,
    pub id: Option<ObjectId>,
}

/// A directory's entries and the source's id for the directory.
type Listing = (Rc<[TreeEntry]>, Option<ObjectId>);

pub(crate) struct Tree<'s> {
    source: &'s dyn Source,
    /// Every listing, with the source's id for the directory taken before
    /// listing it (so a change while listing shows as a changed id).
    listings: RefCell<HashMap<RepoPath, Listing>>,
    /// The content hash and id of every file read and of every symlink
    /// followed, by path.
    reads: RefCell<BTreeMap<RepoPath, Seen>>,
    /// When this tree began reading, in nanoseconds since the epoch: a stat
    /// signature is trusted only when older than this (the graph cache).
    started_ns: i64,
}

impl<'s> Tree<'s> {
    pub fn new(source: &'s dyn Source) -> Self {
        Tree {
            source,
            listings: RefCell::new(HashMap::new()),
            reads: RefCell::new(BTreeMap::new()),
            started_ns: now_ns(),
        }
    }

    /// When this tree began reading, in nanoseconds since the epoch.
    pub fn started_ns(&self) -> i64 {
        self.started_ns
    }

    /// The fixed commit the source serves, if it serves one: a git object
    /// id (a changelist on top of a commit is not fixed).
    pub fn revision(&self) -> Option<String> {
        self.source
            .revision()
            .filter(|r| ObjectId::git(r).is_some())
    }

    /// The source's id for the entry at `path` itself (`None` if absent,
    /// also below a file).
    pub fn id_of(&self, path: &RepoPath) -> Result<Option<ObjectId>, SourceError> {
        match self.source.stat(path) {
            Ok(e) => Ok(e.map(|e| e.oid)),
            Err(SourceError::NotFound(_)) | Err(SourceError::NotADirectory(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// What the source calls itself (for messages).
    pub fn describe(&self) -> String {
        self.source.describe()
    }

    /// Every directory listed so far, by the hash of its listing.
    pub fn listings_seen(&self) -> BTreeMap<RepoPath, Seen> {
        self.listings
            .borrow()
            .iter()
            .map(|(d, (l, id))| {
                let seen = Seen {
                    hash: listing_hash(l),
                    id: id.clone(),
                };
                (d.clone(), seen)
            })
            .collect()
    }

    /// Every file read and symlink followed so far, by content hash.
    pub fn reads_seen(&self) -> BTreeMap<RepoPath, Seen> {
        self.reads.borrow().clone()
    }

    /// The content hash of the file or symlink at `path` itself (for a
    /// symlink, of its target text), `None` if absent or a directory.
    pub fn hash_of(&self, path: &RepoPath) -> Result<Option<String>, SourceError> {
        let Some(e) = self.entry(path)? else {
            return Ok(None);
        };
        Ok(match e.kind {
            EntryKind::File => Some(content_hash(&self.source.read(&e)?)),
            EntryKind::Symlink => Some(content_hash(read_link(self.source, &e)?.as_bytes())),
            EntryKind::Dir | EntryKind::Gitlink => None,
        })
    }

    /// The entries of `dir`, sorted by name; empty when `dir` is absent or
    /// not a directory.
    pub fn list(&self, dir: &RepoPath) -> Result<Rc<[TreeEntry]>, SourceError> {
        if let Some((l, _)) = self.listings.borrow().get(dir) {
            return Ok(l.clone());
        }
        let id = self.id_of(dir)?;
        let mut entries = match self.source.list_dir(dir) {
            Ok(e) => e,
            Err(SourceError::NotFound(_)) | Err(SourceError::NotADirectory(_)) => Vec::new(),
            Err(e) => return Err(e),
        };
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        let rc: Rc<[TreeEntry]> = entries.into();
        self.listings
            .borrow_mut()
            .insert(dir.clone(), (rc.clone(), id));
        Ok(rc)
    }

    /// The entry at `path` itself (a symlink is returned as a symlink).
    pub fn entry(&self, path: &RepoPath) -> Result<Option<TreeEntry>, SourceError> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Ok(None);
        };
        let listing = self.list(&parent)?;
        Ok(listing
            .binary_search_by(|e| e.path.file_name().unwrap_or("").cmp(name))
            .ok()
            .map(|i| listing[i].clone()))
    }

    /// Is there a directory at `path` (the root always is)?
    pub fn is_dir(&self, path: &RepoPath) -> Result<bool, SourceError> {
        Ok(path.is_root() || matches!(self.entry(path)?, Some(e) if e.kind == EntryKind::Dir))
    }

    /// Follows `path` through relative symlinks, in any component.
    pub fn resolve(&self, path: &RepoPath) -> Result<Resolved, SourceError> {
        let mut links = Vec::new();
        let mut pending = reversed_components(path);
        let mut current = RepoPath::root();
        let mut entry = None;
        let stop = |links, problem: String| Resolved {
            entry: None,
            links,
            problem: Some(problem),
        };
        while let Some(name) = pending.pop() {
            let Ok(next) = current.join(&name) else {
                return Ok(stop(links, format!("bad path component {name:?}")));
            };
            match self.entry(&next)? {
                None => {
                    return Ok(Resolved {
                        entry: None,
                        links,
                        problem: None,
                    })
                }
                Some(e) if e.kind == EntryKind::Symlink => {
                    if links.len() >= MAX_LINKS {
                        return Ok(stop(
                            links,
                            format!("too many levels of symlinks at {next}"),
                        ));
                    }
                    let target = read_link(self.source, &e)?;
                    self.record(&e, content_hash(target.as_bytes()));
                    let Some(resolved) = next.resolve_link(&target) else {
                        return Ok(stop(
                            links,
                            format!("symlink {next} -> {target} is absolute or leaves the project"),
                        ));
                    };
                    links.push(next);
                    pending.extend(reversed_components(&resolved));
                    current = RepoPath::root();
                    entry = None;
                }
                Some(e) => {
                    current = next;
                    entry = Some(e);
                }
            }
        }
        Ok(Resolved {
            entry,
            links,
            problem: None,
        })
    }

    /// The bytes of the file at `path` (through symlinks), `None` if absent.
    pub fn read_bytes(&self, path: &RepoPath) -> Result<Option<Vec<u8>>, SourceError> {
        match self.resolve(path)?.entry {
            Some(e) if e.kind == EntryKind::File => {
                let bytes = self.source.read(&e)?;
                self.record(&e, content_hash(&bytes));
                Ok(Some(bytes))
            }
            _ => Ok(None),
        }
    }

    /// Adds a read of `entry`, whose content hashed to `hash`, to the
    /// footprint.
    fn record(&self, entry: &TreeEntry, hash: String) {
        let seen = Seen {
            hash,
            id: Some(entry.oid.clone()),
        };
        self.reads.borrow_mut().insert(entry.path.clone(), seen);
    }

    /// The text of the file at `path` (through symlinks), `None` if absent.
    pub fn read_text(&self, path: &RepoPath) -> Result<Option<String>, SourceError> {
        match self.read_bytes(path)? {
            Some(bytes) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| SourceError::Invalid {
                    path: path.to_string(),
                    message: "not valid UTF-8".into(),
                }),
            None => Ok(None),
        }
    }
}

/// `a/b/c` as `["c", "b", "a"]`: a stack whose top is the first component.
fn reversed_components(path: &RepoPath) -> Vec<String> {
    let mut v: Vec<String> = path.components().map(str::to_string).collect();
    v.reverse();
    v
}

/// `path` below `base` (`a/b/c` below `a` is `b/c`; `base` itself is
/// empty). Callers pass a `path` that starts with `base`.
pub(crate) fn relative<'p>(path: &'p RepoPath, base: &RepoPath) -> &'p str {
    path.as_str()
        .strip_prefix(base.as_str())
        .unwrap_or_default()
        .trim_start_matches('/')
}

/// A BLAKE3 hash, hex.
fn content_hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// The hash of a listing's names and kinds (what package boundaries,
/// globs and whole-package walks depend on; not the files' contents).
pub(crate) fn listing_hash(entries: &[TreeEntry]) -> String {
    let mut h = blake3::Hasher::new();
    for e in entries {
        h.update(e.path.file_name().unwrap_or("").as_bytes());
        h.update(format!("\0{:?}\n", e.kind).as_bytes());
    }
    h.finalize().to_hex().to_string()
}

/// Now, in nanoseconds since the epoch (0 if the clock is before it, which
/// only makes every stat signature untrusted).
fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
