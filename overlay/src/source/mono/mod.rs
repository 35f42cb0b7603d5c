//! `mono:URL[@REFS]` — a Mono (Mega monorepo server) over its read API.
//!
//! What is asked of the server, and when:
//! - at open: `/latest-commit` pins the refs to one commit (every later
//!   request names that commit, so one sync sees one snapshot), then
//!   `/tree/content-hash?path=/` lists the root and the root's raw tree
//!   (`/file/tree?path=/`) gives the root entries' modes;
//! - a directory below the root is listed by its raw git tree object,
//!   `/file/tree?oid=<tree id from the parent>`: names, modes (exec bit,
//!   symlink, gitlink) and ids in one body that is checked against its id,
//!   so one verified request per directory (Dicfuse asks `content-hash` for
//!   names and the raw tree for modes: two requests for the same facts);
//! - a deep directory whose parent has not been listed is found with one
//!   `/tree/dir-hash` request instead of listing every ancestor;
//! - a blob comes from `/file/blob/{oid}` when it is read, many at once with
//!   a bounded number in flight, and is checked against its id.
//!
//! Real Mono's quirks are expected: `/file/tree` walks `path` from the
//! default branch's *current* root and answers an `oid` it did not find
//! there with 200 and an empty body (the branch moved since the pin): that
//! directory is then listed with `/tree/content-hash` at the pinned commit
//! (names, kinds and ids; such a listing has no file modes, so its files
//! are plain files, and it is not kept on disk). Refs may be empty, a
//! 40-hex commit or a tag; anything else (a branch name) is a 500 there and
//! an error naming the accepted forms here. Ids may come `sha1:`-prefixed.
//!
//! Listings are kept by tree id, in memory and (with
//! [`MonoOptions::tree_cache`]) on disk: a re-sync lists the root again and
//! then only the directories whose tree id changed — an unchanged subtree
//! costs no request. Every name from the server is validated (no empty
//! name, `.`/`..`, `/` or NUL) before it becomes a path.

mod change_list;
mod http;
mod wire;

pub use http::MonoOptions;

use crate::entry::{EntryKind, ObjectId, TreeEntry};
use crate::error::{Result, SourceError};
use crate::path::RepoPath;
use crate::source::{is_excluded, is_excluded_path, Source};
use http::Http;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use wire::RawEntry;

/// The entries of one directory, sorted by name.
type Listing = Arc<Vec<RawEntry>>;

/// One commit of a Mono repository.
pub struct MonoSource {
    http: Arc<Http>,
    /// Runs the async client for the synchronous [`Source`] calls.
    rt: tokio::runtime::Runtime,
    /// The refs as given (`None`: the server's default branch).
    refs: Option<String>,
    /// The commit the refs resolved to at open, named in every request that
    /// takes refs.
    commit: String,
    root: Listing,
    trees: Mutex<HashMap<ObjectId, Listing>>,
    /// Tree ids of directories already found, so deep lookups do not repeat.
    dirs: Mutex<HashMap<RepoPath, ObjectId>>,
}

impl std::fmt::Debug for MonoSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonoSource")
            .field("url", &self.http.base())
            .field("refs", &self.refs)
            .field("commit", &self.commit)
            .finish_non_exhaustive()
    }
}

impl MonoSource {
    /// Connects to the Mono at `url` (the server's base URL, without
    /// `/api/v1`) and reads the root of `refs` (default: the server's
    /// default branch). Fails with the URL and the problem when the server
    /// cannot be reached or answers nonsense.
    pub fn open(url: &str, refs: Option<&str>, opts: MonoOptions) -> Result<MonoSource> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("antares-mono")
            .enable_all()
            .build()
            .map_err(|e| SourceError::Remote {
                url: url.to_string(),
                message: format!("cannot start the HTTP runtime: {e}"),
            })?;
        let http = Arc::new(Http::new(url, opts)?);
        let commit = rt.block_on(latest_commit(&http, refs))?;
        let root = rt.block_on(root_listing(&http, &commit))?;
        Ok(MonoSource {
            http,
            rt,
            refs: refs.map(str::to_string),
            commit,
            root,
            trees: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
        })
    }

    /// HTTP requests made so far (for benchmarks and tests).
    pub fn requests(&self) -> u64 {
        self.http.requests()
    }

    /// The refs every request that takes refs names: the pinned commit.
    fn pinned_refs(&self) -> Option<&str> {
        Some(&self.commit)
    }

    /// The listing of tree `oid` (directory `dir`) from memory, the disk
    /// cache, or the server.
    fn listing(&self, oid: &ObjectId, dir: &RepoPath) -> Result<Listing> {
        if let Some(l) = self.cached(oid) {
            return Ok(l);
        }
        let l = self
            .rt
            .block_on(fetch_tree(&self.http, oid, dir, self.pinned_refs()))?;
        Ok(self.remember_tree(oid, l))
    }

    /// The listing of `oid` without asking the server.
    fn cached(&self, oid: &ObjectId) -> Option<Listing> {
        if let Some(l) = lock(&self.trees).get(oid) {
            return Some(l.clone());
        }
        let body = disk_cache_read(&self.http, oid)?;
        let l = parse_listing(&self.http, &body, oid, &RepoPath::root(), false).ok()?;
        Some(self.remember_tree(oid, l))
    }

    fn remember_tree(&self, oid: &ObjectId, l: Listing) -> Listing {
        lock(&self.trees).entry(oid.clone()).or_insert(l).clone()
    }

    fn remember_dir(&self, dir: &RepoPath, oid: &ObjectId) {
        lock(&self.dirs).insert(dir.clone(), oid.clone());
    }

    /// The listing of directory `dir`, `None` if it is missing or not a
    /// directory.
    fn dir_listing(&self, dir: &RepoPath) -> Result<Option<Listing>> {
        if dir.is_root() {
            return Ok(Some(self.root.clone()));
        }
        if is_excluded_path(dir) {
            return Ok(None);
        }
        let known = lock(&self.dirs).get(dir).cloned();
        if let Some(oid) = known {
            return self.listing(&oid, dir).map(Some);
        }
        let parent = dir.parent().unwrap_or_default();
        let name = dir.file_name().unwrap_or_default();
        // A deep directory whose parent is not at hand: one dir-hash request
        // names its tree instead of a listing per ancestor.
        if !parent.is_root() && !lock(&self.dirs).contains_key(&parent) && self.may_exist(dir)? {
            if let Some(oid) = self
                .rt
                .block_on(dir_hash(&self.http, dir, self.pinned_refs()))?
            {
                self.remember_dir(dir, &oid);
                return self.listing(&oid, dir).map(Some);
            }
        }
        let Some(pl) = self.dir_listing(&parent)? else {
            return Ok(None);
        };
        match find(&pl, name) {
            Some(e) if e.kind == EntryKind::Dir => {
                self.remember_dir(dir, &e.oid);
                self.listing(&e.oid, dir).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// Whether the closest ancestor of `dir` already at hand holds the next
    /// component towards `dir` as a directory: a path below a missing
    /// directory is known to be missing without asking the server.
    fn may_exist(&self, dir: &RepoPath) -> Result<bool> {
        let mut child = dir.clone();
        while let Some(a) = child.parent() {
            let known = if a.is_root() {
                Some(self.root.clone())
            } else {
                let oid = lock(&self.dirs).get(&a).cloned();
                oid.map(|oid| self.listing(&oid, &a)).transpose()?
            };
            if let Some(l) = known {
                let name = child.file_name().unwrap_or_default();
                return Ok(find(&l, name).is_some_and(|e| e.kind == EntryKind::Dir));
            }
            child = a;
        }
        Ok(true)
    }

    /// Lists every directory under the ones given, level by level, with up
    /// to `concurrency` listings in flight, so a cold walk is not one round
    /// trip per directory.
    fn prefetch(&self, mut level: Vec<(ObjectId, RepoPath)>) -> Result<()> {
        while !level.is_empty() {
            let missing: Vec<_> = level
                .iter()
                .filter(|(oid, _)| self.cached(oid).is_none())
                .cloned()
                .collect();
            let refs = self.pinned_refs().map(str::to_string);
            let fetched = self.rt.block_on(fetch_trees(&self.http, missing, refs))?;
            for (oid, l) in fetched {
                self.remember_tree(&oid, l);
            }
            let mut next = Vec::new();
            for (oid, dir) in &level {
                let l = self.listing(oid, dir)?;
                for e in l.iter().filter(|e| e.kind == EntryKind::Dir) {
                    if let Ok(p) = dir.join(&e.name) {
                        next.push((e.oid.clone(), p));
                    }
                }
            }
            level = next;
        }
        Ok(())
    }

    fn walk_into(&self, l: &Listing, dir: &RepoPath, out: &mut Vec<TreeEntry>) -> Result<()> {
        for e in l.iter() {
            let entry = to_entry(dir, e)?;
            if e.kind == EntryKind::Dir {
                let sub = entry.path.clone();
                self.remember_dir(&sub, &e.oid);
                out.push(entry);
                let sl = self.listing(&e.oid, &sub)?;
                self.walk_into(&sl, &sub, out)?;
            } else {
                out.push(entry);
            }
        }
        Ok(())
    }
}

impl Source for MonoSource {
    fn describe(&self) -> String {
        let c = &self.commit;
        format!("mono:{}@{}", self.http.base(), &c[..c.len().min(12)])
    }

    fn revision(&self) -> Option<String> {
        Some(self.commit.clone())
    }

    fn stat(&self, path: &RepoPath) -> Result<Option<TreeEntry>> {
        if path.is_root() {
            return Ok(Some(TreeEntry {
                path: RepoPath::root(),
                kind: EntryKind::Dir,
                executable: false,
                size: None,
                oid: ObjectId::opaque(format!("mono-root:{}", self.describe())),
            }));
        }
        if is_excluded_path(path) {
            return Ok(None);
        }
        let parent = path.parent().unwrap_or_default();
        let Some(l) = self.dir_listing(&parent)? else {
            return Ok(None);
        };
        let name = path.file_name().unwrap_or_default();
        find(&l, name).map(|e| to_entry(&parent, e)).transpose()
    }

    fn list_dir(&self, dir: &RepoPath) -> Result<Vec<TreeEntry>> {
        match self.dir_listing(dir)? {
            Some(l) => l.iter().map(|e| to_entry(dir, e)).collect(),
            None if self.stat(dir)?.is_some() => Err(SourceError::NotADirectory(dir.clone())),
            None => Err(SourceError::NotFound(dir.clone())),
        }
    }

    fn read(&self, entry: &TreeEntry) -> Result<Vec<u8>> {
        let oid = blob_id(entry)?;
        self.rt
            .block_on(fetch_blob(&self.http, oid.clone(), entry.path.clone()))
    }

    /// Up to `concurrency` blob requests in flight; results reach `sink` on
    /// the calling thread as they complete.
    fn read_many(
        &self,
        entries: &[TreeEntry],
        sink: &(dyn Fn(&TreeEntry, Result<Vec<u8>>) + Sync),
    ) {
        let limit = self.http.options().concurrency.max(1);
        self.rt.block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            let mut next = 0;
            loop {
                while tasks.len() < limit && next < entries.len() {
                    let i = next;
                    next += 1;
                    match blob_id(&entries[i]) {
                        Ok(oid) => {
                            let http = self.http.clone();
                            let (oid, path) = (oid.clone(), entries[i].path.clone());
                            tasks.spawn(async move { (i, fetch_blob(&http, oid, path).await) });
                        }
                        Err(e) => sink(&entries[i], Err(e)),
                    }
                }
                match tasks.join_next().await {
                    Some(Ok((i, res))) => sink(&entries[i], res),
                    Some(Err(e)) => {
                        // A panicked or cancelled task: nothing to hand out but
                        // the fact (its entry is reported missing by the caller).
                        tracing::error!("mono fetch task failed: {e}");
                    }
                    None => break,
                }
            }
        });
    }

    fn walk(&self, dir: &RepoPath) -> Result<Vec<TreeEntry>> {
        let l = match self.dir_listing(dir)? {
            Some(l) => l,
            None if self.stat(dir)?.is_some() => {
                return Err(SourceError::NotADirectory(dir.clone()))
            }
            None => return Err(SourceError::NotFound(dir.clone())),
        };
        let first: Vec<_> = l
            .iter()
            .filter(|e| e.kind == EntryKind::Dir)
            .filter_map(|e| Some((e.oid.clone(), dir.join(&e.name).ok()?)))
            .collect();
        self.prefetch(first)?;
        let mut out = Vec::new();
        self.walk_into(&l, dir, &mut out)?;
        Ok(out)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn find<'a>(l: &'a [RawEntry], name: &str) -> Option<&'a RawEntry> {
    l.binary_search_by(|e| e.name.as_str().cmp(name))
        .ok()
        .map(|i| &l[i])
}

fn to_entry(dir: &RepoPath, e: &RawEntry) -> Result<TreeEntry> {
    let path = dir.join(&e.name).map_err(|error| SourceError::BadPath {
        origin: format!("mono listing of {dir:?}"),
        error,
    })?;
    Ok(TreeEntry {
        path,
        kind: e.kind,
        executable: e.executable,
        size: None,
        oid: e.oid.clone(),
    })
}

fn blob_id(entry: &TreeEntry) -> Result<&ObjectId> {
    match entry.kind {
        EntryKind::File | EntryKind::Symlink if entry.oid.git_hex().is_some() => Ok(&entry.oid),
        EntryKind::File | EntryKind::Symlink => Err(SourceError::Invalid {
            path: entry.path.to_string(),
            message: format!("object id {} is not a git id", entry.oid),
        }),
        EntryKind::Dir => Err(SourceError::Invalid {
            path: entry.path.to_string(),
            message: "a directory has no content to read".into(),
        }),
        EntryKind::Gitlink => Err(SourceError::Invalid {
            path: entry.path.to_string(),
            message: "a submodule (gitlink) has no content in this repository".into(),
        }),
    }
}

/// Decodes a wrapped JSON answer, refusing `req_result: false` and bodies
/// that are not the expected shape.
fn unwrap_json<T: serde::de::DeserializeOwned>(url: &str, body: &[u8]) -> Result<Option<T>> {
    let w: wire::Wrapped<T> = serde_json::from_slice(body).map_err(|e| SourceError::Remote {
        url: url.to_string(),
        message: format!("malformed response body: {e}"),
    })?;
    if !w.req_result {
        return Err(SourceError::Remote {
            url: url.to_string(),
            message: format!(
                "the server refused: {}",
                w.err_message.as_deref().unwrap_or("(no message)")
            ),
        });
    }
    Ok(w.data)
}

/// A git object id as Mono writes it: lowercase hex of the server's hash
/// length, possibly `sha1:`/`sha256:`-prefixed.
fn git_oid(url: &str, what: &str, hex: &str) -> Result<ObjectId> {
    let bare = hex
        .strip_prefix("sha1:")
        .or_else(|| hex.strip_prefix("sha256:"))
        .unwrap_or(hex);
    ObjectId::git(bare).ok_or_else(|| SourceError::Remote {
        url: url.to_string(),
        message: format!("{what}: {hex:?} is not a git object id"),
    })
}

async fn latest_commit(http: &Http, refs: Option<&str>) -> Result<String> {
    let mut q = vec![("path", "/")];
    q.extend(refs.map(|r| ("refs", r)));
    let url = http.url("/api/v1/latest-commit", &q);
    let body = match http.get(&url, None).await {
        Ok(b) => b,
        Err(SourceError::Remote { url, message }) => {
            return Err(SourceError::Remote {
                message: refs_message(refs, &message),
                url,
            })
        }
        Err(e) => return Err(e),
    };
    let c: wire::LatestCommit = serde_json::from_slice(&body).map_err(|e| SourceError::Remote {
        url: url.clone(),
        message: format!("malformed response body: {e}"),
    })?;
    git_oid(&url, "commit", &c.oid).map(|o| o.as_str().to_string())
}

/// What a failed pin of `refs` means on Mono: a 404 is an unknown commit
/// (or path), a 500 for refs that are not a commit id is a name Mono
/// cannot resolve (it takes no branch names).
fn refs_message(refs: Option<&str>, message: &str) -> String {
    let Some(r) = refs else {
        return message.to_string();
    };
    let hex = (r.len() == 40 || r.len() == 64) && r.bytes().all(|b| b.is_ascii_hexdigit());
    if message.starts_with("HTTP 404") {
        format!("refs {r:?}: no such commit on this server ({message})")
    } else if message.starts_with("HTTP 500") && !hex {
        format!(
            "refs {r:?} cannot be resolved by Mono, which accepts as refs only a full commit id, \
             a tag name, or none (the default branch); a branch name is not accepted: give its \
             commit id instead ({message})"
        )
    } else {
        message.to_string()
    }
}

/// The root: names and ids from `content-hash`, modes from the raw root tree.
async fn root_listing(http: &Http, commit: &str) -> Result<Listing> {
    let id_len = commit.len() / 2;
    let q = [("path", "/"), ("refs", commit)];
    let url = http.url("/api/v1/tree/content-hash", &q);
    let body = http.get(&url, None).await?;
    let items: Vec<wire::HashItem> = unwrap_json(&url, &body)?.unwrap_or_default();
    // `/file/tree` takes no refs: its root is the default branch's. Modes are
    // taken from it for every entry it has by the same name; an entry it
    // lacks (refs ahead of the default branch) is an ordinary file.
    let tree_url = http.url("/api/v1/file/tree", &[("path", "/")]);
    let raw = http.get(&tree_url, None).await?;
    let modes = wire::parse_tree(&raw, id_len).map_err(|m| SourceError::Remote {
        url: tree_url.clone(),
        message: format!("malformed tree: {m}"),
    })?;
    let mut out = Vec::with_capacity(items.len());
    for it in items {
        RepoPath::root()
            .join(&it.name)
            .map_err(|error| SourceError::BadPath {
                origin: url.clone(),
                error,
            })?;
        if is_excluded(&RepoPath::root(), &it.name) {
            continue;
        }
        let oid = git_oid(&url, &it.name, &it.oid)?;
        let (kind, executable) = match it.content_type.as_str() {
            "directory" => (EntryKind::Dir, false),
            "file" => match modes
                .iter()
                .find(|m| m.name == it.name && m.kind != EntryKind::Dir)
            {
                Some(m) => (m.kind, m.executable),
                None => {
                    tracing::warn!(
                        url,
                        name = it.name,
                        "mode unknown at these refs; taken as a plain file"
                    );
                    (EntryKind::File, false)
                }
            },
            other => {
                return Err(SourceError::Remote {
                    url,
                    message: format!("{:?}: unknown content_type {other:?}", it.name),
                })
            }
        };
        out.push(RawEntry {
            name: it.name,
            kind,
            executable,
            oid,
        });
    }
    sort_unique(&url, out).map(Arc::new)
}

/// Sorts by name and refuses duplicates (a path must name one thing).
fn sort_unique(url: &str, mut v: Vec<RawEntry>) -> Result<Vec<RawEntry>> {
    v.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    if let Some(w) = v.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(SourceError::Remote {
            url: url.to_string(),
            message: format!("the listing names {:?} twice", w[0].name),
        });
    }
    Ok(v)
}

/// `dir-hash`: the tree id of `dir` in one request, `None` if it is not a
/// directory there.
async fn dir_hash(http: &Http, dir: &RepoPath, refs: Option<&str>) -> Result<Option<ObjectId>> {
    let p = format!("/{dir}");
    let mut q = vec![("path", p.as_str())];
    q.extend(refs.map(|r| ("refs", r)));
    let url = http.url("/api/v1/tree/dir-hash", &q);
    let body = http.get(&url, None).await?;
    let items: Vec<wire::HashItem> = unwrap_json(&url, &body)?.unwrap_or_default();
    let name = dir.file_name().unwrap_or_default();
    match items
        .iter()
        .find(|i| i.name == name && i.content_type == "directory")
    {
        Some(i) => git_oid(&url, name, &i.oid).map(Some),
        None => Ok(None),
    }
}

/// Fetches raw tree `oid` (directory `dir`), verified, and stores it in
/// the disk cache. An empty answer for a tree that is not empty is Mono
/// saying "not the tree at this path on the default branch now": the
/// listing then comes from `content-hash` at the pinned `refs`.
async fn fetch_tree(
    http: &Http,
    oid: &ObjectId,
    dir: &RepoPath,
    refs: Option<&str>,
) -> Result<Listing> {
    let p = format!("/{dir}");
    let url = http.url("/api/v1/file/tree", &[("path", &p), ("oid", oid.as_str())]);
    let mut body = http.get(&url, None).await?;
    if wire::verify("tree", &body, oid).is_err() {
        if body.is_empty() {
            tracing::debug!(
                url,
                "tree not on the default branch now; listing at the pinned refs"
            );
            return listing_at_refs(http, dir, refs).await;
        }
        // Damaged on the way: ask again, verified, with retries.
        body = http.get(&url, Some(("tree", oid))).await?;
    }
    let l = parse_listing(http, &body, oid, dir, true)?;
    disk_cache_write(http, oid, &body);
    Ok(l)
}

/// Directory `dir` from `/tree/content-hash` at `refs`: names, kinds and
/// ids, no modes (files are taken as plain files).
async fn listing_at_refs(http: &Http, dir: &RepoPath, refs: Option<&str>) -> Result<Listing> {
    let p = format!("/{dir}");
    let mut q = vec![("path", p.as_str())];
    q.extend(refs.map(|r| ("refs", r)));
    let url = http.url("/api/v1/tree/content-hash", &q);
    let body = http.get(&url, None).await?;
    let items: Vec<wire::HashItem> = unwrap_json(&url, &body)?.unwrap_or_default();
    let mut out = Vec::with_capacity(items.len());
    for it in items {
        crate::path::validate_name(&it.name).map_err(|error| SourceError::BadPath {
            origin: url.clone(),
            error,
        })?;
        if it.name == ".git" {
            continue;
        }
        let kind = match it.content_type.as_str() {
            "directory" => EntryKind::Dir,
            "file" => EntryKind::File,
            other => {
                return Err(SourceError::Remote {
                    url,
                    message: format!("{:?}: unknown content_type {other:?}", it.name),
                })
            }
        };
        out.push(RawEntry {
            oid: git_oid(&url, &it.name, &it.oid)?,
            name: it.name,
            kind,
            executable: false,
        });
    }
    sort_unique(&url, out).map(Arc::new)
}

async fn fetch_trees(
    http: &Arc<Http>,
    want: Vec<(ObjectId, RepoPath)>,
    refs: Option<String>,
) -> Result<Vec<(ObjectId, Listing)>> {
    let limit = http.options().concurrency.max(1);
    let mut tasks = tokio::task::JoinSet::new();
    let mut out = Vec::with_capacity(want.len());
    let mut it = want.into_iter();
    loop {
        while tasks.len() < limit {
            let Some((oid, dir)) = it.next() else { break };
            let (http, refs) = (http.clone(), refs.clone());
            tasks.spawn(async move {
                let l = fetch_tree(&http, &oid, &dir, refs.as_deref()).await;
                l.map(|l| (oid, l))
            });
        }
        match tasks.join_next().await {
            Some(Ok(res)) => out.push(res?),
            Some(Err(e)) => {
                return Err(SourceError::Remote {
                    url: http.base().to_string(),
                    message: format!("listing task failed: {e}"),
                })
            }
            None => return Ok(out),
        }
    }
}

fn parse_listing(
    http: &Http,
    body: &[u8],
    oid: &ObjectId,
    dir: &RepoPath,
    log: bool,
) -> Result<Listing> {
    let origin = || {
        format!(
            "{} tree {oid} ({})",
            http.base(),
            if dir.is_root() { "/" } else { dir.as_str() }
        )
    };
    let id_len = oid.as_str().len() / 2;
    let entries = wire::parse_tree(body, id_len).map_err(|m| SourceError::Remote {
        url: origin(),
        message: format!("malformed tree: {m}"),
    })?;
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        crate::path::validate_name(&e.name).map_err(|error| SourceError::BadPath {
            origin: origin(),
            error,
        })?;
        // `.git` is excluded at every depth; the root is never listed here.
        if e.name == ".git" {
            if log {
                tracing::warn!("{}: skipping a committed .git entry", origin());
            }
            continue;
        }
        out.push(e);
    }
    sort_unique(&origin(), out).map(Arc::new)
}

async fn fetch_blob(http: &Http, oid: ObjectId, path: RepoPath) -> Result<Vec<u8>> {
    let url = http.url(&format!("/api/v1/file/blob/{oid}"), &[]);
    http.get(&url, Some(("blob", &oid)))
        .await
        .map_err(|e| match e {
            SourceError::Remote { url, message } => SourceError::Remote {
                url,
                message: format!("{message} (blob of {path})"),
            },
            e => e,
        })
}

fn disk_cache_path(http: &Http, oid: &ObjectId) -> Option<PathBuf> {
    let dir = http.options().tree_cache.as_ref()?;
    let hex = oid.as_str();
    Some(dir.join(&hex[..2]).join(hex))
}

/// A cached raw tree, re-verified (a damaged cache file is ignored).
fn disk_cache_read(http: &Http, oid: &ObjectId) -> Option<Vec<u8>> {
    let body = std::fs::read(disk_cache_path(http, oid)?).ok()?;
    wire::verify("tree", &body, oid).ok()?;
    Some(body)
}

/// Best effort: a cache that cannot be written only costs requests later.
fn disk_cache_write(http: &Http, oid: &ObjectId, body: &[u8]) {
    let Some(path) = disk_cache_path(http, oid) else {
        return;
    };
    let write = || -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(&path);
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        std::io::Write::write_all(&mut tmp, body)?;
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    };
    if let Err(e) = write() {
        tracing::debug!("cannot cache tree {oid} at {}: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_ids_of_either_hash_with_or_without_a_prefix() {
        let sha1 = "ce013625030ba8dba906f756967f9e9ca394464a";
        let sha256 = "a".repeat(64);
        for (given, want) in [
            (sha1.to_string(), sha1.to_string()),
            (format!("sha1:{sha1}"), sha1.to_string()),
            (sha256.clone(), sha256.clone()),
            (format!("sha256:{sha256}"), sha256.clone()),
        ] {
            assert_eq!(git_oid("u", "x", &given).unwrap().as_str(), want, "{given}");
        }
        for bad in ["", "sha1:", "xyz", &sha1[..39], &format!("md5:{sha1}")] {
            assert!(git_oid("u", "x", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_failed_pin_says_what_mono_accepts() {
        let branch = refs_message(
            Some("feature/x"),
            "HTTP 500 Internal Server Error: Invalid refs",
        );
        assert!(
            branch.contains("a full commit id, a tag name, or none"),
            "{branch}"
        );
        let commit = "0".repeat(40);
        let unknown = refs_message(Some(&commit), "HTTP 404 Not Found");
        assert!(unknown.contains("no such commit"), "{unknown}");
        // A 500 for a commit id is the server's own trouble, passed on.
        assert_eq!(refs_message(Some(&commit), "HTTP 500 x"), "HTTP 500 x");
        assert_eq!(refs_message(None, "HTTP 500 x"), "HTTP 500 x");
    }
}
