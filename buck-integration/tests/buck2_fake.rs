//! The real-buck2 provider against a fake `buck2` that replays what real
//! buck2 answered in the oracle (expected.json): the provider's file set,
//! completed with what queries leave out, equals the oracle's file set and
//! the builtin answer.

mod common;

use antares_buck::buck2::{query, Buck2};
use antares_buck::{compare, compute, BuckError, GraphRequest};
use antares_overlay::{DirSource, RepoPath};
use common::{copy_restoring_symlinks, oracle_cases, oracle_file_sets, slug};
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Writes a `buck2` script into `dir` that answers `cquery --json Q` from
/// the three recorded lists and refuses anything else (uquery included).
fn fake_buck2(dir: &Path, answer: &serde_json::Value) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    for (key, file) in [
        ("deps", "deps.json"),
        ("inputs", "inputs.json"),
        ("allbuildfiles", "buildfiles.json"),
    ] {
        fs::write(dir.join(file), answer[key].to_string()).unwrap();
    }
    let script = format!(
        r#"#!/bin/sh
[ "$1" = cquery ] || {{ echo "fake buck2: only cquery is recorded, got $1" >&2; exit 3; }}
[ "$2" = --json ] || {{ echo "fake buck2: expected --json" >&2; exit 3; }}
case "$3" in
  "inputs("*) cat '{d}/inputs.json' ;;
  "allbuildfiles("*) cat '{d}/buildfiles.json' ;;
  "deps("*) cat '{d}/deps.json' ;;
  *) echo "fake buck2: unexpected query $3" >&2; exit 2 ;;
esac
"#,
        d = dir.display()
    );
    let program = dir.join("buck2");
    fs::write(&program, script).unwrap();
    fs::set_permissions(&program, fs::Permissions::from_mode(0o755)).unwrap();
    program
}

#[test]
fn replayed_buck2_answers_give_the_oracle_file_sets() {
    let tmp = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for case in oracle_cases() {
        let name = case.file_name().unwrap().to_owned();
        let repo = tmp.path().join(&name).join("repo");
        copy_restoring_symlinks(&case.join("repo"), &repo);
        let expected: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(case.join("expected.json")).unwrap()).unwrap();
        let source = DirSource::open(&repo).unwrap();
        for (label, files) in oracle_file_sets(&case, &expected) {
            let answer = &expected["cases"][&label];
            let program = fake_buck2(&tmp.path().join(&name).join(slug(&label)), answer);
            let buck2 = Buck2 {
                program,
                project_root: repo.clone(),
            };
            let request = GraphRequest {
                patterns: vec![label.clone()],
                current_dir: RepoPath::root(),
            };
            let from_buck2 = query(&buck2, &source, &request).unwrap();
            let have: BTreeSet<String> = from_buck2.files.keys().map(|p| p.to_string()).collect();
            let want: BTreeSet<String> = fs::read_to_string(&files)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect();
            // buck2 resolved each select() to one branch (oracle fact 3);
            // the oracle's set keeps all: exactly the unselected packages'
            // files are missing, nothing else differs.
            let builtin = compute(&source, &request).unwrap();
            let unselected: Vec<String> = builtin
                .packages
                .keys()
                .filter(|k| !from_buck2.packages.contains_key(*k))
                .map(|k| k.split_once("//").unwrap().1.to_string())
                .collect();
            assert!(
                have.is_subset(&want),
                "{label}: buck2 set has extra {:?}",
                have.difference(&want).collect::<Vec<_>>()
            );
            for missing in want.difference(&have) {
                assert!(
                    unselected
                        .iter()
                        .any(|dir| missing.starts_with(&format!("{dir}/"))),
                    "{label}: {missing} missing from the buck2 set; warnings {:#?}",
                    from_buck2.warnings
                );
            }
            let diff = compare(&builtin, &from_buck2);
            assert!(
                diff.only_right.is_empty(),
                "{label}: only buck2 has {:?}",
                diff.only_right
            );
            assert_eq!(diff.only_left.len(), want.len() - have.len());
            checked += 1;
        }
    }
    assert!(checked >= 2, "only {checked} oracle file sets found");
}

#[test]
fn a_failing_buck2_is_an_error_naming_the_query() {
    let tmp = tempfile::tempdir().unwrap();
    let case = &oracle_cases()[0];
    let repo = tmp.path().join("repo");
    copy_restoring_symlinks(&case.join("repo"), &repo);
    let program = tmp.path().join("buck2");
    fs::write(&program, "#!/bin/sh\necho 'daemon exploded' >&2\nexit 1\n").unwrap();
    fs::set_permissions(&program, fs::Permissions::from_mode(0o755)).unwrap();
    let buck2 = Buck2 {
        program,
        project_root: repo.clone(),
    };
    let request = GraphRequest {
        patterns: vec!["//...".into()],
        current_dir: RepoPath::root(),
    };
    let err = query(&buck2, &DirSource::open(&repo).unwrap(), &request).unwrap_err();
    assert!(
        matches!(&err, BuckError::Buck2(m) if m.contains("daemon exploded") && m.contains("deps(")),
        "{err}"
    );
}
