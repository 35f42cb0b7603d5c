//! The mounts `antares serve` made, persisted so a restarted server still
//! knows (and can delete) them.

use antares_materializer::fsutil::write_atomic;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One mount, as the server keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MountInfo {
    /// A UUID (v4 format), as Scorpio's.
    pub mount_id: String,
    /// The repository path asked for, normalized as Scorpio does (`/`, `/a/b`).
    pub path: String,
    /// The task id: the request's `job_id`, else its `build_id`.
    pub job_id: Option<String>,
    /// The change list laid over the tree, if any.
    #[serde(default)]
    pub cl: Option<String>,
    /// Where `path` appears, as Scorpio's: `MOUNT_ROOT/<mount_id>`.
    pub mountpoint: PathBuf,
    /// The FUSE mount of the whole tree: the mount point itself for `/`,
    /// else `MOUNT_ROOT/.<mount_id>`, with `path` bind-mounted on the
    /// mount point (or, without the privilege to bind, the mount point is
    /// `MOUNT_ROOT/.<mount_id>/<path>`).
    pub mount_root: PathBuf,
    /// Whether the mount point is a bind mount of `path` in the tree.
    #[serde(default)]
    pub bound: bool,
    /// The last CL change failed and the old layering was mounted again:
    /// Scorpio then reports the mount `Mounted`, not `Ready`.
    #[serde(default)]
    pub remounted_after_failure: bool,
    /// The mount's own workspace (its upper layer, its syncs).
    pub workspace: PathBuf,
    #[serde(default)]
    pub created_at_epoch_ms: u64,
    #[serde(default)]
    pub last_seen_epoch_ms: u64,
}

impl MountInfo {
    /// The mount's upper layer (Scorpio's `layers.upper`).
    pub fn upper(&self) -> PathBuf {
        crate::tree::upper_dir_of(&self.workspace)
    }

    /// Notes that a client asked about this mount now.
    pub fn touch(&mut self) {
        self.last_seen_epoch_ms = now_ms();
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Mounts by id, in `STATE/mounts.json`.
pub struct Table {
    file: PathBuf,
    pub mounts: BTreeMap<String, MountInfo>,
}

impl Table {
    pub fn load(dir: &Path) -> Result<Table> {
        let file = dir.join("mounts.json");
        let mounts = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not a mount table", file.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
        };
        Ok(Table { file, mounts })
    }

    pub fn save(&self) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(&self.mounts)?;
        write_atomic(&self.file, &bytes)
            .with_context(|| format!("cannot write {}", self.file.display()))
    }

    pub fn by_job(&self, job: &str) -> Option<&MountInfo> {
        self.mounts
            .values()
            .find(|m| m.job_id.as_deref() == Some(job))
    }

    /// The mount without a task id showing `path` with `cl` (Scorpio
    /// refuses a second one).
    pub fn by_path(&self, path: &str, cl: Option<&str>) -> Option<&MountInfo> {
        self.mounts
            .values()
            .find(|m| m.job_id.is_none() && m.path == path && m.cl.as_deref() == cl)
    }
}
