//! `antares graph PATTERN… [--json] [--compare] [--files]`

use crate::cli::{Global, GraphArgs};
use crate::targets::{self, GraphMode};
use crate::workspace::Workspace;
use antares_buck::FileSet;
use anyhow::{bail, Result};

pub fn run(global: &Global, args: &GraphArgs) -> Result<i32> {
    let ws = Workspace::find(global.workspace.as_deref())?;
    if args.toolchains {
        let report = crate::toolchains::last_report(ws.root())?;
        match (&report, args.json) {
            (_, true) => println!("{}", serde_json::to_string_pretty(&report)?),
            (Some(r), false) => crate::toolchains::print_report(r),
            (None, false) => println!(
                "toolchains: the repository's own (sync with --toolchains system|auto to replace them)"
            ),
        }
        return Ok(super::OK);
    }
    let patterns = targets::given_or_saved(&ws, &args.patterns)?;
    if patterns.is_empty() {
        bail!("no target patterns given and none synced yet: `antares graph //target…`");
    }
    let spec = &ws.config.source;
    let source = crate::tree::source_with_edits(&ws, global.cache.as_deref())?;
    let root = antares_overlay::RepoPath::root();
    let cache = ws.layout.graph_cache();
    let set_by =
        |mode| targets::file_set(source.as_ref(), spec, &patterns, &root, mode, Some(&cache));
    if args.compare {
        let ours = set_by(GraphMode::Builtin)?;
        let theirs = set_by(GraphMode::Buck2)?;
        let cmp = antares_buck::compare(&ours, &theirs);
        if args.json {
            println!("{}", serde_json::to_string_pretty(&cmp)?);
        } else {
            for p in &cmp.only_left {
                println!("only builtin: {p}");
            }
            for p in &cmp.only_right {
                println!("only buck2:   {p}");
            }
            eprintln!(
                "builtin {} files, buck2 {} files: {}",
                ours.files.len(),
                theirs.files.len(),
                if cmp.is_equal() {
                    "identical"
                } else {
                    "they differ"
                }
            );
        }
        return Ok(if cmp.is_equal() { super::OK } else { 3 });
    }
    let set = set_by(args.graph)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&set)?);
    } else {
        print_human(&set, args.files);
        if let Some(r) = crate::toolchains::last_report(ws.root())? {
            crate::toolchains::print_report(&r);
        }
    }
    Ok(super::OK)
}

fn print_human(set: &FileSet, files: bool) {
    println!(
        "{} targets, {} packages, {} files",
        set.targets.len(),
        set.packages.len(),
        set.files.len()
    );
    for (label, info) in &set.targets {
        println!("  target  {label}  ({})", info.kind);
    }
    for p in set.packages.keys() {
        println!("  package {p}");
    }
    if files {
        for (p, why) in &set.files {
            println!("  file    {p}  <- {why}");
        }
    }
}
