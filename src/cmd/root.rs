//! `antares root [--json]`: where the workspace is, for scripts.

use crate::cli::{Global, RootArgs};
use crate::workspace::Workspace;
use anyhow::{Context, Result};

pub fn run(global: &Global, args: &RootArgs) -> Result<i32> {
    let ws = Workspace::find(global.workspace.as_deref())?;
    if args.json {
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        let relative = cwd
            .strip_prefix(ws.via_mount.as_deref().unwrap_or(ws.root()))
            .map(|r| r.to_string_lossy().into_owned())
            .unwrap_or_default();
        let out = serde_json::json!({
            "workspace": ws.root(),
            "relative": relative,
            "source": ws.config.source.to_string(),
            "mount": ws.via_mount,
        });
        println!("{out}");
    } else {
        println!("{}", ws.root().display());
    }
    Ok(super::OK)
}
