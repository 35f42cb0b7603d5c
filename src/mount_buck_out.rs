//! `buck-out` at every Buck2 project root of a mounted tree, not only at
//! the mount root: buck2 keeps its SQLite state in `<project root>/buck-out`,
//! which must never be on FUSE (`docs/architecture.md#buck-state-off-fuse`), and Orion builds in
//! `<mountpoint>/<repo_prefix>`, a sub-project of the monorepo.
//!
//! buck2's project root for a working directory is the nearest directory at
//! or above it with a `.buckroot`, else the outermost one with a
//! `.buckconfig`. The project roots of a tree are found from its listing
//! when it is mounted; each one below the root gets a kernel bind mount of
//! a local directory of the workspace's state (`.antares/buck-out/<path>`)
//! on `<path>/buck-out`. The mount root's own `buck-out` is the mount's
//! bind directory, as before.

use antares_overlay::source::BUCK_OUT;
use antares_overlay::{EntryKind, RepoPath, TreeEntry};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The Buck2 project roots below the root of a tree listed by `entries`
/// (every entry of the tree, as `Source::walk` returns them): for each
/// directory holding a `.buckroot` or a `.buckconfig`, the project root
/// buck2 would pick when run there. The root itself is left out.
pub fn project_roots<'a>(entries: impl IntoIterator<Item = &'a TreeEntry>) -> Vec<String> {
    let mut roots_marked = BTreeSet::new();
    let mut configs = BTreeSet::new();
    for e in entries {
        if e.kind == EntryKind::Dir {
            continue;
        }
        let (dir, name) = match e.path.as_str().rsplit_once('/') {
            Some((d, n)) => (d.to_string(), n),
            None => (String::new(), e.path.as_str()),
        };
        match name {
            ".buckroot" => {
                roots_marked.insert(dir);
            }
            ".buckconfig" => {
                configs.insert(dir);
            }
            _ => {}
        }
    }
    let ancestors = |d: &str| -> Vec<String> {
        // `d` and every directory above it, nearest first, ending at "".
        let mut out = vec![d.to_string()];
        let mut cur = d;
        while let Some((up, _)) = cur.rsplit_once('/') {
            out.push(up.to_string());
            cur = up;
        }
        if !d.is_empty() {
            out.push(String::new());
        }
        out
    };
    let project_root = |d: &str| -> String {
        let up = ancestors(d);
        if let Some(r) = up.iter().find(|a| roots_marked.contains(*a)) {
            return r.clone();
        }
        up.iter()
            .rev()
            .find(|a| configs.contains(*a))
            .cloned()
            .unwrap_or_default()
    };
    let found: BTreeSet<String> = roots_marked
        .iter()
        .chain(configs.iter())
        .map(|d| project_root(d))
        .filter(|r| !r.is_empty())
        .collect();
    found.into_iter().collect()
}

/// The local directory that holds sub-project `root`'s `buck-out`: below
/// `buck_outs` (the workspace's [`Layout::sub_project_buck_outs`], never
/// inside the workspace's tree, where a directory of the repository could
/// be a symlink), one level per project, `/` written as `%2F` (and `%` as
/// `%25`) so two projects never share one.
///
/// [`Layout::sub_project_buck_outs`]: antares_materializer::layout::Layout::sub_project_buck_outs
pub fn local_dir(buck_outs: &Path, root: &str) -> PathBuf {
    let name = root.replace('%', "%25").replace('/', "%2F");
    buck_outs.join(name)
}

/// Makes `<root>/buck-out` in the upper layer `upper` for each project
/// root, before the mount is up. Made through the mount instead, the
/// upper-layer watcher would invalidate the new entry a moment later, and
/// the kernel detaches any mount sitting on an invalidated dentry. A root
/// whose directories in the upper layer are not plain directories is left
/// out, with the reason on stderr.
pub fn prepare(upper: &Path, roots: Vec<String>) -> Vec<String> {
    roots
        .into_iter()
        .filter(
            |root| match make_dirs(upper, &format!("{root}/{BUCK_OUT}")) {
                Ok(()) => true,
                Err(why) => {
                    eprintln!("  warning: {root}/buck-out stays on the FUSE mount: {why}");
                    false
                }
            },
        )
        .collect()
}

/// `mkdir -p base/rel`, refusing to go through anything but a directory
/// (never follows a symlink).
fn make_dirs(base: &Path, rel: &str) -> Result<(), String> {
    let mut p = base.to_path_buf();
    for name in rel.split('/') {
        p.push(name);
        match std::fs::symlink_metadata(&p) {
            Ok(md) if md.is_dir() => {}
            Ok(_) => return Err(format!("{} is not a directory", p.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match std::fs::create_dir(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(format!("cannot create {}: {e}", p.display())),
            },
            Err(e) => return Err(format!("{}: {e}", p.display())),
        }
    }
    Ok(())
}

/// Binds each sub-project's local `buck-out` on `MOUNT/<root>/buck-out`
/// (made in the upper layer by [`prepare`]). Returns one line per project for the log; a project whose
/// directory is not a plain directory of the tree, or without the
/// privilege to bind, is named with the reason (its buck-out then stays on
/// the FUSE mount).
pub fn bind_all(mountpoint: &Path, buck_outs: &Path, roots: &[String]) -> Vec<String> {
    roots
        .iter()
        .map(|root| match bind_one(mountpoint, buck_outs, root) {
            Ok(local) => format!(
                "  {root}/buck-out: bind mount of {} (local disk)",
                local.display()
            ),
            Err(why) => format!(
                "  warning: {root}/buck-out stays on the FUSE mount (buck2's state there is not \
                 safe): {why}"
            ),
        })
        .collect()
}

fn bind_one(mountpoint: &Path, buck_outs: &Path, root: &str) -> Result<PathBuf, String> {
    RepoPath::new(root).map_err(|e| e.to_string())?;
    crate::serve::root::check_tree_dir(mountpoint, root)?;
    let local = local_dir(buck_outs, root);
    std::fs::create_dir_all(&local)
        .map_err(|e| format!("cannot create {}: {e}", local.display()))?;
    crate::serve::root::check_tree_dir(mountpoint, &format!("{root}/{BUCK_OUT}"))?;
    let target = mountpoint.join(root).join(BUCK_OUT);
    antares_overlay::fuse::bind_mount(&local, &target).map_err(|e| {
        if e.raw_os_error() == Some(libc::EPERM) {
            "no privilege to bind mount (run as root)".to_string()
        } else {
            format!(
                "cannot bind {} on {}: {e}",
                local.display(),
                target.display()
            )
        }
    })?;
    Ok(local)
}

/// Unbinds every mount strictly below `mountpoint` except its own
/// `buck-out` (the daemon removes that one), deepest first, so the FUSE
/// mount itself can be unmounted cleanly.
pub fn unbind_below(mountpoint: &Path) {
    let own = mountpoint.join(BUCK_OUT);
    let mut below: Vec<PathBuf> = antares_overlay::mountinfo::mounted_below(mountpoint)
        .into_iter()
        .filter(|m| *m != own)
        .collect();
    below.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
    below.dedup();
    for m in below {
        if let Err(e) = antares_overlay::fuse::unbind(&m) {
            tracing::warn!("cannot unbind {}: {e}", m.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use antares_overlay::ObjectId;

    fn file(p: &str) -> TreeEntry {
        TreeEntry {
            path: RepoPath::new(p).unwrap(),
            kind: EntryKind::File,
            executable: false,
            size: None,
            oid: ObjectId::git(&"0".repeat(40)).unwrap(),
        }
    }

    fn roots(paths: &[&str]) -> Vec<String> {
        let e: Vec<TreeEntry> = paths.iter().map(|p| file(p)).collect();
        project_roots(&e)
    }

    #[test]
    fn outermost_buckconfig_unless_a_buckroot_is_nearer() {
        // A root .buckconfig takes every nested one: no sub-project.
        assert!(roots(&[".buckconfig", "a/.buckconfig", "a/b/.buckconfig"]).is_empty());
        // No root .buckconfig: the outermost below it.
        assert_eq!(
            roots(&["a/.buckconfig", "a/b/.buckconfig", "c/BUCK"]),
            ["a"]
        );
        // A .buckroot is a project root wherever it is (mega's fixtures).
        assert_eq!(
            roots(&[
                ".buckconfig",
                ".buckroot",
                "t/f/.buckconfig",
                "t/f/.buckroot"
            ]),
            ["t/f"]
        );
        // A .buckconfig below a .buckroot belongs to that project.
        assert_eq!(
            roots(&["p/.buckroot", "p/.buckconfig", "p/q/.buckconfig"]),
            ["p"]
        );
    }

    #[test]
    fn local_dirs_never_collide() {
        let s = Path::new("/s");
        assert_ne!(local_dir(s, "a/b"), local_dir(s, "a%2Fb"));
        assert_eq!(local_dir(s, "a/b"), Path::new("/s/a%2Fb"));
    }
}
