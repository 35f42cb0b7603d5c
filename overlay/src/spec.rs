//! Parsing of `--source` specs: `dir:PATH`, `git:PATH[@REV]`, `mono:URL[@REFS]`.

use crate::error::SourceError;
use std::path::PathBuf;

/// Where the lower tree comes from, as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SourceSpec {
    /// A plain directory.
    Dir {
        /// The directory.
        path: PathBuf,
    },
    /// A local git repository (bare or not) at a revision (default `HEAD`).
    Git {
        /// The repository.
        path: PathBuf,
        /// The revision (`None`: `HEAD`).
        rev: Option<String>,
    },
    /// A Mono server at a base URL, optionally at refs (commit or tag), and
    /// optionally with a change list laid over it (see [`crate::source::cl`]).
    Mono {
        /// The server's base URL.
        url: String,
        /// A commit or tag (`None`: the default branch).
        refs: Option<String>,
        /// A change list's link, laid over the tree.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cl: Option<String>,
    },
}

impl SourceSpec {
    /// Parses `dir:PATH`, `git:PATH[@REV]` or `mono:URL[@REFS]`.
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
                let (url, refs) = split_mono_refs(rest);
                if refs == Some("") {
                    return Err(err("empty refs after '@'"));
                }
                let host = url.split_once("://").map_or("", |(_, h)| h);
                if host.is_empty() || host.starts_with('/') {
                    return Err(err("the Mono URL has no host"));
                }
                Ok(SourceSpec::Mono {
                    url: url.trim_end_matches('/').to_string(),
                    refs: refs.map(str::to_string),
                    cl: None,
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
            SourceSpec::Mono { url, cl, .. } => Ok(SourceSpec::Mono {
                url,
                refs: Some(rev.to_string()),
                cl,
            }),
            d @ SourceSpec::Dir { .. } => Err(SourceError::Spec {
                spec: d.to_string(),
                message: "a dir: source is a live directory and has no revisions; --rev needs git: or mono:".into(),
            }),
        }
    }

    /// The same source with Mono change list `link` laid over it (an empty
    /// link: without one). Only a mono: source has change lists.
    pub fn with_cl(self, link: &str) -> Result<Self, SourceError> {
        match self {
            s @ (SourceSpec::Dir { .. } | SourceSpec::Git { .. }) if link.is_empty() => Ok(s),
            SourceSpec::Mono { url, refs, .. } => Ok(SourceSpec::Mono {
                url,
                refs,
                cl: (!link.is_empty()).then(|| link.to_string()),
            }),
            other => Err(SourceError::Spec {
                spec: other.to_string(),
                message: "a change list (--cl) is a Mono review; it needs a mono: source".into(),
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

/// Splits `URL@REFS` at the last '@'. An '@' is user info of the URL
/// (`http://user@host`) only when what follows it holds a ':' or the URL
/// would be left without a host: git ref names and commit ids never hold a
/// ':', so `http://h:8000@<commit>` and `http://h/@v1.0` name refs, and
/// `http://u@h:8000` does not.
fn split_mono_refs(s: &str) -> (&str, Option<&str>) {
    let host_start = s.find("://").map_or(0, |i| i + 3);
    match s.rfind('@') {
        Some(i) if i > host_start && !s[i + 1..].contains(':') => (&s[..i], Some(&s[i + 1..])),
        _ => (s, None),
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
            SourceSpec::Mono {
                url, refs: None, ..
            } => write!(f, "mono:{url}"),
            SourceSpec::Mono {
                url, refs: Some(r), ..
            } => write!(f, "mono:{url}@{r}"),
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
        let mono = |url: &str, refs: Option<&str>| SourceSpec::Mono {
            url: url.into(),
            refs: refs.map(Into::into),
            cl: None,
        };
        let commit = "0123456789abcdef0123456789abcdef01234567";
        // With and without a port or a path, with and without refs.
        for (spec, want) in [
            (
                format!("mono:http://127.0.0.1:8000@{commit}"),
                mono("http://127.0.0.1:8000", Some(commit)),
            ),
            (
                format!("mono:http://mono.example@{commit}"),
                mono("http://mono.example", Some(commit)),
            ),
            (
                format!("mono:https://h/api/prefix@{commit}"),
                mono("https://h/api/prefix", Some(commit)),
            ),
            (
                "mono:http://h:8000/@v1.0".into(),
                mono("http://h:8000", Some("v1.0")),
            ),
            (
                "mono:http://u@h:8000/@main".into(),
                mono("http://u@h:8000", Some("main")),
            ),
            ("mono:http://u@h:8000".into(), mono("http://u@h:8000", None)),
            ("mono:http://h:8000".into(), mono("http://h:8000", None)),
            ("mono:http://h:8000/".into(), mono("http://h:8000", None)),
            ("mono:http://h".into(), mono("http://h", None)),
        ] {
            assert_eq!(SourceSpec::parse(&spec).unwrap(), want, "{spec}");
            // Display gives back a spec that parses to the same thing.
            assert_eq!(
                SourceSpec::parse(&want.to_string()).unwrap(),
                want,
                "{spec}"
            );
        }
        assert!(SourceSpec::parse("mono:http://h:8000@").is_err());
        assert!(SourceSpec::parse("mono:http://").is_err());
        assert!(SourceSpec::parse("svn:/x").is_err());
        assert!(SourceSpec::parse("dir:").is_err());
        assert!(SourceSpec::parse("mono:ftp://x").is_err());
    }
}
