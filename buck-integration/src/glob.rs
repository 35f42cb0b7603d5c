//! `glob()` with Buck2's semantics over a package's file list. The list
//! itself already stops at sub-package boundaries and skips ignored paths
//! (see `package.rs`), so matching is all that is left: `*` and `?` stay
//! within one path component, `**` spans any number of them (zero too).

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

#[derive(Debug, thiserror::Error)]
#[error("glob pattern {pattern:?}: {message}")]
pub struct GlobError {
    pattern: String,
    message: String,
}

fn compile(patterns: &[String]) -> Result<GlobSet, GlobError> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        let glob = GlobBuilder::new(p)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| GlobError {
                pattern: p.clone(),
                message: e.kind().to_string(),
            })?;
        b.add(glob);
    }
    b.build().map_err(|e| GlobError {
        pattern: patterns.join(", "),
        message: e.to_string(),
    })
}

/// The package-relative `files` matched by `include` and not by `exclude`,
/// in sorted order.
pub fn glob_files(files: &[String], include: &[String], exclude: &[String]) -> Result<Vec<String>, GlobError> {
    let include = compile(include)?;
    let exclude = compile(exclude)?;
    let mut out: Vec<String> = files
        .iter()
        .filter(|f| include.is_match(f.as_str()) && !exclude.is_match(f.as_str()))
        .cloned()
        .collect();
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn star_stays_in_one_component_and_double_star_spans() {
        let files = s(&["a.txt", "d/b.txt", "d/e/c.txt", "legacy/old.txt", "x.rs"]);
        assert_eq!(glob_files(&files, &s(&["*.txt"]), &[]).unwrap(), s(&["a.txt"]));
        assert_eq!(
            glob_files(&files, &s(&["**/*.txt"]), &s(&["legacy/**"])).unwrap(),
            s(&["a.txt", "d/b.txt", "d/e/c.txt"])
        );
        assert!(glob_files(&files, &s(&["a[.txt"]), &[]).is_err());
    }
}
