//! `antares resolve PATH --ours|--theirs`

use crate::cli::{Global, ResolveArgs};
use crate::workspace::Workspace;
use antares_materializer::resolve::{resolve, Side};
use anyhow::Result;

pub fn run(global: &Global, args: &ResolveArgs) -> Result<i32> {
    let ws = Workspace::find(global.workspace.as_deref())?;
    let path = ws.source_path(&args.path)?;
    let _lock = ws.lock(true)?;
    let store = crate::tree::open_store(&ws, global.cache.as_deref())?;
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
