//! `antares why PATH [PATTERN…]`

use crate::cli::{Global, WhyArgs};
use crate::targets::{self, GraphMode};
use crate::workspace::Workspace;
use anyhow::{bail, Result};

pub fn run(global: &Global, args: &WhyArgs) -> Result<i32> {
    let ws = Workspace::find(global.workspace.as_deref())?;
    let path = ws.source_path(&args.path)?;
    // A path requested directly needs no graph.
    if let Some(sel) = ws
        .config
        .paths
        .iter()
        .find(|p| antares_overlay::RepoPath::new(p).is_ok_and(|p| path.starts_with(&p)))
    {
        let why = format!("requested path {}", if sel.is_empty() { "." } else { sel });
        print(&path, &why, args.json)?;
        return Ok(super::OK);
    }
    let patterns = targets::given_or_saved(&ws, &args.patterns)?;
    if patterns.is_empty() {
        bail!("{path}: not in a requested path, and no targets are synced; give target patterns");
    }
    let spec = &ws.config.source;
    let source = crate::tree::source_with_edits(&ws, global.cache.as_deref())?;
    let set = targets::file_set(
        source.as_ref(),
        spec,
        &patterns,
        &antares_overlay::RepoPath::root(),
        GraphMode::Builtin,
        Some(&ws.layout.graph_cache()),
    )?;
    match set.why(&path) {
        Some(reason) => {
            print(&path, &reason.to_string(), args.json)?;
            Ok(super::OK)
        }
        None => bail!("{path}: not in the file set of {}", patterns.join(" ")),
    }
}

fn print(path: &antares_overlay::RepoPath, why: &str, json: bool) -> Result<()> {
    if json {
        println!(
            "{}",
            serde_json::json!({ "path": path.as_str(), "reason": why })
        );
    } else {
        println!("{path}: {why}");
    }
    Ok(())
}
