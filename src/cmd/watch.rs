//! `antares sync --watch`: after the first sync, follow changes on both
//! sides with inotify (the notify crate) and sync just the changed paths.
//!
//! Events are debounced (a burst of an editor's save — temp file, rename,
//! chmod — becomes one sync), mapped to repository paths, and synced with a
//! path-restricted request. When the kernel queue overflows, the watcher
//! cannot know what changed, so it falls back to a full sync.

use super::exit_status;
use crate::sync_session::SyncSession;
use antares_materializer::untracked::NEVER_TRACKED;
use antares_materializer::{NoProgress, Summary};
use antares_overlay::source::GIT_DIR;
use antares_overlay::view::upper;
use antares_overlay::{RepoPath, SourceSpec};
use anyhow::{Context, Result};
use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Wait this long after the last event before syncing…
const QUIET: Duration = Duration::from_millis(15);
/// …but never longer than this after the first one.
const MAX_DELAY: Duration = Duration::from_millis(150);

/// What a batch of events amounts to.
enum Batch {
    Paths(BTreeSet<RepoPath>),
    /// Events were lost: sync everything.
    Rescan,
}

pub fn run(ctx: &SyncSession, json: bool) -> Result<i32> {
    // Each cycle looks up a few new versions: from memory, not by a scan
    // of the store's whole index per edit.
    ctx.store.load_index();
    let roots = watch_roots(ctx);
    let (tx, rx) = mpsc::channel::<notify::Result<Event>>();
    // The upper dir is inside the workspace's watched tree already.
    let watched: Vec<&(PathBuf, Side)> = roots
        .iter()
        .filter(|(r, _)| !roots.iter().any(|(o, _)| o != r && r.starts_with(o)))
        .collect();
    let mut watcher = notify::recommended_watcher(move |ev| {
        let _ = tx.send(ev);
    })
    .context("cannot start the file watcher")?;
    for (root, _) in &watched {
        watcher
            .watch(root, RecursiveMode::Recursive)
            .with_context(|| format!("cannot watch {}", root.display()))?;
    }
    eprintln!(
        "watching {} (Ctrl-C to stop)",
        roots
            .iter()
            .map(|(r, _)| r.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    // A change made between the first sync and the watches being in place
    // raised no event: one catch-up sync sees it.
    let started = Instant::now();
    let caught = ctx.sync_once(None, &NoProgress)?;
    log_cycle(&caught, started, json)?;
    let mut worst = exit_status(&caught);
    loop {
        let Some(batch) = next_batch(&rx, &roots) else {
            return Ok(worst);
        };
        let started = Instant::now();
        let summary = match batch {
            Batch::Rescan => {
                eprintln!("watch: events were lost (queue overflow); full sync");
                ctx.sync_once(None, &NoProgress)
            }
            Batch::Paths(paths) => {
                tracing::debug!(count = paths.len(), first = ?paths.first(), "watch: changed paths");
                ctx.sync_once(Some(paths), &NoProgress)
            }
        };
        match summary {
            Ok(s) => {
                worst = worst.max(exit_status(&s));
                log_cycle(&s, started, json)?;
            }
            // A failed cycle (say, a file vanished mid-read) is reported and
            // the next event retries; the watcher keeps running.
            Err(e) => eprintln!("watch: sync failed: {e:#}"),
        }
    }
}

/// The directories to watch, each with how its paths map to repo paths: the
/// workspace, and the source side when it is a live local directory.
fn watch_roots(ctx: &SyncSession) -> Vec<(PathBuf, Side)> {
    let mut roots = vec![(ctx.ws.root().to_path_buf(), Side::Workspace)];
    if let SourceSpec::Dir { path } = &ctx.spec {
        roots.push((path.clone(), Side::Source));
    }
    if let Some(upper) = ctx.tree.upper() {
        roots.push((upper.to_path_buf(), Side::Upper));
    }
    // The upper dir lies inside the workspace: match the longest root first.
    roots.sort_by_key(|(r, _)| std::cmp::Reverse(r.as_os_str().len()));
    roots
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Workspace,
    Source,
    /// The mount's upper dir: whiteouts ([`upper::WHITEOUT_PREFIX`]`NAME`) stand for NAME.
    Upper,
}

/// Blocks for the next burst of changes; `None` when the watcher is gone.
/// Events that change nothing (opens and reads, the state dir) neither start
/// a burst nor extend it: a reader polling a file must not delay its sync.
fn next_batch(
    rx: &mpsc::Receiver<notify::Result<Event>>,
    roots: &[(PathBuf, Side)],
) -> Option<Batch> {
    let mut paths = BTreeSet::new();
    let mut rescan = false;
    // (first change, last change) of the burst so far.
    let mut burst: Option<(Instant, Instant)> = None;
    loop {
        let ev = match burst {
            None => rx.recv().ok()?,
            Some((first, last)) => {
                let quiet = QUIET.saturating_sub(last.elapsed());
                if first.elapsed() >= MAX_DELAY || quiet.is_zero() {
                    break;
                }
                match rx.recv_timeout(quiet) {
                    Ok(ev) => ev,
                    Err(_) => break,
                }
            }
        };
        let changed = match ev {
            Ok(ev) if ev.need_rescan() => {
                rescan = true;
                true
            }
            Ok(ev) if !changes_content(&ev.kind) => false,
            Ok(ev) => {
                let mut mapped = ev.paths.iter().filter_map(|p| to_repo_path(p, roots));
                let any = mapped.next().map(|p| paths.insert(p)).is_some();
                paths.extend(mapped);
                any
            }
            Err(_) => {
                rescan = true;
                true
            }
        };
        if changed {
            let now = Instant::now();
            burst = Some((burst.map_or(now, |(first, _)| first), now));
        }
    }
    Some(if rescan {
        Batch::Rescan
    } else {
        Batch::Paths(paths)
    })
}

/// Whether an event can mean new content. Opens and reads (which inotify
/// reports too, the watcher's own included: every cycle lists and hashes)
/// change nothing; a close after writing does.
fn changes_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// The repo path an event path stands for, or `None` for state, build
/// outputs and VCS internals.
fn to_repo_path(p: &Path, roots: &[(PathBuf, Side)]) -> Option<RepoPath> {
    let (root, side) = roots.iter().find(|(r, _)| p.starts_with(r))?;
    let rel = p.strip_prefix(root).ok()?;
    let mut comps = rel.components().filter_map(|c| c.as_os_str().to_str());
    let first = comps.clone().next()?;
    if *side == Side::Workspace && NEVER_TRACKED.contains(&first) {
        return None;
    }
    if comps.any(|c| c == GIT_DIR) {
        return None;
    }
    let path = RepoPath::from_fs(rel).ok()?;
    if *side == Side::Upper {
        if let Some(name) = path.file_name() {
            if let Some(hidden) = name.strip_prefix(upper::WHITEOUT_PREFIX) {
                let parent = path.parent().unwrap_or_default();
                // The opaque marker stands for the directory itself.
                return if name == upper::OPAQUE_MARKER {
                    Some(parent)
                } else {
                    parent.join(hidden).ok()
                };
            }
        }
    }
    Some(path)
}

fn log_cycle(s: &Summary, started: Instant, json: bool) -> Result<()> {
    let changed = s.added
        + s.updated
        + s.removed
        + s.adopted
        + s.written_back.len()
        + s.deleted_back.len()
        + s.conflicts.len();
    if changed == 0 && s.errors.is_empty() {
        return Ok(());
    }
    if json {
        println!("{}", serde_json::to_string(s)?);
    } else {
        eprintln!(
            "watch: {} in, {} removed, {} written back, {} conflicts ({:.0} ms)",
            s.added + s.updated,
            s.removed,
            s.written_back.len() + s.deleted_back.len(),
            s.conflicts.len(),
            started.elapsed().as_secs_f64() * 1000.0
        );
        for p in &s.conflicts {
            eprintln!("  CONFLICT {p}");
        }
        for e in &s.errors {
            eprintln!("  error: {}: {}", e.path, e.error);
        }
    }
    Ok(())
}
