//! The placements a sync is about to make, written down before it makes
//! them: the manifest is saved only after the last placement, so without
//! this a sync killed part way leaves files the next sync cannot tell from
//! the user's edits (a false conflict when it moves to another revision,
//! a file left behind for good when that revision deleted it). The next
//! sync adopts every intended path whose content is the intended version.

use crate::error::{Error, IoContext, Result};
use crate::fsutil::write_atomic;
use crate::layout::Layout;
use crate::manifest::{Manifest, Record, Version};
use crate::observe::{observe_in, Observed};
use antares_overlay::RepoPath;
use std::fs;

/// Records that `placements` are about to be made.
pub fn write(layout: &Layout, placements: &[(&RepoPath, &Version)]) -> Result<()> {
    let path = layout.intent();
    let bytes = postcard::to_stdvec(placements).map_err(|e| Error::Invalid {
        path: path.display().to_string(),
        message: format!("cannot encode: {e}"),
    })?;
    write_atomic(&path, &bytes)
}

/// Drops the record of intended placements (the manifest now holds them).
pub fn clear(layout: &Layout) -> Result<()> {
    match fs::remove_file(layout.intent()) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io(layout.intent().display(), e))
        }
        _ => Ok(()),
    }
}

/// After a killed sync: gives every intended path that holds exactly the
/// intended version a manifest record of it, saves the manifest and drops
/// the intent. Paths holding anything else keep their old record (an edit
/// made since stays an edit). Returns how many were adopted.
pub fn recover(layout: &Layout, manifest: &mut Manifest) -> Result<usize> {
    let path = layout.intent();
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io(path.display(), e)),
    };
    let intended: Vec<(RepoPath, Version)> = match postcard::from_bytes(&bytes) {
        Ok(v) => v,
        Err(e) => {
            // Torn or foreign: nothing to adopt, the next sync decides as usual.
            tracing::warn!(path = %path.display(), "unreadable record of a killed sync's placements, ignored: {e}");
            Vec::new()
        }
    };
    let root_dir = fs::File::open(layout.root()).at(layout.root().display())?;
    let mut adopted = 0;
    for (p, version) in intended {
        if manifest
            .records
            .get(&p)
            .is_some_and(|r| r.version == version)
        {
            continue;
        }
        if let Ok(Observed::Present {
            version: ours,
            stat,
        }) = observe_in(&root_dir, p.as_str(), None, manifest.saved_at_ns)
        {
            if ours.same_content(&version) {
                manifest.conflicts.remove(&p);
                manifest.records.insert(p, Record { version, stat });
                adopted += 1;
            }
        }
    }
    if adopted > 0 {
        tracing::info!(adopted, "recognised files placed by an interrupted sync");
        manifest.save(&layout.manifest())?;
    }
    clear(layout)?;
    Ok(adopted)
}
