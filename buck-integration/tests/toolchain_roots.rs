//! Of the toolchains cell, a target's file set holds the toolchains its
//! rules use (issue 13 item 4): real buck2 loads the toolchains package but
//! configures only the toolchains named by the rules it builds, so what the
//! other toolchains depend on is not read.

use antares_buck::{compute, FileSet, GraphRequest};
use antares_overlay::{DirSource, RepoPath};
use std::fs;

/// A repository whose toolchains cell declares a rust, a deno and a
/// bootstrap python toolchain, each depending on a package of its own.
fn repo(extra: &[(&str, &str)]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let files: &[(&str, &str)] = &[
        (
            ".buckconfig",
            "[cells]\n  root = .\n  prelude = prelude\n  toolchains = toolchains\n[external_cells]\n  prelude = bundled\n",
        ),
        (
            "toolchains/BUCK",
            r#"load("@prelude//toolchains:rust.bzl", "system_rust_toolchain")
load("@prelude//toolchains:python.bzl", "system_python_bootstrap_toolchain")
load("@prelude//toolchains:deno.bzl", "deno_toolchain")
system_rust_toolchain(name = "rust", clippy_toml = "root//tools/clippy:clippy.toml", visibility = ["PUBLIC"])
system_python_bootstrap_toolchain(name = "python_bootstrap", interpreter = "root//tools/python:bootstrap", visibility = ["PUBLIC"])
deno_toolchain(name = "deno", runtime = "root//tools/deno:runtime", visibility = ["PUBLIC"])
"#,
        ),
        ("tools/clippy/BUCK", "export_file(name = \"clippy.toml\")\n"),
        ("tools/clippy/clippy.toml", ""),
        ("tools/python/BUCK", "export_file(name = \"bootstrap\", src = \"bootstrap.py\")\n"),
        ("tools/python/bootstrap.py", ""),
        ("tools/deno/BUCK", "export_file(name = \"runtime\", src = \"deno.bin\")\n"),
        ("tools/deno/deno.bin", "a large runtime"),
        ("lib/BUCK", "rust_library(name = \"lib\", srcs = [\"lib.rs\"])\n"),
        ("lib/lib.rs", ""),
    ];
    for (path, text) in files.iter().chain(extra) {
        let p = tmp.path().join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    tmp
}

fn run(root: &std::path::Path, pattern: &str) -> FileSet {
    let request = GraphRequest {
        patterns: vec![pattern.to_string()],
        current_dir: RepoPath::root(),
    };
    compute(&DirSource::open(root).unwrap(), &request).unwrap()
}

fn has(set: &FileSet, path: &str) -> bool {
    set.files.contains_key(&RepoPath::new(path).unwrap())
}

#[test]
fn a_rust_target_takes_the_rust_and_bootstrap_toolchains_not_deno() {
    let tmp = repo(&[]);
    let set = run(tmp.path(), "//lib:lib");
    for f in [
        "lib/lib.rs",
        "toolchains/BUCK",
        "tools/clippy/clippy.toml",
        "tools/python/bootstrap.py",
    ] {
        assert!(has(&set, f), "{f} missing: {:#?}", set.files.keys());
    }
    assert!(
        !has(&set, "tools/deno/deno.bin"),
        "the deno toolchain's runtime is placed for a rust target: {}",
        set.why(&RepoPath::new("tools/deno/deno.bin").unwrap())
            .map(ToString::to_string)
            .unwrap_or_default()
    );
}

#[test]
fn a_rule_written_with_rule_brings_its_default_toolchain() {
    let tmp = repo(&[
        (
            "defs/deno.bzl",
            "def _impl(ctx):\n    return []\ndeno_bundle = rule(impl = _impl, attrs = {\"_deno\": attrs.toolchain_dep(default = \"toolchains//:deno\")})\n",
        ),
        ("web/BUCK", "load(\"//defs:deno.bzl\", \"deno_bundle\")\ndeno_bundle(name = \"web\")\n"),
    ]);
    let set = run(tmp.path(), "//web:web");
    assert!(has(&set, "tools/deno/deno.bin"), "{:#?}", set.files.keys());
    assert!(
        !has(&set, "tools/clippy/clippy.toml"),
        "{:#?}",
        set.files.keys()
    );
}

#[test]
fn while_a_build_file_fails_every_toolchain_counts() {
    let tmp = repo(&[(
        "lib/BUCK",
        "rust_library(name = \"lib\", srcs = [\"lib.rs\"]\n",
    )]);
    let set = run(tmp.path(), "//lib:lib");
    assert!(
        set.stats.fallbacks > 0,
        "the broken build file evaluated: {:#?}",
        set.warnings
    );
    assert!(has(&set, "tools/deno/deno.bin"), "{:#?}", set.files.keys());
}
