//! Reading the served repository: refs to commits, paths to tree entries,
//! raw object bodies. Everything through gix, nothing through `git`.

use gix::prelude::Find;

/// What a failed lookup was, for the HTTP status.
pub enum Miss {
    /// No such ref, path or object (404).
    NotFound(String),
    /// The request itself is wrong (400).
    Bad(String),
    /// The repository could not be read (500).
    Broken(String),
}

pub type Result<T> = std::result::Result<T, Miss>;

/// A tree entry as Mono lists it.
pub struct Item {
    pub name: String,
    pub is_tree: bool,
    pub oid: String,
}

fn broken(e: impl std::fmt::Display) -> Miss {
    Miss::Broken(e.to_string())
}

/// The commit `refs` names, resolved now (a commit made while the server
/// runs is seen by the next request), the way real Mono resolves refs:
/// empty is the default branch (`HEAD`), 40 hex digits a commit id (404 if
/// unknown), anything else a tag name; what is neither (a branch name) is
/// Mono's 500 "Invalid refs".
pub fn commit<'r>(repo: &'r gix::Repository, refs: Option<&str>) -> Result<gix::Commit<'r>> {
    let refs = refs.unwrap_or("").trim();
    let id = if refs.is_empty() {
        repo.head_id().map_err(broken)?.detach()
    } else if refs.len() == 40 && refs.bytes().all(|b| b.is_ascii_hexdigit()) {
        gix::ObjectId::from_hex(refs.as_bytes()).map_err(broken)?
    } else {
        match repo.try_find_reference(format!("refs/tags/{refs}").as_str()) {
            Ok(Some(mut r)) => r.peel_to_id().map_err(broken)?.detach(),
            _ => {
                return Err(Miss::Broken(format!(
                    "Invalid refs: '{refs}' is not a valid commit hash or tag"
                )))
            }
        }
    };
    let obj = repo
        .try_find_object(id)
        .map_err(broken)?
        .ok_or_else(|| Miss::NotFound(format!("commit not found: {id}")))?;
    obj.peel_to_commit()
        .map_err(|e| Miss::NotFound(format!("refs {refs:?} is not a commit: {e}")))
}

/// The `/`-separated components of a Mono path (`/a/b`, `a/b`, `/`).
fn components(path: &str) -> Vec<&str> {
    path.split('/').filter(|c| !c.is_empty()).collect()
}

/// Follows `path` from the commit's root tree: `(is_tree, id)`.
pub fn lookup(
    repo: &gix::Repository,
    commit: &gix::Commit<'_>,
    path: &str,
) -> Result<(bool, gix::ObjectId)> {
    let mut cur = (true, commit.tree_id().map_err(broken)?.detach());
    for name in components(path) {
        if !cur.0 {
            return Err(Miss::NotFound(format!("{path}: not a directory")));
        }
        let found = entries(repo, &cur.1)?
            .into_iter()
            .find(|(n, _, _)| n.as_slice() == name.as_bytes());
        match found {
            Some((_, mode, id)) => cur = (mode.is_tree(), id),
            None => return Err(Miss::NotFound(format!("{path}: no such path"))),
        }
    }
    Ok(cur)
}

/// The entries of tree `id`: raw name, mode, id.
fn entries(
    repo: &gix::Repository,
    id: &gix::oid,
) -> Result<Vec<(Vec<u8>, gix::object::tree::EntryMode, gix::ObjectId)>> {
    let mut buf = Vec::new();
    let data = repo
        .try_find(id, &mut buf)
        .map_err(broken)?
        .ok_or_else(|| Miss::NotFound(format!("object {id} not found")))?;
    if data.kind != gix::object::Kind::Tree {
        return Err(Miss::NotFound(format!("object {id} is not a tree")));
    }
    gix::objs::TreeRefIter::from_bytes(data.data, data.object_hash)
        .map(|e| {
            e.map(|e| (e.filename.to_vec(), e.mode, e.oid.to_owned()))
                .map_err(broken)
        })
        .collect()
}

/// The listing of the directory at `path`: directories first, then the rest,
/// each by name (as Mono answers `/tree/content-hash`).
pub fn listing(repo: &gix::Repository, commit: &gix::Commit<'_>, path: &str) -> Result<Vec<Item>> {
    let (is_tree, id) = lookup(repo, commit, path)?;
    if !is_tree {
        return Err(Miss::NotFound(format!("{path}: not a directory")));
    }
    let mut items: Vec<Item> = entries(repo, &id)?
        .into_iter()
        .map(|(name, mode, oid)| Item {
            name: String::from_utf8_lossy(&name).into_owned(),
            is_tree: mode.is_tree(),
            oid: oid.to_string(),
        })
        .collect();
    items.sort_by(|a, b| b.is_tree.cmp(&a.is_tree).then_with(|| a.name.cmp(&b.name)));
    Ok(items)
}

/// The raw body of object `hex` (any kind), and its kind.
pub fn object(repo: &gix::Repository, hex: &str) -> Result<(gix::object::Kind, Vec<u8>)> {
    let id = gix::ObjectId::from_hex(hex.as_bytes())
        .map_err(|e| Miss::Bad(format!("{hex:?} is not an object id: {e}")))?;
    let mut buf = Vec::new();
    let data = repo
        .try_find(&id, &mut buf)
        .map_err(broken)?
        .ok_or_else(|| Miss::NotFound(format!("object {hex} not found")))?;
    Ok((data.kind, data.data.to_vec()))
}

/// Every blob of a commit's tree (files and symlinks): path → blob id.
pub fn blobs(
    repo: &gix::Repository,
    commit: &gix::Commit<'_>,
) -> Result<std::collections::BTreeMap<String, gix::ObjectId>> {
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![(String::new(), commit.tree_id().map_err(broken)?.detach())];
    while let Some((dir, id)) = todo.pop() {
        for (name, mode, oid) in entries(repo, &id)? {
            let path = format!("{dir}{}", String::from_utf8_lossy(&name));
            if mode.is_tree() {
                todo.push((format!("{path}/"), oid));
            } else if mode.is_blob() || mode.is_link() {
                out.insert(path, oid);
            }
        }
    }
    Ok(out)
}

/// One changed path of a CL, as Mono's `ClFilesRes` has it.
pub struct Change {
    pub path: String,
    pub sha: String,
    pub action: &'static str,
    pub old_path: Option<String>,
}

/// The changes from `old` to `new` (path → blob id): a deleted path whose
/// blob appears at a new path is a rename (exact, similarity 100).
pub fn diff(
    old: &std::collections::BTreeMap<String, gix::ObjectId>,
    new: &std::collections::BTreeMap<String, gix::ObjectId>,
) -> Vec<Change> {
    let mut deleted: Vec<(&String, &gix::ObjectId)> =
        old.iter().filter(|(p, _)| !new.contains_key(*p)).collect();
    let mut out = Vec::new();
    for (path, id) in new {
        match old.get(path) {
            Some(o) if o == id => {}
            Some(_) => out.push(Change {
                path: path.clone(),
                sha: id.to_string(),
                action: "modified",
                old_path: None,
            }),
            None => match deleted.iter().position(|(_, o)| *o == id) {
                Some(i) => {
                    let (from, _) = deleted.remove(i);
                    out.push(Change {
                        path: path.clone(),
                        sha: id.to_string(),
                        action: "renamed",
                        old_path: Some(from.clone()),
                    });
                }
                None => out.push(Change {
                    path: path.clone(),
                    sha: id.to_string(),
                    action: "new",
                    old_path: None,
                }),
            },
        }
    }
    out.extend(deleted.into_iter().map(|(p, id)| Change {
        path: p.clone(),
        sha: id.to_string(),
        action: "deleted",
        old_path: None,
    }));
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}
