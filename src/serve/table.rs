//! The mounts `antares serve` made, persisted so a restarted server still
//! knows (and can delete) them.

use antares_materializer::fsutil::write_atomic;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One mount, as the API reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MountInfo {
    pub mount_id: String,
    /// The repository path asked for (`/` or `/a/b`).
    pub path: String,
    pub job_id: Option<String>,
    /// Where `path` appears: the mount root joined with `path`.
    pub mountpoint: PathBuf,
    /// The FUSE mount root.
    pub mount_root: PathBuf,
    /// The mount's own workspace (its syncs land there).
    pub workspace: PathBuf,
    pub created_at: u64,
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
}
