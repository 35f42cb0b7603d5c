//! Where a workspace keeps its state: everything under `WORKSPACE/.antares/`.

use std::path::{Path, PathBuf};

/// The name of the state directory at the workspace root. Nothing below it
/// is ever part of the materialized tree (sources leave it out).
pub use antares_overlay::source::STATE_DIR;

use antares_overlay::source::BUCK_OUT;

/// Paths of one workspace.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The layout of the workspace at `root`.
    pub fn new(root: &Path) -> Layout {
        Layout {
            root: root.to_path_buf(),
        }
    }

    /// The workspace root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `.antares/`: every state file of the workspace.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join(STATE_DIR)
    }

    /// The manifest (its journal is beside it).
    pub fn manifest(&self) -> PathBuf {
        self.state_dir().join("manifest")
    }

    /// The placements a running sync is about to make (written and read by
    /// the `intent` module; named here, below it, so the layout stays a leaf).
    pub fn intent(&self) -> PathBuf {
        self.state_dir().join("placing")
    }

    /// The lock that keeps syncs of this workspace one at a time.
    pub fn lock_file(&self) -> PathBuf {
        self.state_dir().join("lock")
    }

    /// Staging area for placements: same file system as the workspace, so
    /// the final step is a rename; emptied at the start of every sync.
    pub fn tmp_dir(&self) -> PathBuf {
        self.state_dir().join("tmp")
    }

    /// The listings of the last untracked-file scan (kept by the `untracked`
    /// module).
    pub fn untracked_cache(&self) -> PathBuf {
        self.state_dir().join("untracked-cache")
    }

    /// The graph cache: the last computed file set with the footprint it
    /// was computed from (kept by the binary, for the patterns last asked).
    pub fn graph_cache(&self) -> PathBuf {
        self.state_dir().join("graph-cache.json")
    }

    /// The file set's source entries recorded at the last sync (kept by the
    /// binary's `set_entries` module).
    pub fn set_entries(&self) -> PathBuf {
        self.state_dir().join("set-entries")
    }

    /// The source's side of each conflict, at the conflicting path, for the
    /// user to compare ("theirs"); the workspace keeps "ours".
    pub fn conflicts_dir(&self) -> PathBuf {
        self.state_dir().join("conflicts")
    }

    /// The upper layer of the workspace's mount: what was written there.
    pub fn upper_dir(&self) -> PathBuf {
        self.state_dir().join("upper")
    }

    /// Where a detached mount logs.
    pub fn logs_dir(&self) -> PathBuf {
        self.state_dir().join("logs")
    }

    /// Made by the mount daemon once the mount and all its bind mounts are
    /// up (and removed when it goes): what a detaching `antares mount` waits
    /// for.
    pub fn mount_ready(&self) -> PathBuf {
        self.state_dir().join("mount.up")
    }

    /// The local `buck-out` directories of the Buck2 sub-projects of the
    /// workspace's mount, one per project, bound on `<project>/buck-out`
    /// there (the mount root's own is the workspace's `buck-out`).
    pub fn sub_project_buck_outs(&self) -> PathBuf {
        self.state_dir().join(BUCK_OUT)
    }

    /// The pid of the process serving the workspace's mount.
    pub fn mount_pid(&self) -> PathBuf {
        self.state_dir().join("mount.pid")
    }

    /// The state of `antares serve` run from this workspace.
    pub fn serve_dir(&self) -> PathBuf {
        self.state_dir().join("serve")
    }
}
