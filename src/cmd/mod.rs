//! One module per subcommand; each returns the process exit status.

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
