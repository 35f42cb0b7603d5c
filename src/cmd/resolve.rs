//! `antares resolve PATH --ours|--theirs`

use crate::cli::{Global, ResolveArgs};
use crate::workspace::Workspace;
use antares_materializer::resolve::{resolve, Side};
use antares_materializer::{Store, WorkspaceLock};
use anyhow::{Context, Result};

pub fn run(global: &Global, args: &ResolveArgs) -> Result<i32> {
    let ws = Workspace::find(global.workspace.as_deref())?;
    let path = ws.source_path(&args.path)?;
    let _lock = WorkspaceLock::acquire(&ws.layout.lock_file(), true, |pid| {
        eprintln!("waiting for another antares (pid {pid}) to finish with this workspace…")
    })?;
    let store_dir = ws.store_dir(global.cache.as_deref())?;
    let store = Store::open(&store_dir)
        .with_context(|| format!("cannot open the content store {}", store_dir.display()))?;
    let side = if args.ours { Side::Ours } else { Side::Theirs };
    resolve(&ws.layout, &store, &path, side)?;
    eprintln!(
        "resolved {path} ({})",
        if args.ours {
            "kept the workspace's version"
        } else {
            "took the source's version"
        }
    );
    Ok(super::OK)
}
