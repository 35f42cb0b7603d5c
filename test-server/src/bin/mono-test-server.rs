//! `mono-test-server --repo PATH [--bind ADDR]`: serves a git repository
//! through Mono's read API, for benchmarks and manual tests.

use anyhow::Context;
use clap::Parser;
use std::io::Write;

/// Serves a local git repository through Mono's read API (/api/v1/tree/content-hash,
/// tree/dir-hash, file/tree, file/blob/{oid}, latest-commit). GET /_test/requests returns
/// {"count", "requests"} of the API requests so far; POST /_test/reset clears them.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The git repository to serve (work tree or bare).
    #[arg(long)]
    repo: std::path::PathBuf,
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: std::net::SocketAddr,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let server = antares_mono_test_server::TestServer::start_on(&args.repo, args.bind)
        .with_context(|| format!("cannot serve {} on {}", args.repo.display(), args.bind))?;
    let mut out = std::io::stdout();
    writeln!(out, "listening on {}", server.url())?;
    out.flush()?;
    server.wait_for_signal();
    Ok(())
}
