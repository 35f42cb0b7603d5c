//! One sync of the workspace's selection, kept across the cycles of
//! `sync --watch`: what `cmd::sync` sets up once and `cmd::watch` repeats.

use crate::buckconfig_local;
use crate::set_entries;
use crate::targets::{self, GraphMode};
use crate::toolchains::{self, Mode};
use crate::tree::SyncTree;
use crate::workspace::Workspace;
use antares_buck::GraphStats;
use antares_materializer::{Manifest, ManifestCache, Progress, Request, Store, Summary};
use antares_overlay::{EntryKind, RepoPath, Source, SourceSpec, TreeEntry};
use anyhow::{Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

/// Everything one sync needs, kept across the cycles of `--watch`.
pub struct SyncSession<'a> {
    pub ws: &'a Workspace,
    pub store: &'a Store,
    /// The source, or the View of upper over it when there is an upper.
    pub tree: SyncTree,
    /// The source as opened (after --rev).
    pub spec: SourceSpec,
    /// Selected source paths.
    pub selected: Vec<RepoPath>,
    /// Selected target patterns (absolute).
    pub targets: Vec<String>,
    pub graph: GraphMode,
    /// The scope of the last full sync, for the path-restricted ones.
    pub scope: Mutex<Vec<RepoPath>>,
    pub wait: bool,
    /// The manifest between cycles of `--watch` (reloaded if changed on disk).
    pub manifest: Mutex<ManifestCache>,
    /// What the last target computation took (`sync --json` reports it).
    pub graph_stats: Mutex<Option<GraphStats>>,
    /// Which toolchains the workspace builds with.
    pub toolchains: Mode,
}

impl SyncSession<'_> {
    /// One sync of the selection, or of just the `only` paths.
    pub fn sync_once(
        &self,
        only: Option<BTreeSet<RepoPath>>,
        progress: &dyn Progress,
    ) -> Result<Summary> {
        let _lock = self.ws.lock(self.wait)?;
        self.tree.refresh();
        let mut cache = self
            .manifest
            .lock()
            .map_err(|_| anyhow::anyhow!("the manifest cache is poisoned"))?;
        // The manifest loads while the tree is walked: on a large workspace
        // each takes a good part of a sync, and they need nothing of each other.
        let manifest_path = self.ws.layout.manifest();
        let (selected, loaded) = std::thread::scope(|s| {
            let loading = cache
                .needs_load(&manifest_path)
                .then(|| s.spawn(|| Manifest::load(&manifest_path)));
            let selected = self.selection(only.as_ref());
            (selected, loading.map(|h| h.join()))
        });
        if let Some(loaded) = loaded {
            let m = loaded.map_err(|_| anyhow::anyhow!("loading the manifest panicked"))??;
            cache.put(m);
        }
        let (mut entries, scope) = selected?;
        tracing::debug!(entries = entries.len(), "selection walked, manifest loaded");
        let source = self.tree.source.as_ref();
        let generated = if only.is_none() {
            let report = toolchains::apply(self.ws.root(), source, self.toolchains)?;
            if let Some(r) = &report {
                toolchains::print_summary(r);
            }
            report.map(|r| r.cell)
        } else {
            // A --watch cycle keeps the cell the full sync generated.
            toolchains::last_report(self.ws.root())?.map(|r| r.cell)
        };
        buckconfig_local::ensure(
            self.ws.root(),
            source,
            self.tree.write_back(),
            generated
                .as_deref()
                .map(|cell| (cell, toolchains::CELL_DIR)),
        )?;
        // antares' own, composed here and never synced: .buckconfig.local
        // (the user's lines and antares' block) and the generated cell.
        let mut ignored = vec![RepoPath::new(buckconfig_local::NAME)?];
        if generated.is_some() {
            ignored.push(RepoPath::new(toolchains::CELL_DIR)?);
        }
        entries.retain(|e| !ignored.iter().any(|i| e.path.starts_with(i)));
        let request = Request {
            entries,
            scope,
            ignored,
            revision: self.tree.source.revision(),
            only,
            write_back: self.tree.write_back(),
        };
        Ok(antares_materializer::sync_cached(
            &self.ws.layout,
            self.store,
            self.tree.source.as_ref(),
            request,
            progress,
            &mut cache,
        )?)
    }

    /// The entries to sync and the scope they were taken from: the whole
    /// selection, or the `only` paths inside the last full sync's scope.
    fn selection(
        &self,
        only: Option<&BTreeSet<RepoPath>>,
    ) -> Result<(Vec<TreeEntry>, Vec<RepoPath>)> {
        Ok(match only {
            None => {
                let mut entries = collect(self.tree.source.as_ref(), &self.selected)?;
                let mut scope = self.selected.clone();
                if !self.targets.is_empty() {
                    let set = targets::file_set(
                        self.tree.source.as_ref(),
                        &self.spec,
                        &self.targets,
                        &RepoPath::root(),
                        self.graph,
                        Some(&self.ws.layout.graph_cache()),
                    )?;
                    if let Ok(mut g) = self.graph_stats.lock() {
                        *g = Some(set.stats.clone());
                    }
                    let (more, dirs) = set_entries::entries(
                        self.tree.source.as_ref(),
                        &set,
                        Some(&self.ws.layout.set_entries()),
                    )?;
                    entries.extend(more);
                    sort_unique(&mut entries);
                    scope.extend(dirs);
                }
                if let Ok(mut s) = self.scope.lock() {
                    s.clone_from(&scope);
                }
                (entries, scope)
            }
            Some(only) => {
                let scope = self.scope.lock().map(|s| s.clone()).unwrap_or_default();
                (
                    collect_changed(self.tree.source.as_ref(), &scope, only)?,
                    scope,
                )
            }
        })
    }
}

/// The entries below each selected path, sorted by path; a path missing
/// from the source is an error.
fn collect(source: &dyn Source, selected: &[RepoPath]) -> Result<Vec<TreeEntry>> {
    let mut out = Vec::new();
    for p in selected {
        let entry = source
            .stat(p)?
            .with_context(|| format!("{p}: no such path in {}", source.describe()))?;
        if entry.kind == EntryKind::Dir {
            out.extend(source.walk(p)?);
        } else {
            out.push(entry);
        }
    }
    sort_unique(&mut out);
    Ok(out)
}

/// Sorts entries by path and drops repeats (selected paths may overlap).
/// A sort in place: a map keyed by path would copy every path once more.
fn sort_unique(entries: &mut Vec<TreeEntry>) {
    entries.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    entries.dedup_by(|a, b| a.path == b.path);
}

/// The current entries at the `changed` paths that lie inside the selection
/// (a changed directory contributes its whole subtree).
fn collect_changed(
    source: &dyn Source,
    selected: &[RepoPath],
    changed: &BTreeSet<RepoPath>,
) -> Result<Vec<TreeEntry>> {
    let mut out = BTreeMap::new();
    for p in changed
        .iter()
        .filter(|p| selected.iter().any(|s| p.starts_with(s)))
    {
        match source.stat(p)? {
            Some(e) if e.kind == EntryKind::Dir => {
                for e in source.walk(p)? {
                    out.insert(e.path.clone(), e);
                }
            }
            Some(e) => {
                out.insert(p.clone(), e);
            }
            None => {}
        }
    }
    Ok(out.into_values().collect())
}
