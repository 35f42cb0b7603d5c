//! What a build reads of a vendored prelude (a `prelude` cell in the tree).
//!
//! The prelude is never evaluated (its rules are recorded generically), so
//! which of its packages a target needs is not known from the walk alone.
//! Real buck2 (the corpus oracle) reads, for a leaf target of systeminit/si:
//! almost every prelude `.bzl` (`prelude.bzl` loads them all) and a handful
//! of packages (`rust/tools`, `cxx/tools`, `os_lookup/targets`, …) that the
//! prelude's rules and toolchains depend on by default. Those defaults are
//! written in the `.bzl` files as `prelude//pkg:name` strings. So the set is:
//! every `.bzl`, the prelude packages the walk reached, and every package
//! named by a cell-qualified label in a prelude `.bzl` or in the build file
//! of a package already taken, transitively. That is a superset of what
//! buck2 reads, and on SI a third of the prelude's bytes instead of all of
//! them (its Java sources, jars and binaries lie in packages no rule names).
//!
//! Narrower still: a `.bzl` of a language's directory (`android/`,
//! `toolchains/apple/`, `decls/erlang_rules.bzl`) names that language's
//! tools, which only rules of that language use. When every build file of
//! the closure evaluated, its rule kinds say which languages are in use
//! (`rust_library` → rust; a toolchain rule `system_cxx_toolchain` → cxx),
//! and the labels in other languages' `.bzl` files are not followed.
//!
//! The prelude's `none` target (`config//:none`, a no-op rule that
//! `select()` branches and `target_compatible_with` name) lives in the
//! prelude's root package, which globs the whole prelude: a label naming
//! only it takes that package's build file, not its files.

use crate::cells::Cell;
use crate::error::BuckError;
use crate::eval::scan::string_literals;
use crate::fileset::Reason;
use crate::label::{label_strings, parse_raw, resolve};
use crate::package::Layout;
use crate::tree::relative;
use antares_overlay::{EntryKind, RepoPath};
use std::collections::{BTreeSet, VecDeque};

/// The prelude's marker target: naming it needs its build file only.
pub(crate) const NONE: &str = "none";

/// Top-level prelude directories (and `toolchains/`, `platforms/`,
/// `decls/` entries) that belong to one language: the first `_`-separated
/// word of their name. Everything else is shared by all rules.
const LANGUAGES: &[&str] = &[
    "android", "apple", "csharp", "dotnet", "erlang", "go", "haskell", "java", "js", "julia",
    "jvm", "kotlin", "lua", "matlab", "ocaml", "python", "rust", "cxx", "swift", "zip", "conan",
    "msvc", "zig",
];

/// The language a prelude `.bzl` (cell-relative path) belongs to, if any.
fn language_of(rel: &str) -> Option<&'static str> {
    let mut parts = rel.split('/');
    let first = parts.next()?;
    let name = match (first, parts.next()) {
        ("toolchains" | "platforms" | "decls", Some(second)) => second,
        (_, Some(_)) => first,
        (_, None) => return None,
    };
    let word = name.split(['_', '.']).next()?;
    LANGUAGES.iter().copied().find(|l| *l == word)
}

/// Languages whose rules build through another's toolchain (rust, go,
/// haskell… link with the C++ linker; Kotlin compiles with Java's).
const IMPLIES: &[(&str, &[&str])] = &[
    ("rust", &["cxx"]),
    ("go", &["cxx"]),
    ("haskell", &["cxx"]),
    ("ocaml", &["cxx"]),
    ("lua", &["cxx"]),
    ("python", &["cxx"]),
    ("swift", &["cxx", "apple"]),
    ("apple", &["cxx", "swift"]),
    ("kotlin", &["java", "jvm"]),
    ("java", &["jvm"]),
    ("android", &["java", "jvm", "kotlin", "cxx"]),
];

/// The languages rule `kinds` use: each kind's `_`-separated words that
/// name one (`prebuilt_cxx_library` → cxx), and those they build through.
/// A bootstrap toolchain (`system_python_bootstrap_toolchain`) runs the
/// prelude's own scripts and uses none of its language's tools: real buck2
/// reads no `prelude//python/…` package for a rust target of SI.
pub(crate) fn languages_of<'k>(kinds: impl Iterator<Item = &'k str>) -> BTreeSet<&'static str> {
    let mut out = BTreeSet::new();
    for kind in kinds.filter(|k| !k.split('_').any(|w| w == "bootstrap")) {
        for word in kind.split('_') {
            if let Some(l) = LANGUAGES.iter().copied().find(|l| *l == word) {
                out.insert(l);
            }
        }
    }
    for (lang, more) in IMPLIES {
        if out.contains(lang) {
            out.extend(more.iter().copied());
        }
    }
    out
}

/// The prelude's files a build needs, each with a reason; `reached` are the
/// prelude packages (cell-relative) the walk arrived at, whether their
/// files are needed (not when only [`NONE`] was reached), and why;
/// `languages` those the closure's rules use (`None`: unknown, as when a
/// build file could not be evaluated; every language counts).
pub(crate) fn prelude_files(
    layout: &Layout,
    prelude: &Cell,
    reached: Vec<(String, bool, Reason)>,
    languages: Option<&BTreeSet<&str>>,
) -> Result<Vec<(RepoPath, Reason)>, BuckError> {
    let base = Reason::new(format!("vendored prelude (cell {})", prelude.name));
    let mut out = Vec::new();
    let mut queue: VecDeque<(String, bool, Reason)> = reached.into();
    for e in layout.all_entries(prelude, &prelude.path)? {
        if e.kind == EntryKind::Dir || !e.path.as_str().ends_with(".bzl") {
            continue;
        }
        let lang = language_of(relative(&e.path, &prelude.path));
        let unused = matches!((lang, languages), (Some(l), Some(used)) if !used.contains(l));
        if !unused {
            let text = layout.tree.read_bytes(&e.path)?.unwrap_or_default();
            let named = prelude_packages(layout, prelude, &String::from_utf8_lossy(&text), None);
            let why = base.then(format!("named in {}", e.path));
            queue.extend(named.into_iter().map(|(p, whole)| (p, whole, why.clone())));
        }
        out.push((e.path, base.then("prelude .bzl (prelude.bzl loads them)")));
    }
    let mut scanned = BTreeSet::new();
    let mut whole_taken = BTreeSet::new();
    while let Some((pkg, whole, why)) = queue.pop_front() {
        // Seen before, and either its files are not needed now or taken.
        let first = !scanned.contains(&pkg);
        if !first && (!whole || whole_taken.contains(&pkg)) {
            continue;
        }
        let Ok(rel) = RepoPath::new(&pkg) else {
            continue;
        };
        let dir = prelude.path.join_path(&rel);
        let Some(buildfile) = layout.buildfile(prelude, &dir)? else {
            tracing::debug!("prelude package {pkg:?} has no build file; skipped");
            continue;
        };
        let shown = if pkg.is_empty() { "//" } else { pkg.as_str() };
        let pr = why.then(format!("prelude package {shown}"));
        if first {
            scanned.insert(pkg.clone());
            let text = layout.tree.read_bytes(&buildfile)?.unwrap_or_default();
            let named =
                prelude_packages(layout, prelude, &String::from_utf8_lossy(&text), Some(&pkg));
            let next = pr.then(format!("named in {buildfile}"));
            queue.extend(named.into_iter().map(|(p, w)| (p, w, next.clone())));
            out.push((buildfile, pr.then("build file")));
        }
        if whole {
            whole_taken.insert(pkg.clone());
            for e in layout.package_entries(prelude, &dir)? {
                out.push((e.path, pr.then("whole package")));
            }
        }
    }
    Ok(out)
}

/// The prelude packages (cell-relative) that labels written in `text` name,
/// each with whether its files are needed (not for [`NONE`]).
/// In a build file (`package` given) relative and `//`-rooted labels are the
/// prelude's own; in a `.bzl` only cell-qualified ones are (a `//x:y`
/// there resolves against whichever cell calls it). Loads (`….bzl`) are
/// not packages the build reads.
fn prelude_packages(
    layout: &Layout,
    prelude: &Cell,
    text: &str,
    package: Option<&str>,
) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for s in string_literals(text) {
        for l in label_strings(&s) {
            let Some(raw) = parse_raw(l) else { continue };
            if raw.name.ends_with(".bzl") || (package.is_none() && raw.cell.is_none()) {
                continue;
            }
            let Ok(label) = resolve(&raw, layout.cells, &prelude.name, package.unwrap_or(""))
            else {
                continue;
            };
            if label.cell == prelude.name {
                let whole = label.name != NONE;
                out.push((label.package, whole));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_of_prelude_files_and_rule_kinds() {
        assert_eq!(language_of("android/tools/defs.bzl"), Some("android"));
        assert_eq!(language_of("toolchains/apple/xcode.bzl"), Some("apple"));
        assert_eq!(language_of("decls/erlang_rules.bzl"), Some("erlang"));
        assert_eq!(language_of("go_bootstrap/go_bootstrap.bzl"), Some("go"));
        assert_eq!(language_of("toolchains/cxx.bzl"), Some("cxx"));
        assert_eq!(language_of("prelude.bzl"), None);
        assert_eq!(language_of("utils/utils.bzl"), None);
        let used = languages_of(
            [
                "rust_library",
                "genrule",
                "system_python_toolchain",
                "system_go_bootstrap_toolchain",
            ]
            .into_iter(),
        );
        assert_eq!(
            used.into_iter().collect::<Vec<_>>(),
            ["cxx", "python", "rust"],
            "rust and python build through cxx; a bootstrap toolchain names no language"
        );
        assert!(languages_of(["cargo_package"].into_iter()).is_empty());
    }
}
