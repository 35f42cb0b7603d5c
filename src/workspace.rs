//! Finding a workspace and reading/writing its config.

use antares_materializer::fsutil::write_atomic;
use antares_materializer::layout::{Layout, STATE_DIR};
use antares_materializer::WorkspaceLock;
use antares_overlay::mountinfo::{self, Mount};
use antares_overlay::{RepoPath, SourceSpec};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// `WORKSPACE/.antares/config.toml`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Config {
    pub source: SourceSpec,
    /// Content store directory; None = the default cache dir.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<PathBuf>,
    /// What `antares sync` without arguments syncs: source paths.
    #[serde(default)]
    pub paths: Vec<String>,
    /// What `antares sync` without arguments syncs: Buck2 target patterns
    /// (absolute, as resolved when they were given).
    #[serde(default)]
    pub targets: Vec<String>,
    /// `antares sync --toolchains`, kept for later syncs (None: the repository's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toolchains: Option<crate::toolchains::Mode>,
    /// Where `antares mount` mounts by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mountpoint: Option<PathBuf>,
}

/// An opened workspace.
pub struct Workspace {
    pub layout: Layout,
    pub config: Config,
    /// Set when the workspace was found from inside its mount: relative
    /// paths and patterns are then taken relative to the mount point.
    pub via_mount: Option<PathBuf>,
}

const CONFIG: &str = "config.toml";

impl Workspace {
    /// Takes the workspace's lock (one sync or resolve at a time), waiting
    /// for a holder with a note on stderr when `wait`, else failing.
    pub fn lock(&self, wait: bool) -> Result<WorkspaceLock> {
        Ok(WorkspaceLock::acquire(
            &self.layout.lock_file(),
            wait,
            |pid| {
                eprintln!("waiting for another antares (pid {pid}) to finish with this workspace…")
            },
        )?)
    }

    /// Finds the workspace: `explicit`, else the current directory or its
    /// nearest ancestor holding `.antares/config.toml`.
    pub fn find(explicit: Option<&Path>) -> Result<Workspace> {
        let root = match explicit {
            Some(p) => {
                let p = std::path::absolute(p).with_context(|| format!("{}", p.display()))?;
                if !p.join(STATE_DIR).join(CONFIG).is_file() {
                    bail!("{} is not an antares workspace (no {STATE_DIR}/{CONFIG}); create one with `antares init`", p.display());
                }
                p
            }
            None => {
                let cwd = std::env::current_dir().context("cannot read the current directory")?;
                let mut mounts = read_registry();
                // The kernel names the workspace of an antares mount for any
                // user and HOME; the registry is per user. A mount that names
                // none is reported only if nothing else is found.
                let from_kernel = match mountinfo_workspace(&cwd) {
                    Ok(Some((mountpoint, root))) => {
                        mounts.insert(mountpoint, root);
                        None
                    }
                    Ok(None) => None,
                    Err(e) => Some(e),
                };
                match search(&cwd, &mounts) {
                    Some(Found::Root(root)) => root,
                    Some(Found::Mount { mountpoint, root }) => {
                        let layout = Layout::new(&root);
                        let config = Self::load_config(&layout)?;
                        return Ok(Workspace { layout, config, via_mount: Some(mountpoint) });
                    }
                    None => match from_kernel {
                        Some(e) => return Err(e),
                        None => bail!(
                            "{} is not inside an antares workspace or mount; use --workspace DIR or create one with `antares init`",
                            cwd.display()
                        ),
                    },
                }
            }
        };
        let layout = Layout::new(&root);
        let config = Self::load_config(&layout)?;
        Ok(Workspace {
            layout,
            config,
            via_mount: None,
        })
    }

    fn load_config(layout: &Layout) -> Result<Config> {
        let path = layout.state_dir().join(CONFIG);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("{}: invalid config", path.display()))
    }

    pub fn save_config(layout: &Layout, config: &Config) -> Result<()> {
        let path = layout.state_dir().join(CONFIG);
        let text = toml::to_string_pretty(config).context("cannot encode config")?;
        write_atomic(&path, text.as_bytes()).map_err(Into::into)
    }

    pub fn root(&self) -> &Path {
        self.layout.root()
    }

    /// The content store directory: `--cache`, the config, or the XDG cache dir.
    pub fn store_dir(&self, flag: Option<&Path>) -> Result<PathBuf> {
        if let Some(p) = flag.or(self.config.cache.as_deref()) {
            return Ok(p.to_path_buf());
        }
        default_cache_dir()
    }

    /// The current directory as a source path ("" outside the workspace),
    /// the package that relative target patterns start from.
    pub fn current_dir(&self) -> Result<RepoPath> {
        self.source_path(".")
    }

    /// Turns a user-given path into a source path: relative to the current
    /// directory when that is inside the workspace, else to the root.
    pub fn source_path(&self, arg: &str) -> Result<RepoPath> {
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        let anchor = self.via_mount.as_deref().unwrap_or(self.root());
        let base = match cwd.strip_prefix(anchor) {
            Ok(rel) => rel.to_path_buf(),
            Err(_) => PathBuf::new(),
        };
        let joined = if Path::new(arg).is_absolute() {
            match Path::new(arg).strip_prefix(anchor) {
                Ok(rel) => rel.to_path_buf(),
                Err(_) => bail!("{arg}: is outside the workspace {}", self.root().display()),
            }
        } else {
            base.join(arg)
        };
        // Lexical normalisation; a path climbing above the root is refused.
        let mut parts: Vec<String> = Vec::new();
        for comp in joined.components() {
            match comp {
                std::path::Component::CurDir => {}
                std::path::Component::ParentDir => {
                    if parts.pop().is_none() {
                        bail!(
                            "{arg}: escapes the workspace root {}",
                            self.root().display()
                        );
                    }
                }
                std::path::Component::Normal(s) => match s.to_str() {
                    Some(s) => parts.push(s.to_string()),
                    None => bail!("{arg}: not valid UTF-8"),
                },
                _ => bail!("{arg}: not a path inside the workspace"),
            }
        }
        RepoPath::new(&parts.join("/")).with_context(|| format!("{arg}: invalid path"))
    }
}

/// antares' directory in an XDG base directory: `$VAR/antares`, else
/// `$HOME/UNDER_HOME/antares` (an empty variable counts as unset).
pub fn xdg_dir(var: &str, under_home: &str) -> Option<PathBuf> {
    let set = |v: &str| std::env::var_os(v).filter(|v| !v.is_empty());
    let base = set(var)
        .map(PathBuf::from)
        .or_else(|| set("HOME").map(|h| PathBuf::from(h).join(under_home)))?;
    Some(base.join("antares"))
}

/// `$XDG_CACHE_HOME/antares`, else `~/.cache/antares`.
pub fn default_cache_dir() -> Result<PathBuf> {
    xdg_dir("XDG_CACHE_HOME", ".cache")
        .context("neither XDG_CACHE_HOME nor HOME is set; pass --cache DIR")
}

/// antares' state directory outside any workspace: `$XDG_STATE_HOME/antares`,
/// else `~/.local/state/antares`.
pub fn state_home() -> Option<PathBuf> {
    xdg_dir("XDG_STATE_HOME", ".local/state")
}

/// The registry of live mounts: mount point → workspace, so that commands
/// (and the buck2 wrapper) run inside a mount find their workspace.
fn registry_path() -> Option<PathBuf> {
    Some(state_home()?.join("mounts.json"))
}

fn read_registry() -> std::collections::BTreeMap<PathBuf, PathBuf> {
    registry_path()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn write_registry(map: &std::collections::BTreeMap<PathBuf, PathBuf>) -> Result<()> {
    let path = registry_path().context("neither XDG_STATE_HOME nor HOME is set")?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    write_atomic(&path, &serde_json::to_vec_pretty(map)?).map_err(Into::into)
}

pub fn register_mount(mountpoint: &Path, workspace: &Path) -> Result<()> {
    let mut map = read_registry();
    map.insert(mountpoint.to_path_buf(), workspace.to_path_buf());
    write_registry(&map)
}

pub fn unregister_mount(mountpoint: &Path) -> Result<()> {
    let mut map = read_registry();
    if map.remove(mountpoint).is_some() {
        write_registry(&map)?;
    }
    Ok(())
}

/// The workspace whose mount is registered at `mountpoint` (absolute).
pub fn mount_owner(mountpoint: &Path) -> Option<PathBuf> {
    read_registry()
        .remove(mountpoint)
        .filter(|ws| is_workspace(ws))
}

/// What the upward search found.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    Root(PathBuf),
    Mount { mountpoint: PathBuf, root: PathBuf },
}

/// Whether `dir` holds a workspace's state: `.antares/config.toml` in a
/// real `.antares` directory (not a symlink to one elsewhere).
fn is_workspace(dir: &Path) -> bool {
    std::fs::symlink_metadata(dir.join(STATE_DIR)).is_ok_and(|m| m.is_dir())
        && dir.join(STATE_DIR).join(CONFIG).is_file()
}

/// The workspace of `cwd`: the outermost ancestor holding a workspace's
/// state, else the workspace of the registered mount holding `cwd`.
///
/// A repository must not be able to make a directory a workspace (its
/// config names the source and cache a sync reads). Everything a repository
/// controls lies inside a workspace (what a sync placed) or a mount (what it
/// shows), so a `.antares` found inside another workspace, or at or below
/// the mount point holding `cwd`, is passed by with a warning; the
/// workspace's own state is above both. Sources also never yield a
/// `.antares` entry, so such a directory is one the user (or an older
/// antares) left there. A workspace nested in another is therefore not
/// found from inside: give it with `--workspace`.
fn search(cwd: &Path, mounts: &std::collections::BTreeMap<PathBuf, PathBuf>) -> Option<Found> {
    let mount = mounts
        .iter()
        .filter(|(m, ws)| cwd.starts_with(m) && is_workspace(ws))
        .max_by_key(|(m, _)| m.as_os_str().len());
    let candidates: Vec<&Path> = cwd.ancestors().filter(|d| is_workspace(d)).collect();
    let outermost = candidates
        .iter()
        .rev()
        .find(|d| !mount.is_some_and(|(m, _)| d.starts_with(m)));
    for d in &candidates {
        if Some(d) != outermost {
            tracing::warn!(
                "{} holds {STATE_DIR}/{CONFIG} but lies inside a workspace or mount, where a repository could have put it; not taken for a workspace (use --workspace to name one)",
                d.display()
            );
        }
    }
    match (outermost, mount) {
        (Some(root), _) => Some(Found::Root(root.to_path_buf())),
        (None, Some((m, ws))) => Some(Found::Mount {
            mountpoint: m.clone(),
            root: ws.clone(),
        }),
        (None, None) => None,
    }
}

/// What a workspace's mount shows as its source in `/proc/self/mountinfo`.
const MOUNT_SOURCE_PREFIX: &str = "antares-workspace:";

/// The mount source naming `workspace` (see [`mountinfo_workspace`]).
pub fn mount_source(workspace: &Path) -> String {
    format!("{MOUNT_SOURCE_PREFIX}{}", workspace.display())
}

/// The (mount point, workspace) of the antares mount holding `dir`, asked of
/// the kernel: the mount's source in `/proc/self/mountinfo` names its
/// workspace. Works for any user and any HOME, where the registry is per
/// user. An antares mount that names no workspace (made by `antares serve`,
/// or by an older antares) is an error saying so, never a silent miss: a
/// build run there would skip the sync.
fn mountinfo_workspace(dir: &Path) -> Result<Option<(PathBuf, PathBuf)>> {
    let Some((mountpoint, source)) = antares_mount_of(mountinfo::read(), dir) else {
        return Ok(None);
    };
    match source.strip_prefix(MOUNT_SOURCE_PREFIX).map(PathBuf::from) {
        Some(ws) if ws.join(STATE_DIR).join(CONFIG).is_file() => Ok(Some((mountpoint, ws))),
        Some(ws) => bail!(
            "{} is inside the antares mount {}, whose workspace {} is gone (no {STATE_DIR}/{CONFIG})",
            dir.display(),
            mountpoint.display(),
            ws.display()
        ),
        None => bail!(
            "{} is inside an antares mount at {} that names no workspace (source {source:?}); use --workspace DIR",
            dir.display(),
            mountpoint.display()
        ),
    }
}

/// The innermost antares mount holding `dir` among `mounts`:
/// (mount point, source).
fn antares_mount_of(mounts: Vec<Mount>, dir: &Path) -> Option<(PathBuf, String)> {
    mounts
        .into_iter()
        .filter(|m| {
            // A root mount made without fusermount has no subtype: plain `fuse`.
            let antares = m.fstype == "fuse.antares"
                || (m.fstype == "fuse"
                    && (m.source.starts_with(MOUNT_SOURCE_PREFIX)
                        || m.source.starts_with("antares:")));
            antares && dir.starts_with(&m.mountpoint)
        })
        .map(|m| (m.mountpoint, m.source))
        .max_by_key(|(m, _)| m.as_os_str().len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace(dir: &Path) {
        std::fs::create_dir_all(dir.join(STATE_DIR)).unwrap();
        std::fs::write(dir.join(STATE_DIR).join(CONFIG), "").unwrap();
    }

    #[test]
    fn the_search_passes_by_state_a_repository_could_have_put_there() {
        let t = tempfile::tempdir().unwrap();
        let (ws, mnt) = (t.path().join("ws"), t.path().join("mnt"));
        workspace(&ws);
        workspace(&ws.join("app"));
        workspace(&mnt.join("app"));
        std::fs::create_dir_all(ws.join("lib")).unwrap();
        let none = std::collections::BTreeMap::new();
        let root = |d: &Path| Some(Found::Root(d.to_path_buf()));
        assert_eq!(search(&ws.join("lib"), &none), root(&ws));
        assert_eq!(search(&ws.join("app"), &none), root(&ws));
        // Outside any mount, a lone workspace is the user's.
        assert_eq!(search(&mnt.join("app"), &none), root(&mnt.join("app")));
        let mounts = std::collections::BTreeMap::from([(mnt.clone(), ws.clone())]);
        let via_mount = Some(Found::Mount {
            mountpoint: mnt.clone(),
            root: ws.clone(),
        });
        assert_eq!(search(&mnt.join("app"), &mounts), via_mount);
        assert_eq!(search(&mnt, &mounts), via_mount);
        // A `.antares` that is a symlink to state elsewhere is not one.
        let lone = t.path().join("lone");
        std::fs::create_dir_all(&lone).unwrap();
        std::os::unix::fs::symlink(ws.join(STATE_DIR), lone.join(STATE_DIR)).unwrap();
        assert_eq!(search(&lone, &none), None);
    }

    #[test]
    fn finds_the_innermost_antares_mount_and_its_source() {
        let text = "\
22 1 8:1 / / rw - ext4 /dev/vda rw
90 22 0:50 / /tmp/a\\040b.mount rw,nosuid - fuse.antares antares-workspace:/tmp/a\\040b rw
91 90 8:1 /tmp/a\\040b/buck-out /tmp/a\\040b.mount/buck-out rw - ext4 /dev/vda rw
92 22 0:51 / /srv/other rw - fuse.sshfs host:/x rw
93 22 0:52 / /srv/plain rw - fuse antares-workspace:/srv/ws rw
94 22 0:53 / /srv/else rw - fuse something:/x rw
";
        let (m, s) =
            antares_mount_of(mountinfo::parse(text), Path::new("/tmp/a b.mount/app/x")).unwrap();
        assert_eq!(m, Path::new("/tmp/a b.mount"));
        assert_eq!(s, "antares-workspace:/tmp/a b");
        assert!(antares_mount_of(mountinfo::parse(text), Path::new("/srv/other/x")).is_none());
        assert!(antares_mount_of(mountinfo::parse(text), Path::new("/tmp/a b")).is_none());
        let (m, _) = antares_mount_of(mountinfo::parse(text), Path::new("/srv/plain/x")).unwrap();
        assert_eq!(m, Path::new("/srv/plain"));
        assert!(antares_mount_of(mountinfo::parse(text), Path::new("/srv/else/x")).is_none());
    }
}
