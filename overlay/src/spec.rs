//! Parsing of `--source` specs: `dir:PATH`, `git:PATH[@REV]`, `mono:URL[@REFS]`.

use crate::error::SourceError;
use std::path::PathBuf;

/// Where the lower tree comes from, as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SourceSpec {
    /// A plain directory.
    Dir { path: PathBuf },
    /// A local git repository (bare or not) at a revision (default `HEAD`).
    Git { path: PathBuf, rev: Option<String> },
    /// A Mono server at a base URL, optionally at refs (branch/tag/commit).
    Mono { url: String, refs: Option<String> },
}

impl SourceSpec {
    pub fn parse(spec: &str) -> Result<Self, SourceError> {
        let err = |message: &str| SourceError::Spec {
            spec: spec.to_string(),
            message: message.to_string(),
        };
        let (kind, rest) = spec
            .split_once(':')
            .ok_or_else(|| err("expected dir:PATH, git:PATH[@REV] or mono:URL[@REFS]"))?;
        if rest.is_empty() {
            return Err(err("nothing after the ':'"));
        }
        match kind {
            "dir" => Ok(SourceSpec::Dir { path: rest.into() }),
            "git" => {
                let (path, rev) = split_at_rev(rest);
                if path.is_empty() {
                    return Err(err("empty repository path"));
                }
                Ok(SourceSpec::Git {
                    path: path.into(),
                    rev: rev.map(str::to_string),
                })
            }
            "mono" => {
                if !(rest.starts_with("http://") || rest.starts_with("https://")) {
                    return Err(err("the Mono URL must start with http:// or https://"));
                }
                // An '@' after the authority part separates the refs; one in the
                // authority (user@host) does not.
                let after_scheme = rest.find("://").map(|i| i + 3).unwrap_or(0);
                let authority_end = rest[after_scheme..]
                    .find('/')
                    .map(|i| i + after_scheme)
                    .unwrap_or(rest.len());
                let (url, refs) = match rest.rfind('@') {
                    Some(i) if i >= authority_end => (&rest[..i], Some(&rest[i + 1..])),
                    _ => (rest, None),
                };
                if refs == Some("") {
                    return Err(err("empty refs after '@'"));
                }
                Ok(SourceSpec::Mono {
                    url: url.trim_end_matches('/').to_string(),
                    refs: refs.map(str::to_string),
                })
            }
            other => Err(err(&format!("unknown source kind {other:?}"))),
        }
    }

    /// The same source at another revision (git rev, mono refs). A plain
    /// directory has no revisions.
    pub fn at_revision(self, rev: &str) -> Result<Self, SourceError> {
        if rev.is_empty() {
            return Err(SourceError::Spec {
                spec: self.to_string(),
                message: "empty revision".into(),
            });
        }
        match self {
            SourceSpec::Git { path, .. } => Ok(SourceSpec::Git { path, rev: Some(rev.to_string()) }),
            SourceSpec::Mono { url, .. } => Ok(SourceSpec::Mono { url, refs: Some(rev.to_string()) }),
            d @ SourceSpec::Dir { .. } => Err(SourceError::Spec {
                spec: d.to_string(),
                message: "a dir: source is a live directory and has no revisions; --rev needs git: or mono:".into(),
            }),
        }
    }

    /// Makes relative local paths absolute against `base` (the directory the
    /// user ran `init` in), so the spec stays valid from any directory.
    pub fn absolutize(self, base: &std::path::Path) -> Self {
        match self {
            SourceSpec::Dir { path } => SourceSpec::Dir {
                path: base.join(path),
            },
            SourceSpec::Git { path, rev } => SourceSpec::Git {
                path: base.join(path),
                rev,
            },
            m => m,
        }
    }
}

/// Splits `PATH@REV` at the last '@' (revisions may contain '/', e.g.
/// `feature/x`). A path that itself contains '@' must be given with an explicit
/// `@REV` (e.g. `@HEAD`).
fn split_at_rev(s: &str) -> (&str, Option<&str>) {
    match s.rsplit_once('@') {
        Some((p, r)) if !p.is_empty() && !r.is_empty() => (p, Some(r)),
        _ => (s, None),
    }
}

impl std::fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceSpec::Dir { path } => write!(f, "dir:{}", path.display()),
            SourceSpec::Git { path, rev: None } => write!(f, "git:{}", path.display()),
            SourceSpec::Git { path, rev: Some(r) } => write!(f, "git:{}@{r}", path.display()),
            SourceSpec::Mono { url, refs: None } => write!(f, "mono:{url}"),
            SourceSpec::Mono { url, refs: Some(r) } => write!(f, "mono:{url}@{r}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        assert_eq!(
            SourceSpec::parse("git:/r@feature/x").unwrap(),
            SourceSpec::Git {
                path: "/r".into(),
                rev: Some("feature/x".into())
            }
        );
        assert_eq!(
            SourceSpec::parse("git:/r").unwrap(),
            SourceSpec::Git {
                path: "/r".into(),
                rev: None
            }
        );
        assert_eq!(
            SourceSpec::parse("mono:http://u@h:8000/@main").unwrap(),
            SourceSpec::Mono {
                url: "http://u@h:8000".into(),
                refs: Some("main".into())
            }
        );
        assert_eq!(
            SourceSpec::parse("mono:http://h:8000").unwrap(),
            SourceSpec::Mono {
                url: "http://h:8000".into(),
                refs: None
            }
        );
        assert!(SourceSpec::parse("svn:/x").is_err());
        assert!(SourceSpec::parse("dir:").is_err());
        assert!(SourceSpec::parse("mono:ftp://x").is_err());
    }
}
