//! The contract between a lazy consumer of a source (the FUSE face) and a
//! local content store: "give me a local file with this entry's bytes".
//!
//! The store itself lives in antares-materializer (it is keyed by BLAKE3 and
//! shared with placement); the overlay only needs this one question answered,
//! so it depends on the trait, not on the store.

use crate::entry::TreeEntry;
use crate::error::Result;
use crate::source::Source;
use std::path::PathBuf;

/// A local, read-only cache of blob contents.
pub trait BlobCache: Send + Sync {
    /// A local file holding exactly the content of `entry` (a file), fetching
    /// it through `source` and verifying it first if it is not cached yet.
    /// The returned file must never be written to.
    fn local_file(&self, source: &dyn Source, entry: &TreeEntry) -> Result<PathBuf>;
}
