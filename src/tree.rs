//! The tree a workspace syncs against: the source alone, or — once the
//! workspace has an upper layer (made by `antares mount`) — the overlay View
//! of upper over source, with workspace edits written back into the upper.

use crate::workspace::Workspace;
use antares_materializer::cached::StoreBacked;
use antares_materializer::sync::WriteBack;
use antares_materializer::Store;
use antares_overlay::view::View;
use antares_overlay::{ObjectId, RepoPath, Source, SourceSpec};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The upper layer of a workspace: `.antares/upper`.
pub fn upper_dir(ws: &Workspace) -> PathBuf {
    upper_dir_of(ws.root())
}

/// The upper layer of the workspace at `root`.
pub fn upper_dir_of(root: &Path) -> PathBuf {
    antares_materializer::layout::Layout::new(root).upper_dir()
}

/// The workspace's configured source, through the View when there is an
/// upper layer so that edits on the mount count (`graph`, `why`).
pub fn source_with_edits(ws: &Workspace, cache_flag: Option<&Path>) -> Result<Arc<dyn Source>> {
    Ok(SyncTree::open(ws, &ws.config.source, &open_store(ws, cache_flag)?)?.source)
}

/// Opens the content store of `ws` (`cache_flag`: the global `--cache`).
pub fn open_store(ws: &Workspace, cache_flag: Option<&Path>) -> Result<Arc<Store>> {
    let dir = ws.store_dir(cache_flag)?;
    let store = Store::open(&dir)
        .with_context(|| format!("cannot open the content store {}", dir.display()))?;
    Ok(Arc::new(store))
}

/// The lower layer of a workspace: `spec` opened, a remote source's single
/// reads going through `store` (see [`StoreBacked`]: fetched once per
/// machine, verified, shared by syncs and mounts); a local one is read
/// directly, which is cheaper than consulting the store's id index. The
/// source keeps its own metadata cache beside the store's objects.
pub fn open_lower(spec: &SourceSpec, store: &Arc<Store>) -> Result<Arc<dyn Source>> {
    let source: Arc<dyn Source> = Arc::from(
        antares_overlay::source::open(spec, Some(store.root()))
            .with_context(|| format!("cannot open source {spec}"))?,
    );
    Ok(match spec {
        SourceSpec::Mono { .. } => Arc::new(StoreBacked::new(source, store.clone())),
        _ => source,
    })
}

/// The View of the workspace's upper layer over `lower` (the upper dir is
/// made when missing).
pub fn open_view(ws: &Workspace, lower: Arc<dyn Source>) -> Result<Arc<View>> {
    let upper = upper_dir(ws);
    let view = View::new(lower, &upper)
        .with_context(|| format!("cannot open the upper layer {}", upper.display()))?;
    Ok(Arc::new(view))
}

/// What a sync reads, and where edits go back to.
pub struct SyncTree {
    pub source: Arc<dyn Source>,
    /// Set when the workspace has an upper layer: syncs are then two-way.
    pub write_back: Option<UpperWriteBack>,
}

/// Writes workspace edits into the upper layer through the View.
pub struct UpperWriteBack(Arc<View>);

impl SyncTree {
    /// The lower layer (see [`open_lower`]) of `spec`, under the View when
    /// the workspace has an upper layer.
    pub fn open(ws: &Workspace, spec: &SourceSpec, store: &Arc<Store>) -> Result<SyncTree> {
        let lower = open_lower(spec, store)?;
        if !upper_dir(ws).is_dir() {
            return Ok(SyncTree {
                source: lower,
                write_back: None,
            });
        }
        let view = open_view(ws, lower)?;
        Ok(SyncTree {
            source: view.clone(),
            write_back: Some(UpperWriteBack(view)),
        })
    }

    pub fn write_back(&self) -> Option<&dyn WriteBack> {
        self.write_back.as_ref().map(|w| w as &dyn WriteBack)
    }

    /// Drops what the View remembers of the lower, so this sync sees the
    /// source as it is now (see [`View::forget_lower_listings`]).
    pub fn refresh(&self) {
        if let Some(w) = &self.write_back {
            w.0.forget_lower_listings();
        }
    }

    /// The upper dir, when there is one (the watcher follows it too).
    pub fn upper(&self) -> Option<&Path> {
        self.write_back.as_ref().map(|w| w.0.upper_dir())
    }
}

/// Workspace edits land in the upper layer through the View, whole-file
/// temp + rename, and the View's id for the new upper entry is returned.
impl WriteBack for UpperWriteBack {
    fn put_file(
        &self,
        path: &RepoPath,
        from: &Path,
        executable: bool,
    ) -> antares_overlay::Result<ObjectId> {
        let bytes =
            std::fs::read(from).map_err(|e| antares_overlay::SourceError::io(from.display(), e))?;
        let node = self
            .0
            .write_file(path, &bytes, if executable { 0o755 } else { 0o644 })?;
        Ok(node.to_entry().oid)
    }

    fn put_symlink(&self, path: &RepoPath, target: &str) -> antares_overlay::Result<ObjectId> {
        if self.0.node(path)?.is_some() {
            self.0.remove(path, false)?;
        }
        Ok(self.0.symlink(path, target)?.to_entry().oid)
    }

    fn flush(&self, paths: Option<&[RepoPath]>) -> antares_overlay::Result<()> {
        self.0.sync_upper(paths).map_err(Into::into)
    }

    fn delete(&self, path: &RepoPath) -> antares_overlay::Result<()> {
        match self.0.node(path)? {
            Some(_) => Ok(self.0.remove(path, false)?),
            None => Ok(()),
        }
    }
}
