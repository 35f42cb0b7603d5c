//! `antares serve`: the Antares management API exactly as Scorpio serves it
//! (scorpiofs' `src/daemon/antares.rs`: routes, status codes, request and
//! response fields, error bodies, lifecycle states), backed by antares
//! mounts, plus one extension, `POST /antares/mounts/{id}/sync`.
//!
//! Each mount gets its own workspace under the serving workspace's state
//! dir (`.antares/serve/<id>/ws`: same source and content store, its own
//! upper layer) and is mounted at `MOUNT_ROOT/<id>` — outside any tree
//! with a `.buckconfig`; a subtree `path` is bind-mounted there from the
//! tree mounted at `MOUNT_ROOT/.<id>` — by running this binary's own
//! `mount` as a child;
//! a change list is laid over it with `mount --cl` (and written out as
//! Scorpio's `layers.cl` directory, `.antares/serve/<id>/cl`). Child
//! processes keep the server a thin layer over the commands users run.
//! `docs/scorpio-api.md` holds the route-by-route comparison.

mod child;
mod cl_layer;
pub mod root;
mod table;

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
pub use table::{MountInfo, Table};
use uuid::Uuid;

/// Scorpio's `MountLifecycle`, in the values an antares mount takes: it is
/// made, re-layered and torn down under the table's lock, so Scorpio's
/// transient `Provisioning`, `Quiescing` and `Unmounting` are never seen.
/// Serialized as Scorpio's (`"Ready"`, `{"Failed":{"reason":…}}`) and
/// written into error messages with `{:?}` as Scorpio does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Lifecycle {
    /// Mounted, but its last CL change failed and the old layering was
    /// mounted again (Scorpio leaves such a mount `Mounted`, not `Ready`).
    Mounted,
    Ready,
    Unmounted,
    Failed {
        reason: String,
    },
}

impl Lifecycle {
    /// Scorpio lets a mount be reused or re-layered only in these states.
    fn usable(&self) -> bool {
        matches!(self, Lifecycle::Mounted | Lifecycle::Ready)
    }
}

/// What the handlers share.
pub struct Server {
    /// The serving workspace's source spec, given to each mount's workspace.
    pub source: String,
    /// The content store, shared by every mount.
    pub store: PathBuf,
    /// `.antares/serve` of the serving workspace.
    pub state: PathBuf,
    /// Where mount points are made (`--mount-root`).
    pub mount_root: PathBuf,
    pub table: tokio::sync::Mutex<Table>,
    pub started: Instant,
    /// Per mount: set to true when it is deleted, so its syncs stop.
    pub cancels: std::sync::Mutex<HashMap<String, tokio::sync::watch::Sender<bool>>>,
}

/// Scorpio's error body, `{error, code}`, with its status codes.
#[derive(Debug)]
pub enum ApiError {
    /// 400 `INVALID_REQUEST`.
    Invalid(String),
    /// 404 `NOT_FOUND`.
    NotFound(String),
    /// 500 `FUSE_ERROR`: mounting or unmounting failed.
    Fuse(String),
    /// 500 `INTERNAL_ERROR`.
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, msg) = match self {
            ApiError::Invalid(m) => (StatusCode::BAD_REQUEST, "INVALID_REQUEST", m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "NOT_FOUND", m),
            ApiError::Fuse(m) => (StatusCode::INTERNAL_SERVER_ERROR, "FUSE_ERROR", m),
            ApiError::Internal(m) => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", m),
        };
        (status, Json(json!({ "error": msg, "code": code }))).into_response()
    }
}

fn internal(msg: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(msg.to_string())
}

fn no_mount(id: &str) -> ApiError {
    ApiError::NotFound(format!("mount {id} not found"))
}

type ApiResult = Result<Response, ApiError>;
type Shared = State<Arc<Server>>;

pub fn router(server: Arc<Server>) -> Router {
    Router::new()
        .route("/antares/health", get(health))
        .route("/antares/mounts", post(create).get(list))
        .route(
            "/antares/mounts/by-job/{job_id}",
            get(get_by_job).delete(delete_by_job),
        )
        .route(
            "/antares/mounts/{mount_id}",
            get(get_one).delete(delete_one),
        )
        .route(
            "/antares/mounts/{mount_id}/cl",
            post(build_cl).delete(clear_cl),
        )
        .route("/antares/mounts/{mount_id}/ready", get(ready))
        .route("/antares/mounts/{mount_id}/sync", post(sync))
        .with_state(server)
}

async fn health(State(s): Shared) -> Json<Value> {
    let mounts = s.table.lock().await.mounts.len();
    Json(json!({
        "status": "healthy",
        "mount_count": mounts,
        "uptime_secs": s.started.elapsed().as_secs(),
    }))
}

/// Scorpio's `CreateMountRequest`.
#[derive(Deserialize)]
struct CreateBody {
    #[serde(default)]
    job_id: Option<String>,
    #[serde(default)]
    build_id: Option<String>,
    path: String,
    #[serde(default)]
    cl: Option<String>,
}

/// Scorpio's normalization: trimmed, one leading `/`, no trailing `/`;
/// empty stays empty (and is refused). Then antares' own check that the
/// path cannot escape. Returns (normalized, repository-relative).
fn normalize(path: &str) -> Result<(String, String), ApiError> {
    let trimmed = path.trim();
    if trimmed.is_empty() {
        return Err(ApiError::Invalid("path cannot be empty".into()));
    }
    let rel = trimmed.trim_matches('/');
    if rel.is_empty() {
        return Ok(("/".into(), String::new()));
    }
    let rp = antares_overlay::RepoPath::new(rel)
        .map_err(|e| ApiError::Invalid(format!("path {path:?}: {e}")))?;
    Ok((format!("/{}", rp.as_str()), rp.as_str().to_string()))
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

async fn create(State(s): Shared, Json(b): Json<CreateBody>) -> ApiResult {
    let (path, rel) = normalize(&b.path)?;
    let task = b
        .job_id
        .or(b.build_id)
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    // As Scorpio: the link is kept as given (compared raw for a reused
    // task id); an empty one is refused once the task id is checked.
    let cl = b.cl;
    // The lock is held for the whole creation: two requests with one task
    // id must not make two mounts.
    let mut table = s.table.lock().await;
    if let Some(t) = &task {
        if let Some(id) = table.by_job(t).map(|m| m.mount_id.clone()) {
            let m = table.mounts.get_mut(&id).ok_or_else(|| no_mount(&id))?;
            if m.path != path || m.cl != cl {
                return Err(ApiError::Invalid(format!(
                    "job_id/build_id '{t}' already mounted with different path/cl"
                )));
            }
            // A mount that no longer answers is not handed out again.
            let state = state_of(m).await;
            if !state.usable() {
                return Err(ApiError::Invalid(format!(
                    "job_id/build_id '{t}' is currently in state {state:?}; retry after unmount completes"
                )));
            }
            m.touch();
            let reply = json!({ "mount_id": m.mount_id, "mountpoint": m.mountpoint });
            return Ok(Json(reply).into_response());
        }
    } else if table.by_path(&path, cl.as_deref()).is_some() {
        return Err(ApiError::Invalid(format!(
            "path {path} with cl {cl:?} is already mounted"
        )));
    }
    if let Some(c) = &cl {
        check_cl(&s, c)?;
    }
    let id = new_id();
    let mountpoint = s.mount_root.join(&id);
    let now = table::now_ms();
    let info = MountInfo {
        mount_id: id.clone(),
        path,
        job_id: task,
        cl,
        mount_root: if rel.is_empty() {
            mountpoint.clone()
        } else {
            s.mount_root.join(format!(".{id}"))
        },
        mountpoint,
        bound: false,
        remounted_after_failure: false,
        workspace: s.state.join(&id).join("ws"),
        created_at_epoch_ms: now,
        last_seen_epoch_ms: now,
    };
    let (srv, mut m) = (s.clone(), info.clone());
    let made = tokio::task::spawn_blocking(move || make_mount(&srv, &mut m, &rel).map(|()| m))
        .await
        .map_err(internal)?;
    let info = match made {
        Ok(m) => m,
        Err(e) => {
            let (srv, m) = (s.clone(), info.clone());
            if let Ok(Err(why)) = tokio::task::spawn_blocking(move || remove_mount(&srv, &m)).await
            {
                tracing::warn!(
                    mount_id = info.mount_id,
                    "cleanup after a failed create: {why}"
                );
            }
            return Err(e);
        }
    };
    table.mounts.insert(id.clone(), info.clone());
    table.save().map_err(|e| internal(format!("{e:#}")))?;
    tracing::info!(mount_id = id, path = info.path, cl = ?info.cl, "mounted");
    let reply = json!({ "mount_id": info.mount_id, "mountpoint": info.mountpoint });
    Ok(Json(reply).into_response())
}

/// Scorpio's refusal of an empty link; then antares' own: change lists are
/// Mono's, refused up front on another kind of source.
fn check_cl(s: &Server, link: &str) -> Result<(), ApiError> {
    if link.trim().is_empty() {
        return Err(ApiError::Invalid("cl link cannot be empty".into()));
    }
    match antares_overlay::SourceSpec::parse(&s.source) {
        Ok(antares_overlay::SourceSpec::Mono { .. }) => Ok(()),
        _ => Err(ApiError::Invalid(format!(
            "cl layers are Mono change lists; this server's source {} is not mono:",
            s.source
        ))),
    }
}

/// A random UUID (version 4 layout), from the time, the pid and a counter.
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
    let mut u = [0u8; 16];
    u.copy_from_slice(&h.finalize().as_bytes()[..16]);
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    let hex: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// `init` the mount's workspace, `mount` it (with its CL), check that
/// `rel` is a directory of the mounted tree, and show it at the mount point.
fn make_mount(s: &Server, m: &mut MountInfo, rel: &str) -> Result<(), ApiError> {
    let ws = m.workspace.as_os_str();
    child::run(&s.store, &[os("init"), os("--source"), os(&s.source), ws])
        .map_err(|e| internal(format!("cannot create the mount's workspace: {e}")))?;
    if let Some(cl) = &m.cl {
        write_cl_layer(s, m, cl)?;
    }
    mount(s, m, m.cl.as_deref())?;
    root::check_tree_dir(&m.mount_root, rel)
        .map_err(|e| ApiError::Invalid(format!("path {}: {e}", m.path)))?;
    if rel.is_empty() {
        return Ok(());
    }
    m.bound = bind(m, rel)?;
    if !m.bound {
        m.mountpoint = m.mount_root.join(rel);
    }
    Ok(())
}

/// Shows directory `rel` of the tree at the mount point with a bind mount;
/// `false` without the privilege to (then the tree is used in place).
fn bind(m: &MountInfo, rel: &str) -> Result<bool, ApiError> {
    std::fs::create_dir_all(&m.mountpoint)
        .map_err(|e| internal(format!("cannot create {}: {e}", m.mountpoint.display())))?;
    match antares_overlay::fuse::bind_mount(&m.mount_root.join(rel), &m.mountpoint) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            tracing::warn!(
                "no privilege to bind {} on {}: the mount point is the path in the tree",
                rel,
                m.mountpoint.display()
            );
            let _ = std::fs::remove_dir(&m.mountpoint);
            Ok(false)
        }
        Err(e) => Err(ApiError::Fuse(format!(
            "cannot bind {rel} on {}: {e}",
            m.mountpoint.display()
        ))),
    }
}

/// Fetches change list `cl` into the mount's `layers.cl` directory (made
/// aside, then renamed over the old one): a CL that cannot be read is
/// Scorpio's 500 `INTERNAL_ERROR`, and the old directory stays whole.
fn write_cl_layer(s: &Server, m: &MountInfo, cl: &str) -> Result<(), ApiError> {
    let dir = cl_dir(s, m);
    let fresh = dir.with_extension("new");
    cl_layer::build(&s.source, cl, rel_of(m), &fresh).map_err(ApiError::Internal)?;
    remove_cl_layer(s, m)?;
    std::fs::rename(&fresh, &dir)
        .map_err(|e| internal(format!("cannot move {} into place: {e}", fresh.display())))
}

/// Removes the mount's `layers.cl` directory (its own, made by the server).
fn remove_cl_layer(s: &Server, m: &MountInfo) -> Result<(), ApiError> {
    let dir = cl_dir(s, m);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(internal(format!("cannot remove {}: {e}", dir.display()))),
    }
}

/// Where a mount's CL layer is written (Scorpio's `{cl_root}/{mount_id}`).
fn cl_dir(s: &Server, m: &MountInfo) -> PathBuf {
    s.state.join(&m.mount_id).join("cl")
}

/// The repository-relative form of a mount's `path`.
fn rel_of(m: &MountInfo) -> &str {
    m.path.trim_matches('/')
}

/// Mounts the mount's workspace at its root, with change list `cl` (none:
/// the source alone).
fn mount(s: &Server, m: &MountInfo, cl: Option<&str>) -> Result<(), ApiError> {
    let ws = m.workspace.as_os_str();
    let cl = os(cl.unwrap_or(""));
    child::run(
        &s.store,
        &[
            os("-C"),
            ws,
            os("mount"),
            os("--cl"),
            cl,
            m.mount_root.as_os_str(),
        ],
    )
    .map(drop)
    .map_err(|e| ApiError::Fuse(format!("failed to mount: {e}")))
}

/// Unbinds the mount point (if bound) and unmounts the tree.
fn unmount(s: &Server, m: &MountInfo) -> Result<(), String> {
    if m.bound && antares_overlay::mountinfo::is_mounted(&m.mountpoint) {
        antares_overlay::fuse::unbind(&m.mountpoint)
            .map_err(|e| format!("cannot unbind {}: {e}", m.mountpoint.display()))?;
    }
    if antares_overlay::mountinfo::is_mounted(&m.mount_root) {
        child::run(
            &s.store,
            &[
                os("-C"),
                m.workspace.as_os_str(),
                os("umount"),
                m.mount_root.as_os_str(),
            ],
        )?;
    }
    Ok(())
}

/// Unmounts (if mounted) and removes the mount point, the tree's mount
/// directory (both empty once unmounted: never a recursive removal, which
/// on a live mount would delete the tree's files) and the mount's workspace.
fn remove_mount(s: &Server, m: &MountInfo) -> Result<(), String> {
    unmount(s, m)?;
    for dir in [&m.mountpoint, &m.mount_root] {
        match std::fs::remove_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // A fallback mount point inside the tree's directory, gone with it.
            Err(_) if !m.bound && dir == &m.mountpoint && dir != &m.mount_root => {}
            Err(e) => return Err(format!("cannot remove {}: {e}", dir.display())),
        }
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

/// Scorpio's lifecycle state of a mount in the table: `Ready` while its
/// file system answers (`Mounted` after a failed CL change), `Failed`
/// when it does not (not mounted, or its daemon died: ENOTCONN).
async fn state_of(m: &MountInfo) -> Lifecycle {
    match root::alive(&m.mount_root).await {
        Ok(()) if m.remounted_after_failure => Lifecycle::Mounted,
        Ok(()) => Lifecycle::Ready,
        Err(reason) => Lifecycle::Failed { reason },
    }
}

/// Scorpio's `MountStatus`, field for field.
fn status(s: &Server, m: &MountInfo, state: Lifecycle) -> Value {
    json!({
        "mount_id": m.mount_id,
        "job_id": m.job_id,
        "path": m.path,
        "cl": m.cl,
        "mountpoint": m.mountpoint,
        "layers": {
            "upper": m.upper(),
            "cl": m.cl.as_ref().map(|_| cl_dir(s, m)),
            // Scorpio's constant: every mount reads one shared lower tree
            // (antares: one source and content store for all mounts).
            "dicfuse": "shared",
        },
        "state": state,
        "created_at_epoch_ms": m.created_at_epoch_ms,
        "last_seen_epoch_ms": m.last_seen_epoch_ms,
    })
}

async fn list(State(s): Shared) -> Json<Value> {
    let all: Vec<MountInfo> = s.table.lock().await.mounts.values().cloned().collect();
    let mut out = Vec::with_capacity(all.len());
    for m in &all {
        out.push(status(&s, m, state_of(m).await));
    }
    Json(json!({ "mounts": out }))
}

/// The mount with id `id` (as Scorpio, looking does not count as seen:
/// `last_seen_epoch_ms` moves on create, delete and CL changes).
async fn find(s: &Server, id: Uuid) -> Result<MountInfo, ApiError> {
    let id = id.to_string();
    let t = s.table.lock().await;
    t.mounts.get(&id).cloned().ok_or_else(|| no_mount(&id))
}

async fn find_job(s: &Server, job: &str) -> Result<MountInfo, ApiError> {
    s.table
        .lock()
        .await
        .by_job(job)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(format!("mount for task {job} not found")))
}

async fn describe(s: &Server, m: &MountInfo) -> ApiResult {
    Ok(Json(status(s, m, state_of(m).await)).into_response())
}

async fn get_one(State(s): Shared, UrlPath(id): UrlPath<Uuid>) -> ApiResult {
    let m = find(&s, id).await?;
    describe(&s, &m).await
}

async fn get_by_job(State(s): Shared, UrlPath(job): UrlPath<String>) -> ApiResult {
    let m = find_job(&s, &job).await?;
    describe(&s, &m).await
}

/// Stops the mount's syncs, unmounts it and forgets it: `state: "Unmounted"`.
/// An unmount that fails leaves it in the table as `{"Failed": …}`, as
/// Scorpio does.
async fn delete(s: Arc<Server>, m: MountInfo) -> ApiResult {
    if let Some(tx) = s
        .cancels
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&m.mount_id)
    {
        let _ = tx.send(true);
    }
    let mut table = s.table.lock().await;
    let (srv, mi) = (s.clone(), m.clone());
    let removed = tokio::task::spawn_blocking(move || remove_mount(&srv, &mi))
        .await
        .map_err(internal)?;
    let mut m = m;
    m.touch();
    if let Err(e) = removed {
        tracing::error!(mount_id = m.mount_id, "unmount failed: {e}");
        let state = Lifecycle::Failed {
            reason: format!("unmount failed: {e}"),
        };
        return Ok(Json(status(&s, &m, state)).into_response());
    }
    table.mounts.remove(&m.mount_id);
    table.save().map_err(|e| internal(format!("{e:#}")))?;
    tracing::info!(mount_id = m.mount_id, "unmounted");
    Ok(Json(status(&s, &m, Lifecycle::Unmounted)).into_response())
}

async fn delete_one(State(s): Shared, UrlPath(id): UrlPath<Uuid>) -> ApiResult {
    let m = find(&s, id).await?;
    delete(s, m).await
}

async fn delete_by_job(State(s): Shared, UrlPath(job): UrlPath<String>) -> ApiResult {
    let m = find_job(&s, &job).await?;
    delete(s, m).await
}

async fn ready(State(s): Shared, UrlPath(id): UrlPath<Uuid>) -> ApiResult {
    let m = find(&s, id).await?;
    let state = state_of(&m).await;
    let reply =
        json!({ "mount_id": m.mount_id, "ready": state == Lifecycle::Ready, "state": state });
    Ok(Json(reply).into_response())
}

/// Scorpio's `BuildClRequest`.
#[derive(Deserialize)]
struct ClBody {
    cl: String,
}

/// Remounts `m` with change list `cl` (none: without), keeping its upper
/// layer, as Scorpio's `build_cl`/`clear_cl`: the CL is fetched first (a
/// CL that cannot be read: 500 `INTERNAL_ERROR`), then the mount is
/// remounted (failing: `FUSE_ERROR`). After a failure the old layering is
/// mounted again and the mount is `Mounted`, not `Ready`, as in Scorpio.
async fn relayer(s: Arc<Server>, m: MountInfo, cl: Option<String>) -> ApiResult {
    let mut table = s.table.lock().await;
    let (srv, mi, new_cl) = (s.clone(), m.clone(), cl.clone());
    let res = tokio::task::spawn_blocking(move || -> Result<(), ApiError> {
        if let Some(c) = &new_cl {
            write_cl_layer(&srv, &mi, c)?;
        }
        unmount(&srv, &mi).map_err(|e| ApiError::Fuse(format!("unmount failed: {e}")))?;
        if new_cl.is_none() {
            remove_cl_layer(&srv, &mi)?;
        }
        let res = mount(&srv, &mi, new_cl.as_deref());
        if res.is_err() {
            if let Err(again) = mount(&srv, &mi, mi.cl.as_deref()) {
                tracing::error!(
                    mount_id = mi.mount_id,
                    "remount after a failed cl change: {again:?}"
                );
            }
        }
        if mi.bound {
            bind(&mi, rel_of(&mi))?;
        }
        res
    })
    .await
    .map_err(internal)?;
    let entry = table
        .mounts
        .get_mut(&m.mount_id)
        .ok_or_else(|| no_mount(&m.mount_id))?;
    entry.touch();
    entry.remounted_after_failure = res.is_err();
    if res.is_ok() {
        entry.cl = cl;
    }
    let m = entry.clone();
    table.save().map_err(|e| internal(format!("{e:#}")))?;
    drop(table);
    res?;
    describe(&s, &m).await
}

/// Scorpio refuses CL changes to a mount that is not `Mounted` or `Ready`.
async fn check_usable(m: &MountInfo, what: &str) -> Result<(), ApiError> {
    let state = state_of(m).await;
    if state.usable() {
        Ok(())
    } else {
        Err(ApiError::Invalid(format!(
            "mount {} is currently in state {state:?}; cannot {what}",
            m.mount_id
        )))
    }
}

async fn build_cl(
    State(s): Shared,
    UrlPath(id): UrlPath<Uuid>,
    Json(b): Json<ClBody>,
) -> ApiResult {
    let m = find(&s, id).await?;
    check_usable(&m, "build CL").await?;
    check_cl(&s, &b.cl)?;
    relayer(s, m, Some(b.cl)).await
}

async fn clear_cl(State(s): Shared, UrlPath(id): UrlPath<Uuid>) -> ApiResult {
    let m = find(&s, id).await?;
    check_usable(&m, "clear CL").await?;
    if m.cl.is_none() {
        return Err(ApiError::Invalid("mount has no CL layer to clear".into()));
    }
    relayer(s, m, None).await
}

/// The sync extension's request: target patterns, and an optional
/// deadline (default [`SYNC_DEADLINE`]).
#[derive(Deserialize)]
struct SyncBody {
    targets: Vec<String>,
    #[serde(default)]
    timeout_secs: Option<u64>,
}

/// How long a sync started through the API may run by default.
pub const SYNC_DEADLINE: Duration = Duration::from_secs(3600);

/// `POST /antares/mounts/{id}/sync` (antares' extension): syncs the
/// targets into the mount's workspace; answers the sync's JSON summary.
/// The sync is killed when the client goes away, the mount is deleted, or
/// the deadline passes.
async fn sync(State(s): Shared, UrlPath(id): UrlPath<Uuid>, Json(b): Json<SyncBody>) -> ApiResult {
    let m = find(&s, id).await?;
    if b.targets.is_empty() {
        return Err(ApiError::Invalid("targets is empty".into()));
    }
    if let Some(t) = b
        .targets
        .iter()
        .find(|t| t.is_empty() || t.starts_with('-'))
    {
        return Err(ApiError::Invalid(format!("{t:?} is not a target pattern")));
    }
    let deadline = b
        .timeout_secs
        .filter(|&n| n > 0)
        .map_or(SYNC_DEADLINE, Duration::from_secs);
    let cancel = s
        .cancels
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(m.mount_id.clone())
        .or_insert_with(|| tokio::sync::watch::channel(false).0)
        .subscribe();
    let mut args = vec![os("-C"), m.workspace.as_os_str(), os("sync"), os("--json")];
    args.extend(b.targets.iter().map(|t| os(t)));
    let scratch = s.state.join(&m.mount_id).join("sync");
    let out = child::run_killable(&s.store, &args, &scratch, deadline, cancel)
        .await
        .map_err(|e| match e {
            child::Stopped::Failed(m) => internal(format!("sync failed: {m}")),
            child::Stopped::Killed(why) => internal(format!("sync killed: {why}")),
        })?;
    let summary: Value = serde_json::from_str(&out)
        .map_err(|e| internal(format!("sync printed no JSON summary: {e}")))?;
    Ok(Json(summary).into_response())
}

/// Unmounts and forgets every mount (`--unmount-on-exit`).
pub async fn remove_all(s: &Arc<Server>) {
    let all: Vec<MountInfo> = s.table.lock().await.mounts.values().cloned().collect();
    for m in all {
        if let Err(ApiError::Internal(e) | ApiError::Fuse(e)) = delete(s.clone(), m.clone()).await {
            tracing::warn!(mount_id = m.mount_id, "cannot remove at exit: {e}");
        }
    }
}
