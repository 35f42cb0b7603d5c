//! The fixture monorepos under tests/fixtures/: exact file sets, and a
//! reason for every entry that `antares why` can print.

mod common;

use antares_buck::{compute, BuckError, FileSet, GraphRequest};
use antares_overlay::{DirSource, RepoPath};
use common::copy_restoring_symlinks;
use std::collections::BTreeSet;
use std::path::Path;

/// A private copy of a fixture (symlinks restored if the checkout lost them).
fn fixture(name: &str) -> (tempfile::TempDir, DirSource) {
    let from = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures")).join(name);
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join(name);
    copy_restoring_symlinks(&from, &repo);
    let source = DirSource::open(&repo).unwrap();
    (tmp, source)
}

fn run(source: &DirSource, patterns: &[&str], dir: &str) -> FileSet {
    let request = GraphRequest {
        patterns: patterns.iter().map(|p| p.to_string()).collect(),
        current_dir: RepoPath::new(dir).unwrap(),
    };
    compute(source, &request).unwrap()
}

fn paths(set: &FileSet) -> BTreeSet<&str> {
    set.files.keys().map(|p| p.as_str()).collect()
}

fn why(set: &FileSet, path: &str) -> String {
    set.why(&RepoPath::new(path).unwrap())
        .unwrap_or_else(|| panic!("{path} not in the set"))
        .to_string()
}

/// Files every monorepo request needs: configs, the vendored prelude, the
/// toolchains cell's closure.
const MONOREPO_BASE: &[&str] = &[
    ".buckconfig",
    ".buckconfig.d/app.buckconfig",
    ".buckconfig.local",
    ".buckroot",
    "build/common.buckconfig",
    "prelude/.buckconfig",
    "prelude/platforms/BUCK",
    "prelude/prelude.bzl",
    "prelude/rules.bzl",
    "prelude/toolchains/cxx.bzl",
    "toolchains/BUCK",
    "toolchains/TARGETS",
    "PACKAGE",
    "tools/TARGETS",
    "tools/gen.sh",
    "tools/wrapper.sh",
];

#[test]
fn monorepo_binary_closure_is_exact() {
    let (_tmp, source) = fixture("monorepo");
    let set = run(&source, &["//app:main_server"], "");
    let mut want: BTreeSet<&str> = MONOREPO_BASE.iter().copied().collect();
    want.extend([
        // the package itself (notes.tmp is ignored), and its symlink chain
        "app/TARGETS",
        "app/main.c",
        "app/helpers.c",
        "app/config.json",
        "shared/config.json",
        "shared/real/config.json",
        // macros loaded across cells, and that cell's config
        "cells/third/macros/lib.bzl",
        "cells/third/defs/inner.bzl",
        "cells/third/.buckconfig",
        "build/flags.bzl",
        "cells/third/proto/BUCK",
        "cells/third/proto/api.proto",
        // PACKAGE file loading a .bzl; the whole package minus ignored
        // paths, down to the sub-package
        "lib/PACKAGE",
        "build/package_defaults.bzl",
        "lib/core/TARGETS",
        "lib/core/core.c",
        "lib/core/legacy/old.c",
        // select(): every branch
        "lib/util/TARGETS",
        "lib/util/util.c",
        "lib/util/util.h",
        // genrule with $(exe) and $(location)
        "gen/TARGETS",
        "gen/version.in",
        "data/TARGETS",
        "data/schema.json",
        // the broken build file: its labels still count
        "broken/TARGETS",
        "broken/thing.c",
        "assets/TARGETS",
        "assets/logo.png",
    ]);
    assert_eq!(paths(&set), want);
    // `why` explains every entry: a chain from a requested target, the
    // toolchains cell, the configured platform, the project itself or the
    // vendored prelude.
    let roots = [
        "//app:main_server",
        "toolchains//",
        "prelude//platforms:default ([parser] target_platform_detector_spec)",
        "project root",
        "vendored prelude",
    ];
    for (path, reason) in &set.files {
        let first = reason.chain.first().map(String::as_str).unwrap_or("");
        assert!(
            roots.iter().any(|r| first.starts_with(r)),
            "{path}: {reason}"
        );
        assert!(
            reason.chain.len() >= 2 || first.starts_with("vendored prelude"),
            "{path}: {reason}"
        );
    }
    assert_eq!(
        why(&set, "lib/util/util.h"),
        "//app:main_server -> //lib/util:util (deps) -> package lib/util/ -> whole package"
    );
    assert_eq!(
        why(&set, "shared/real/config.json"),
        "//app:main_server -> package app/ -> whole package -> target of symlink app/config.json"
    );
    assert!(why(&set, "cells/third/proto/api.proto")
        .contains("//app:app_lib (deps) -> third//proto:proto (deps)"));
    assert!(why(&set, "build/package_defaults.bzl").ends_with("-> loaded by lib/PACKAGE"));
    assert!(why(&set, "tools/wrapper.sh")
        .starts_with("toolchains//:cxx (toolchains cell) -> //tools:wrapper (compiler_wrapper)"));
    assert!(why(&set, "assets/logo.png").contains("//data:assets (labels in a failed build file)"));
    assert!(why(&set, "prelude/rules.bzl").starts_with("vendored prelude"));
    assert!(why(&set, "build/common.buckconfig").contains("configuration of cell root"));
    assert!(
        set.warnings.iter().any(|w| w
            .to_string()
            .starts_with("could not evaluate broken/TARGETS")),
        "{:#?}",
        set.warnings
    );
    assert_eq!(set.targets["//app:app_lib"].kind, "cxx_library");
    // The vendored prelude's macro runs: the target is what it declares.
    assert_eq!(set.targets["toolchains//:cxx"].kind, "cxx_toolchain");
    assert!(set.packages.contains_key("third//proto"));
    // glob(["**/*.c"], exclude = ["legacy/**"]): not into the sub-package,
    // not into the ignored directory
    assert_eq!(set.targets["//lib/core:core"].inputs, vec!["core.c"]);
    assert_eq!(
        set.targets["//app:app_lib"].inputs,
        vec!["helpers.c", "main.c"]
    );
    assert_eq!(
        set.targets["//app:app_lib"].deps,
        vec!["//app:helpers", "//lib/core:core", "third//proto:proto"]
    );
    assert_eq!(
        set.targets["//gen:version"].deps,
        vec!["//data:schema", "//tools:gen"]
    );
}

#[test]
fn monorepo_patterns_relative_package_and_recursive() {
    let (_tmp, source) = fixture("monorepo");
    let relative = run(&source, &[":helpers"], "app");
    let from_below = run(&source, &[":helpers"], "shared/real");
    assert!(from_below
        .warnings
        .iter()
        .any(|w| w.to_string().contains("root//shared/real")));
    assert_eq!(
        paths(&run(&source, &[":core"], "lib/core/legacy")),
        paths(&run(&source, &["//lib/core:core"], ""))
    );
    let absolute = run(&source, &["//app:helpers"], "");
    assert_eq!(paths(&relative), paths(&absolute));
    assert!(paths(&absolute).contains("lib/util/util.c"));
    assert!(!paths(&absolute).contains("lib/core/core.c"));

    let recursive = run(&source, &["//lib/..."], "");
    let p = paths(&recursive);
    for f in [
        "lib/core/sub/sub.c",
        "lib/core/core.c",
        "lib/util/util.h",
        "lib/PACKAGE",
    ] {
        assert!(p.contains(f), "{f} missing from //lib/...");
    }
    assert!(
        !p.contains("lib/core/scratch/wip.c"),
        "ignored path materialized"
    );
    assert!(!p.contains("app/main.c"));

    let package = run(&source, &["//lib/core:"], "");
    assert!(paths(&package).contains("lib/core/core.c"));
    assert!(
        !paths(&package).contains("lib/core/sub/sub.c"),
        "sub-package leaked into //lib/core:"
    );

    let third = run(&source, &["tp//..."], "");
    assert!(paths(&third).contains("cells/third/proto/api.proto"));
    assert!(paths(&third).contains("cells/third/.buckconfig"));
    assert!(!paths(&third).contains("app/TARGETS"));

    let everything = run(&source, &["//..."], "");
    let all = paths(&everything);
    assert!(
        !everything
            .packages
            .keys()
            .any(|k| k.starts_with("root//cells")),
        "//... crossed into another cell's directory"
    );
    assert!(
        everything.packages.contains_key("third//proto"),
        "a dependency into another cell"
    );
    assert!(!all.contains("docs/index.md") && !all.contains("build/unused.bzl"));
}

#[test]
fn monorepo_bad_patterns_are_errors() {
    let (_tmp, source) = fixture("monorepo");
    let request = GraphRequest {
        patterns: vec!["nosuchcell//x:y".into()],
        current_dir: RepoPath::root(),
    };
    assert!(matches!(
        compute(&source, &request),
        Err(BuckError::UnknownCell { .. })
    ));
    let request = GraphRequest {
        patterns: vec!["//app/".into()],
        current_dir: RepoPath::root(),
    };
    assert!(matches!(
        compute(&source, &request),
        Err(BuckError::Pattern { .. })
    ));
}

#[test]
fn bundled_prelude_closure_is_exact() {
    let (_tmp, source) = fixture("bundled");
    let set = run(&source, &["//pkg:x"], "");
    let want: BTreeSet<&str> = [
        ".buckconfig",
        ".buckroot",
        "conf/extra.buckconfig",
        "pkg/BUCK",
        "pkg/BUCK.v2",
        "pkg/a.txt",
        "other/defs.bzl",
        "other/BUCK",
        "other/c.txt",
        "platforms/BUCK",
    ]
    .into_iter()
    .collect();
    assert_eq!(paths(&set), want, "warnings: {:#?}", set.warnings);
    assert_eq!(
        why(&set, "pkg/BUCK.v2"),
        "//pkg:x -> package pkg/ -> build file"
    );
    assert_eq!(
        why(&set, "other/c.txt"),
        "//pkg:x -> //other:y (dep) -> package other/ -> whole package"
    );
    assert_eq!(set.targets["//pkg:x"].kind, "my_rule");
    assert_eq!(
        why(&set, "platforms/BUCK"),
        "//platforms:exec ([build] execution_platforms) -> package platforms/ -> build file"
    );
    assert!(set.targets.contains_key("//platforms:os"));
    assert!(set.warnings.is_empty(), "{:#?}", set.warnings);

    let json = serde_json::to_value(&set).unwrap();
    assert_eq!(
        json["files"]["pkg/BUCK.v2"],
        serde_json::json!(["//pkg:x", "package pkg/", "build file"])
    );
    assert_eq!(
        json["targets"]["//pkg:x"]["deps"],
        serde_json::json!(["//other:y"])
    );

    let custom = run(&source, &["//other:c"], "");
    assert_eq!(custom.targets["//other:c"].kind, "my_custom");
    // a label in a Starlark rule's attribute default is a dependency
    assert_eq!(
        why(&custom, "tools/compiler.sh"),
        "//other:c -> //tools:compiler (rule defaults) -> package tools/ -> whole package"
    );
}

/// A source that remembers which entries' contents were read.
struct Recording {
    inner: DirSource,
    reads: std::sync::Mutex<Vec<antares_overlay::TreeEntry>>,
}

impl antares_overlay::Source for Recording {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn revision(&self) -> Option<String> {
        self.inner.revision()
    }
    fn stat(&self, path: &RepoPath) -> antares_overlay::Result<Option<antares_overlay::TreeEntry>> {
        self.inner.stat(path)
    }
    fn list_dir(&self, dir: &RepoPath) -> antares_overlay::Result<Vec<antares_overlay::TreeEntry>> {
        self.inner.list_dir(dir)
    }
    fn read(&self, entry: &antares_overlay::TreeEntry) -> antares_overlay::Result<Vec<u8>> {
        self.reads.lock().unwrap().push(entry.clone());
        self.inner.read(entry)
    }
}

#[test]
fn only_build_package_bzl_and_config_files_are_read() {
    let (_tmp, inner) = fixture("monorepo");
    let source = Recording {
        inner,
        reads: Default::default(),
    };
    let request = GraphRequest {
        patterns: vec!["//...".into(), "//app:main_server".into()],
        current_dir: RepoPath::root(),
    };
    compute(&source, &request).unwrap();
    let reads = source.reads.lock().unwrap();
    assert!(!reads.is_empty());
    for e in reads.iter() {
        let name = e.path.file_name().unwrap_or("");
        let allowed = e.kind == antares_overlay::EntryKind::Symlink
            || ["TARGETS", "BUCK", "PACKAGE"].contains(&name)
            || name.ends_with(".bzl")
            || name.contains(".buckconfig")
            || e.path.as_str().starts_with(".buckconfig.d/");
        assert!(allowed, "read the contents of {}", e.path);
    }
}
