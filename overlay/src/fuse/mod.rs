//! The FUSE face of a [`View`]: mount management as a library API.
//!
//! - [`mount`] mounts a View at a directory and returns a [`MountHandle`]
//!   (unmounts on drop); [`run_foreground`] mounts and blocks until SIGINT,
//!   SIGTERM or SIGHUP (or an outside `umount`), then unmounts cleanly.
//! - [`unmount`] unmounts a mount point (lazily when busy), and
//!   [`cleanup_stale`] detaches a dead mount left by a crashed daemon
//!   (`stat` says `ENOTCONN`); [`mount`] calls it first.
//! - *Bind directories* (e.g. `buck-out`, named by the caller: the overlay
//!   knows nothing of Buck2) appear at the mount root. Each is a kernel bind
//!   mount of a local directory, made after the FUSE mount is up and removed
//!   before it goes, so what is written there lives on the local file system
//!   (statfs is the local one, SQLite's shared mmap is native) while paths
//!   still resolve inside the mount (relative symlinks under it work, unlike
//!   with a symlinked directory). Where a bind mount is not permitted (no
//!   `CAP_SYS_ADMIN`), the same local directory is served through FUSE,
//!   with kernel passthrough for its files when the kernel offers it;
//!   [`MountHandle::binds`] says which happened.

mod attr;
mod dispatch;
mod errno;
mod fs;
mod handles;
mod inodes;
mod listing;
mod namespace;
mod open_files;
mod passthrough;
mod sys;
mod watch;
mod xattr;

pub use fs::{OverlayFs, LONG_TTL, SHORT_TTL};

use crate::cache::BlobCache;
use crate::view::{EmptySource, View, ViewError};
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Why mounting or unmounting failed.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// Preparing or making the mount failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The View could not be read.
    #[error(transparent)]
    View(#[from] ViewError),
    /// A bind directory name is not one component.
    #[error("bind directory name {0:?} must be a single path component")]
    BadBindName(String),
    /// Unmounting what is not mounted.
    #[error("{0} is not a mount point")]
    NotMounted(PathBuf),
}

fn io_err(what: &'static str, path: &Path, source: io::Error) -> MountError {
    MountError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// What to mount where.
pub struct MountConfig {
    /// The tree to serve (view 0).
    pub view: Arc<View>,
    /// Where lower blobs are fetched to when first opened.
    pub cache: Arc<dyn BlobCache>,
    /// The directory to mount on (made if missing).
    pub mountpoint: PathBuf,
    /// `(name at the mount root, local directory)`, e.g. `("buck-out", …)`.
    pub bind_dirs: Vec<(String, PathBuf)>,
    /// The mount's source as `/proc/self/mountinfo` shows it (default
    /// `antares:<lower>`): the binary names the workspace there, so a
    /// process inside the mount can find it without any registry.
    pub fsname: Option<String>,
    /// FUSE worker threads (default 2: a fetch blocks only one worker;
    /// measured on 2 cores, 1 to 4 threads differ by under 15%).
    pub threads: usize,
    /// Make kernel bind mounts for `bind_dirs` (default). When false, or
    /// when the kernel refuses (no `CAP_SYS_ADMIN`), they are served
    /// through FUSE from the same local directories.
    pub kernel_bind: bool,
    /// Entry and attribute TTL; default [`LONG_TTL`] when the lower has a
    /// revision (immutable), else [`SHORT_TTL`].
    pub ttl: Option<Duration>,
    /// Tell the kernel to stop sending `open`/`opendir`, so opening a file
    /// costs no round trip and its pages stay cached across opens. Only
    /// ever on while the upper-dir watcher runs (it invalidates what the
    /// kernel caches of files changed behind the mount). Default: on when
    /// the lower has a revision (immutable) and every bind directory is a
    /// kernel bind mount (FUSE-served ones open in passthrough mode).
    pub skip_opens: Option<bool>,
}

impl MountConfig {
    /// Mounts `view` at `mountpoint`, lower blobs fetched into `cache`, with
    /// no bind directories and the defaults for the rest.
    pub fn new(view: Arc<View>, cache: Arc<dyn BlobCache>, mountpoint: impl Into<PathBuf>) -> Self {
        MountConfig {
            view,
            cache,
            mountpoint: mountpoint.into(),
            bind_dirs: Vec::new(),
            fsname: None,
            threads: 2,
            kernel_bind: true,
            ttl: None,
            skip_opens: None,
        }
    }
}

/// How a bind directory ended up being served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindMode {
    /// A kernel bind mount of the local directory.
    Kernel,
    /// Served through FUSE from the local directory (no privilege to bind
    /// mount); with kernel passthrough for its files when available.
    ThroughFuse,
}

/// How one bind directory is served.
#[derive(Debug, Clone)]
pub struct BindStatus {
    /// Its name at the mount root.
    pub name: String,
    /// The local directory it shows.
    pub local: PathBuf,
    /// A kernel bind mount, or served through FUSE.
    pub mode: BindMode,
}

/// Facts about a running mount.
#[derive(Debug, Default)]
pub struct MountStats {
    /// Whether the kernel accepted FUSE passthrough (used for bind
    /// directories served through FUSE).
    pub passthrough: AtomicBool,
    /// Whether the kernel was told to stop sending `open`/`opendir`
    /// (immutable lower, upper dir watched; see `OverlayFs`).
    pub skip_opens: AtomicBool,
    /// `open` and `opendir` requests that reached the daemon.
    pub opens: AtomicU64,
}

/// A live mount; unmounts on drop (lazily if busy).
pub struct MountHandle {
    mountpoint: PathBuf,
    session: Option<fuser::BackgroundSession>,
    binds: Vec<BindStatus>,
    stats: Arc<MountStats>,
    watcher: Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>,
}

/// How an unmount went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmounted {
    /// Unmounted at once.
    Clean,
    /// Files were open: the mount was detached and served until they closed.
    Lazy,
}

impl MountHandle {
    /// Where the mount is.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// How each bind directory is served.
    pub fn binds(&self) -> &[BindStatus] {
        &self.binds
    }

    /// What the daemon counted and negotiated so far.
    pub fn stats(&self) -> &MountStats {
        &self.stats
    }

    /// Whether the FUSE session has ended (e.g. an outside `umount`).
    pub fn is_finished(&self) -> bool {
        self.session.as_ref().is_none_or(|s| s.guard.is_finished())
    }

    /// Unmounts: bind mounts first, then the FUSE mount. If files are still
    /// open the mount is detached lazily and this waits until they close.
    pub fn unmount(mut self) -> Result<Unmounted, MountError> {
        self.unmount_inner()
    }

    fn unmount_inner(&mut self) -> Result<Unmounted, MountError> {
        let Some(session) = self.session.take() else {
            return Ok(Unmounted::Clean);
        };
        if let Some((stop, thread)) = self.watcher.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = thread.join();
        }
        if session.guard.is_finished() {
            // Unmounted from outside (`antares umount`, `umount`): the
            // bind mounts went with it.
            if let Err(e) = session.join() {
                tracing::warn!(
                    "FUSE session of {} ended with: {e}",
                    self.mountpoint.display()
                );
            }
            return Ok(Unmounted::Clean);
        }
        let mut binds_left = false;
        for b in self.binds.iter().filter(|b| b.mode == BindMode::Kernel) {
            let target = self.mountpoint.join(&b.name);
            let r = unbind(&target);
            if let Err(e) = r {
                // Detaching the FUSE mount below takes what is left with it.
                tracing::warn!("unmounting {}: {e}", target.display());
                binds_left = true;
            }
        }
        let outcome = if binds_left {
            detach(&self.mountpoint)?;
            Unmounted::Lazy
        } else {
            match unmount(&self.mountpoint) {
                Ok(u) => u,
                Err(MountError::NotMounted(_)) => Unmounted::Clean,
                Err(e) => return Err(e),
            }
        };
        if let Err(e) = session.join() {
            tracing::warn!(
                "FUSE session of {} ended with: {e}",
                self.mountpoint.display()
            );
        }
        Ok(outcome)
    }
}

impl Drop for MountHandle {
    fn drop(&mut self) {
        if let Err(e) = self.unmount_inner() {
            tracing::warn!("unmounting {}: {e}", self.mountpoint.display());
        }
    }
}

/// Removes a bind mount made by [`bind_mount`]: cleanly, else detached
/// (files open below it keep it alive until closed).
pub fn unbind(target: &Path) -> io::Result<()> {
    sys::umount2(target, 0).or_else(|_| sys::umount2(target, libc::MNT_DETACH))
}

/// Bind-mounts directory `src` on `target` (needs CAP_SYS_ADMIN), with
/// the mounts below `src` (a subtree of a mount shows its sub-projects'
/// `buck-out` bind mounts too).
pub fn bind_mount(src: &Path, target: &Path) -> io::Result<()> {
    sys::bind_mount(src, target)
}

fn is_root() -> bool {
    sys::effective_ids().0 == 0
}

/// Whether mounts are made with `allow_other` (other users, e.g. a build
/// worker, may enter them): always as root, else where `/etc/fuse.conf`
/// has `user_allow_other` (without it the kernel helper refuses the option).
pub fn allows_other_users() -> bool {
    is_root()
        || std::fs::read_to_string("/etc/fuse.conf").is_ok_and(|conf| {
            conf.lines()
                .any(|l| l.split('#').next().unwrap_or("").trim() == "user_allow_other")
        })
}

/// Whether `mountpoint` is a dead FUSE mount (its daemon is gone). Uses
/// `statfs`, which the kernel never answers from its attribute cache.
pub fn is_stale(mountpoint: &Path) -> bool {
    sys::statfs(mountpoint).is_err_and(|e| e.raw_os_error() == Some(libc::ENOTCONN))
}

/// Detaches a dead mount at `mountpoint` (and anything mounted below it).
/// Returns whether there was one.
pub fn cleanup_stale(mountpoint: &Path) -> Result<bool, MountError> {
    if !is_stale(mountpoint) {
        return Ok(false);
    }
    tracing::info!("cleaning up the stale mount at {}", mountpoint.display());
    detach(mountpoint)?;
    Ok(true)
}

fn detach(mountpoint: &Path) -> Result<(), MountError> {
    match sys::umount2(mountpoint, libc::MNT_DETACH) {
        Ok(()) => Ok(()),
        // Not privileged: the setuid helper can unmount our own mounts.
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => fusermount_u(mountpoint, true),
        Err(e) => Err(io_err("detaching", mountpoint, e)),
    }
}

fn fusermount_u(mountpoint: &Path, lazy: bool) -> Result<(), MountError> {
    let mut cmd = std::process::Command::new("fusermount3");
    cmd.arg("-u").arg("-q");
    if lazy {
        cmd.arg("-z");
    }
    let out = cmd
        .arg("--")
        .arg(mountpoint)
        .output()
        .map_err(|e| io_err("running fusermount3 for", mountpoint, e))?;
    if out.status.success() {
        return Ok(());
    }
    let msg = String::from_utf8_lossy(&out.stderr).into_owned();
    let errno = if msg.contains("busy") {
        libc::EBUSY
    } else {
        libc::EIO
    };
    Err(io_err(
        "fusermount3 -u",
        mountpoint,
        io::Error::new(
            io::Error::from_raw_os_error(errno).kind(),
            msg.trim().to_string(),
        ),
    ))
}

/// Unmounts whatever is mounted at `mountpoint` (a live or stale antares
/// mount, including bind mounts below it): cleanly when possible, lazily
/// (`MNT_DETACH`) when busy.
pub fn unmount(mountpoint: &Path) -> Result<Unmounted, MountError> {
    if is_stale(mountpoint) {
        detach(mountpoint)?;
        return Ok(Unmounted::Lazy);
    }
    // Bind mounts below it first (deepest first), or the unmount is busy.
    for sub in crate::mountinfo::mounted_below(mountpoint).iter().rev() {
        if let Err(e) = unbind(sub) {
            tracing::warn!("unmounting {}: {e}", sub.display());
        }
    }
    match sys::umount2(mountpoint, 0) {
        Ok(()) => return Ok(Unmounted::Clean),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
            detach(mountpoint)?;
            return Ok(Unmounted::Lazy);
        }
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            return Err(MountError::NotMounted(mountpoint.to_path_buf()))
        }
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
        Err(e) => return Err(io_err("unmounting", mountpoint, e)),
    }
    match fusermount_u(mountpoint, false) {
        Ok(()) => Ok(Unmounted::Clean),
        Err(MountError::Io { source, .. }) if source.kind() == io::ErrorKind::ResourceBusy => {
            fusermount_u(mountpoint, true)?;
            Ok(Unmounted::Lazy)
        }
        Err(e) => Err(e),
    }
}

/// Mounts `cfg.view` at `cfg.mountpoint` (cleaning a stale mount there
/// first) and makes the bind directories.
pub fn mount(cfg: MountConfig) -> Result<MountHandle, MountError> {
    let mp = &cfg.mountpoint;
    cleanup_stale(mp)?;
    std::fs::create_dir_all(mp).map_err(|e| io_err("creating mount point", mp, e))?;
    let mountpoint = mp
        .canonicalize()
        .map_err(|e| io_err("resolving mount point", mp, e))?;

    let mut views = vec![cfg.view.clone()];
    let mut binds = HashMap::new();
    let mut statuses = Vec::new();
    for (name, local) in &cfg.bind_dirs {
        if crate::path::validate_name(name).is_err() {
            return Err(MountError::BadBindName(name.clone()));
        }
        std::fs::create_dir_all(local).map_err(|e| io_err("creating bind directory", local, e))?;
        binds.insert(name.clone(), views.len());
        views.push(Arc::new(View::new(Arc::new(EmptySource), local)?));
        statuses.push(BindStatus {
            name: name.clone(),
            local: local.clone(),
            mode: BindMode::ThroughFuse,
        });
    }
    let passthrough_views: Vec<usize> = (1..views.len()).collect();
    let stats = Arc::new(MountStats::default());
    let ttl = cfg.ttl.unwrap_or(if cfg.view.lower().revision().is_some() {
        LONG_TTL
    } else {
        SHORT_TTL
    });
    let fs = OverlayFs::new(
        views,
        binds,
        passthrough_views,
        cfg.cache.clone(),
        stats.clone(),
        ttl,
    );
    let inodes = fs.inode_table();

    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName(
            cfg.fsname
                .clone()
                .unwrap_or_else(|| format!("antares:{}", cfg.view.lower().describe())),
        ),
        fuser::MountOption::Subtype("antares".into()),
        fuser::MountOption::DefaultPermissions,
        fuser::MountOption::RW,
    ];
    if allows_other_users() {
        config.acl = fuser::SessionACL::All;
    }
    if is_root() {
        config.mount_options.push(fuser::MountOption::Dev);
        config.mount_options.push(fuser::MountOption::Suid);
    }
    config.n_threads = Some(cfg.threads.max(1));
    config.clone_fd = true;
    let session = fuser::spawn_mount(fs, &mountpoint, &config)
        .map_err(|e| io_err("mounting FUSE at", &mountpoint, e))?;
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = match watch::spawn(
        cfg.view.upper_dir(),
        inodes,
        session.notifier(),
        stop.clone(),
    ) {
        Ok(t) => Some((stop, t)),
        Err(e) => {
            tracing::warn!("cannot watch the upper dir ({e}): outside changes show after the TTL");
            None
        }
    };
    let mut handle = MountHandle {
        mountpoint,
        session: Some(session),
        binds: statuses,
        stats,
        watcher,
    };
    for b in handle.binds.iter_mut().filter(|_| cfg.kernel_bind) {
        let target = handle.mountpoint.join(&b.name);
        match bind_mount(&b.local, &target) {
            Ok(()) => b.mode = BindMode::Kernel,
            Err(e) => tracing::warn!(
                "cannot bind-mount {} on {}: {e}; serving it through FUSE",
                b.local.display(),
                target.display()
            ),
        }
    }
    let skip = handle.watcher.is_some()
        && cfg.skip_opens.unwrap_or_else(|| {
            cfg.view.lower().revision().is_some()
                && handle.binds.iter().all(|b| b.mode == BindMode::Kernel)
        });
    handle.stats.skip_opens.store(skip, Ordering::Relaxed);
    Ok(handle)
}

static SIGNALLED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNALLED.store(sig, Ordering::SeqCst);
}

/// Mounts and blocks until SIGINT, SIGTERM or SIGHUP arrives (or the mount
/// is unmounted from outside), then unmounts. `ready` is called once the
/// mount is up (e.g. to print where and how `buck-out` is served).
///
/// Handlers for the three signals are installed for the duration of the
/// call (they only set a flag, polled every 100 ms) and the previous ones
/// restored afterwards.
pub fn run_foreground(
    cfg: MountConfig,
    ready: impl FnOnce(&MountHandle),
) -> Result<Unmounted, MountError> {
    const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];
    SIGNALLED.store(0, Ordering::SeqCst);
    // The handler only stores to an atomic: async-signal-safe.
    let old = sys::install_signal_handlers(&SIGNALS, on_signal);
    let restore = || sys::restore_signal_handlers(&SIGNALS, &old);
    let handle = match mount(cfg) {
        Ok(h) => h,
        Err(e) => {
            restore();
            return Err(e);
        }
    };
    ready(&handle);
    loop {
        let sig = SIGNALLED.load(Ordering::SeqCst);
        if sig != 0 {
            tracing::info!("signal {sig}: unmounting {}", handle.mountpoint().display());
            break;
        }
        if handle.is_finished() {
            tracing::info!("{} was unmounted", handle.mountpoint().display());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = handle.unmount();
    restore();
    r
}
