//! `antares hooks install [--dir DIR]`: put the buck2 wrapper on disk.

use crate::cli::{Global, HooksAction, HooksArgs};
use antares_materializer::fsutil::write_atomic;
use anyhow::{bail, Context, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// The wrapper, embedded so an installed antares can install it anywhere.
const WRAPPER: &str = include_str!("../../prelude-hooks/bin/buck2");

/// A line of the wrapper's header that tells it from any other `buck2`.
const MARKER: &str = "# buck2 wrapper from antares";

pub fn run(_global: &Global, args: &HooksArgs) -> Result<i32> {
    let HooksAction::Install(install) = &args.action;
    let dir = match &install.dir {
        Some(d) => d.clone(),
        None => default_dir()?,
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dest = dir.join("buck2");
    if let Ok(m) = std::fs::symlink_metadata(&dest) {
        if m.file_type().is_symlink() || m.is_dir() {
            bail!(
                "{} is a symlink or a directory; not replacing it",
                dest.display()
            );
        }
        let ours = std::fs::read(&dest)
            .map(|b| b.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()))
            .with_context(|| format!("cannot read {}", dest.display()))?;
        if !ours && !install.force {
            bail!(
                "{} exists and is not antares' buck2 wrapper (the real buck2?); not replacing it: choose another --dir, or pass --force",
                dest.display()
            );
        }
    }
    // Temp + rename: replaces a file, never writes through a symlink.
    write_atomic(&dest, WRAPPER.as_bytes())?;
    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot make {} executable", dest.display()))?;
    eprintln!("installed the buck2 wrapper at {}", dest.display());
    eprintln!(
        "put it first on PATH:  export PATH=\"{}:$PATH\"",
        dir.display()
    );
    Ok(super::OK)
}

/// `$XDG_DATA_HOME/antares/bin`, else `~/.local/share/antares/bin`.
fn default_dir() -> Result<PathBuf> {
    crate::workspace::xdg_dir("XDG_DATA_HOME", ".local/share")
        .map(|d| d.join("bin"))
        .context("neither XDG_DATA_HOME nor HOME is set; pass --dir DIR")
}
