//! antares-overlay: what the tree *is*.
//!
//! Source backends ([`source`]) produce a tree index and blobs on demand; the
//! overlay View merges a read-only lower source with a writable upper
//! directory. Nothing here knows about Buck2 or about placing files.

pub mod cache;
pub mod entry;
pub mod error;
pub mod fuse;
pub mod path;
pub mod source;
pub mod spec;
pub mod view;

pub use cache::BlobCache;
pub use entry::{EntryKind, ObjectId, TreeEntry};
pub use error::{Result, SourceError};
pub use path::{validate_name, PathError, RepoPath};
pub use source::Source;
pub use source::{open as open_source, DirSource, GitSource};
pub use spec::SourceSpec;
pub use view::{Node, View, ViewError};
