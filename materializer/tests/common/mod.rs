//! An in-memory source whose content tests can change between syncs.
#![allow(dead_code)] // each test crate uses a different subset

use antares_overlay::{EntryKind, ObjectId, RepoPath, Source, SourceError, TreeEntry};
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Clone)]
pub enum Node {
    File(Vec<u8>, bool),
    Link(String),
}

#[derive(Default)]
pub struct MemSource {
    pub files: Mutex<BTreeMap<String, Node>>,
    pub reads: Mutex<Vec<String>>,
    /// Paths whose reads fail, as a network fault would.
    pub failing: Mutex<std::collections::BTreeSet<String>>,
}

impl MemSource {
    pub fn new(files: &[(&str, &str)]) -> MemSource {
        let s = MemSource::default();
        for (p, c) in files {
            s.put(p, c);
        }
        s
    }
    pub fn put(&self, path: &str, content: &str) {
        self.files
            .lock()
            .unwrap()
            .insert(path.into(), Node::File(content.as_bytes().to_vec(), false));
    }
    pub fn put_exec(&self, path: &str, content: &str) {
        self.files
            .lock()
            .unwrap()
            .insert(path.into(), Node::File(content.as_bytes().to_vec(), true));
    }
    pub fn link(&self, path: &str, target: &str) {
        self.files
            .lock()
            .unwrap()
            .insert(path.into(), Node::Link(target.into()));
    }
    pub fn remove(&self, path: &str) {
        self.files.lock().unwrap().remove(path);
    }
    pub fn take_reads(&self) -> Vec<String> {
        std::mem::take(&mut *self.reads.lock().unwrap())
    }
    fn entry(path: &str, node: &Node) -> TreeEntry {
        let (kind, exec, bytes) = match node {
            Node::File(b, x) => (EntryKind::File, *x, b.clone()),
            Node::Link(t) => (EntryKind::Symlink, false, t.as_bytes().to_vec()),
        };
        TreeEntry {
            path: RepoPath::new(path).unwrap(),
            kind,
            executable: exec,
            size: Some(bytes.len() as u64),
            oid: ObjectId::opaque(format!("mem:{}", blake3::hash(&bytes).to_hex())),
        }
    }
    /// Every file and symlink entry (what a full walk yields, minus dirs).
    pub fn entries(&self) -> Vec<TreeEntry> {
        self.files
            .lock()
            .unwrap()
            .iter()
            .map(|(p, n)| Self::entry(p, n))
            .collect()
    }
}

impl Source for MemSource {
    fn describe(&self) -> String {
        "mem".into()
    }
    fn revision(&self) -> Option<String> {
        None
    }
    fn stat(&self, path: &RepoPath) -> antares_overlay::Result<Option<TreeEntry>> {
        Ok(self
            .files
            .lock()
            .unwrap()
            .get(path.as_str())
            .map(|n| Self::entry(path.as_str(), n)))
    }
    fn list_dir(&self, _dir: &RepoPath) -> antares_overlay::Result<Vec<TreeEntry>> {
        Err(SourceError::Invalid {
            path: "mem".into(),
            message: "not needed in these tests".into(),
        })
    }
    fn read(&self, entry: &TreeEntry) -> antares_overlay::Result<Vec<u8>> {
        self.reads.lock().unwrap().push(entry.path.to_string());
        if self.failing.lock().unwrap().contains(entry.path.as_str()) {
            return Err(SourceError::Remote {
                url: format!("mem://{}", entry.path),
                message: "injected failure".into(),
            });
        }
        match self.files.lock().unwrap().get(entry.path.as_str()) {
            Some(Node::File(b, _)) => Ok(b.clone()),
            Some(Node::Link(t)) => Ok(t.as_bytes().to_vec()),
            None => Err(SourceError::NotFound(entry.path.clone())),
        }
    }
}

/// Write-back into the in-memory source, as the overlay's upper layer would.
impl antares_materializer::sync::WriteBack for MemSource {
    fn put_file(
        &self,
        path: &RepoPath,
        from: &std::path::Path,
        executable: bool,
    ) -> antares_overlay::Result<ObjectId> {
        let bytes = std::fs::read(from).map_err(|e| SourceError::io(from.display(), e))?;
        let node = Node::File(bytes, executable);
        let oid = Self::entry(path.as_str(), &node).oid;
        self.files.lock().unwrap().insert(path.to_string(), node);
        Ok(oid)
    }
    fn put_symlink(&self, path: &RepoPath, target: &str) -> antares_overlay::Result<ObjectId> {
        let node = Node::Link(target.into());
        let oid = Self::entry(path.as_str(), &node).oid;
        self.files.lock().unwrap().insert(path.to_string(), node);
        Ok(oid)
    }
    fn delete(&self, path: &RepoPath) -> antares_overlay::Result<()> {
        self.files.lock().unwrap().remove(path.as_str());
        Ok(())
    }
    /// In memory: nothing to flush.
    fn flush(&self, _: Option<&[RepoPath]>) -> antares_overlay::Result<()> {
        Ok(())
    }
}

impl MemSource {
    pub fn content(&self, path: &str) -> Option<String> {
        match self.files.lock().unwrap().get(path) {
            Some(Node::File(b, _)) => Some(String::from_utf8_lossy(b).into_owned()),
            Some(Node::Link(t)) => Some(format!("-> {t}")),
            None => None,
        }
    }
}

/// A workspace (with its state dir) and a store in a temp dir.
pub struct Env {
    _dir: tempfile::TempDir,
    pub layout: antares_materializer::Layout,
    pub store: antares_materializer::Store,
}

pub fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(ws.join(".antares")).unwrap();
    let store = antares_materializer::Store::open(&dir.path().join("store")).unwrap();
    Env {
        layout: antares_materializer::Layout::new(&ws),
        store,
        _dir: dir,
    }
}

/// A fingerprint of everything below `dir` (names, kinds, modes, contents,
/// symlink targets; never following a symlink): equal before and after an
/// operation means it changed nothing there.
pub fn tree_checksum(dir: &std::path::Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    let mut h = blake3::Hasher::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut seen = Vec::new();
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            let what = if m.file_type().is_symlink() {
                format!("link {}", std::fs::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                stack.push(p.clone());
                "dir".to_string()
            } else {
                let bytes = std::fs::read(&p).unwrap();
                format!("file {}", blake3::hash(&bytes).to_hex())
            };
            seen.push(format!("{rel} {:o} {what}\n", m.permissions().mode()));
        }
    }
    seen.sort();
    for s in &seen {
        h.update(s.as_bytes());
    }
    format!("{} entries, {}", seen.len(), h.finalize().to_hex())
}
