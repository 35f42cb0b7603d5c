//! The HTTP face: Mono's routes, the fault middleware, the `/_test` routes.

use crate::git::{self, Miss};
use crate::State;
use axum::body::Body;
use axum::extract::{Path, Query, Request};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

type Params = Query<HashMap<String, String>>;
type Shared = axum::extract::State<Arc<State>>;

pub fn router(state: Arc<State>) -> Router {
    let api = Router::new()
        .route("/api/v1/tree/content-hash", get(content_hash))
        .route("/api/v1/tree/dir-hash", get(dir_hash))
        .route("/api/v1/file/tree", get(raw_tree))
        .route("/api/v1/file/blob/{oid}", get(blob))
        .route("/api/v1/latest-commit", get(latest_commit))
        .route("/api/v1/cl/{link}/files-list", get(cl_files))
        .layer(axum::middleware::from_fn_with_state(state.clone(), faults));
    Router::new()
        .route("/_test/requests", get(requests))
        .route("/_test/reset", post(reset))
        .merge(api)
        .with_state(state)
}

/// Logs every API request, then applies delay and 500 faults.
async fn faults(state: Shared, req: Request, next: Next) -> Response {
    let uri = req.uri();
    let line = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_string(), |pq| pq.as_str().to_string());
    state
        .log
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(line);
    let delay = state.faults.current_delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if state.faults.take_failure() {
        return wrapped_err(StatusCode::INTERNAL_SERVER_ERROR, "injected failure");
    }
    next.run(req).await
}

async fn requests(state: Shared) -> Json<Value> {
    let log = state.log.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Json(json!({ "count": log.len(), "requests": log }))
}

async fn reset(state: Shared) -> StatusCode {
    state.log.lock().unwrap_or_else(|p| p.into_inner()).clear();
    StatusCode::NO_CONTENT
}

/// Runs a git read off the async threads.
async fn with_repo<T: Send + 'static>(
    state: &Arc<State>,
    f: impl FnOnce(&gix::Repository) -> git::Result<T> + Send + 'static,
) -> git::Result<T> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || f(&state.repo.to_thread_local()))
        .await
        .unwrap_or_else(|e| Err(Miss::Broken(format!("reader task failed: {e}"))))
}

fn status_of(m: &Miss) -> (StatusCode, &str) {
    match m {
        Miss::NotFound(s) => (StatusCode::NOT_FOUND, s),
        Miss::Bad(s) => (StatusCode::BAD_REQUEST, s),
        Miss::Broken(s) => (StatusCode::INTERNAL_SERVER_ERROR, s),
    }
}

/// `{"req_result": false, "data": null, "err_message": ...}` with `status`.
fn wrapped_err(status: StatusCode, msg: &str) -> Response {
    let body = json!({ "req_result": false, "data": null, "err_message": msg });
    (status, Json(body)).into_response()
}

/// A wrapped success, or the malformed body the fault asks for.
fn wrapped_ok(state: &State, data: Value) -> Response {
    if state.faults.malformed() {
        return (
            [(header::CONTENT_TYPE, "application/json")],
            "{\"req_result\": true, \"data\": [",
        )
            .into_response();
    }
    Json(json!({ "req_result": true, "data": data, "err_message": "" })).into_response()
}

fn items_json(items: &[git::Item]) -> Value {
    Value::Array(
        items
            .iter()
            .map(|i| {
                json!({
                    "name": i.name,
                    "content_type": if i.is_tree { "directory" } else { "file" },
                    "oid": i.oid,
                })
            })
            .collect(),
    )
}

fn param(q: &HashMap<String, String>, k: &str) -> Option<String> {
    q.get(k).cloned()
}

async fn content_hash(state: Shared, Query(q): Params) -> Response {
    let path = param(&q, "path").unwrap_or_default();
    let refs = param(&q, "refs");
    let res = with_repo(&state, move |repo| {
        let c = git::commit(repo, refs.as_deref())?;
        match git::listing(repo, &c, &path) {
            // Mono lists a missing path as nothing.
            Err(Miss::NotFound(_)) => Ok(Vec::new()),
            r => r,
        }
    })
    .await;
    match res {
        Ok(mut items) => {
            if let Some(name) = state.faults.hostile() {
                items.push(git::Item {
                    name,
                    is_tree: false,
                    oid: "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391".into(),
                });
            }
            wrapped_ok(&state, items_json(&items))
        }
        Err(m) => {
            let (s, msg) = status_of(&m);
            wrapped_err(s, msg)
        }
    }
}

async fn dir_hash(state: Shared, Query(q): Params) -> Response {
    let path = param(&q, "path").unwrap_or_default();
    let refs = param(&q, "refs");
    let res = with_repo(&state, move |repo| {
        let c = git::commit(repo, refs.as_deref())?;
        let trimmed = path.trim_end_matches('/');
        let Some((parent, name)) = trimmed.rsplit_once('/').or(Some(("", trimmed))) else {
            return Ok(Vec::new());
        };
        if name.is_empty() {
            return Ok(Vec::new()); // the root has no name in a parent
        }
        let items = match git::listing(repo, &c, parent) {
            Ok(items) => items,
            Err(Miss::NotFound(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(items
            .into_iter()
            .filter(|i| i.is_tree && i.name == name)
            .collect::<Vec<_>>())
    })
    .await;
    match res {
        Ok(items) => wrapped_ok(&state, items_json(&items)),
        Err(m) => {
            let (s, msg) = status_of(&m);
            wrapped_err(s, msg)
        }
    }
}

fn octets(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response()
}

fn plain(m: &Miss) -> Response {
    let (s, msg) = status_of(m);
    (s, msg.to_string()).into_response()
}

/// Mono's `file/tree`: refs are ignored, `path` is walked on the default
/// branch as it is now, and an `oid` that is not the tree found there (or a
/// path not found) is 200 with an empty body.
async fn raw_tree(state: Shared, Query(q): Params) -> Response {
    let path = param(&q, "path").unwrap_or_default();
    let oid = param(&q, "oid");
    let res = with_repo(&state, move |repo| {
        let c = git::commit(repo, None)?;
        let found = match git::lookup(repo, &c, &path) {
            Ok((true, id)) => id.to_string(),
            Ok((false, _)) | Err(Miss::NotFound(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        if oid.as_deref().is_some_and(|o| o != found) {
            return Ok(Vec::new());
        }
        match git::object(repo, &found)? {
            (gix::object::Kind::Tree, body) => Ok(body),
            (kind, _) => Err(Miss::NotFound(format!(
                "object {found} is a {kind}, not a tree"
            ))),
        }
    })
    .await;
    res.map_or_else(|m| plain(&m), octets)
}

/// `cl/{link}/files-list`: what changed from the CL's base to its head,
/// as Mono's `ClFilesRes` (`new`, `modified`, `deleted`, and `renamed` with
/// `old_path` where a deleted path's blob reappears at a new path), sorted
/// by path.
async fn cl_files(state: Shared, Path(link): Path<String>) -> Response {
    let cl = state
        .cls
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&link)
        .cloned();
    let Some((base, head)) = cl else {
        return wrapped_err(StatusCode::NOT_FOUND, &format!("CL not found: {link}"));
    };
    let res = with_repo(&state, move |repo| {
        let resolve = |r: &str| -> git::Result<gix::ObjectId> {
            Ok(repo
                .rev_parse_single(r)
                .map_err(|e| Miss::Broken(format!("{r}: {e}")))?
                .detach())
        };
        let (b, h) = (resolve(&base)?, resolve(&head)?);
        let old = git::blobs(repo, &git::commit(repo, Some(&b.to_string()))?)?;
        let new = git::blobs(repo, &git::commit(repo, Some(&h.to_string()))?)?;
        Ok(git::diff(&old, &new))
    })
    .await;
    match res {
        Ok(items) => {
            let prefix = if state.faults.prefixing_ids() {
                "sha1:"
            } else {
                ""
            };
            let data: Vec<Value> = items
                .into_iter()
                .map(|c| {
                    let mut v = json!({ "path": c.path, "sha": format!("{prefix}{}", c.sha), "action": c.action });
                    if let Some(old) = c.old_path {
                        v["old_path"] = json!(old);
                        v["similarity"] = json!(100);
                    }
                    v
                })
                .collect();
            wrapped_ok(&state, Value::Array(data))
        }
        Err(m) => {
            let (s, msg) = status_of(&m);
            wrapped_err(s, msg)
        }
    }
}

async fn blob(state: Shared, Path(oid): Path<String>) -> Response {
    if let Some(code) = state.faults.blob_status() {
        let s = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (s, "injected status").into_response();
    }
    let res = with_repo(&state, move |repo| match git::object(repo, &oid)? {
        (gix::object::Kind::Blob, body) => Ok(body),
        (kind, _) => Err(Miss::NotFound(format!(
            "object {oid} is a {kind}, not a blob"
        ))),
    })
    .await;
    let mut body = match res {
        Ok(b) => b,
        Err(m) => return plain(&m),
    };
    if state.faults.corrupting() {
        if body.is_empty() {
            body.push(b'!');
        } else {
            for b in body.iter_mut() {
                *b = !*b;
            }
        }
    }
    if state.faults.truncating() {
        let full = body.len();
        body.truncate(full / 2);
        return Response::builder()
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, full.max(1))
            .body(Body::new(Truncated::new(Bytes::from(body))))
            .unwrap_or_else(|e| plain(&Miss::Broken(e.to_string())));
    }
    octets(body)
}

/// A body that sends what it has, waits so the bytes leave the server, and
/// then fails: the connection breaks off short of the promised length.
struct Truncated {
    data: Option<Bytes>,
    pause: Pin<Box<tokio::time::Sleep>>,
}

impl Truncated {
    fn new(data: Bytes) -> Self {
        Truncated {
            data: Some(data),
            pause: Box::pin(tokio::time::sleep(std::time::Duration::from_millis(50))),
        }
    }
}

impl http_body::Body for Truncated {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if let Some(b) = self.data.take() {
            if !b.is_empty() {
                return Poll::Ready(Some(Ok(http_body::Frame::data(b))));
            }
        }
        match self.pause.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => Poll::Ready(Some(Err(std::io::Error::other("injected truncation")))),
        }
    }
}

async fn latest_commit(state: Shared, Query(q): Params) -> Response {
    let refs = param(&q, "refs");
    let res = with_repo(&state, move |repo| {
        let c = git::commit(repo, refs.as_deref())?;
        let msg = c.message_raw_sloppy().to_string();
        let author = c.author().map(|a| a.name.to_string()).unwrap_or_default();
        let committer = c
            .committer()
            .map(|a| a.name.to_string())
            .unwrap_or_default();
        let date = c.time().map(|t| t.seconds.to_string()).unwrap_or_default();
        Ok(json!({
            "oid": c.id.to_string(),
            "date": date,
            "short_message": msg.lines().next().unwrap_or_default(),
            "author": author,
            "committer": committer,
            "status": "",
        }))
    })
    .await;
    match res {
        Ok(v) if state.faults.malformed() => {
            let _ = v;
            (StatusCode::OK, "{\"oid\": ").into_response()
        }
        Ok(v) => Json(v).into_response(),
        Err(m) => {
            let (s, msg) = status_of(&m);
            wrapped_err(s, msg)
        }
    }
}
