//! The corpus fixtures (tests/fixtures/corpus): skeletons of real Buck2
//! repositories, unpacked into a temporary directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The corpus directory.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus")
}

/// Every Buck2 project of the corpus and the pattern evaluated there: a
/// fixture, the directory in its tree that holds the project's root
/// `.buckconfig` (`.` for all but the fixture of buck2's `examples/`, each
/// of whose outermost directories with a `.buckconfig` is a project of its
/// own), and `//...`, or `prelude//...` for the vendored preludes (buck2's
/// `prelude/` as SI and blink vendor it).
pub fn projects() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        ("si", ".", "//..."),
        ("si", ".", "prelude//..."),
        ("blink", ".", "//..."),
        ("blink", ".", "prelude//..."),
        ("cxx", ".", "//..."),
        ("buck2-with_prelude", ".", "//..."),
        ("buck2-examples", "android/demoapp", "//..."),
        ("buck2-examples", "bootstrap", "//..."),
        ("buck2-examples", "bxl_tutorial", "//..."),
        ("buck2-examples", "hello_world", "//..."),
        ("buck2-examples", "no_prelude", "//..."),
        ("buck2-examples", "persistent_worker", "//..."),
        ("buck2-examples", "remote_execution/buildbarn", "//..."),
        ("buck2-examples", "remote_execution/buildbuddy", "//..."),
        ("buck2-examples", "remote_execution/engflow", "//..."),
        ("buck2-examples", "remote_execution/internal", "//..."),
        ("buck2-examples", "remote_execution/nativelink", "//..."),
        ("buck2-examples", "toolchains/conan_toolchain", "//..."),
        ("buck2-examples", "toolchains/cxx_zig_toolchain", "//..."),
        ("buck2-examples", "toolchains/go_toolchain", "//..."),
        ("buck2-examples", "toolchains/python_toolchain", "//..."),
        ("buck2-examples", "vscode", "//..."),
        ("buck2-examples", "with_prelude", "//..."),
        ("buck2-rust-third-party", ".", "//..."),
    ]
}

/// An unpacked fixture: its tree and the real size of each of its files.
pub struct Fixture {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub sizes: HashMap<String, u64>,
}

/// Unpacks `NAME.tar.xz` (with `tar` and `xz`, which CI installs).
pub fn unpack(name: &str) -> Fixture {
    let tarball = dir().join(format!("{name}.tar.xz"));
    let tmp = tempfile::tempdir().unwrap();
    let status = Command::new("tar")
        .arg("-xJf")
        .arg(&tarball)
        .arg("-C")
        .arg(tmp.path())
        .status()
        .unwrap_or_else(|e| panic!("running tar for {}: {e}", tarball.display()));
    assert!(status.success(), "tar -xJf {} failed", tarball.display());
    let listing = std::fs::read_to_string(tmp.path().join("sizes.tsv")).unwrap();
    let sizes = listing
        .lines()
        .map(|l| {
            let (size, path) = l.split_once('\t').expect("SIZE<TAB>PATH");
            (path.to_string(), size.parse().expect("a size"))
        })
        .collect();
    Fixture {
        root: tmp.path().join("tree"),
        _tmp: tmp,
        sizes,
    }
}

/// The decompressed bytes of an `.xz` file.
pub fn xz_decode(path: &Path) -> Vec<u8> {
    let out = Command::new("xz")
        .arg("-dc")
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("running xz for {}: {e}", path.display()));
    assert!(out.status.success(), "xz -dc {} failed", path.display());
    out.stdout
}
