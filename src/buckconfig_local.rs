//! The workspace's `.buckconfig.local`: the user's lines and antares' own.
//!
//! Buck2 reads only `.buckconfig.d/`, `.buckconfig` and `.buckconfig.local`
//! from a project, and the last is the one place a workspace can add lines
//! of its own (ignore `.antares/`; `[cells] toolchains = antares-toolchains`).
//! So the workspace's file is composed: the user's part (the repository's
//! file, or one the user made on the mount, as the View shows it) followed by
//! a block antares manages, between [`BEGIN`] and [`END`]. Later values win
//! in a buckconfig, so the block's lines hold. The materializer never places
//! or writes back this file; this module does:
//!
//! - an edit of the user's part in the workspace is kept, and written back
//!   into the upper layer when there is one (the mount shows it);
//! - a change on the mount side (a user creating the file there) is taken
//!   in, and the block stays: no conflict with antares' own copy;
//! - both changed since the last sync: the workspace's part stays, the
//!   View's is kept in `.antares/buckconfig.local.source` (and the
//!   workspace's written back when there is an upper layer).
//!
//! See prelude-hooks/antares.buckconfig for the ignore line.

use antares_materializer::fsutil::write_atomic_in;
use antares_materializer::layout::STATE_DIR;
use antares_materializer::sync::WriteBack;
use antares_overlay::{EntryKind, RepoPath, Source};
use anyhow::{bail, Context, Result};
use std::path::Path;

/// The first line of antares' block.
pub const BEGIN: &str =
    "# >>> antares: managed lines, rewritten on each sync; edit above this block >>>";
/// The last line of antares' block.
pub const END: &str = "# <<< antares <<<";

/// The first line of a whole file antares managed before the block existed.
const LEGACY_MARKER: &str = "# Written by antares";

pub const NAME: &str = ".buckconfig.local";

/// What the user's part was when antares last composed the file.
const BASE: &str = "buckconfig.local.base";

/// The source's part, kept when both sides changed it.
const THEIRS: &str = "buckconfig.local.source";

/// Antares' block: `.antares` added to the project's `[project] ignore`
/// (its value as the user's part and the repository leave it), and the
/// toolchains cell pointed at the generated one when there is one.
pub fn block(repo_ignore: Option<&str>, toolchains: Option<(&str, &str)>) -> String {
    let ignore = match repo_ignore.map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) if v.split(',').any(|p| p.trim() == ".antares") => v.to_string(),
        Some(v) => format!("{v}, .antares"),
        None => ".antares".to_string(),
    };
    let mut out = format!(
        "{BEGIN}\n# Not part of the repository, never written back (prelude-hooks/antares.buckconfig).\n\
         [project]\n  ignore = {ignore}\n"
    );
    if let Some((cell, dir)) = toolchains {
        out.push_str(&format!(
            "# `antares sync --toolchains`: the machine's tools (`antares graph --toolchains`).\n\
             [cells]\n  {cell} = {dir}\n"
        ));
    }
    out.push_str(END);
    out.push('\n');
    out
}

/// The user's part of a workspace file: everything but antares' block (a
/// whole file in the old managed form has none).
pub fn user_part(text: &str) -> String {
    if text.starts_with(LEGACY_MARKER) {
        return String::new();
    }
    let mut out = String::new();
    let mut inside = false;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        if bare == BEGIN {
            inside = true;
        } else if bare == END && inside {
            inside = false;
        } else if !inside {
            out.push_str(line);
        }
    }
    out
}

/// Composes the workspace's `.buckconfig.local` (see the module doc).
/// `toolchains`: (cell name, directory) of the generated toolchains cell.
pub fn ensure(
    ws_root: &Path,
    source: &dyn Source,
    write_back: Option<&dyn WriteBack>,
    toolchains: Option<(&str, &str)>,
) -> Result<()> {
    let name = RepoPath::new(NAME)?;
    let dest = ws_root.join(NAME);
    let state = ws_root.join(STATE_DIR);
    let view = match source.stat(&name)? {
        Some(e) if e.kind == EntryKind::File => String::from_utf8(source.read(&e)?)
            .with_context(|| format!("{NAME} in {} is not UTF-8", source.describe()))?,
        Some(_) => bail!(
            "{NAME} in {} is not a regular file; Buck2 reads it as one",
            source.describe()
        ),
        None => String::new(),
    };
    let workspace = match std::fs::symlink_metadata(&dest) {
        Ok(m) if m.is_file() => Some(
            std::fs::read_to_string(&dest)
                .with_context(|| format!("{} is not UTF-8", dest.display()))?,
        ),
        Ok(_) => bail!(
            "{}: not a regular file (a symlink?); antares composes it, remove it",
            dest.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot stat {}", dest.display())),
    };
    let base = std::fs::read_to_string(state.join(BASE)).ok();
    let ours = workspace.as_deref().map(user_part).unwrap_or_default();
    let edited = match &base {
        Some(b) => workspace.is_some() && ours != *b,
        // Before antares first composed it: a file of the user's own.
        None => workspace.as_deref().is_some_and(|t| user_part(t) == t) && ours != view,
    };
    // `seen`: the View's part this composition accounts for, the next base.
    let (user, seen) = if !edited {
        (view.clone(), view)
    } else {
        if base.as_deref().is_some_and(|b| view != b && view != ours) {
            let copy = state.join(THEIRS);
            write_atomic_in(&copy, view.as_bytes(), &state)?;
            eprintln!(
                "  {NAME}: changed in the workspace and in the source; the workspace's lines are kept, the source's are in {}",
                copy.display()
            );
        }
        if let Some(wb) = write_back.filter(|_| ours != view) {
            let tmp = state.join("tmp").join(NAME);
            std::fs::create_dir_all(state.join("tmp"))?;
            write_atomic_in(&tmp, ours.as_bytes(), &state)?;
            wb.put_file(&name, &tmp, false)?;
            wb.flush(Some(std::slice::from_ref(&name)))?;
            let _ = std::fs::remove_file(&tmp);
            eprintln!("  written back: {NAME} (your lines; antares' block stays in the workspace)");
            (ours.clone(), ours)
        } else {
            // Nowhere to write it back: kept in the workspace, and the
            // source's part is what it was compared with.
            (ours, view)
        }
    };
    let ignore = antares_buck::project_cells(source).ok().and_then(|cells| {
        cells
            .root_cell()
            .and_then(|c| c.config.get("project", "ignore").map(str::to_string))
    });
    let mut text = user.clone();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&block(ignore.as_deref(), toolchains));
    if workspace.as_deref() != Some(text.as_str()) {
        // Staged in the state dir: a temp file in the workspace root would
        // be seen by a build (and by a kill's aftermath) as a source file.
        write_atomic_in(&dest, text.as_bytes(), &state)?;
    }
    if base.as_deref() != Some(seen.as_str()) {
        write_atomic_in(&state.join(BASE), seen.as_bytes(), &state)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_repository_ignore_value() {
        assert!(block(Some("docs/drafts, third_party/big"), None)
            .contains("ignore = docs/drafts, third_party/big, .antares\n"));
        assert!(block(None, None).contains("ignore = .antares\n"));
        assert!(block(Some(".antares, x"), None).contains("ignore = .antares, x\n"));
        assert!(!block(None, None).contains("[cells]"));
        assert!(block(None, Some(("toolchains", "antares-toolchains")))
            .contains("[cells]\n  toolchains = antares-toolchains\n"));
    }

    #[test]
    fn the_user_part_is_all_but_the_block() {
        let user = "[build]\n  threads = 2\n";
        let text = format!("{user}{}", block(None, None));
        assert_eq!(user_part(&text), user);
        assert_eq!(user_part(user), user);
        assert_eq!(user_part(&block(None, None)), "");
        assert_eq!(
            user_part("# Written by antares (old form)\n[project]\n  ignore = .antares\n"),
            ""
        );
    }
}
