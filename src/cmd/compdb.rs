//! `antares compdb TARGET…`: `compile_commands.json` for clangd and other
//! C/C++ tools, at the root of the mount (or of the workspace, run there).
//!
//! The targets are synced, then buck2's compilation-database BXL
//! (`prelude//cxx/tools/compilation_database.bxl:generate`) runs in the
//! workspace. Its answer has `directory` = the workspace and arguments and
//! files relative to it (`@buck-out/v2/…argsfile` among them); on the mount,
//! `directory` and every absolute workspace path become mount paths, and the
//! relative ones resolve there because the mount's `buck-out` is the
//! workspace's.

use crate::cli::{CompdbArgs, Global};
use crate::pathmap::PathMap;
use crate::targets;
use crate::workspace::Workspace;
use antares_materializer::fsutil::write_atomic;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The BXL that writes a compilation database.
const BXL: &str = "prelude//cxx/tools/compilation_database.bxl:generate";

pub fn run(global: &Global, args: &CompdbArgs) -> Result<i32> {
    let ws = Workspace::find(global.workspace.as_deref())?;
    let current = ws.current_dir()?;
    let patterns: Vec<String> = args
        .targets
        .iter()
        .map(|t| targets::absolutize(t, &current))
        .collect();
    // The workspace must hold what the targets need.
    super::sync_first(&ws, &patterns, "compilation database")?;
    let buck2 = std::env::var_os("ANTARES_REAL_BUCK2")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("buck2"));
    let out = Command::new(&buck2)
        .args(["bxl", BXL, "--", "--targets"])
        .args(&patterns)
        .current_dir(ws.root())
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {} (set ANTARES_REAL_BUCK2)", buck2.display()))?;
    if !out.status.success() {
        bail!("buck2 bxl {BXL} failed ({})", out.status);
    }
    // It prints where it wrote the database, relative to the project root.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let Some(written) = stdout.lines().map(str::trim).rfind(|l| !l.is_empty()) else {
        bail!("buck2 bxl {BXL} printed no path");
    };
    let written = ws.root().join(written);
    let text = std::fs::read_to_string(&written)
        .with_context(|| format!("cannot read {}", written.display()))?;
    let mut db: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a compilation database", written.display()))?;
    let Some(entries) = db.as_array() else {
        bail!(
            "{}: not a JSON array of compile commands",
            written.display()
        );
    };
    let count = entries.len();
    let root = match &ws.via_mount {
        Some(mount) => {
            PathMap::new(ws.root(), mount).json_to_mount(&mut db);
            mount.clone()
        }
        None => ws.root().to_path_buf(),
    };
    let dest = root.join("compile_commands.json");
    let mut bytes = serde_json::to_vec_pretty(&db)?;
    bytes.push(b'\n');
    write_atomic(&dest, &bytes)?;
    eprintln!("wrote {} ({count} entries)", dest.display());
    Ok(super::OK)
}

/// The workspace directory matching `cwd` (in the workspace or its mount);
/// the root when that directory is not in the workspace.
pub fn workspace_dir(ws: &Workspace, cwd: &Path) -> PathBuf {
    let anchor = ws.via_mount.as_deref().unwrap_or(ws.root());
    match cwd.strip_prefix(anchor) {
        Ok(rel) if ws.root().join(rel).is_dir() => ws.root().join(rel),
        _ => ws.root().to_path_buf(),
    }
}
