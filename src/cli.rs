//! The command line: one vocabulary for every command (see README.md, "Commands").

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Materialize exactly what Buck2 targets need from a monorepo into a local
/// workspace, and mount the whole tree lazily for browsing and editing.
#[derive(Debug, Parser)]
#[command(
    name = "antares",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// The workspace to act on (default: found from the current directory upwards).
    #[arg(
        long,
        short = 'C',
        global = true,
        env = "ANTARES_WORKSPACE",
        value_name = "DIR"
    )]
    pub workspace: Option<PathBuf>,
    /// The content store directory (default: from the workspace config, else
    /// $XDG_CACHE_HOME/antares, else ~/.cache/antares).
    #[arg(long, global = true, env = "ANTARES_CACHE", value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// More logging (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a workspace reading from a source.
    ///
    /// SPEC is dir:PATH (a plain directory), git:PATH[@REV] (a local git
    /// repository, bare or not; REV defaults to HEAD) or mono:URL[@REFS].
    Init(InitArgs),
    /// Materialize paths, or what Buck2 targets need, into the workspace.
    ///
    /// With PATHs, makes the workspace hold exactly those subtrees of the
    /// source (`.` = everything), replacing the previous selection unless
    /// --add is given. Without arguments, re-syncs the saved selection.
    /// Files edited in the workspace are never overwritten: an edit the
    /// source also changed becomes a conflict and both versions are kept.
    /// Exit status: 0 ok, 1 error, 2 conflicts present.
    Sync(SyncArgs),
    /// Show modified, added, deleted and conflicting workspace files.
    ///
    /// Exit status: 0, or 2 when conflicts are present.
    Status(StatusArgs),
    /// Settle a conflict by keeping the workspace file (--ours) or taking the
    /// source's version (--theirs).
    Resolve(ResolveArgs),
    /// Print the packages, targets and files that target patterns need.
    ///
    /// Exit status 0; with --compare, 3 when the built-in evaluator and real
    /// buck2 disagree.
    Graph(GraphArgs),
    /// Explain why a path is in the workspace: the dependency chain from a
    /// requested target (or the requested path) that pulled it in.
    Why(WhyArgs),
    /// Mount the whole tree (upper layer over the source) with FUSE, lazily,
    /// writable, for browsing and editing.
    ///
    /// `buck-out` at the mount root is a bind mount of a local directory, so
    /// buck2 can also run on the mount. Runs as a background daemon unless
    /// --foreground; from then on syncs of this workspace are two-way.
    Mount(MountArgs),
    /// Unmount (also cleans up a mount left by a crashed daemon).
    Umount(UmountArgs),
    /// Print where the workspace is, for scripts (the buck2 wrapper uses it).
    ///
    /// Prints the workspace root, or with --json an object with `workspace`
    /// (root), `relative` (the current directory relative to the root, "" at
    /// the root) and `source`.
    Root(RootArgs),
    /// Install the buck2 wrapper from prelude-hooks/.
    Hooks(HooksArgs),
    /// Serve the Antares management API, as Scorpio does, for build workers.
    ///
    /// Routes under /antares, fields and error bodies as scorpiofs': GET
    /// /health; POST /mounts {path, job_id?, build_id?, cl?} → {mount_id,
    /// mountpoint} (idempotent per job_id); GET /mounts → {mounts:[…]};
    /// GET|DELETE /mounts/{id}; GET|DELETE /mounts/by-job/{job_id}; GET
    /// /mounts/{id}/ready → {mount_id, ready, state}; POST|DELETE
    /// /mounts/{id}/cl. Extension: POST /mounts/{id}/sync {targets:[…],
    /// timeout_secs?} → the sync's JSON summary. Each mount is a workspace
    /// of this workspace's source mounted at MOUNT_ROOT/<mount_id>. Prints
    /// `listening on http://ADDR` once ready.
    Serve(ServeArgs),
    /// buck2's rust-project (rust-analyzer's project model) for an editor
    /// on the mount: same arguments and output (develop-json, develop,
    /// check), run in the workspace, with mount paths in the arguments made
    /// workspace paths and workspace paths in the answers made mount paths.
    /// Usable as rust-analyzer's `workspace.discoverConfig` command. The
    /// real one is `rust-project` on PATH or $ANTARES_REAL_RUST_PROJECT.
    RustProject(RustProjectArgs),
    /// Write compile_commands.json for TARGETs at the root of the mount (or
    /// of the workspace, run there), with paths that resolve where it is.
    ///
    /// Syncs the targets, runs buck2's compilation-database BXL in the
    /// workspace ($ANTARES_REAL_BUCK2 or `buck2` on PATH), and rewrites
    /// `directory` and absolute workspace paths to the mount's.
    Compdb(CompdbArgs),
}

#[derive(Debug, Args)]
pub struct RustProjectArgs {
    /// rust-project's arguments, as it takes them.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CompdbArgs {
    /// Target patterns (relative ones start from the current package).
    #[arg(required = true, value_name = "TARGET")]
    pub targets: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port). The API has no
    /// authentication: keep it on loopback unless the network is trusted.
    #[arg(long, default_value = "127.0.0.1:2725")]
    pub bind: std::net::SocketAddr,
    /// Where mount points are made (default $XDG_STATE_HOME/antares/mounts);
    /// refused inside a directory tree with a .buckconfig.
    #[arg(long, value_name = "DIR")]
    pub mount_root: Option<std::path::PathBuf>,
    /// Unmount and forget every mount when the server stops (SIGINT/SIGTERM).
    #[arg(long)]
    pub unmount_on_exit: bool,
}

#[derive(Debug, Args)]
pub struct RootArgs {
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct HooksArgs {
    #[command(subcommand)]
    pub action: HooksAction,
}

#[derive(Debug, Subcommand)]
pub enum HooksAction {
    /// Install the `buck2` wrapper script.
    Install(HooksInstallArgs),
}

#[derive(Debug, Args)]
pub struct HooksInstallArgs {
    /// Directory to put the wrapper in (put it first on PATH).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<std::path::PathBuf>,
    /// Replace a `buck2` there that is not antares' wrapper.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where the tree comes from: dir:PATH, git:PATH[@REV] or mono:URL[@REFS].
    #[arg(long, value_name = "SPEC")]
    pub source: String,
    /// The workspace directory to create (or an existing empty directory).
    pub workspace: PathBuf,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Buck2 target patterns (`//app:server`, `//lib/...`, `:name`, `cell//pkg:`)
    /// and/or source paths (relative to the current directory when it is
    /// inside the workspace, else to the workspace root).
    #[arg(value_name = "PATTERN|PATH")]
    pub paths: Vec<String>,
    /// Who computes the file set of target patterns.
    #[arg(long, value_enum, default_value = "builtin")]
    pub graph: crate::targets::GraphMode,
    /// Move the source to another revision first (git: any commit, branch or
    /// tag; mono: refs) and remember it for later syncs.
    #[arg(long, value_name = "REV")]
    pub rev: Option<String>,
    /// Lay Mono change list LINK over the source (mono: only; new, modified,
    /// deleted and renamed files of the CL under review) and remember it;
    /// `--cl ''` drops it.
    #[arg(long, value_name = "LINK")]
    pub cl: Option<String>,
    /// After syncing, keep running: watch the workspace and the source side
    /// (a dir: source, the mount's upper dir) and sync each change as it
    /// happens, until interrupted.
    #[arg(long)]
    pub watch: bool,
    /// Which toolchains the workspace builds with: `system` generates the
    /// `antares-toolchains` cell (the prelude's system rules with the
    /// machine's tools) in place of the repository's toolchains, `auto` only
    /// for toolchains whose downloads are unreachable, `repo` the
    /// repository's own. Kept for later syncs.
    #[arg(long, value_enum, value_name = "MODE")]
    pub toolchains: Option<crate::toolchains::Mode>,
    /// Keep the previously synced selection and add these paths to it.
    #[arg(long)]
    pub add: bool,
    /// Fail at once if another antares holds the workspace, instead of waiting.
    #[arg(long)]
    pub no_wait: bool,
    /// Print a machine-readable summary on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print the status as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("side").required(true).args(["ours", "theirs"])))]
pub struct ResolveArgs {
    /// The conflicting path.
    pub path: String,
    /// Keep the workspace's version.
    #[arg(long)]
    pub ours: bool,
    /// Take the source's version.
    #[arg(long)]
    pub theirs: bool,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    /// Target patterns (default: the workspace's synced targets).
    #[arg(value_name = "PATTERN")]
    pub patterns: Vec<String>,
    /// Who computes the graph.
    #[arg(long, value_enum, default_value = "builtin")]
    pub graph: crate::targets::GraphMode,
    /// Compute with both the built-in evaluator and real buck2, and report
    /// the paths one has and the other lacks.
    #[arg(long, conflicts_with = "graph")]
    pub compare: bool,
    /// Print the whole file set (with reasons) as JSON.
    #[arg(long)]
    pub json: bool,
    /// List every file, not just the counts and packages.
    #[arg(long)]
    pub files: bool,
    /// Only list the toolchains: which ones the last sync replaced with
    /// system rules (`sync --toolchains system|auto`), the tool each uses,
    /// and why each other one was kept.
    #[arg(long)]
    pub toolchains: bool,
}

#[derive(Debug, Args)]
pub struct WhyArgs {
    /// A path in the workspace.
    pub path: String,
    /// Target patterns to explain against (default: the synced targets).
    #[arg(value_name = "PATTERN")]
    pub patterns: Vec<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct MountArgs {
    /// Where to mount (default: the configured one, else WORKSPACE.mount beside the workspace).
    pub mountpoint: Option<std::path::PathBuf>,
    /// Stay in the foreground until SIGINT/SIGTERM, logging to stderr.
    #[arg(long)]
    pub foreground: bool,
    /// Lay Mono change list LINK over the source, read-only, between the
    /// upper layer and the source (as `antares sync --cl`); remembered.
    #[arg(long, value_name = "LINK")]
    pub cl: Option<String>,
}

#[derive(Debug, Args)]
pub struct UmountArgs {
    /// The mount point (default: the configured one).
    pub mountpoint: Option<std::path::PathBuf>,
}
