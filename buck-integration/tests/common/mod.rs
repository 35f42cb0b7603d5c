//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

/// The oracle directory (shared/ beside the clone); a clear failure if absent.
pub fn oracle_dir() -> PathBuf {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/buck2-oracle"
    ));
    assert!(
        dir.is_dir(),
        "the buck2 oracle is missing: expected {} (shared/ beside the clone)",
        dir.display()
    );
    dir.to_path_buf()
}

/// Every oracle case directory (those with an expected.json).
pub fn oracle_cases() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = fs::read_dir(oracle_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("expected.json").is_file())
        .collect();
    cases.sort();
    cases
}

/// The oracle's file naming: `//app:tool` → `app_tool`, and a target named
/// like its package's last directory is not repeated
/// (`//services/api:api` → `services_api`).
pub fn slug(label: &str) -> String {
    let (package, name) = label.trim_start_matches("//").split_once(':').unwrap();
    let base = package.replace('/', "_");
    if package.rsplit('/').next() == Some(name) {
        base
    } else {
        format!("{base}_{name}")
    }
}

/// Every `(label, files.*.txt)` the oracle has a file set for.
pub fn oracle_file_sets(case: &Path, expected: &serde_json::Value) -> Vec<(String, PathBuf)> {
    let sets: Vec<(String, PathBuf)> = expected["cases"]
        .as_object()
        .unwrap()
        .keys()
        .map(|label| {
            (
                label.clone(),
                case.join(format!("files.{}.txt", slug(label))),
            )
        })
        .filter(|(_, f)| f.is_file())
        .collect();
    let on_disk = fs::read_dir(case)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("files.")
        })
        .count();
    assert_eq!(
        sets.len(),
        on_disk,
        "{}: a files.*.txt matches no target of expected.json",
        case.display()
    );
    sets
}

/// Copies `from` to a fresh directory under `into`, turning files that
/// hold nothing but a relative path to an existing file back into symlinks:
/// shared/ stores symlinks the way git does without symlink support
/// (`app/gen/linked.rs` holds the text `../../shared_src/real.rs`).
pub fn copy_restoring_symlinks(from: &Path, into: &Path) {
    fs::create_dir_all(into).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let src = entry.path();
        let dst = into.join(entry.file_name());
        let meta = fs::symlink_metadata(&src).unwrap();
        if meta.is_dir() {
            copy_restoring_symlinks(&src, &dst);
        } else if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src).unwrap(), &dst).unwrap();
        } else {
            let bytes = fs::read(&src).unwrap();
            match link_text(&src, &bytes) {
                Some(target) => std::os::unix::fs::symlink(target, &dst).unwrap(),
                None => fs::write(&dst, &bytes).unwrap(),
            }
        }
    }
}

fn link_text(path: &Path, bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    let looks_like_link = bytes.len() < 1024
        && text.contains('/')
        && !text.contains(['\n', ' '])
        && !text.starts_with('/');
    (looks_like_link && path.parent()?.join(text).is_file()).then(|| text.to_string())
}

pub mod corpus;
