//! Running this binary's own commands for the server: `init`, `mount` and
//! `umount` to completion, and `sync` as a child that is killed (its whole
//! process group) when the request is dropped (the client left), when its
//! mount is deleted, or when its deadline passes.

#![allow(unsafe_code)] // raw syscalls, each with its SAFETY note

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// `antares --cache STORE ARGS…`, stdin closed, in its own process group.
fn command(store: &Path, args: &[&OsStr]) -> Result<Command, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find antares: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("--cache")
        .arg(store)
        .args(args)
        .stdin(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    Ok(cmd)
}

/// The error lines a failed command printed (all of stderr if none says
/// "error").
fn error_of(stderr: &[u8]) -> String {
    let err = String::from_utf8_lossy(stderr);
    let msg = err
        .lines()
        .filter(|l| l.contains("error"))
        .collect::<Vec<_>>()
        .join("; ");
    if msg.is_empty() {
        err.trim().to_string()
    } else {
        msg
    }
}

/// Whether an exit code is a success (conflicts are a result, not a failure).
fn succeeded(code: Option<i32>) -> bool {
    matches!(code, Some(crate::cmd::OK) | Some(crate::cmd::CONFLICTS))
}

/// Runs `antares ARGS…` to completion (blocking): stdout on success, else
/// the error it printed.
pub fn run(store: &Path, args: &[&OsStr]) -> Result<String, String> {
    let out = command(store, args)?
        .output()
        .map_err(|e| format!("cannot run antares: {e}"))?;
    if succeeded(out.status.code()) {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(error_of(&out.stderr))
    }
}

/// Why a killable child did not finish.
#[derive(Debug)]
pub enum Stopped {
    /// It ran and failed: its error message.
    Failed(String),
    /// Killed: the reason (deadline, mount deleted).
    Killed(String),
}

/// A child's process group, killed with SIGKILL when this is dropped
/// unless it was reaped: dropping the future that owns it (a request whose
/// client went away) stops the child and everything it started.
struct Group {
    child: std::process::Child,
    reaped: bool,
}

impl Drop for Group {
    fn drop(&mut self) {
        if !self.reaped {
            let pgid = self.child.id() as i32;
            // SAFETY: kill(2) on the process group we created for our own
            // child (process_group(0) made its pid the group id).
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = self.child.wait();
            tracing::warn!(
                pid = pgid,
                "killed a child of a request and its process group"
            );
        }
    }
}

/// Runs `antares ARGS…` with stdout and stderr in files under `scratch`,
/// until it exits, `deadline` passes or `cancel` turns true; then its
/// stdout. Polls the child (every 50 ms) so the future can be dropped at
/// any point.
pub async fn run_killable(
    store: &Path,
    args: &[&OsStr],
    scratch: &Path,
    deadline: Duration,
    mut cancel: tokio::sync::watch::Receiver<bool>,
) -> Result<String, Stopped> {
    let fail = |m: String| Stopped::Failed(m);
    std::fs::create_dir_all(scratch)
        .map_err(|e| fail(format!("cannot create {}: {e}", scratch.display())))?;
    let file = |name: &str| -> Result<(PathBuf, std::fs::File), Stopped> {
        let p = scratch.join(name);
        let f = std::fs::File::create(&p)
            .map_err(|e| fail(format!("cannot create {}: {e}", p.display())))?;
        Ok((p, f))
    };
    let (out_path, out) = file("out")?;
    let (err_path, err) = file("err")?;
    let child = command(store, args)
        .map_err(fail)?
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| fail(format!("cannot run antares: {e}")))?;
    let mut group = Group {
        child,
        reaped: false,
    };
    let started = tokio::time::Instant::now();
    let status = loop {
        match group.child.try_wait() {
            Ok(Some(status)) => {
                group.reaped = true;
                break status;
            }
            Ok(None) => {}
            Err(e) => return Err(fail(format!("cannot wait for antares: {e}"))),
        }
        if *cancel.borrow_and_update() {
            return Err(Stopped::Killed("its mount was deleted".into()));
        }
        if started.elapsed() >= deadline {
            return Err(Stopped::Killed(format!(
                "it ran past its deadline of {} s",
                deadline.as_secs()
            )));
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            changed = cancel.changed() => {
                // The sender goes with its mount.
                if changed.is_err() {
                    return Err(Stopped::Killed("its mount was deleted".into()));
                }
            }
        }
    };
    let read = |p: &Path| std::fs::read(p).unwrap_or_default();
    if succeeded(status.code()) {
        Ok(String::from_utf8_lossy(&read(&out_path)).into_owned())
    } else {
        Err(fail(error_of(&read(&err_path))))
    }
}
