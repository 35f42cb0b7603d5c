//! Where `antares serve` puts mounts and how it watches them: the mount
//! root (outside every Buck2 project), the one-server-per-workspace lock,
//! liveness of a mount, and resolving a requested path inside the tree.

#![allow(unsafe_code)] // raw syscalls, each with its SAFETY note

use anyhow::{bail, Context, Result};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default mount root: `$XDG_STATE_HOME/antares/mounts` (else
/// `~/.local/state/antares/mounts`), outside every workspace.
pub fn default_mount_root() -> Result<PathBuf> {
    crate::workspace::state_home()
        .map(|d| d.join("mounts"))
        .context("neither XDG_STATE_HOME nor HOME is set; pass --mount-root DIR")
}

/// Makes `dir` (absolute) and refuses it when it or a directory above it
/// has a `.buckconfig`: buck2, run in a mount there whose tree lacks a
/// `.buckroot`, would take that outer directory as its project root.
pub fn prepare_mount_root(dir: &Path) -> Result<PathBuf> {
    let dir = std::path::absolute(dir).with_context(|| format!("{}", dir.display()))?;
    if let Some(project) = dir.ancestors().find(|a| a.join(".buckconfig").exists()) {
        bail!(
            "mount root {}: {} has a .buckconfig, so buck2 run in a mount below it would take \
             that directory as its project root; choose a --mount-root outside every Buck2 project",
            dir.display(),
            project.display()
        );
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// Whether users other than the mounting one can enter the mounts (a build
/// worker often runs as another user), in words for the log.
pub fn other_users_message() -> String {
    if antares_overlay::fuse::allows_other_users() {
        "mounts are open to every user (allow_other)".into()
    } else {
        "warning: mounts are open to this user only: a build worker running as another user \
         cannot enter them; add `user_allow_other` to /etc/fuse.conf to allow it"
            .into()
    }
}

/// Held for the server's life: a second `antares serve` on the same
/// workspace would share (and overwrite) its mount table.
pub struct ServeLock {
    _file: std::fs::File,
}

impl ServeLock {
    pub fn take(state: &Path) -> Result<ServeLock> {
        let path = state.join("serve.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            bail!(
                "another antares serve (pid {}) already serves this workspace ({} is locked); \
                 stop it first or serve from another workspace",
                holder.trim(),
                path.display()
            );
        }
        // Who holds it, for the message above (the file is only a lock:
        // a torn pid costs nothing).
        file.set_len(0)
            .and_then(|()| {
                std::os::unix::fs::FileExt::write_at(
                    &file,
                    std::process::id().to_string().as_bytes(),
                    0,
                )
            })
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(ServeLock { _file: file })
    }
}

/// Whether the file system at `mount_root` answers: it must be mounted,
/// and `statfs` on it (never answered from the kernel's caches) must not
/// say ENOTCONN (its daemon died), within 2 s (a hung daemon).
pub async fn alive(mount_root: &Path) -> Result<(), String> {
    if !antares_overlay::mountinfo::is_mounted(mount_root) {
        return Err(format!("{} is not mounted", mount_root.display()));
    }
    let p = mount_root.to_path_buf();
    let stale = tokio::task::spawn_blocking(move || antares_overlay::fuse::is_stale(&p));
    match tokio::time::timeout(Duration::from_secs(2), stale).await {
        Ok(Ok(false)) => Ok(()),
        Ok(Ok(true)) => Err("the mount's daemon is gone (ENOTCONN)".into()),
        Ok(Err(e)) => Err(format!("cannot check the mount: {e}")),
        Err(_) => Err("the mount did not answer within 2 s".into()),
    }
}

/// Checks that `rel` is a directory of the tree mounted at `root`,
/// resolving it in the tree itself: every component is looked up without
/// following symlinks, so a symlink in the tree (`etcdir -> /etc`) can
/// never make the mount point a directory outside it.
pub fn check_tree_dir(root: &Path, rel: &str) -> Result<(), String> {
    let mut p = root.to_path_buf();
    let mut so_far = String::new();
    for name in rel.split('/').filter(|c| !c.is_empty()) {
        p.push(name);
        so_far.push('/');
        so_far.push_str(name);
        let md = std::fs::symlink_metadata(&p)
            .map_err(|e| format!("{so_far}: not in the tree ({e})"))?;
        if md.file_type().is_symlink() {
            return Err(format!(
                "{so_far} is a symlink in the tree; a mount path must be a directory of the tree"
            ));
        }
        if !md.is_dir() {
            return Err(format!("{so_far} is not a directory"));
        }
    }
    Ok(())
}
