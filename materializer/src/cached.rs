//! A source whose single reads go through the content store.
//!
//! The build-graph evaluator reads `.buckconfig`, BUCK and `.bzl` files on
//! every sync. For a remote source each read is a request; through this
//! wrapper, content named by a git id (which names content globally) is
//! fetched once per machine and read from the store afterwards.
//! `read_many` is passed through untouched: the sync's own fetch phase
//! already stores what it reads, and storing twice would hash twice.

use crate::store::Store;
use antares_overlay::{BlobCache, EntryKind, RepoPath, Result, Source, SourceError, TreeEntry};
use std::sync::Arc;

/// A source whose blobs are read through the content store: fetched once,
/// verified, then served from the store.
pub struct StoreBacked {
    inner: Arc<dyn Source>,
    store: Arc<Store>,
}

impl StoreBacked {
    /// `inner`, read through `store`.
    pub fn new(inner: Arc<dyn Source>, store: Arc<Store>) -> StoreBacked {
        StoreBacked { inner, store }
    }
}

impl Source for StoreBacked {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn revision(&self) -> Option<String> {
        self.inner.revision()
    }

    fn stat(&self, path: &RepoPath) -> Result<Option<TreeEntry>> {
        self.inner.stat(path)
    }

    fn list_dir(&self, dir: &RepoPath) -> Result<Vec<TreeEntry>> {
        self.inner.list_dir(dir)
    }

    fn read(&self, entry: &TreeEntry) -> Result<Vec<u8>> {
        let content = matches!(entry.kind, EntryKind::File | EntryKind::Symlink);
        if !content || entry.oid.git_hex().is_none() {
            return self.inner.read(entry);
        }
        let path = self.store.local_file(self.inner.as_ref(), entry)?;
        std::fs::read(&path).map_err(|e| SourceError::io(path.display(), e))
    }

    fn open_file(&self, entry: &TreeEntry) -> Result<Option<std::fs::File>> {
        self.inner.open_file(entry)
    }

    fn size_hint(&self, entry: &TreeEntry) -> Option<u64> {
        self.inner.size_hint(entry)
    }

    fn read_many(
        &self,
        entries: &[TreeEntry],
        sink: &(dyn Fn(&TreeEntry, Result<Vec<u8>>) + Sync),
    ) {
        self.inner.read_many(entries, sink)
    }

    fn walk(&self, dir: &RepoPath) -> Result<Vec<TreeEntry>> {
        self.inner.walk(dir)
    }
}
