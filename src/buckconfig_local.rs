//! The workspace's `.buckconfig.local`: Buck2 must ignore `.antares/`.
//! See prelude-hooks/antares.buckconfig for why and when.

use antares_materializer::fsutil::write_atomic_in;
use antares_materializer::layout::STATE_DIR;
use antares_overlay::{RepoPath, Source};
use anyhow::Result;
use std::path::Path;

/// The first line of a `.buckconfig.local` that antares manages.
pub const MARKER: &str = "# Written by antares";

pub const NAME: &str = ".buckconfig.local";

/// The fragment, keeping the repository's own `[project] ignore` value.
pub fn fragment(repo_ignore: Option<&str>) -> String {
    let ignore = match repo_ignore.map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) if v.split(',').any(|p| p.trim() == ".antares") => v.to_string(),
        Some(v) => format!("{v}, .antares"),
        None => ".antares".to_string(),
    };
    format!(
        "{MARKER} (prelude-hooks/antares.buckconfig): Buck2 ignores antares' state.\n\
         # Not part of the repository; rewritten on each sync, never written back.\n\
         [project]\n  ignore = {ignore}\n"
    )
}

/// Whether the workspace's `.buckconfig.local` is antares' own.
pub fn is_managed(ws_root: &Path) -> bool {
    std::fs::read_to_string(ws_root.join(NAME)).is_ok_and(|t| t.starts_with(MARKER))
}

/// Writes the fragment into the workspace unless the repository has its own
/// `.buckconfig.local` or the workspace holds a user's one. Returns whether
/// the workspace's file is antares-managed.
pub fn ensure(ws_root: &Path, source: &dyn Source) -> Result<bool> {
    let name = RepoPath::new(NAME)?;
    let dest = ws_root.join(NAME);
    if source.stat(&name)?.is_some() || (dest.exists() && !is_managed(ws_root)) {
        return Ok(false);
    }
    let ignore = antares_buck::project_cells(source).ok().and_then(|cells| {
        cells
            .root_cell()
            .and_then(|c| c.config.get("project", "ignore").map(str::to_string))
    });
    let text = fragment(ignore.as_deref());
    if std::fs::read_to_string(&dest).ok().as_deref() != Some(text.as_str()) {
        // Staged in the state dir: a temp file in the workspace root would
        // be seen by a build (and by a kill's aftermath) as a source file.
        write_atomic_in(&dest, text.as_bytes(), &ws_root.join(STATE_DIR))?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_repository_ignore_value() {
        assert!(fragment(Some("docs/drafts, third_party/big"))
            .contains("ignore = docs/drafts, third_party/big, .antares"));
        assert!(fragment(None).contains("ignore = .antares\n"));
        assert!(fragment(Some(".antares, x")).contains("ignore = .antares, x\n"));
        assert!(fragment(None).starts_with(MARKER));
    }
}
