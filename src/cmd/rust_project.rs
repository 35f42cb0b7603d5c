//! `antares rust-project develop-json|develop|check …`: buck2's
//! `rust-project` (rust-analyzer's project model) for an editor on the mount.
//!
//! The real `rust-project` runs in the workspace (where buck2 can build),
//! with the same arguments and output protocol; mount paths in the
//! arguments become workspace paths, and workspace paths in its answers
//! (`root_module`, `include_dirs`, `build_file`, `runnables[].cwd`,
//! diagnostics) become mount paths, line by line as it streams them. So it
//! can stand in for `rust-project` in rust-analyzer's
//! `rust-analyzer.workspace.discoverConfig`. Run from the workspace itself
//! it passes everything through unchanged.

use crate::cli::{Global, RustProjectArgs};
use crate::pathmap::PathMap;
use crate::workspace::Workspace;
use antares_materializer::fsutil::write_atomic;
use anyhow::{Context, Result};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

pub fn run(global: &Global, args: &RustProjectArgs) -> Result<i32> {
    let ws = Workspace::find(global.workspace.as_deref())?;
    let real = std::env::var_os("ANTARES_REAL_RUST_PROJECT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("rust-project"));
    let map = ws
        .via_mount
        .as_deref()
        .map(|mount| PathMap::new(ws.root(), mount));
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let dir = super::compdb::workspace_dir(&ws, &cwd);
    // From the mount, what the editor saved there must be in the workspace
    // before rust-project looks (`check` on save), and a label it asks for
    // must be synced (`develop-json {"label": …}`).
    if ws.via_mount.is_some() {
        let current = ws.current_dir()?;
        let labels: Vec<String> = args
            .args
            .iter()
            .filter_map(|a| serde_json::from_str::<serde_json::Value>(a).ok())
            .filter_map(|j| j.get("label")?.as_str().map(String::from))
            .map(|l| crate::targets::absolutize(&l, &current))
            .collect();
        super::sync_first(&ws, &labels, "rust-project run")?;
    }
    let mut argv: Vec<String> = args
        .args
        .iter()
        .map(|a| {
            map.as_ref()
                .map_or_else(|| a.clone(), |m| m.to_workspace(a))
        })
        .collect();
    // `develop` writes a file: have it print instead, and write the
    // translated answer where it would have written.
    let out_file = match (&map, argv.first().map(String::as_str)) {
        (Some(_), Some("develop")) if !argv.iter().any(|a| a == "--stdout") => {
            let out = take_out(&mut argv).unwrap_or_else(|| "rust-project.json".to_string());
            argv.push("--stdout".to_string());
            Some(cwd.join(out))
        }
        _ => None,
    };
    tracing::info!(?real, ?argv, dir = %dir.display(), "running rust-project in the workspace");
    let mut child = Command::new(&real)
        .args(&argv)
        .current_dir(&dir)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| {
            format!(
                "cannot run {}: put buck2's rust-project on PATH or set ANTARES_REAL_RUST_PROJECT",
                real.display()
            )
        })?;
    let stdout = child.stdout.take().context("rust-project's stdout")?;
    let mut captured = Vec::new();
    let mut out = std::io::stdout().lock();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.context("reading rust-project's output")?;
        let line = map
            .as_ref()
            .map_or_else(|| line.clone(), |m| m.to_mount(&line));
        if out_file.is_some() {
            captured.push(line);
        } else {
            writeln!(out, "{line}")?;
            out.flush()?;
        }
    }
    let status = child.wait().context("waiting for rust-project")?;
    if let (Some(path), true) = (&out_file, status.success()) {
        let mut text = captured.join("\n");
        text.push('\n');
        write_atomic(path, text.as_bytes())?;
        eprintln!("wrote {} (paths of the mount)", path.display());
    }
    Ok(status.code().unwrap_or(super::ERROR))
}

/// Removes `-o X`/`--out X`/`--out=X` from `argv`, returning X.
fn take_out(argv: &mut Vec<String>) -> Option<String> {
    let i = argv
        .iter()
        .position(|a| a == "-o" || a == "--out" || a.starts_with("--out="))?;
    let a = argv.remove(i);
    match a.strip_prefix("--out=") {
        Some(v) => Some(v.to_string()),
        None if i < argv.len() => Some(argv.remove(i)),
        None => None,
    }
}
