//! `antares resolve PATH --ours|--theirs`: settle one conflict.

use crate::error::{Error, IoContext, Result};
use crate::fsutil::{create_dirs_nofollow, is_absent_or_behind_link, pinned_path, syncfs, StatKey};
use crate::layout::Layout;
use crate::manifest::{Manifest, Record};
use crate::place::{self, Placer, Spot, Staging};
use crate::store::Store;
use antares_overlay::RepoPath;
use std::fs;
use std::io;

/// Which side wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Keep the workspace file; the source's version becomes the base, so
    /// the file then shows as modified (a local edit on top of the source).
    Ours,
    /// Put the source's version into the workspace (or delete the file if
    /// the source deleted it).
    Theirs,
}

/// Resolves the conflict at `path`. The caller holds the workspace lock.
pub fn resolve(layout: &Layout, store: &Store, path: &RepoPath, side: Side) -> Result<()> {
    let mut manifest = Manifest::load(&layout.manifest())?;
    let conflict = manifest
        .conflicts
        .get(path)
        .cloned()
        .ok_or_else(|| Error::Invalid {
            path: path.to_string(),
            message: "has no conflict to resolve (see `antares status`)".into(),
        })?;
    let dest = path.to_fs_path(layout.root());
    let root_dir = fs::File::open(layout.root()).at(layout.root().display())?;
    match (side, conflict.theirs) {
        (Side::Ours, Some(theirs)) => {
            // A stat that never matches, so the next look hashes the file.
            let stat = StatKey {
                ino: 0,
                size: u64::MAX,
                mode: 0,
                mtime_ns: 0,
                ctime_ns: 0,
            };
            manifest.records.insert(
                path.clone(),
                Record {
                    version: theirs,
                    stat,
                },
            );
        }
        (Side::Ours, None) => {
            manifest.records.remove(path);
        }
        (Side::Theirs, Some(theirs)) => {
            let tmp_dir = layout.tmp_dir();
            fs::create_dir_all(&tmp_dir).at(tmp_dir.display())?;
            let staging = Staging::open(&tmp_dir).at(tmp_dir.display())?;
            if let Some(parent) = path.parent() {
                create_dirs_nofollow(layout.root(), parent.as_str())?;
            }
            let spot = Spot::beneath(&root_dir, path.as_str())
                .map_err(|e| Error::io(dest.display(), io::Error::other(place::spot_error(&e))))?;
            let staged = match (&theirs.hash, &theirs.target) {
                (Some(h), _) => {
                    Placer::default()
                        .stage_file(
                            &store.checked_object(h)?,
                            Some(spot.dir()),
                            &staging,
                            theirs.size,
                            if theirs.executable { 0o755 } else { 0o644 },
                        )
                        .at(store.object_path(h).display())?
                        .0
                }
                (None, Some(t)) => place::stage_symlink(t, &staging).at(tmp_dir.display())?,
                (None, None) => {
                    return Err(Error::Invalid {
                        path: path.to_string(),
                        message: "the recorded source version has no content".into(),
                    })
                }
            };
            let mut now = spot.stat().at(dest.display())?;
            if now.is_some_and(|st| st.mode & libc::S_IFMT == libc::S_IFDIR) {
                // An empty directory (left by an earlier resolve) gives way.
                if spot.remove_empty_dir().is_err() {
                    staged.discard(&staging);
                    return Err(Error::Blocked {
                        path: path.clone(),
                        reason: "a directory that is not empty is in the way in the workspace"
                            .into(),
                    });
                }
                now = None;
            }
            let stat = place::commit(staged, &staging, &spot, now)
                .at(dest.display())?
                .ok_or_else(|| Error::Blocked {
                    path: path.clone(),
                    reason: "the workspace file changed while it was being resolved; try again"
                        .into(),
                })?;
            manifest.records.insert(
                path.clone(),
                Record {
                    version: theirs,
                    stat,
                },
            );
        }
        (Side::Theirs, None) => {
            match pinned_path(&root_dir, path.as_str()) {
                Ok((_parent, pinned)) => match fs::symlink_metadata(&pinned) {
                    Ok(m) if m.is_dir() => fs::remove_dir_all(&pinned).at(dest.display())?,
                    Ok(_) => fs::remove_file(&pinned).at(dest.display())?,
                    Err(_) => {}
                },
                // Already gone, or behind a symlink: nothing of ours to delete.
                Err(e) if is_absent_or_behind_link(&e) => {}
                Err(e) => return Err(Error::io(dest.display(), e)),
            }
            manifest.records.remove(path);
        }
    }
    manifest.conflicts.remove(path);
    // The conflict copy, removed beneath the conflicts dir (never through a symlink).
    if let Ok(spot) =
        fs::File::open(layout.conflicts_dir()).and_then(|base| Spot::beneath(&base, path.as_str()))
    {
        let _ = spot.remove_file();
    }
    syncfs(layout.root());
    manifest.save(&layout.manifest())
}
