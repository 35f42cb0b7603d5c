//! One module per subcommand; each returns the process exit status.

use antares_materializer::Summary;
use std::os::fd::AsFd;

pub mod compdb;
pub mod graph;
pub mod hooks;
pub mod init;
pub mod mount;
pub mod resolve;
pub mod root;
pub mod rust_project;
pub mod serve;
pub mod status;
pub mod sync;
pub mod watch;
pub mod why;

/// Exit status: success.
pub const OK: i32 = 0;
/// Exit status: an error (also what `main` uses for `Err`).
pub const ERROR: i32 = 1;
/// Exit status: conflicts are present.
pub const CONFLICTS: i32 = 2;
/// Exit status: the command line is wrong (EX_USAGE of sysexits.h).
pub const USAGE: i32 = 64;

/// The exit status a sync's summary calls for: errors before conflicts.
pub fn exit_status(summary: &Summary) -> i32 {
    if !summary.errors.is_empty() {
        ERROR
    } else if !summary.conflicts.is_empty() {
        CONFLICTS
    } else {
        OK
    }
}

/// Runs `antares sync [--add] PATTERN…` on `ws` in a child process, its
/// output on stderr (stdout may be a protocol channel, as rust-project's
/// is): the workspace holds what the patterns need and every edit made on
/// the mount, before a tool runs there. Conflicts are reported by the sync
/// and do not stop the tool; an error does.
pub fn sync_first(
    ws: &crate::workspace::Workspace,
    patterns: &[String],
    purpose: &str,
) -> anyhow::Result<()> {
    use anyhow::Context;
    if patterns.is_empty() && ws.config.targets.is_empty() && ws.config.paths.is_empty() {
        return Ok(()); // nothing selected yet: nothing to bring over
    }
    let exe = std::env::current_exe().context("cannot find the antares binary")?;
    let mut sync = std::process::Command::new(exe);
    sync.arg("--workspace").arg(ws.root()).arg("sync");
    if !patterns.is_empty() {
        sync.arg("--add").args(patterns);
    }
    let stderr = std::io::stderr().as_fd().try_clone_to_owned()?;
    let status = sync
        .stdout(stderr)
        .status()
        .context("running antares sync")?;
    if status.code() == Some(ERROR) || status.code().is_none() {
        anyhow::bail!("antares sync {} failed; no {purpose}", patterns.join(" "));
    }
    Ok(())
}
