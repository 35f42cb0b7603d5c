//! Every case real buck2 answered about (../shared/buck2-oracle): antares'
//! file set equals the one buck2 built with, and holds every input and
//! build file buck2's cquery reported.

use antares_buck::{compute, GraphRequest};
use antares_overlay::{DirSource, RepoPath};
use std::collections::BTreeSet;
use std::fs;

mod common;
use common::{copy_restoring_symlinks, oracle_cases, oracle_file_sets};

#[test]
fn matches_real_buck2_on_every_oracle_case() {
    let mut checked = 0;
    let mut exact = 0;
    let tmp = tempfile::tempdir().unwrap();
    for case in oracle_cases() {
        let repo = tmp.path().join(case.file_name().unwrap());
        copy_restoring_symlinks(&case.join("repo"), &repo);
        let expected: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(case.join("expected.json")).unwrap()).unwrap();
        let source = DirSource::open(&repo).unwrap();
        let sets = oracle_file_sets(&case, &expected);
        exact += sets.len();
        for (label, answer) in expected["cases"].as_object().unwrap() {
            let request = GraphRequest {
                patterns: vec![label.clone()],
                current_dir: RepoPath::root(),
            };
            let set = compute(&source, &request).unwrap();
            let have: BTreeSet<String> = set.files.keys().map(|p| p.to_string()).collect();
            for key in ["inputs", "allbuildfiles"] {
                for p in answer[key].as_array().unwrap() {
                    let p = p.as_str().unwrap();
                    assert!(
                        have.contains(p),
                        "{}: {label}: {key} path {p} missing from {have:#?}",
                        case.display()
                    );
                }
            }
            if let Some((_, files)) = sets.iter().find(|(l, _)| l == label) {
                let want: BTreeSet<String> = fs::read_to_string(files)
                    .unwrap()
                    .lines()
                    .map(str::to_string)
                    .collect();
                assert_eq!(
                    have,
                    want,
                    "{}: {label}: extra {:?}, missing {:?}; warnings {:#?}",
                    case.display(),
                    have.difference(&want).collect::<Vec<_>>(),
                    want.difference(&have).collect::<Vec<_>>(),
                    set.warnings
                );
            }
            for (path, reason) in &set.files {
                assert!(!reason.chain.is_empty(), "{path} has no reason");
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 4 && exact >= 2,
        "only {checked} oracle targets, {exact} file sets found"
    );
}
