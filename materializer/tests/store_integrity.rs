//! A store object changed on disk after it was written (a stray write, a
//! bad disk) is never placed nor served: it is detected, moved aside into
//! `quarantine/`, and the content fetched again from the source.

mod common;

use antares_materializer::status::status;
use antares_materializer::{sync, Layout, NoProgress, Request, Store};
use antares_overlay::{BlobCache, RepoPath, Source};
use common::{env, MemSource};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn request(src: &MemSource) -> Request<'static> {
    Request {
        entries: src.entries(),
        scope: vec![RepoPath::root()],
        ..Default::default()
    }
}

/// Overwrites the first bytes of the store object holding `content`, keeping
/// its size (the stray write the marker must notice).
fn corrupt(store: &Store, content: &[u8]) -> PathBuf {
    let object = store.object_path(&antares_materializer::ContentHash::of(content));
    fs::set_permissions(&object, fs::Permissions::from_mode(0o644)).unwrap();
    let mut bad = content.to_vec();
    bad[..3].copy_from_slice(b"BAD");
    fs::write(&object, &bad).unwrap();
    fs::set_permissions(&object, fs::Permissions::from_mode(0o444)).unwrap();
    object
}

fn quarantined(store: &Store) -> Vec<Vec<u8>> {
    match fs::read_dir(store.root().join("quarantine")) {
        Ok(rd) => rd.map(|e| fs::read(e.unwrap().path()).unwrap()).collect(),
        Err(_) => Vec::new(),
    }
}

fn new_workspace(base: &Path, name: &str) -> Layout {
    let ws = base.join(name);
    fs::create_dir_all(ws.join(".antares")).unwrap();
    Layout::new(&ws)
}

#[test]
fn a_corrupt_object_is_quarantined_and_refetched_not_placed() {
    let e = env();
    let src = MemSource::new(&[("a/good.txt", "good content"), ("b.txt", "other")]);
    sync(&e.layout, &e.store, &src, request(&src), &NoProgress).unwrap();
    let object = corrupt(&e.store, b"good content");

    // A fresh workspace from the same source, in a new process's store.
    let store = Store::open(e.store.root()).unwrap();
    let l2 = new_workspace(e.layout.root().parent().unwrap(), "ws2");
    src.take_reads();
    let s = sync(&l2, &store, &src, request(&src), &NoProgress).unwrap();
    assert!(s.errors.is_empty(), "{s:?}");
    assert_eq!(
        fs::read(l2.root().join("a/good.txt")).unwrap(),
        b"good content"
    );
    assert_eq!(src.take_reads(), vec!["a/good.txt".to_string()]);
    let st = status(&l2).unwrap();
    assert!(
        st.modified.is_empty() && st.added.is_empty() && st.deleted.is_empty(),
        "{st:?}"
    );
    assert_eq!(quarantined(&store), vec![b"BADd content".to_vec()]);
    assert_eq!(fs::read(&object).unwrap(), b"good content", "refetched");
}

#[test]
fn the_mount_path_never_serves_a_corrupt_object() {
    let e = env();
    let src = MemSource::new(&[("f.txt", "served bytes")]);
    sync(&e.layout, &e.store, &src, request(&src), &NoProgress).unwrap();
    corrupt(&e.store, b"served bytes");

    // A mount's process: the index loaded whole, single lookups.
    let store = Store::open(e.store.root()).unwrap();
    store.load_index();
    let entry = src.stat(&RepoPath::new("f.txt").unwrap()).unwrap().unwrap();
    let local = store.local_file(&src, &entry).unwrap();
    assert_eq!(fs::read(local).unwrap(), b"served bytes");
    assert_eq!(quarantined(&store), vec![b"BADved bytes".to_vec()]);
}

#[test]
fn an_object_whose_marker_is_missing_is_checked_once_and_kept_if_good() {
    let e = env();
    let src = MemSource::new(&[("f.txt", "fine")]);
    sync(&e.layout, &e.store, &src, request(&src), &NoProgress).unwrap();
    // A store written before markers existed.
    fs::remove_file(e.store.root().join("verified")).unwrap();
    let store = Store::open(e.store.root()).unwrap();
    let l2 = new_workspace(e.layout.root().parent().unwrap(), "ws2");
    src.take_reads();
    let s = sync(&l2, &store, &src, request(&src), &NoProgress).unwrap();
    assert_eq!((s.added, s.fetched), (1, 0), "{s:?}");
    assert!(src.take_reads().is_empty());
    assert!(quarantined(&store).is_empty());
    assert!(
        fs::read_to_string(store.root().join("verified"))
            .unwrap()
            .contains(&antares_materializer::ContentHash::of(b"fine").to_hex()),
        "the check is remembered"
    );
}
