//! `antares status`: the workspace against the manifest, without the source.

use crate::error::Result;
use crate::layout::{Layout, STATE_DIR};
use crate::manifest::Manifest;
use crate::observe::{observe, Observed};
use antares_overlay::RepoPath;
use rayon::prelude::*;
use std::collections::BTreeSet;

/// Directory names never reported as added: build outputs and state.
pub const NEVER_TRACKED: &[&str] = &[STATE_DIR, "buck-out", ".git"];

/// One conflict, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConflictEntry {
    pub path: String,
    /// `"modified"` or `"deleted"`: what the source did.
    pub theirs: &'static str,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    pub modified: Vec<String>,
    pub added: Vec<String>,
    pub deleted: Vec<String>,
    pub conflicts: Vec<ConflictEntry>,
}

impl Status {
    pub fn is_clean(&self) -> bool {
        self.modified.is_empty() && self.added.is_empty() && self.deleted.is_empty() && self.conflicts.is_empty()
    }
}

/// Compares the workspace with its manifest. Added files are found by a walk
/// of the workspace that honours `.gitignore` and skips [`NEVER_TRACKED`].
pub fn status(layout: &Layout) -> Result<Status> {
    let manifest = Manifest::load(&layout.manifest())?;
    let root = layout.root();
    let records: Vec<_> = manifest.records.iter().collect();
    let observed: Vec<(&RepoPath, Observed)> = records
        .par_iter()
        .filter(|(p, _)| !manifest.conflicts.contains_key(*p))
        .map(|(p, r)| {
            let o = observe(&p.to_fs_path(root), Some(r), manifest.saved_at_ns)
                .unwrap_or(Observed::Other { what: "unreadable" });
            (*p, o)
        })
        .collect();
    let mut st = Status::default();
    for (p, o) in observed {
        match o {
            Observed::Unchanged { .. } => {}
            Observed::Missing => st.deleted.push(p.to_string()),
            Observed::Present { .. } | Observed::Other { .. } => st.modified.push(p.to_string()),
        }
    }
    for (p, c) in &manifest.conflicts {
        st.conflicts.push(ConflictEntry {
            path: p.to_string(),
            theirs: if c.theirs.is_some() { "modified" } else { "deleted" },
        });
    }
    let known: BTreeSet<&str> = manifest
        .records
        .keys()
        .chain(manifest.conflicts.keys())
        .map(|p| p.as_str())
        .collect();
    let walker = ignore::WalkBuilder::new(root)
        .hidden(false)
        .git_ignore(true)
        .git_global(false)
        .git_exclude(false)
        .require_git(false)
        .parents(false)
        .filter_entry(|e| {
            !(e.file_type().is_some_and(|t| t.is_dir())
                && e.file_name().to_str().is_some_and(|n| NEVER_TRACKED.contains(&n)))
        })
        .build();
    for entry in walker.flatten() {
        if entry.file_type().is_some_and(|t| t.is_dir()) {
            continue;
        }
        let Ok(rel) = entry.path().strip_prefix(root) else { continue };
        let rel = rel.to_string_lossy();
        if !known.contains(rel.as_ref()) {
            st.added.push(rel.into_owned());
        }
    }
    st.added.sort();
    Ok(st)
}
