//! `antares init --source SPEC WORKSPACE`

use crate::cli::{Global, InitArgs};
use crate::workspace::{Config, Workspace};
use antares_materializer::layout::{Layout, STATE_DIR};
use antares_overlay::SourceSpec;
use anyhow::{bail, Context, Result};

pub fn run(global: &Global, args: &InitArgs) -> Result<i32> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let spec = SourceSpec::parse(&args.source)?.absolutize(&cwd);
    // Open the source first: a bad spec must leave nothing behind.
    let source = antares_overlay::source::open(&spec, None)
        .with_context(|| format!("cannot open source {spec}"))?;
    let root = cwd.join(&args.workspace);
    if root.join(STATE_DIR).exists() {
        bail!(
            "{} is already an antares workspace ({STATE_DIR}/ exists)",
            root.display()
        );
    }
    if root.exists() && !root.is_dir() {
        bail!("{} exists and is not a directory", root.display());
    }
    let created_root = !root.exists();
    let layout = Layout::new(&root);
    let config = Config {
        source: spec,
        cache: global.cache.as_ref().map(|c| cwd.join(c)),
        paths: Vec::new(),
        targets: Vec::new(),
        toolchains: None,
        mountpoint: None,
    };
    let res = std::fs::create_dir_all(layout.state_dir())
        .with_context(|| format!("cannot create {}", layout.state_dir().display()))
        .and_then(|()| Workspace::save_config(&layout, &config));
    if let Err(e) = res {
        // Leave nothing half-written.
        let _ = std::fs::remove_dir_all(layout.state_dir());
        if created_root {
            let _ = std::fs::remove_dir(&root);
        }
        return Err(e);
    }
    eprintln!(
        "initialized workspace {} reading {}{}",
        root.display(),
        source.describe(),
        source
            .revision()
            .map(|r| format!(" (revision {r})"))
            .unwrap_or_default()
    );
    eprintln!(
        "next: antares -C {} sync PATH…  (`.` for everything)",
        root.display()
    );
    Ok(super::OK)
}
