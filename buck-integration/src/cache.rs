//! The graph cache: a computed [`FileSet`] kept with the footprint of what
//! computing it read (every directory listing by the names and kinds it
//! held, every build, PACKAGE, `.bzl` and config file and symlink by a
//! BLAKE3 hash of its content). A later computation for the same patterns
//! re-lists those directories and re-hashes those files; if all match, the
//! answer is the same and nothing is evaluated. A re-sync where no build
//! file changed costs listings and hashes, not Starlark.
//!
//! The cache is bytes to the caller (which stores them atomically); bytes
//! that do not parse, come from another version or another request are
//! ignored, never trusted.

use crate::error::BuckError;
use crate::fileset::FileSet;
use crate::tree::Tree;
use crate::GraphRequest;
use antares_overlay::{RepoPath, TreeEntry};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Bumped whenever what a file set depends on, or its shape, changes.
const FORMAT: u32 = 2;

/// What one computation listed and read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Footprint {
    /// Directory → hash of its listing's names and kinds.
    pub dirs: BTreeMap<RepoPath, String>,
    /// File or symlink → hash of its content (a symlink's: its target).
    pub files: BTreeMap<RepoPath, String>,
}

impl Footprint {
    /// Does the tree still list and hold what this footprint recorded?
    fn holds(&self, tree: &Tree) -> Result<bool, BuckError> {
        for (dir, want) in &self.dirs {
            if listing_hash(&tree.list(dir)?) != *want {
                tracing::debug!("graph cache: listing of {dir} changed");
                return Ok(false);
            }
        }
        for (path, want) in &self.files {
            if tree.hash_of(path)?.as_deref() != Some(want.as_str()) {
                tracing::debug!("graph cache: {path} changed");
                return Ok(false);
            }
        }
        Ok(true)
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
/// still holds in `tree`.
pub(crate) fn lookup(
    bytes: &[u8],
    request: &GraphRequest,
    tree: &Tree,
) -> Result<Option<FileSet>, BuckError> {
    let stored: Stored = match serde_json::from_slice(bytes) {
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
    Ok(stored.footprint.holds(tree)?.then_some(stored.set))
}

/// The bytes to store for `set`, computed for `request` with `footprint`
/// (`None`, with a warning, if it cannot be serialized).
pub(crate) fn store(
    request: &GraphRequest,
    footprint: Footprint,
    set: &FileSet,
) -> Option<Vec<u8>> {
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
        footprint,
        set,
    })
    .map_err(|e| tracing::warn!("graph cache not written: {e}"))
    .ok()
}

/// A BLAKE3 hash, hex.
pub(crate) fn content_hash(bytes: &[u8]) -> String {
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
