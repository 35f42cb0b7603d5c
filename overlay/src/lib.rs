//! antares-overlay: what the tree *is*.
//!
//! Three jobs, one module each: source backends ([`source`]) produce a tree
//! index and blobs on demand; the overlay View ([`view`]) merges a
//! read-only lower source with a writable upper directory; the FUSE daemon
//! ([`fuse`]) serves Views at a mount point; [`mountinfo`] is how the
//! daemon and the binary see which mounts exist. Nothing here knows about
//! Buck2 or about placing files. See `docs/architecture.md#layers`.

#![warn(missing_docs)]
// Unsafe code only in the modules that allow it (raw syscalls).
#![deny(unsafe_code)]

pub mod cache;
pub mod entry;
pub mod error;
mod ffi;
pub mod fuse;
pub mod mountinfo;
pub mod path;
pub mod source;
pub mod spec;
pub mod view;

pub use cache::BlobCache;
pub use entry::{EntryKind, ObjectId, TreeEntry};
pub use error::{Result, SourceError};
pub use path::{validate_name, PathError, RepoPath};
pub use source::Source;
pub use source::{DirSource, GitSource};
pub use spec::SourceSpec;
pub use view::{Node, View, ViewError};
