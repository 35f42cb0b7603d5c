//! `antares mount [MOUNTPOINT] [--foreground]` and `antares umount [MOUNTPOINT]`.
//!
//! The mount serves the View (upper over source) through FUSE. Its upper
//! layer is `.antares/upper` — from then on syncs of this workspace are
//! two-way — and its `buck-out` is a bind mount of the workspace's
//! `buck-out`, so buck2 can run on the mount with its SQLite state on local
//! disk, and the mount shows the workspace's build outputs. The mount's
//! source in `/proc/self/mountinfo` names the workspace.
//! Without `--foreground` the binary re-executes itself detached, with its
//! log in `.antares/logs/mount.log`, and returns once the mount is up.

#![allow(unsafe_code)] // raw syscalls, each with its SAFETY note

use crate::cli::{Global, MountArgs, UmountArgs};
use crate::tree;
use crate::workspace::{self, Workspace};
use antares_overlay::fuse::{self, BindMode, MountConfig, Unmounted};
use antares_overlay::mountinfo::is_mounted;
use antares_overlay::source::BUCK_OUT;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub fn run_mount(global: &Global, args: &MountArgs) -> Result<i32> {
    let ws = Workspace::find(global.workspace.as_deref())?;
    let mountpoint = mountpoint(&ws, args.mountpoint.as_deref())?;
    if fuse::is_stale(&mountpoint) {
        eprintln!(
            "{}: cleaning up a stale mount left by a crashed daemon",
            mountpoint.display()
        );
        fuse::cleanup_stale(&mountpoint)?;
    }
    if is_mounted(&mountpoint) {
        bail!(
            "{} is already mounted (`antares umount` first)",
            mountpoint.display()
        );
    }
    std::fs::create_dir_all(&mountpoint)
        .with_context(|| format!("cannot create {}", mountpoint.display()))?;
    // Remember it, so `antares umount` and the next `antares mount` need no
    // argument; a change list given, so the daemon and later syncs use it.
    let source = match &args.cl {
        Some(link) => ws.config.source.clone().with_cl(link)?,
        None => ws.config.source.clone(),
    };
    if ws.config.mountpoint.as_deref() != Some(mountpoint.as_path()) || source != ws.config.source {
        let mut config = ws.config.clone();
        config.mountpoint = Some(mountpoint.clone());
        config.source = source;
        Workspace::save_config(&ws.layout, &config)?;
    }
    let ws = Workspace::find(Some(ws.root()))?;
    if args.foreground {
        return foreground(global, &ws, &mountpoint);
    }
    // Detach: re-run ourselves in the foreground in a new session, logging to a file.
    let logs = ws.layout.logs_dir();
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let log_path = logs.join("mount.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let exe = std::env::current_exe().context("cannot find the antares executable")?;
    let mut cmd = Command::new(exe);
    cmd.arg("-C").arg(ws.root());
    if let Some(c) = &global.cache {
        cmd.arg("--cache").arg(c);
    }
    cmd.arg("mount").arg(&mountpoint).arg("--foreground");
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid in the child before exec detaches it from our terminal
    // and session, so closing the terminal does not kill the mount.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::setsid();
            Ok(())
        });
    }
    // Up means mounted with every bind made: the daemon says so last.
    let up = ws.layout.mount_ready();
    let _ = std::fs::remove_file(&up);
    let mut child = cmd.spawn().context("cannot start the mount daemon")?;
    let start = Instant::now();
    while !is_mounted(&mountpoint) || !up.exists() {
        if let Some(status) = child.try_wait()? {
            let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(5).collect();
            bail!(
                "the mount daemon exited ({status}) before mounting; last lines of {}:\n{}",
                log_path.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            bail!(
                "{} did not come up within 20 s; see {}",
                mountpoint.display(),
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "mounted {} at {} (daemon pid {}, log {})",
        ws.root().display(),
        mountpoint.display(),
        child.id(),
        log_path.display()
    );
    Ok(super::OK)
}

fn foreground(global: &Global, ws: &Workspace, mountpoint: &Path) -> Result<i32> {
    // The same lower as a sync's: a remote source read through the store.
    let store = tree::open_store(ws, global.cache.as_deref())?;
    let view = tree::open_view(ws, tree::open_lower(&ws.config.source, &store)?)?;
    let upper = tree::upper_dir(ws);
    // The workspace's own buck-out: `MOUNT/buck-out/v2/…` is what builds in
    // the workspace made, so the relative `buck-out/…` paths of compilation
    // databases and rust-project answers resolve on the mount too. A build
    // on the mount (the fallback) runs under its own `--isolation-dir`
    // (the wrapper adds it), so two daemons never share one output tree.
    let buck_out = ws.root().join(BUCK_OUT);
    std::fs::create_dir_all(&buck_out)
        .with_context(|| format!("cannot create {}", buck_out.display()))?;
    // Sub-projects (a `.buckroot`, or `.buckconfig`s without one at the
    // root) keep their buck-out off FUSE too: bound once the mount is up.
    let started = Instant::now();
    let sub_projects = match view.lower().walk(&antares_overlay::RepoPath::root()) {
        Ok(entries) => {
            crate::mount_buck_out::prepare(&upper, crate::mount_buck_out::project_roots(&entries))
        }
        Err(e) => {
            eprintln!("warning: cannot list the tree to find Buck2 sub-projects: {e}");
            Vec::new()
        }
    };
    tracing::info!(
        projects = sub_projects.len(),
        ms = started.elapsed().as_millis() as u64,
        "listed the tree for Buck2 sub-project roots"
    );
    let buck_outs = ws.layout.sub_project_buck_outs();
    let mut cfg = MountConfig::new(view, store, mountpoint);
    cfg.bind_dirs = vec![(BUCK_OUT.to_string(), buck_out)];
    cfg.fsname = Some(workspace::mount_source(ws.root()));
    let pid_file = ws.layout.mount_pid();
    workspace::register_mount(mountpoint, ws.root())?;
    // Before mounting: whoever sees the mount can already find its daemon.
    std::fs::write(&pid_file, std::process::id().to_string())
        .with_context(|| format!("cannot write {}", pid_file.display()))?;
    let result = fuse::run_foreground(cfg, |handle| {
        eprintln!(
            "mounted {} at {}",
            ws.root().display(),
            handle.mountpoint().display()
        );
        for line in crate::mount_buck_out::bind_all(handle.mountpoint(), &buck_outs, &sub_projects)
        {
            eprintln!("{line}");
        }
        for b in handle.binds() {
            match b.mode {
                BindMode::Kernel => eprintln!("  {}: bind mount of {} (local disk)", b.name, b.local.display()),
                BindMode::ThroughFuse => eprintln!(
                    "  {}: no permission to bind mount; served through FUSE from {} (passthrough: {})",
                    b.name,
                    b.local.display(),
                    handle.stats().passthrough.load(std::sync::atomic::Ordering::Relaxed)
                ),
            }
        }
        if handle
            .stats()
            .skip_opens
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            eprintln!(
                "  opens: answered by the kernel (immutable source; caches kept across opens)"
            );
        } else {
            eprintln!("  opens: each one asks the daemon (the source can change under the mount)");
        }
        if let Err(e) = antares_materializer::fsutil::write_atomic(&ws.layout.mount_ready(), b"") {
            eprintln!("warning: cannot say the mount is up: {e}");
        }
    });
    let _ = std::fs::remove_file(ws.layout.mount_ready());
    let _ = std::fs::remove_file(&pid_file);
    let _ = workspace::unregister_mount(mountpoint);
    match result? {
        Unmounted::Clean => eprintln!("unmounted {}", mountpoint.display()),
        Unmounted::Lazy => eprintln!(
            "unmounted {} lazily (files were still open)",
            mountpoint.display()
        ),
    }
    Ok(super::OK)
}

pub fn run_umount(global: &Global, args: &UmountArgs) -> Result<i32> {
    // Given a mount point, its workspace is the one that registered it: like
    // umount(8), this works from anywhere (a script's cleanup trap).
    let owner = match (&global.workspace, &args.mountpoint) {
        (None, Some(m)) => {
            let m = std::path::absolute(m).with_context(|| format!("{}", m.display()))?;
            workspace::mount_owner(&m)
        }
        _ => None,
    };
    let ws = Workspace::find(owner.as_deref().or(global.workspace.as_deref()))?;
    let mountpoint = mountpoint(&ws, args.mountpoint.as_deref())?;
    // Sub-projects' buck-out bind mounts first (the daemon's own go with it).
    crate::mount_buck_out::unbind_below(&mountpoint);
    // Ask the daemon to unmount (it removes the bind mounts first).
    let pid_file = ws.layout.mount_pid();
    if let Some(pid) = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    {
        // SAFETY: kill with a pid read from our own pid file and SIGTERM.
        if unsafe { libc::kill(pid, libc::SIGTERM) } == 0 {
            // Wait for the daemon to finish unmounting and exit.
            let start = Instant::now();
            // SAFETY: signal 0 only checks that the process exists.
            while unsafe { libc::kill(pid, 0) } == 0 && start.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    if is_mounted(&mountpoint) || fuse::is_stale(&mountpoint) {
        match fuse::unmount(&mountpoint)? {
            Unmounted::Clean => {}
            Unmounted::Lazy => eprintln!(
                "files are still open on {}: detached lazily",
                mountpoint.display()
            ),
        }
    }
    let _ = std::fs::remove_file(&pid_file);
    let _ = workspace::unregister_mount(&mountpoint);
    eprintln!("unmounted {}", mountpoint.display());
    Ok(super::OK)
}

/// The mount point: given, configured, or `<workspace>.mount` beside the
/// workspace (never inside it: the workspace watcher would descend into it).
fn mountpoint(ws: &Workspace, given: Option<&Path>) -> Result<PathBuf> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let p = match given
        .map(Path::to_path_buf)
        .or_else(|| ws.config.mountpoint.clone())
    {
        Some(p) => cwd.join(p),
        None => {
            let name = ws
                .root()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "workspace".into());
            ws.root().with_file_name(format!("{name}.mount"))
        }
    };
    if p.starts_with(ws.root()) {
        bail!(
            "{}: the mount point must be outside the workspace {}",
            p.display(),
            ws.root().display()
        );
    }
    Ok(p)
}
