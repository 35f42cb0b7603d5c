//! `antares serve`: the Antares management API (what Scorpio serves on port
//! 2725 and Orion workers call), backed by antares mounts.
//!
//! Each mount gets its own workspace under the serving workspace's state
//! dir (`.antares/serve/<id>/ws`, same source and content store) and is
//! mounted at `.antares/serve/<id>/mnt` by running this binary's own
//! `mount` as a child; `POST /mounts/{id}/sync` runs its `sync`. Child
//! processes keep the server a thin layer over the commands users run.

mod table;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
pub use table::{MountInfo, Table};

/// What the handlers share.
pub struct Server {
    /// The serving workspace's source spec, given to each mount's workspace.
    pub source: String,
    /// The content store, shared by every mount.
    pub store: PathBuf,
    /// `.antares/serve` of the serving workspace.
    pub state: PathBuf,
    pub table: tokio::sync::Mutex<Table>,
}

/// An API error: `{error, code}` with that HTTP status.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.1, "code": self.0.as_u16() });
        (self.0, Json(body)).into_response()
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

fn not_found(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, msg.into())
}

fn internal(msg: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, msg.to_string())
}

type ApiResult = Result<Response, ApiError>;
type Shared = State<Arc<Server>>;

pub fn router(server: Arc<Server>) -> Router {
    Router::new()
        .route("/antares/health", get(health))
        .route("/antares/mounts", post(create).get(list))
        .route("/antares/mounts/{id}", get(get_one).delete(delete_one))
        .route("/antares/mounts/{id}/ready", get(ready))
        .route("/antares/mounts/{id}/sync", post(sync))
        .route(
            "/antares/mounts/by-job/{job}",
            get(get_by_job).delete(delete_by_job),
        )
        .fallback(|| async { not_found("no such route") })
        .with_state(server)
}

async fn health(State(s): Shared) -> Json<Value> {
    let mounts = s.table.lock().await.mounts.len();
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION"), "mounts": mounts }))
}

#[derive(Deserialize)]
struct CreateBody {
    path: String,
    job_id: Option<String>,
    cl: Option<String>,
}

/// `/a/b`, `a/b/`, `/` → the repository path, refusing what could escape.
fn normalize(path: &str) -> Result<String, ApiError> {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    antares_overlay::RepoPath::new(trimmed)
        .map(|p| p.as_str().to_string())
        .map_err(|e| bad(format!("path {path:?}: {e}")))
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(v)| v)
        .map_err(|e| bad(format!("bad request body: {}", e.body_text())))
}

async fn create(State(s): Shared, b: Result<Json<CreateBody>, JsonRejection>) -> ApiResult {
    let b = body(b)?;
    if b.cl.as_deref().is_some_and(|c| !c.is_empty()) {
        return Err(bad(
            "cl layers (Mono change lists) are not supported by antares serve",
        ));
    }
    let rel = normalize(&b.path)?;
    let job = b.job_id.filter(|j| !j.is_empty());
    // The lock is held for the whole creation: two requests with one job_id
    // must not make two mounts.
    let mut table = s.table.lock().await;
    if let Some(m) = job.as_deref().and_then(|j| table.by_job(j)) {
        let reply = json!({ "mount_id": m.mount_id, "mountpoint": m.mountpoint });
        return Ok((StatusCode::OK, Json(reply)).into_response());
    }
    let id = new_id();
    let dir = s.state.join(&id);
    let info = MountInfo {
        mount_id: id.clone(),
        path: format!("/{rel}"),
        job_id: job,
        mountpoint: dir.join("mnt").join(&rel),
        mount_root: dir.join("mnt"),
        workspace: dir.join("ws"),
        created_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    let (srv, m) = (s.clone(), info.clone());
    let made = tokio::task::spawn_blocking(move || make_mount(&srv, &m))
        .await
        .map_err(internal)?;
    if let Err(e) = made {
        let (srv, m) = (s.clone(), info.clone());
        let _ = tokio::task::spawn_blocking(move || remove_mount(&srv, &m)).await;
        return Err(internal(format!("cannot create the mount: {e}")));
    }
    table.mounts.insert(id, info.clone());
    table.save().map_err(|e| internal(format!("{e:#}")))?;
    tracing::info!(mount_id = info.mount_id, path = info.path, "mounted");
    let reply = json!({ "mount_id": info.mount_id, "mountpoint": info.mountpoint });
    Ok((StatusCode::CREATED, Json(reply)).into_response())
}

/// 16 hex digits, unique enough for one machine's mounts.
fn new_id() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = blake3::Hasher::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.update(&now.to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    h.update(
        &N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .to_le_bytes(),
    );
    h.finalize().to_hex()[..16].to_string()
}

/// Runs `antares ARGS…` (this binary); stdout on success, else the error
/// message it printed.
fn antares(s: &Server, args: &[&std::ffi::OsStr]) -> Result<(i32, String), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find antares: {e}"))?;
    let out = Command::new(exe)
        .arg("--cache")
        .arg(&s.store)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run antares: {e}"))?;
    let code = out.status.code().unwrap_or(crate::cmd::ERROR);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if code == crate::cmd::OK || code == crate::cmd::CONFLICTS {
        return Ok((code, stdout));
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let msg = err
        .lines()
        .filter(|l| l.contains("error"))
        .collect::<Vec<_>>()
        .join("; ");
    Err(if msg.is_empty() {
        err.trim().to_string()
    } else {
        msg
    })
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

fn make_mount(s: &Server, m: &MountInfo) -> Result<(), String> {
    let ws = m.workspace.as_os_str();
    antares(s, &[os("init"), os("--source"), os(&s.source), ws])?;
    antares(s, &[os("-C"), ws, os("mount"), m.mount_root.as_os_str()])?;
    if !m.mountpoint.exists() {
        return Err(format!("{} is not in the repository", m.path));
    }
    Ok(())
}

/// Unmounts (if mounted) and removes the mount's directory.
fn remove_mount(s: &Server, m: &MountInfo) -> Result<(), String> {
    if crate::cmd::mount::is_mounted(&m.mount_root) {
        antares(
            s,
            &[
                os("-C"),
                m.workspace.as_os_str(),
                os("umount"),
                m.mount_root.as_os_str(),
            ],
        )?;
    }
    if let Some(dir) = m.workspace.parent() {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot remove {}: {e}", dir.display())),
        }
    }
    Ok(())
}

fn view(m: &MountInfo) -> Value {
    json!({
        "mount_id": m.mount_id,
        "path": m.path,
        "job_id": m.job_id,
        "mountpoint": m.mountpoint,
        "workspace": m.workspace,
        "state": if crate::cmd::mount::is_mounted(&m.mount_root) { "mounted" } else { "unmounted" },
        "created_at": m.created_at,
    })
}

async fn list(State(s): Shared) -> Json<Value> {
    let t = s.table.lock().await;
    Json(Value::Array(t.mounts.values().map(view).collect()))
}

async fn find(s: &Server, id: &str) -> Result<MountInfo, ApiError> {
    s.table
        .lock()
        .await
        .mounts
        .get(id)
        .cloned()
        .ok_or_else(|| not_found(format!("no mount {id:?}")))
}

async fn find_job(s: &Server, job: &str) -> Result<MountInfo, ApiError> {
    s.table
        .lock()
        .await
        .by_job(job)
        .cloned()
        .ok_or_else(|| not_found(format!("no mount for job {job:?}")))
}

async fn get_one(State(s): Shared, UrlPath(id): UrlPath<String>) -> ApiResult {
    Ok(Json(view(&find(&s, &id).await?)).into_response())
}

async fn get_by_job(State(s): Shared, UrlPath(job): UrlPath<String>) -> ApiResult {
    Ok(Json(view(&find_job(&s, &job).await?)).into_response())
}

async fn delete(s: Arc<Server>, m: MountInfo) -> ApiResult {
    let mut table = s.table.lock().await;
    let shown = view(&m);
    let (srv, mi) = (s.clone(), m.clone());
    tokio::task::spawn_blocking(move || remove_mount(&srv, &mi))
        .await
        .map_err(internal)?
        .map_err(|e| internal(format!("cannot remove mount {}: {e}", m.mount_id)))?;
    table.mounts.remove(&m.mount_id);
    table.save().map_err(|e| internal(format!("{e:#}")))?;
    tracing::info!(mount_id = m.mount_id, "unmounted");
    Ok(Json(shown).into_response())
}

async fn delete_one(State(s): Shared, UrlPath(id): UrlPath<String>) -> ApiResult {
    let m = find(&s, &id).await?;
    delete(s, m).await
}

async fn delete_by_job(State(s): Shared, UrlPath(job): UrlPath<String>) -> ApiResult {
    let m = find_job(&s, &job).await?;
    delete(s, m).await
}

async fn ready(State(s): Shared, UrlPath(id): UrlPath<String>) -> ApiResult {
    let m = find(&s, &id).await?;
    let up = crate::cmd::mount::is_mounted(&m.mount_root);
    Ok(Json(json!({ "ready": up })).into_response())
}

#[derive(Deserialize)]
struct SyncBody {
    targets: Vec<String>,
}

async fn sync(
    State(s): Shared,
    UrlPath(id): UrlPath<String>,
    b: Result<Json<SyncBody>, JsonRejection>,
) -> ApiResult {
    let b = body(b)?;
    let m = find(&s, &id).await?;
    if b.targets.is_empty() {
        return Err(bad("targets is empty"));
    }
    if let Some(t) = b
        .targets
        .iter()
        .find(|t| t.is_empty() || t.starts_with('-'))
    {
        return Err(bad(format!("{t:?} is not a target pattern")));
    }
    let srv = s.clone();
    let out = tokio::task::spawn_blocking(move || {
        let mut args = vec![os("-C"), m.workspace.as_os_str(), os("sync"), os("--json")];
        args.extend(b.targets.iter().map(|t| os(t)));
        antares(&srv, &args)
    })
    .await
    .map_err(internal)?
    .map_err(|e| internal(format!("sync failed: {e}")))?;
    let summary: Value = serde_json::from_str(&out.1)
        .map_err(|e| internal(format!("sync printed no JSON summary: {e}")))?;
    Ok(Json(summary).into_response())
}

/// Unmounts and forgets every mount (`--unmount-on-exit`).
pub async fn remove_all(s: &Arc<Server>) {
    let all: Vec<MountInfo> = s.table.lock().await.mounts.values().cloned().collect();
    for m in all {
        if let Err(e) = delete(s.clone(), m.clone()).await {
            tracing::warn!(mount_id = m.mount_id, "cannot remove at exit: {}", e.1);
        }
    }
}

/// The serving workspace's `.antares/serve`.
pub fn state_dir(ws_state: &Path) -> PathBuf {
    ws_state.join("serve")
}
