//! antares: a Buck2-aware workspace materializer with a lazy FUSE overlay.
//!
//! The library crates do the work: antares-overlay (what the tree is, the
//! View and the FUSE daemon), antares-buck (what the build needs) and
//! antares-materializer (making the workspace be that file set). The binary
//! holds the command line, progress, output formats and exit codes, and what
//! joins the crates for a workspace: finding it (`workspace`),
//! opening its tree (`tree`), turning targets into entries (`targets`), the
//! toolchains cell and `.buckconfig.local` it composes (`toolchains`,
//! `buckconfig_local`), one sync kept across `--watch` (`sync_session`), the
//! mount's `buck-out` (`mount_buck_out`) and the `serve` daemon.

// Unsafe code only where a module or function allows it (raw syscalls).
#![deny(unsafe_code)]

mod buckconfig_local;
mod cli;
mod cmd;
mod mount_buck_out;
mod pathmap;
mod progress;
mod quote;
mod serve;
mod set_entries;
mod sync_session;
mod targets;
mod toolchains;
mod tree;
mod workspace;

use clap::Parser as _;
use cli::{Cli, Command};

/// A sync allocates and frees a few strings per path across rayon threads;
/// glibc's per-thread arenas spent a tenth of a 100,000-file sync there.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    no_huge_pages();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with 0; a usage error has its own
            // status (2, clap's default, means "conflicts" here).
            let _ = e.print();
            std::process::exit(if e.use_stderr() { cmd::USAGE } else { cmd::OK });
        }
    };
    init_logging(cli.global.verbose);
    tracing::debug!("started");
    let result = match &cli.command {
        Command::Init(a) => cmd::init::run(&cli.global, a),
        Command::Sync(a) => cmd::sync::run(&cli.global, a),
        Command::Status(a) => cmd::status::run(&cli.global, a),
        Command::Resolve(a) => cmd::resolve::run(&cli.global, a),
        Command::Graph(a) => cmd::graph::run(&cli.global, a),
        Command::Why(a) => cmd::why::run(&cli.global, a),
        Command::Mount(a) => cmd::mount::run_mount(&cli.global, a),
        Command::Umount(a) => cmd::mount::run_umount(&cli.global, a),
        Command::Root(a) => cmd::root::run(&cli.global, a),
        Command::Hooks(a) => cmd::hooks::run(&cli.global, a),
        Command::Serve(a) => cmd::serve::run(&cli.global, a),
        Command::RustProject(a) => cmd::rust_project::run(&cli.global, a),
        Command::Compdb(a) => cmd::compdb::run(&cli.global, a),
    };
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("antares: error: {e:#}");
            cmd::ERROR
        }
    };
    std::process::exit(code);
}

/// Transparent huge pages off for this process. A sync touches each of its
/// allocations about once and exits; with huge pages the kernel zeroes 2 MiB
/// at a time on first touch, and at 100,000 paths that zeroing cost a fifth
/// of the sync's CPU time (perf: `clear_page_erms` under
/// `do_huge_pmd_anonymous_page`). A hint: on failure nothing changes.
#[allow(unsafe_code)]
fn no_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes plain integer arguments and only sets
    // a flag on this process.
    let _ = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

/// Logs go to stderr; `-v` raises the level, RUST_LOG overrides it.
fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
