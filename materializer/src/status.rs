//! `antares status`: the workspace against the manifest, without the source.

use crate::error::{IoContext, Result};
use crate::layout::Layout;
use crate::manifest::Manifest;
use crate::observe::{in_directories, Observed};
use antares_overlay::RepoPath;
use std::collections::BTreeSet;

/// One conflict, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConflictEntry {
    /// The path in conflict.
    pub path: String,
    /// `"modified"` or `"deleted"`: what the source did.
    pub theirs: &'static str,
}

/// What changed in the workspace since the last sync.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    /// Placed files whose content changed.
    pub modified: Vec<String>,
    /// Files no sync placed, inside the synced subtrees.
    pub added: Vec<String>,
    /// Placed files that are gone.
    pub deleted: Vec<String>,
    /// Paths in conflict.
    pub conflicts: Vec<ConflictEntry>,
}

impl Status {
    /// Whether nothing changed and nothing is in conflict.
    pub fn is_clean(&self) -> bool {
        self.modified.is_empty()
            && self.added.is_empty()
            && self.deleted.is_empty()
            && self.conflicts.is_empty()
    }
}

/// Compares the workspace with its manifest. Added files are found by a walk
/// of the workspace that honours `.gitignore` and skips [`crate::untracked::NEVER_TRACKED`].
pub fn status(layout: &Layout) -> Result<Status> {
    let manifest = Manifest::load(&layout.manifest())?;
    let root = layout.root();
    let root_dir = std::fs::File::open(root).at(root.display())?;
    let paths: Vec<&RepoPath> = manifest
        .records
        .keys()
        .filter(|p| !manifest.conflicts.contains_key(*p))
        .collect();
    let observed: Vec<(&RepoPath, Observed)> = in_directories(&root_dir, &paths, |p, look| {
        let o = look(manifest.records.get(p), manifest.saved_at_ns)
            .unwrap_or(Observed::Other { what: "unreadable" });
        Some((p, o))
    });
    let mut st = Status::default();
    for (p, o) in observed {
        match o {
            Observed::Unchanged { .. } => {}
            Observed::Missing => st.deleted.push(p.to_string()),
            Observed::Present { .. } | Observed::Other { .. } | Observed::BehindSymlink => {
                st.modified.push(p.to_string())
            }
        }
    }
    for (p, c) in &manifest.conflicts {
        st.conflicts.push(ConflictEntry {
            path: p.to_string(),
            theirs: if c.theirs.is_some() {
                "modified"
            } else {
                "deleted"
            },
        });
    }
    let known: BTreeSet<&str> = manifest
        .records
        .keys()
        .chain(manifest.conflicts.keys())
        .map(|p| p.as_str())
        .collect();
    st.added = crate::untracked::untracked(
        root,
        &[RepoPath::root()],
        &[],
        &|p| known.contains(p.as_str()),
        None,
    )
    .into_iter()
    .map(|p| p.to_string())
    .collect();
    st.added.sort();
    Ok(st)
}
