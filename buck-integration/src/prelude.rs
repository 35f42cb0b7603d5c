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

use crate::cells::Cell;
use crate::error::BuckError;
use crate::eval::scan::string_literals;
use crate::fileset::Reason;
use crate::label::{label_strings, parse_raw, resolve};
use crate::package::Layout;
use antares_overlay::{EntryKind, RepoPath};
use std::collections::{BTreeSet, VecDeque};

/// The prelude's files a build needs, each with a reason; `reached` are the
/// prelude packages (cell-relative) the walk arrived at, with why.
pub(crate) fn prelude_files(
    layout: &Layout,
    prelude: &Cell,
    reached: Vec<(String, Reason)>,
) -> Result<Vec<(RepoPath, Reason)>, BuckError> {
    let base = Reason::new(format!("vendored prelude (cell {})", prelude.name));
    let mut out = Vec::new();
    let mut queue: VecDeque<(String, Reason)> = reached.into();
    for e in layout.all_entries(prelude, &prelude.path)? {
        if e.kind == EntryKind::Dir || !e.path.as_str().ends_with(".bzl") {
            continue;
        }
        let text = layout.tree.read_bytes(&e.path)?.unwrap_or_default();
        let named = prelude_packages(layout, prelude, &String::from_utf8_lossy(&text), None);
        let why = base.then(format!("named in {}", e.path));
        queue.extend(named.into_iter().map(|p| (p, why.clone())));
        out.push((e.path, base.then("prelude .bzl (prelude.bzl loads them)")));
    }
    let mut taken = BTreeSet::new();
    while let Some((pkg, why)) = queue.pop_front() {
        if !taken.insert(pkg.clone()) {
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
        let text = layout.tree.read_bytes(&buildfile)?.unwrap_or_default();
        let named = prelude_packages(layout, prelude, &String::from_utf8_lossy(&text), Some(&pkg));
        let next = pr.then(format!("named in {buildfile}"));
        queue.extend(named.into_iter().map(|p| (p, next.clone())));
        out.push((buildfile, pr.then("build file")));
        for e in layout.package_entries(prelude, &dir)? {
            out.push((e.path, pr.then("whole package")));
        }
    }
    Ok(out)
}

/// The prelude packages (cell-relative) that labels written in `text` name.
/// In a build file (`package` given) relative and `//`-rooted labels are the
/// prelude's own; in a `.bzl` only cell-qualified ones are (a `//x:y`
/// there resolves against whichever cell calls it). Loads (`….bzl`) are
/// not packages the build reads.
fn prelude_packages(
    layout: &Layout,
    prelude: &Cell,
    text: &str,
    package: Option<&str>,
) -> Vec<String> {
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
                out.push(label.package);
            }
        }
    }
    out
}
