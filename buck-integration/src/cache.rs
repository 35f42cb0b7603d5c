//! The graph cache: a computed [`FileSet`] kept with the footprint of what
//! computing it read (every directory listing by the names and kinds it
//! held, every build, PACKAGE, `.bzl` and config file and symlink by a
//! BLAKE3 hash of its content). A later computation for the same patterns
//! checks that footprint; if it holds, the answer is the same and nothing
//! is evaluated. A re-sync where no build file changed costs a check, not
//! Starlark.
//!
//! The check is cheap because most of it cannot have changed. A source
//! serving a fixed commit (`git:`, `mono:`) at the recorded commit holds
//! without looking at any file. Otherwise each file and directory is first
//! compared by the source's id for it, recorded beside its hash: a git
//! object id names content, so equal ids mean equal content; a live file's
//! stat signature (device, inode, size, mtime, ctime) is trusted as git's
//! index trusts it, only when its times are older than the computation by
//! more than a timestamp's granularity (the racy-git rule: a change in the
//! same tick as the read could keep the signature). A directory is trusted
//! by a git tree id only (see [`Footprint::listing_unchanged`]). Only what
//! fails that is re-listed or re-hashed.
//!
//! The cache is bytes to the caller (which stores them atomically); bytes
//! that do not parse, come from another version or another request are
//! ignored, never trusted.

use crate::error::BuckError;
use crate::fileset::FileSet;
use crate::tree::{listing_hash, Seen, Tree};
use crate::{Computed, GraphRequest};
use antares_overlay::{ObjectId, RepoPath};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// Bumped whenever what a file set depends on, or its shape, changes.
const FORMAT: u32 = 3;

/// How much older than the computation a stat signature's times must be
/// for the signature to be trusted: coarser than any file system's
/// timestamps that matter here (and than the kernel's coarse clock lagging
/// the wall clock).
const RACY_NS: i64 = 1_000_000_000;

/// What one computation listed and read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Footprint {
    /// The fixed commit the tree was read at (`None`: a live tree).
    pub revision: Option<String>,
    /// When reading began, in nanoseconds since the epoch.
    pub started_ns: i64,
    /// Directory → hash of its listing's names and kinds.
    pub dirs: BTreeMap<RepoPath, Seen>,
    /// File or symlink → hash of its content (a symlink's: its target).
    pub files: BTreeMap<RepoPath, Seen>,
}

impl Footprint {
    /// Everything `tree` listed and read so far.
    pub(crate) fn of(tree: &Tree) -> Footprint {
        Footprint {
            revision: tree.revision(),
            started_ns: tree.started_ns(),
            dirs: tree.listings_seen(),
            files: tree.reads_seen(),
        }
    }

    /// Does the tree still list and hold what this footprint recorded?
    /// `None` if not; else how many files had to be re-hashed to know.
    fn check(&self, tree: &Tree) -> Result<Option<usize>, BuckError> {
        if let Some(rev) = &self.revision {
            if tree.revision().as_ref() == Some(rev) {
                tracing::debug!("graph cache: same commit {rev}");
                return Ok(Some(0));
            }
        }
        let (mut relisted, mut rehashed, mut skipped) = (0usize, 0usize, 0usize);
        // Directories whose git tree id is unchanged: nothing below them
        // can have changed either. Parents sort before their children.
        let mut whole: HashSet<&RepoPath> = HashSet::new();
        for (dir, seen) in &self.dirs {
            if below(dir, &whole) {
                skipped += 1;
                continue;
            }
            let now = tree.id_of(dir)?;
            if now.is_none() {
                // Absent: the listing is empty, nothing to read.
                if listing_hash(&[]) != seen.hash {
                    tracing::debug!("graph cache: {dir} is gone");
                    return Ok(None);
                }
                continue;
            }
            if self.listing_unchanged(seen, now) {
                whole.insert(dir);
                continue;
            }
            relisted += 1;
            if listing_hash(&tree.list(dir)?) != seen.hash {
                tracing::debug!("graph cache: listing of {dir} changed");
                return Ok(None);
            }
        }
        for (path, seen) in &self.files {
            if below(path, &whole) {
                skipped += 1;
                continue;
            }
            if self.unchanged(seen, tree.id_of(path)?) {
                continue;
            }
            rehashed += 1;
            if tree.hash_of(path)?.as_deref() != Some(seen.hash.as_str()) {
                tracing::debug!("graph cache: {path} changed");
                return Ok(None);
            }
        }
        tracing::debug!(
            "graph cache holds: {relisted} of {} listings re-read, {rehashed} of {} files re-hashed, {skipped} below unchanged trees",
            self.dirs.len(),
            self.files.len()
        );
        Ok(Some(rehashed))
    }

    /// Does the source's id `now` prove the entry `seen` unchanged?
    fn unchanged(&self, seen: &Seen, now: Option<ObjectId>) -> bool {
        match (&seen.id, now) {
            (Some(then), Some(now)) if *then == now => trusted(&now, self.started_ns),
            _ => false,
        }
    }

    /// [`unchanged`](Self::unchanged) for a directory's listing. Only a git
    /// tree id vouches for one: a View's merged directory carries the stat
    /// signature of its upper layer alone, which stays the same when the
    /// lower gains a file, so a stat-signed directory is always re-listed.
    fn listing_unchanged(&self, seen: &Seen, now: Option<ObjectId>) -> bool {
        now.as_ref()
            .is_some_and(|id| ObjectId::git(id.as_str()).is_some())
            && self.unchanged(seen, now)
    }
}

/// Is `path` below one of the directories `whole`?
fn below(path: &RepoPath, whole: &HashSet<&RepoPath>) -> bool {
    path.ancestors().any(|dir| whole.contains(&dir))
}

/// Does an id that did not change prove the content did not? A git object
/// id does; a stat signature does when its times are older than `started_ns`
/// by more than [`RACY_NS`]; anything else does not.
fn trusted(id: &ObjectId, started_ns: i64) -> bool {
    if ObjectId::git(id.as_str()).is_some() {
        return true;
    }
    match id.stat_times() {
        Some((mtime, ctime)) => mtime.max(ctime) < started_ns.saturating_sub(RACY_NS),
        None => false,
    }
}

/// The stored form.
#[derive(Serialize, Deserialize)]
struct Stored {
    format: u32,
    version: String,
    key: String,
    footprint: Footprint,
    set: FileSet,
}

/// The request a cache entry answers.
fn key(request: &GraphRequest) -> String {
    format!("{:?} {}", request.patterns, request.current_dir)
}

/// A cached file set for `request`, if `bytes` hold one whose footprint
/// still holds in `tree`; with it, as `cache`, bytes to store again when
/// files had to be re-hashed to know (their stat signatures were inside the
/// racy window, and are not once the footprint counts from this check).
pub(crate) fn lookup(
    bytes: &[u8],
    request: &GraphRequest,
    tree: &Tree,
) -> Result<Option<Computed>, BuckError> {
    let mut stored: Stored = match serde_json::from_slice(bytes) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("graph cache unreadable ({e}); computing afresh");
            return Ok(None);
        }
    };
    if stored.format != FORMAT || stored.version != env!("CARGO_PKG_VERSION") {
        tracing::debug!("graph cache from another version; computing afresh");
        return Ok(None);
    }
    if stored.key != key(request) {
        tracing::debug!("graph cache for other patterns; computing afresh");
        return Ok(None);
    }
    // Errors are logged in full only while evaluating: a verbose run whose
    // answer holds failures evaluates again so that `-v` shows them.
    if tracing::enabled!(tracing::Level::INFO)
        && stored.set.warnings.iter().any(|w| w.is_eval_failure())
    {
        tracing::debug!("graph cache holds failures; evaluating again to log them in full");
        return Ok(None);
    }
    let Some(rehashed) = stored.footprint.check(tree)? else {
        return Ok(None);
    };
    let refreshed = (rehashed > 0)
        .then(|| {
            stored.footprint.started_ns = tree.started_ns();
            serde_json::to_vec(&stored)
                .map_err(|e| tracing::warn!("graph cache not refreshed: {e}"))
                .ok()
        })
        .flatten();
    Ok(Some(Computed {
        set: stored.set,
        cache: refreshed,
    }))
}

/// The bytes to store for `set`, computed for `request` by reading `tree`
/// (`None`, with a warning, if it cannot be serialized).
pub(crate) fn store(request: &GraphRequest, tree: &Tree, set: &FileSet) -> Option<Vec<u8>> {
    #[derive(Serialize)]
    struct StoredRef<'a> {
        format: u32,
        version: &'a str,
        key: String,
        footprint: Footprint,
        set: &'a FileSet,
    }
    serde_json::to_vec(&StoredRef {
        format: FORMAT,
        version: env!("CARGO_PKG_VERSION"),
        key: key(request),
        footprint: Footprint::of(tree),
        set,
    })
    .map_err(|e| tracing::warn!("graph cache not written: {e}"))
    .ok()
}
