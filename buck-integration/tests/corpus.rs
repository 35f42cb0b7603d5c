//! Real Buck2 repositories (tests/fixtures/corpus): antares' file set for
//! targets real buck2 answered about holds every file buck2 reads (recall
//! 100 %), and most of what it places lies in packages buck2 loads
//! (precision, weighed by the files' real sizes).

use antares_buck::{compute, FileSet, GraphRequest};
use antares_overlay::{DirSource, RepoPath};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

mod common;
use common::corpus::{unpack, Fixture};

/// The share of placed bytes that must lie in packages buck2 loads, once
/// every build file of the closure evaluates (issue 13: 90 %). SI's leaf
/// targets measure 91.4-91.6 % (//bin/sdf:sdf 97.7 %) now that only the
/// toolchains the closure's rules use are followed; following the whole
/// toolchains cell (its python, deno, pnpm… toolchains and what they name)
/// gave 89.4-89.6 %.
const MIN_PRECISION: f64 = 0.90;

/// Lowest precision accepted while some build files still fall back to
/// "every label written in it counts" (they pull in unrelated packages):
/// what the recorded cases reach today, so a change that places more
/// fails. Raise these as evaluation improves.
const FLOORS: &[(&str, &str, f64)] = &[
    ("si", "//lib/si-events-rs:si-events", 0.075),
    ("si", "//bin/sdf:sdf", 0.24),
    ("si", "//lib/si-std:si-std", 0.074),
    ("si", "//lib/si-hash:si-hash", 0.074),
    ("si", "//lib/si-id:si-id", 0.074),
];

/// What real buck2 reported for one target.
struct Answer {
    packages: BTreeSet<String>,
    reads: BTreeSet<String>,
}

fn answers(fixture: &str) -> Vec<(String, Answer)> {
    let path = common::corpus::dir()
        .join("oracle")
        .join(format!("{fixture}.json.xz"));
    let doc: serde_json::Value = serde_json::from_slice(&common::corpus::xz_decode(&path))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let strings = |v: &serde_json::Value, key: &str| -> BTreeSet<String> {
        v[key]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no {key} array", path.display()))
            .iter()
            .map(|s| s.as_str().expect("a path").to_string())
            .collect()
    };
    doc["cases"]
        .as_object()
        .expect("cases")
        .iter()
        .map(|(label, v)| {
            let mut reads = strings(v, "inputs");
            reads.extend(strings(v, "buildfiles"));
            (
                label.clone(),
                Answer {
                    packages: strings(v, "packages"),
                    reads,
                },
            )
        })
        .collect()
}

/// The package directory (project-relative, "" for the root) holding
/// `path`: its nearest ancestor with a build file.
fn owning_package(
    root: &Path,
    path: &str,
    memo: &mut HashMap<String, Option<String>>,
) -> Option<String> {
    let mut dir = Path::new(path)
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    loop {
        let key = dir.to_string_lossy().to_string();
        if let Some(found) = memo.get(&key) {
            return found.clone();
        }
        let here = ["BUCK", "BUCK.v2", "TARGETS", "TARGETS.v2"]
            .iter()
            .any(|b| root.join(&dir).join(b).is_file());
        if here {
            memo.insert(key.clone(), Some(key.clone()));
            return Some(key);
        }
        if !dir.pop() {
            memo.insert(key, None);
            return None;
        }
    }
}

/// Is `path` something buck2 reads for every build (configs, the root marker)?
fn always_read(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.starts_with(".buckconfig") || name == ".buckroot" || path.contains(".buckconfig.d/")
}

/// (placed bytes, of them in packages buck2 loads or files it reads).
fn weigh(fx: &Fixture, set: &FileSet, answer: &Answer) -> (u64, u64) {
    let mut memo = HashMap::new();
    let (mut total, mut needed) = (0, 0);
    for path in set.files.keys() {
        let p = path.as_str();
        let size = fx.sizes.get(p).copied().unwrap_or(0);
        total += size;
        let inside = answer.reads.contains(p)
            || always_read(p)
            || owning_package(&fx.root, p, &mut memo).is_some_and(|d| answer.packages.contains(&d));
        if inside {
            needed += size;
        }
    }
    (total, needed)
}

#[test]
fn corpus_targets_hold_what_real_buck2_reads_and_little_else() {
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for fixture in ["si", "cxx", "buck2-with_prelude"] {
        let fx = unpack(fixture);
        let source = DirSource::open(&fx.root).unwrap();
        for (label, answer) in answers(fixture) {
            let request = GraphRequest {
                patterns: vec![label.clone()],
                current_dir: RepoPath::root(),
            };
            let set =
                compute(&source, &request).unwrap_or_else(|e| panic!("{fixture}: {label}: {e}"));
            let missing: Vec<&String> = answer
                .reads
                .iter()
                .filter(|p| !set.files.contains_key(&RepoPath::new(p.as_str()).unwrap()))
                .collect();
            let fallbacks = set.warnings.iter().filter(|w| w.is_eval_failure()).count();
            let (total, needed) = weigh(&fx, &set, &answer);
            let precision = if total == 0 {
                1.0
            } else {
                needed as f64 / total as f64
            };
            let recall = 1.0 - missing.len() as f64 / answer.reads.len().max(1) as f64;
            rows.push(format!(
                "{fixture:<20} {label:<34} {recall:>7.1}% {precision:>9.1}% {:>10} {:>6} {fallbacks:>9}",
                total / 1024,
                set.files.len(),
                recall = recall * 100.0,
                precision = precision * 100.0,
            ));
            if !missing.is_empty() {
                failures.push(format!(
                    "{fixture}: {label}: {} files buck2 reads are not in the set, e.g. {:?}",
                    missing.len(),
                    &missing[..missing.len().min(10)]
                ));
            }
            let floor = if fallbacks == 0 {
                MIN_PRECISION
            } else {
                FLOORS
                    .iter()
                    .find(|(f, l, _)| *f == fixture && *l == label)
                    .map_or(MIN_PRECISION, |(_, _, floor)| *floor)
            };
            if precision < floor {
                failures.push(format!(
                    "{fixture}: {label}: {:.1}% of placed bytes lie in packages buck2 loads, below {:.1}% ({fallbacks} build files fell back)",
                    precision * 100.0,
                    floor * 100.0
                ));
            }
        }
    }
    println!(
        "{:<20} {:<34} {:>8} {:>10} {:>10} {:>6} {:>9}",
        "corpus", "target", "recall", "precision", "placed KB", "files", "fallbacks"
    );
    for r in &rows {
        println!("{r}");
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Files of the corpus on which real buck2 (`buck2 targets` on a full
/// checkout, `../shared/tools/buck2`) fails too: fixture, project, the
/// start of antares' warning. Failing there is buck2's behaviour;
/// bench/corpus.sh notes the same cases.
const BUCK2_FAILS_TOO: &[(&str, &str, &str)] = &[
    (
        // buck2: "unknown cell alias: `fbcode_macros`. In cell `root`, known
        // aliases are: `buck, config, fbcode, fbsource, none, prelude, root,
        // toolchains`"; antares fails that load statement only.
        "buck2-examples",
        "persistent_worker",
        "could not evaluate BUCK: load(\"@fbcode_macros//build_defs:python.bzl\"): unknown cell",
    ),
    (
        // A comma missing after `adhoc_codesign_tool = None # @oss-enable`;
        // buck2 (`targets prelude//apple/tools:`): "Parse error: unexpected
        // identifier 'split_arch_combine_dsym_bundles_tool'" at 6:5.
        "blink",
        ".",
        "could not evaluate prelude/apple/tools/BUCK.v2:6:5: Parse error",
    ),
];

/// Every build file and `.bzl` file of every corpus repository evaluates:
/// no build file falls back to "every label written in it counts", no
/// loaded `.bzl` is stood in for (issue 13: 0 fallbacks on the corpus),
/// but where real buck2 fails too.
#[test]
fn every_corpus_repository_evaluates_without_a_fallback() {
    let mut failures = Vec::new();
    let mut unpacked: Option<(&str, Fixture)> = None;
    for (fixture, project, pattern) in common::corpus::projects() {
        if unpacked.as_ref().is_none_or(|(name, _)| *name != fixture) {
            unpacked = Some((fixture, unpack(fixture)));
        }
        let fx = &unpacked.as_ref().expect("unpacked above").1;
        let root = fx.root.join(project);
        let request = GraphRequest {
            patterns: vec![pattern.to_string()],
            current_dir: RepoPath::root(),
        };
        let set = compute(&DirSource::open(&root).unwrap(), &request)
            .unwrap_or_else(|e| panic!("{fixture}/{project}: {pattern}: {e}"));
        let (buck2_too, failed): (Vec<String>, Vec<String>) = set
            .warnings
            .iter()
            .filter(|w| w.is_eval_failure())
            .map(ToString::to_string)
            .partition(|w| {
                BUCK2_FAILS_TOO
                    .iter()
                    .any(|(f, p, why)| *f == fixture && *p == project && w.starts_with(why))
            });
        println!(
            "{fixture}/{project} {pattern}: {} build files, {} .bzl files, {} fallbacks, {} targets",
            set.stats.build_files,
            set.stats.bzl_files,
            set.stats.fallbacks,
            set.targets.len()
        );
        if set.stats.fallbacks > buck2_too.len() || !failed.is_empty() {
            failures.push(format!("{fixture}/{project} {pattern}: {failed:#?}"));
        }
        if set.targets.is_empty() {
            failures.push(format!("{fixture}/{project} {pattern}: no target declared"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Real buck2: `../shared/tools/buck2` beside the clone (CI has it), or
/// `ANTARES_TEST_BUCK2`.
fn real_buck2() -> Option<PathBuf> {
    std::env::var_os("ANTARES_TEST_BUCK2")
        .map(PathBuf::from)
        .or_else(|| Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/tools/buck2")))
        .filter(|p| p.is_file())
}

/// Runs real buck2 on a skeleton (the bundled prelude needs no content of
/// the repository's sources) and checks that it still reads what was
/// recorded, and that antares' set holds all of it.
#[test]
fn live_buck2_reads_what_was_recorded() {
    let Some(buck2) = real_buck2() else {
        println!("SKIPPED: no ../shared/tools/buck2 (set ANTARES_TEST_BUCK2)");
        return;
    };
    let fixture = "buck2-with_prelude";
    let fx = unpack(fixture);
    let home = tempfile::tempdir().unwrap();
    /// Stops the daemon however the test ends.
    struct Kill<'a>(&'a Path, &'a Path, &'a Path);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new(self.0)
                .arg("kill")
                .current_dir(self.1)
                .env("HOME", self.2)
                .output();
        }
    }
    let _kill = Kill(&buck2, &fx.root, home.path());
    let query = |q: String| -> BTreeSet<String> {
        let out = std::process::Command::new(&buck2)
            .args(["cquery", &q])
            .current_dir(&fx.root)
            .env("HOME", home.path())
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", buck2.display()));
        assert!(
            out.status.success(),
            "buck2 cquery {q}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && fx.root.join(l).exists())
            .map(str::to_string)
            .collect()
    };
    let source = DirSource::open(&fx.root).unwrap();
    let mut checked = 0;
    for (label, answer) in answers(fixture) {
        let mut live = query(format!("inputs(deps({label}))"));
        live.extend(query(format!("allbuildfiles(deps({label}))")));
        let set = compute(
            &source,
            &GraphRequest {
                patterns: vec![label.clone()],
                current_dir: RepoPath::root(),
            },
        )
        .unwrap();
        let missing: Vec<&String> = live
            .iter()
            .filter(|p| !set.files.contains_key(&RepoPath::new(p.as_str()).unwrap()))
            .collect();
        assert!(
            missing.is_empty(),
            "{label}: buck2 reads {missing:?}, antares lacks them"
        );
        assert_eq!(
            live, answer.reads,
            "{label}: buck2 now reads other files than recorded"
        );
        checked += 1;
    }
    assert!(checked >= 2, "only {checked} targets checked");
}
