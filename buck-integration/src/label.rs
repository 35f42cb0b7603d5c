//! Target labels (`cell//pkg:name`, `//pkg:name`, `:name`, `@cell//…`) and
//! finding them inside attribute strings, including `$(location …)`-style
//! macros.

use crate::cells::Cells;
use antares_overlay::RepoPath;
use serde::Serialize;
use std::fmt;

/// A fully resolved target label: canonical cell name, cell-relative package.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Label {
    /// The canonical cell name.
    pub cell: String,
    /// The cell-relative package path.
    pub package: String,
    /// The target name.
    pub name: String,
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}//{}:{}", self.cell, self.package, self.name)
    }
}

impl Label {
    /// The label as a user would write it: the root cell's name is left out.
    pub fn short(&self, root_cell: &str) -> String {
        if self.cell == root_cell {
            format!("//{}:{}", self.package, self.name)
        } else {
            self.to_string()
        }
    }
}

/// A label as written, before cell aliases and relative forms are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawLabel<'a> {
    /// `None` for `//pkg:name` and `:name`.
    pub cell: Option<&'a str>,
    /// `None` for `:name` (the current package).
    pub package: Option<&'a str>,
    pub name: String,
}

fn is_cell_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

fn is_package_path(s: &str) -> bool {
    s.is_empty()
        || (!s.starts_with('/')
            && !s.ends_with('/')
            && RepoPath::new(s).is_ok()
            && !s.contains("..."))
            && s.bytes()
                .all(|b| !b.is_ascii_whitespace() && !b"$()\"'[]{}<>".contains(&b))
}

/// Strips a `[subtarget]` or `#flavor` suffix and checks the name's characters.
fn target_name(s: &str) -> Option<String> {
    let end = s.find(['[', '#']).unwrap_or(s.len());
    let name = &s[..end];
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.,=+~@!/%^&".contains(&b));
    ok.then(|| name.to_string())
}

/// Parses `s` as a label, syntactically. Patterns (`//x/...`), URLs and
/// arbitrary text are not labels.
pub(crate) fn parse_raw(s: &str) -> Option<RawLabel<'_>> {
    if let Some(name) = s.strip_prefix(':') {
        return Some(RawLabel {
            cell: None,
            package: None,
            name: target_name(name)?,
        });
    }
    let (cell, rest) = s.split_once("//")?;
    let cell = cell.strip_prefix('@').unwrap_or(cell);
    let cell = if cell.is_empty() {
        None
    } else if is_cell_name(cell) {
        Some(cell)
    } else {
        return None;
    };
    let (package, name) = match rest.split_once(':') {
        Some((p, n)) => (p, target_name(n)?),
        None => {
            let last = rest.rsplit('/').next().filter(|l| !l.is_empty())?;
            (rest, target_name(last)?)
        }
    };
    is_package_path(package).then_some(RawLabel {
        cell,
        package: Some(package),
        name,
    })
}

/// Every label-looking piece of an attribute string: the string itself, or
/// the arguments of `$(macro …)` inside it.
pub(crate) fn label_strings(s: &str) -> Vec<&str> {
    if parse_raw(s).is_some() {
        return vec![s];
    }
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("$(") {
        let body = &rest[start + 2..];
        let end = body.find(')').unwrap_or(body.len());
        let args = body[..end].split_whitespace().skip(1);
        for piece in args.flat_map(|t| t.split(|c| "\"'(),".contains(c))) {
            if parse_raw(piece).is_some() {
                out.push(piece);
            }
        }
        rest = &body[end..];
    }
    out
}

/// Resolves a written label in the context of `cell` and `package` (the
/// package being evaluated). Errors name what could not be resolved.
pub(crate) fn resolve(
    raw: &RawLabel,
    cells: &Cells,
    cell: &str,
    package: &str,
) -> Result<Label, String> {
    let cell = match raw.cell {
        None => cell.to_string(),
        Some(c) => cells
            .resolve(cell, c)
            .map(|c| c.name.clone())
            .ok_or_else(|| format!("unknown cell {c:?}"))?,
    };
    Ok(Label {
        cell,
        package: raw.package.unwrap_or(package).to_string(),
        name: raw.name.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognizes_label_forms() {
        let l = parse_raw("@sc//defs:rules.bzl").unwrap();
        assert_eq!(
            (l.cell, l.package, l.name.as_str()),
            (Some("sc"), Some("defs"), "rules.bzl")
        );
        let l = parse_raw("//lib/math").unwrap();
        assert_eq!((l.package, l.name.as_str()), (Some("lib/math"), "math"));
        let l = parse_raw(":tool[bin]").unwrap();
        assert_eq!((l.package, l.name.as_str()), (None, "tool"));
        for not in [
            "http://x.org/a",
            "//x/...",
            "PUBLIC",
            "a b",
            "//",
            "DEFAULT",
            "cell//a b:c",
        ] {
            assert!(parse_raw(not).is_none(), "{not:?}");
        }
    }

    #[test]
    fn finds_labels_in_macros() {
        assert_eq!(
            label_strings(
                "cat $(location //a:b) > $OUT && $(exe :tool) $(query_targets \"deps(//q:r)\")"
            ),
            vec!["//a:b", ":tool", "//q:r"]
        );
    }
}
