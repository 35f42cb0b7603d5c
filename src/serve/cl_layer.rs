//! A mount's CL layer on disk, in the form of Scorpio's `layers.cl`
//! directory (`{cl_root}/{mount_id}`): the change list's new, modified and
//! renamed-to files at their paths relative to the mount's `path`, and a
//! whiteout (a 0/0 character device) for each deleted file and each
//! rename's old path; entries outside the mount's `path` are left out, as
//! Scorpio's `relative_path_for_mount` does.
//!
//! The mount lays the CL from its own copy; this directory is what
//! `layers.cl` names, and building it before mounting is how a CL that
//! cannot be read gets Scorpio's answer (500 `INTERNAL_ERROR`, as its
//! `build_cl_layer`) rather than a mount failure (`FUSE_ERROR`).

#![allow(unsafe_code)] // raw syscalls, each with its SAFETY note

use antares_overlay::source::cl::ChangeList;
use antares_overlay::source::{MonoOptions, MonoSource};
use antares_overlay::{RepoPath, SourceSpec};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Fetches change list `link` of the server in `source` (a `mono:` spec)
/// and writes it into `dir` (made anew) for the mount showing `rel` (the
/// repository-relative path, empty for the whole tree). Blocking; the
/// Mono client runs on a thread of its own (it owns a runtime).
pub fn build(source: &str, link: &str, rel: &str, dir: &Path) -> Result<(), String> {
    let (url, refs) = match SourceSpec::parse(source) {
        Ok(SourceSpec::Mono { url, refs, .. }) => (url, refs),
        _ => return Err(format!("{source} is not a mono: source")),
    };
    let link_owned = link.to_string();
    let cl = std::thread::spawn(move || {
        MonoSource::open(&url, refs.as_deref(), MonoOptions::default())
            .and_then(|m| m.change_list(&link_owned))
    })
    .join()
    .map_err(|_| "the change list fetch panicked".to_string())?
    .map_err(|e| format!("failed to fetch CL files: {e}"))?;
    write(&cl, rel, dir)
}

/// Writes `cl` below `dir`, emptied first. Every directory on the way is
/// one this function made, so no write can follow a symlink.
fn write(cl: &ChangeList, rel: &str, dir: &Path) -> Result<(), String> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("failed to clear CL dir {}: {e}", dir.display())),
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("failed to create CL dir {}: {e}", dir.display()))?;
    let base = RepoPath::new(rel).map_err(|e| format!("mount path {rel:?}: {e}"))?;
    let below = |p: &RepoPath| -> Option<String> {
        if base.as_str().is_empty() {
            return Some(p.as_str().to_string());
        }
        p.as_str()
            .strip_prefix(base.as_str())
            .and_then(|r| r.strip_prefix('/'))
            .map(str::to_string)
    };
    for (path, file) in &cl.files {
        let Some(r) = below(path) else { continue };
        let dest = dir.join(&r);
        make_parent(&dest)?;
        antares_materializer::fsutil::write_atomic(&dest, &file.content)
            .map_err(|e| format!("failed to write {}: {e}", dest.display()))?;
    }
    for path in &cl.whiteouts {
        let Some(r) = below(path) else { continue };
        let dest = dir.join(&r);
        make_parent(&dest)?;
        whiteout(&dest)?;
    }
    Ok(())
}

fn make_parent(dest: &Path) -> Result<(), String> {
    match dest.parent() {
        Some(p) => std::fs::create_dir_all(p)
            .map_err(|e| format!("failed to create CL parent dir {}: {e}", p.display())),
        None => Ok(()),
    }
}

/// A 0/0 character device, overlayfs' and Scorpio's whiteout. Without the
/// privilege to make devices (not root) it is left out with a warning: the
/// mount's own CL layer hides the path all the same.
fn whiteout(dest: &Path) -> Result<(), String> {
    let c = std::ffi::CString::new(dest.as_os_str().as_bytes())
        .map_err(|_| format!("whiteout path {} has a NUL byte", dest.display()))?;
    // SAFETY: mknod on a NUL-terminated path we own.
    if unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR, 0) } == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EPERM) {
        tracing::warn!("no privilege to make whiteout {}: left out", dest.display());
        return Ok(());
    }
    Err(format!("failed to create whiteout {}: {e}", dest.display()))
}
