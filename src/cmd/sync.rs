//! `antares sync [PATH…] [--watch]`: make the workspace hold the selection.

use crate::cli::{Global, SyncArgs};
use crate::progress::Bar;
use crate::quote::{quoted, shown};
use crate::sync_session::SyncSession;
use crate::targets;
use crate::toolchains::Mode;
use crate::tree::SyncTree;
use crate::workspace::Workspace;
use antares_buck::GraphStats;
use antares_materializer::{ManifestCache, Summary};
use antares_overlay::{RepoPath, Source, SourceSpec};
use anyhow::{bail, Context, Result};
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
    let ctx = SyncSession {
        ws: &ws,
        store: &store,
        tree: SyncTree::open(&ws, &spec, &store)?,
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
    Ok(super::exit_status(&summary))
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
