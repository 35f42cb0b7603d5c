//! The toolchains cell read by antares' own evaluation, and its system
//! stand-in, on three shapes: buck2's `system_demo_toolchains()`, the shape
//! of systeminit/si's `toolchains/BUCK` (prelude-si distributions) and a
//! hand-written cell.

use antares_buck::toolchains::{discover, render, Replacement, Role, ToolchainsCell};
use antares_overlay::DirSource;
use std::collections::BTreeMap;
use std::path::Path;

fn read(dir: &str) -> ToolchainsCell {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let source = DirSource::open(&root).unwrap();
    discover(&source).unwrap().expect("a toolchains cell")
}

fn roles(cell: &ToolchainsCell) -> BTreeMap<&str, Option<Role>> {
    cell.toolchains
        .iter()
        .map(|t| (t.name.as_str(), t.role))
        .collect()
}

/// Replaces every toolchain that has a role.
fn replace_all(cell: &ToolchainsCell) -> BTreeMap<String, Replacement> {
    cell.toolchains
        .iter()
        .filter(|t| t.role.is_some())
        .map(|t| (t.name.clone(), Replacement::default()))
        .collect()
}

#[test]
fn demo_macro_targets_are_known_and_python_downloads() {
    let cell = read("../tests/fixtures/with-prelude");
    assert_eq!(cell.buildfile.as_str(), "toolchains/BUCK");
    let roles = roles(&cell);
    assert_eq!(roles["python"], Some(Role::Python));
    assert_eq!(roles["cxx"], Some(Role::Cxx));
    assert_eq!(roles["rust"], Some(Role::Rust));
    assert_eq!(roles["test"], None);
    let python = cell.toolchains.iter().find(|t| t.name == "python").unwrap();
    assert_eq!(python.from_macro.as_deref(), Some("system_demo_toolchains"));
    assert!(
        python.urls[0].starts_with("https://github.com/"),
        "{:?}",
        python.urls
    );
    assert!(
        cell.warnings.iter().any(|w| w.contains("java")),
        "{:?}",
        cell.warnings
    );
    assert!(
        !cell.warnings.iter().any(|w| w.contains("oncall")),
        "{:?}",
        cell.warnings
    );

    let mut replace = BTreeMap::new();
    replace.insert("python".to_string(), Replacement::default());
    replace.insert("python_bootstrap".to_string(), Replacement::default());
    let text = render(&cell, &replace);
    assert!(!text.contains("system_demo_toolchains()"), "{text}");
    assert!(
        text.contains("__antares_system_python_toolchain(\n    name = \"python\""),
        "{text}"
    );
    // Kept macro targets are declared with the macro's own rules.
    assert!(
        text.contains("__antares_noop_test_toolchain(\n    name = \"test\""),
        "{text}"
    );
    assert!(text.contains("default_edition = \"2021\""), "{text}");
    assert!(!text.contains("remote_python_toolchain"), "{text}");
    let python_load = text
        .lines()
        .find(|l| l.starts_with("load(\"@prelude//toolchains:python.bzl\""))
        .unwrap();
    assert!(
        python_load.contains("__antares_system_python_toolchain = \"system_python_toolchain\""),
        "{text}"
    );
}

#[test]
fn si_shape_replaces_only_language_toolchains_and_keeps_the_rest_as_written() {
    let cell = read("tests/toolchains/si");
    let roles = roles(&cell);
    assert_eq!(roles["cxx"], Some(Role::Cxx));
    assert_eq!(roles["python"], Some(Role::Python));
    assert_eq!(roles["python_bootstrap"], Some(Role::PythonBootstrap));
    assert_eq!(roles["rust_release"], Some(Role::Rust));
    assert_eq!(roles["rust_debug"], Some(Role::Rust));
    assert_eq!(roles["genrule"], Some(Role::Genrule));
    for kept in [
        "si_rust",
        "rust",
        "test",
        "python_dist",
        "rust_dist",
        "clang",
    ] {
        assert_eq!(roles[kept], None, "{kept}");
    }
    // The downloads each declaration reaches, through the evaluated macros.
    let urls = |n: &str| {
        cell.toolchains
            .iter()
            .find(|t| t.name == n)
            .unwrap()
            .urls
            .clone()
    };
    assert_eq!(
        urls("python"),
        vec!["https://python.example.invalid/cpython-3.13.6.tar.gz"]
    );
    assert_eq!(
        urls("rust_debug"),
        vec!["https://rust.example.invalid/rust-1.88.0.tar.xz"]
    );
    assert_eq!(
        urls("cxx"),
        vec!["https://clang.example.invalid/clang-20.1.0.tar.xz"]
    );
    assert!(urls("genrule").is_empty());

    let mut replace = replace_all(&cell);
    replace.insert(
        "cxx".to_string(),
        Replacement {
            attrs: vec![("compiler".into(), "\"gcc\"".into())],
        },
    );
    let text = render(&cell, &replace);
    assert!(text.contains(
        "__antares_system_rust_toolchain(\n    name = \"rust_release\",\n    default_edition = \"2024\",\n    clippy_toml = \"root//:clippy.toml\",\n    visibility = [\"PUBLIC\"],\n)"
    ), "{text}");
    assert!(
        !text.contains("-fuse-ld=lld"),
        "hermetic flags dropped: {text}"
    );
    assert!(text.contains("__antares_system_cxx_toolchain(\n    name = \"cxx\",\n    visibility = [\"PUBLIC\"],\n    compiler = \"gcc\",\n)"), "{text}");
    assert!(!text.contains("--rtlib=compiler-rt"), "{text}");
    // Untouched: project toolchains, the alias, the distributions, the loads.
    assert!(
        text.contains("si_rust_toolchain(\n    name = \"si_rust\""),
        "{text}"
    );
    assert!(
        text.contains("toolchain_alias(\n    name = \"rust\""),
        "{text}"
    );
    assert!(
        text.contains("download_python_distribution(\n    name = \"python_dist\""),
        "{text}"
    );
    assert!(
        text.contains("load(\":toolchain.bzl\", \"toolchain_alias\")"),
        "{text}"
    );
    assert!(!text.contains("hermetic_rust_toolchain(\n"), "{text}");
}

#[test]
fn hand_written_cell_in_another_directory() {
    let cell = read("tests/toolchains/hand");
    assert_eq!(cell.dir.as_str(), "build/toolchains");
    let roles = roles(&cell);
    // `python_tc` is the prelude's python_toolchain under another name.
    assert_eq!(roles["python"], Some(Role::Python));
    assert_eq!(roles["cxx"], Some(Role::Cxx));
    assert_eq!(roles["lint"], None);
    assert_eq!(roles["py"], None);
    let text = render(&cell, &replace_all(&cell));
    assert!(!text.contains("wrappers/cc.sh"), "{text}");
    assert!(
        text.contains("lint_toolchain(\n    name = \"lint\""),
        "{text}"
    );
    assert!(text.contains("export_file(\n    name = \"py\""), "{text}");
    // Nothing replaced: the file is the original below the header.
    let original = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/toolchains/hand/build/toolchains/BUCK"),
    )
    .unwrap();
    assert!(render(&cell, &BTreeMap::new()).ends_with(&original));
}

#[test]
fn no_toolchains_cell_is_none() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join(".buckconfig"), "[cells]\nroot = .\n").unwrap();
    let source = DirSource::open(tmp.path()).unwrap();
    assert!(discover(&source).unwrap().is_none());
}
