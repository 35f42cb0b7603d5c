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

/// The commit `refs` names (default `HEAD`), resolved now: a commit made
/// while the server runs is seen by the next request.
pub fn commit<'r>(repo: &'r gix::Repository, refs: Option<&str>) -> Result<gix::Commit<'r>> {
    let spec = refs.filter(|r| !r.is_empty()).unwrap_or("HEAD");
    let id = repo
        .rev_parse_single(spec)
        .map_err(|e| Miss::NotFound(format!("refs {spec:?}: {e}")))?;
    id.object()
        .map_err(broken)?
        .peel_to_commit()
        .map_err(|e| Miss::NotFound(format!("refs {spec:?} is not a commit: {e}")))
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
