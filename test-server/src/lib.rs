//! A Mono-compatible HTTP server over a local git repository.
//!
//! It answers Mono's read API (`/api/v1/tree/content-hash`, `tree/dir-hash`,
//! `file/tree`, `file/blob/{oid}`, `latest-commit`, `cl/{link}/files-list`)
//! in Mono's shapes and with Mono's quirks (read from mega's handlers):
//! refs are empty, a 40-hex commit or a tag, anything else a 500;
//! `file/tree` ignores refs, walks `path` on the default branch as it is now
//! and answers an `oid` it does not find there with 200 and an empty body;
//! a missing path in `content-hash` is `data: []`. So the `mono:` source
//! can be tested and benchmarked without a Mono; [`Faults`]
//! makes it fail the ways real servers and networks do. `/_test/requests`
//! (GET) and `/_test/reset` (POST) expose the request log to scripts.
//! [`client`] is the bare HTTP client the tests of this and other crates use.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
mod faults;
mod git;
mod routes;

pub use faults::Faults;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// What the handlers share.
pub(crate) struct State {
    pub repo: gix::ThreadSafeRepository,
    pub faults: Faults,
    pub log: Mutex<Vec<String>>,
    /// Change lists: link → (base refs, CL head refs).
    pub cls: Mutex<std::collections::HashMap<String, (String, String)>>,
}

/// A running server; stops when dropped.
pub struct TestServer {
    state: Arc<State>,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// Serves `repo` on 127.0.0.1 at a free port.
    pub fn start(repo: &Path) -> std::io::Result<TestServer> {
        Self::start_on(repo, SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Serves `repo` on `addr`, from a thread with its own runtime, so plain
    /// synchronous tests can use it. Returns once it accepts connections.
    pub fn start_on(repo: &Path, addr: SocketAddr) -> std::io::Result<TestServer> {
        let repo = gix::open(repo).map_err(std::io::Error::other)?.into_sync();
        let state = Arc::new(State {
            repo,
            faults: Faults::default(),
            log: Mutex::new(Vec::new()),
            cls: Mutex::new(std::collections::HashMap::new()),
        });
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = routes::router(state.clone());
        let thread = std::thread::Builder::new()
            .name("mono-test-server".into())
            .spawn(move || {
                rt.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    tokio::select! {
                        _ = axum::serve(listener, app) => {}
                        _ = stopped => {}
                    }
                });
                rt.shutdown_background();
            })?;
        Ok(TestServer {
            state,
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The switches that make this server misbehave (see [`Faults`]).
    pub fn faults(&self) -> &Faults {
        &self.state.faults
    }

    /// `/api/v1` requests since start or the last reset.
    pub fn request_count(&self) -> usize {
        self.requests().len()
    }

    /// `/api/v1/...?...` of each request, in arrival order.
    pub fn requests(&self) -> Vec<String> {
        self.state
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Serves change list `link`: the changes from commit `base` to commit
    /// `head` (any revisions git can resolve), listed as Mono lists them.
    pub fn add_cl(&self, link: &str, base: &str, head: &str) {
        self.state
            .cls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(link.to_string(), (base.to_string(), head.to_string()));
    }

    /// Empties the request log (so a test counts only what follows).
    pub fn reset_requests(&self) {
        self.state
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Serves until SIGINT or SIGTERM (for the binary).
    pub fn wait_for_signal(mut self) {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            else {
                return;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        });
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}
