//! antares-materializer: makes a workspace *be* a file set.
//!
//! - [`store`]: the BLAKE3 content-addressed store shared by all workspaces;
//! - [`sync`]: the three-way plan (base = [`manifest`], theirs = a source,
//!   ours = the disk) and its parallel, atomic execution;
//! - [`status`]: what changed in the workspace since the last sync;
//! - [`untracked`]: the scan for new files, with its per-directory cache;
//! - [`lock`]: one sync per workspace at a time.
//!
//! It reads trees only through `antares_overlay::Source` and knows nothing of
//! Buck2: the caller decides which entries are wanted.

#![warn(missing_docs)]
// Unsafe code only in the modules that allow it (raw syscalls).
#![deny(unsafe_code)]

pub mod cached;
pub mod error;
pub mod fsutil;
pub mod hash;
pub mod intent;
mod io_pool;
pub mod layout;
pub mod lock;
pub mod manifest;
pub mod observe;
pub mod place;
pub mod resolve;
pub mod sparse;
pub mod status;
pub mod store;
pub mod sync;
pub mod untracked;

pub use error::{Error, Result};
pub use hash::ContentHash;
pub use layout::Layout;
pub use lock::WorkspaceLock;
pub use manifest::Manifest;
pub use store::Store;
pub use sync::{sync, sync_cached, ManifestCache, NoProgress, Progress, Request, Summary};
