//! `antares serve [--bind ADDR] [--mount-root DIR] [--unmount-on-exit]`

use crate::cli::{Global, ServeArgs};
use crate::serve::{self, root, Server, Table};
use crate::workspace::Workspace;
use anyhow::{Context, Result};
use std::io::Write;
use std::sync::Arc;

pub fn run(global: &Global, args: &ServeArgs) -> Result<i32> {
    let ws = Workspace::find(global.workspace.as_deref())?;
    let state = ws.layout.serve_dir();
    std::fs::create_dir_all(&state)
        .with_context(|| format!("cannot create {}", state.display()))?;
    let _lock = root::ServeLock::take(&state)?;
    let mount_root = match &args.mount_root {
        Some(d) => d.clone(),
        None => root::default_mount_root()?,
    };
    let mount_root = root::prepare_mount_root(&mount_root)?;
    eprintln!(
        "mount root {}; {}",
        mount_root.display(),
        root::other_users_message()
    );
    let server = Arc::new(Server {
        source: ws.config.source.to_string(),
        store: ws.store_dir(global.cache.as_deref())?,
        table: tokio::sync::Mutex::new(Table::load(&state)?),
        state,
        mount_root,
        started: std::time::Instant::now(),
        cancels: std::sync::Mutex::new(std::collections::HashMap::new()),
    });
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.bind)
            .await
            .with_context(|| format!("cannot listen on {}", args.bind))?;
        let addr = listener.local_addr()?;
        let mut out = std::io::stdout();
        writeln!(out, "listening on http://{addr}")?;
        out.flush()?;
        if !addr.ip().is_loopback() {
            eprintln!("antares: warning: the API has no authentication and listens on {addr}");
        }
        axum::serve(listener, serve::router(server.clone()))
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("the server failed")?;
        if args.unmount_on_exit {
            serve::remove_all(&server).await;
        }
        anyhow::Ok(())
    })?;
    Ok(super::OK)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
