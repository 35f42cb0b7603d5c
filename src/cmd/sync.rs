//! `antares sync [PATH…] [--watch]`: make the workspace hold the selection.

use crate::buckconfig_local;
use crate::cli::{Global, SyncArgs};
use crate::progress::Bar;
use crate::quote::{quoted, shown};
use crate::targets::{self, GraphMode};
use crate::toolchains::{self, Mode};
use crate::tree::Tree;
use crate::workspace::Workspace;
use antares_buck::GraphStats;
use antares_materializer::{
    Manifest, ManifestCache, Progress, Request, Store, Summary, WorkspaceLock,
};
use antares_overlay::{EntryKind, RepoPath, Source, SourceSpec, TreeEntry};
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

pub fn run(global: &Global, args: &SyncArgs) -> Result<i32> {
    let ws = Workspace::find(global.workspace.as_deref())?;
    let current = ws.current_dir()?;
    let mut paths: Vec<RepoPath> = Vec::new();
    let mut targets: Vec<String> = Vec::new();
    if args.add || args.paths.is_empty() {
        for p in &ws.config.paths {
            paths.push(
                RepoPath::new(p)
                    .with_context(|| format!("invalid path {p:?} in the workspace config"))?,
            );
        }
        targets.extend(ws.config.targets.iter().cloned());
    }
    for a in &args.paths {
        if targets::is_pattern(a) {
            targets.push(targets::absolutize(a, &current));
        } else {
            paths.push(ws.source_path(a)?);
        }
    }
    if paths.is_empty() && targets.is_empty() {
        bail!("nothing selected yet: run `antares sync //target…` or `antares sync PATH…` (`antares sync .` for the whole tree)");
    }
    paths.sort();
    paths.dedup();
    targets.sort();
    targets.dedup();
    // Drop paths inside other selected paths.
    let selected: Vec<RepoPath> = paths
        .iter()
        .filter(|p| !paths.iter().any(|q| q != *p && p.starts_with(q)))
        .cloned()
        .collect();
    let spec = match &args.rev {
        Some(rev) => ws.config.source.clone().at_revision(rev)?,
        None => ws.config.source.clone(),
    };
    let spec = match &args.cl {
        Some(link) => spec.with_cl(link)?,
        None => spec,
    };
    let store = crate::tree::open_store(&ws, global.cache.as_deref())?;
    store.clean_tmp();
    let ctx = Context_ {
        ws: &ws,
        store: &store,
        tree: Tree::open(&ws, &spec, &store)?,
        spec: spec.clone(),
        selected: selected.clone(),
        targets: targets.clone(),
        graph: args.graph,
        scope: Mutex::new(Vec::new()),
        wait: !args.no_wait,
        manifest: Mutex::new(ManifestCache::default()),
        graph_stats: Mutex::new(None),
        toolchains: args
            .toolchains
            .or(ws.config.toolchains)
            .unwrap_or(Mode::Repo),
    };

    let bar = Bar::new(args.json);
    let summary = ctx.sync_once(None, &bar)?;
    bar.finish();
    // Remember the selection for the next plain `antares sync`.
    let new_paths: Vec<String> = selected.iter().map(|p| p.as_str().to_string()).collect();
    let toolchains = args.toolchains.or(ws.config.toolchains);
    if new_paths != ws.config.paths
        || targets != ws.config.targets
        || spec != ws.config.source
        || toolchains != ws.config.toolchains
    {
        let mut config = ws.config.clone();
        config.paths = new_paths;
        config.targets = targets;
        config.source = spec;
        config.toolchains = toolchains;
        Workspace::save_config(&ws.layout, &config)?;
    }
    let graph = ctx.graph_stats.lock().ok().and_then(|g| g.clone());
    report(
        &ws,
        ctx.tree.source.as_ref(),
        &summary,
        graph.as_ref(),
        args.json,
    )?;
    if args.watch {
        if matches!(ctx.spec, SourceSpec::Git { .. }) {
            eprintln!(
                "note: a git: source is a fixed commit; --watch follows workspace edits only"
            );
        }
        return crate::cmd::watch::run(&ctx, args.json);
    }
    // The process ends here: freeing the tree and the manifest (hundreds of
    // thousands of heap nodes) would only delay the exit.
    std::mem::forget(ctx);
    Ok(exit_status(&summary))
}

/// Everything one sync needs, kept across the cycles of `--watch`.
pub struct Context_<'a> {
    pub ws: &'a Workspace,
    pub store: &'a Store,
    /// The source, or the View of upper over it when there is an upper.
    pub tree: Tree,
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

impl Context_<'_> {
    /// One sync of the selection, or of just the `only` paths.
    pub fn sync_once(
        &self,
        only: Option<BTreeSet<RepoPath>>,
        progress: &dyn Progress,
    ) -> Result<Summary> {
        let _lock = WorkspaceLock::acquire(&self.ws.layout.lock_file(), self.wait, |pid| {
            eprintln!("waiting for another antares (pid {pid}) to finish with this workspace…")
        })?;
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
                        Some(&targets::graph_cache(self.ws)),
                    )?;
                    if let Ok(mut g) = self.graph_stats.lock() {
                        *g = Some(set.stats.clone());
                    }
                    let (more, dirs) = targets::entries(self.tree.source.as_ref(), &set)?;
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

pub fn exit_status(summary: &Summary) -> i32 {
    if !summary.errors.is_empty() {
        super::ERROR
    } else if !summary.conflicts.is_empty() {
        super::CONFLICTS
    } else {
        super::OK
    }
}

/// Prints the summary (and what computing the targets' file set took, when
/// there were targets): JSON on stdout, or a short human report on stderr.
pub fn report(
    ws: &Workspace,
    source: &dyn Source,
    s: &Summary,
    graph: Option<&GraphStats>,
    json: bool,
) -> Result<()> {
    if json {
        let out = serde_json::json!({
            "workspace": ws.root(),
            "source": source.describe(),
            "revision": source.revision(),
            "summary": s,
            "graph": graph,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    eprintln!(
        "synced {} paths from {} in {:.2}s: {} added, {} updated, {} removed, {} unchanged",
        s.requested,
        source.describe(),
        s.seconds,
        s.added,
        s.updated,
        s.removed,
        s.unchanged
    );
    if s.added + s.updated > 0 {
        eprintln!(
            "  {} fetched from the source ({}), {} placed ({} reflinked, {} copied)",
            s.fetched,
            human_bytes(s.fetched_bytes),
            human_bytes(s.bytes_placed),
            s.reflinked,
            s.copied
        );
    }
    let lists: [(&str, &Vec<String>); 6] = [
        ("kept local edit", &s.modified),
        ("kept local deletion", &s.deleted),
        ("written back", &s.written_back),
        ("deletion written back", &s.deleted_back),
        ("changed while syncing, left for the next sync", &s.raced),
        (
            "submodule (gitlink), left as an empty directory",
            &s.gitlinks,
        ),
    ];
    for (what, paths) in lists {
        for p in paths {
            eprintln!("  {what}: {}", quoted(p));
        }
    }
    for p in &s.conflicts {
        let p = quoted(p);
        eprintln!("  CONFLICT {p}: changed in the workspace and in the source; yours is in place, the source's is in .antares/conflicts/{p}; settle with `antares resolve {p} --ours|--theirs`");
    }
    for e in &s.errors {
        // The error may repeat the path: shorten it there too.
        let error = if e.path.len() > 200 {
            e.error.replace(&e.path, &shown(&e.path))
        } else {
            e.error.clone()
        };
        eprintln!("  error: {}: {error}", shown(&e.path));
    }
    Ok(())
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}
