//! Repository-relative paths that cannot escape the tree.
//!
//! Every path that comes from a source, a server, a manifest or a user goes
//! through [`RepoPath::new`] (or [`validate_name`] for single names) before it
//! is used to touch the file system. That is how the invariant
//! `docs/architecture.md#stays-inside` ("paths that escape are refused") is
//! enforced in one place.

use std::fmt;
use std::path::{Path, PathBuf};

/// Why a path or name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// A leading `/`.
    #[error("path {0:?} is absolute; only paths relative to the repository root are allowed")]
    Absolute(String),
    /// An empty component (`a//b`).
    #[error("path {0:?} has an empty component")]
    EmptyComponent(String),
    /// A `.` or `..` component.
    #[error("path {0:?} has a '.' or '..' component")]
    DotComponent(String),
    /// A NUL byte.
    #[error("name {0:?} contains a NUL byte")]
    Nul(String),
    /// A `/` in a single name.
    #[error("name {0:?} contains '/'")]
    Slash(String),
    /// An empty name.
    #[error("name is empty")]
    EmptyName,
    /// Bytes that are not UTF-8.
    #[error("path {0:?} is not valid UTF-8")]
    NotUtf8(String),
}

/// Checks a single directory-entry name: non-empty, not `.`/`..`, no `/`, no NUL.
pub fn validate_name(name: &str) -> Result<(), PathError> {
    if name.is_empty() {
        return Err(PathError::EmptyName);
    }
    if name == "." || name == ".." {
        return Err(PathError::DotComponent(name.to_string()));
    }
    if name.contains('\0') {
        return Err(PathError::Nul(name.to_string()));
    }
    if name.contains('/') {
        return Err(PathError::Slash(name.to_string()));
    }
    Ok(())
}

/// A validated, `/`-separated path relative to the repository root.
/// The empty string is the root itself.
#[derive(
    Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, serde::Serialize, serde::Deserialize,
)]
/// A validated path inside the tree: `/`-separated, relative, no `.`,
/// `..`, empty or NUL-holding component; the root is the empty path.
#[serde(try_from = "String", into = "String")]
pub struct RepoPath(String);

impl RepoPath {
    /// The repository root.
    pub fn root() -> Self {
        RepoPath(String::new())
    }

    /// Validates `s`: relative, no empty, `.` or `..` components, no NUL.
    pub fn new(s: &str) -> Result<Self, PathError> {
        if s.is_empty() {
            return Ok(Self::root());
        }
        if s.starts_with('/') {
            return Err(PathError::Absolute(s.to_string()));
        }
        for comp in s.split('/') {
            match validate_name(comp) {
                Ok(()) => {}
                Err(PathError::EmptyName) => return Err(PathError::EmptyComponent(s.to_string())),
                Err(PathError::DotComponent(_)) => {
                    return Err(PathError::DotComponent(s.to_string()))
                }
                Err(e) => return Err(e),
            }
        }
        Ok(RepoPath(s.to_string()))
    }

    /// Converts a relative file-system path (e.g. from a directory walk).
    pub fn from_fs(p: &Path) -> Result<Self, PathError> {
        let s = p
            .to_str()
            .ok_or_else(|| PathError::NotUtf8(p.to_string_lossy().into_owned()))?;
        Self::new(s)
    }

    /// The path as a `/`-separated string (empty for the root).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the root of the tree.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// `self/name`, with `name` validated.
    pub fn join(&self, name: &str) -> Result<Self, PathError> {
        validate_name(name)?;
        Ok(self.join_unchecked(name))
    }

    /// Joins a name that is already known to be valid (e.g. one from a
    /// `RepoPath`'s own components).
    fn join_unchecked(&self, name: &str) -> Self {
        if self.0.is_empty() {
            RepoPath(name.to_string())
        } else {
            RepoPath(format!("{}/{}", self.0, name))
        }
    }

    /// `self/rel` where `rel` is itself a repo path.
    pub fn join_path(&self, rel: &RepoPath) -> Self {
        if rel.is_root() {
            self.clone()
        } else {
            self.join_unchecked(rel.as_str())
        }
    }

    /// The parent directory; `None` for the root.
    pub fn parent(&self) -> Option<RepoPath> {
        if self.0.is_empty() {
            return None;
        }
        Some(match self.0.rfind('/') {
            Some(i) => RepoPath(self.0[..i].to_string()),
            None => RepoPath::root(),
        })
    }

    /// The directories above this path, nearest first, ending at the root.
    pub fn ancestors(&self) -> impl Iterator<Item = RepoPath> {
        std::iter::successors(self.parent(), RepoPath::parent)
    }

    /// The last component; `None` for the root.
    pub fn file_name(&self) -> Option<&str> {
        if self.0.is_empty() {
            None
        } else {
            Some(self.0.rsplit('/').next().unwrap_or(&self.0))
        }
    }

    /// The names from the root down.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    /// Component-wise prefix test: `a/b` starts with `a` but not with `a/` nor `a/bc`... and
    /// every path starts with the root.
    pub fn starts_with(&self, prefix: &RepoPath) -> bool {
        if prefix.is_root() {
            return true;
        }
        self.0 == prefix.0
            || (self.0.len() > prefix.0.len()
                && self.0.starts_with(&prefix.0)
                && self.0.as_bytes()[prefix.0.len()] == b'/')
    }

    /// The path below `base`, as a file-system path.
    pub fn to_fs_path(&self, base: &Path) -> PathBuf {
        if self.0.is_empty() {
            base.to_path_buf()
        } else {
            base.join(&self.0)
        }
    }

    /// Resolves a relative symlink `target` found at `self` (a symlink path)
    /// against the symlink's directory. Returns `None` when the target is
    /// absolute or climbs above the repository root.
    pub fn resolve_link(&self, target: &str) -> Option<RepoPath> {
        if target.starts_with('/') || target.contains('\0') {
            return None;
        }
        let mut parts: Vec<&str> = match self.parent() {
            Some(_) => {
                let mut v: Vec<&str> = self.components().collect();
                v.pop();
                v
            }
            None => return None,
        };
        for comp in target.split('/') {
            match comp {
                "" | "." => {}
                ".." => {
                    parts.pop()?;
                }
                c => parts.push(c),
            }
        }
        Some(RepoPath(parts.join("/")))
    }
}

impl RepoPath {
    /// [`resolve_link`](Self::resolve_link) against the tree: a `..` may
    /// only climb out of directories, never out of a symlink (the kernel
    /// would climb from wherever that link points: `l -> ../../..` then
    /// `l/../../x` leaves the root though the text stays inside). Every
    /// component the target descended into before a `..` must be a
    /// directory of the tree (`is_dir`, asked at most once per component);
    /// the link's own directories are. `None` when the target is absolute,
    /// climbs above the root, or climbs out of anything but a directory.
    pub fn resolve_link_in(
        &self,
        target: &str,
        is_dir: &mut dyn FnMut(&RepoPath) -> bool,
    ) -> Option<RepoPath> {
        self.resolve_link(target)?;
        let mut parts: Vec<&str> = self.components().collect();
        parts.pop();
        // Leading components of `parts` known to be directories of the tree.
        let mut known = parts.len();
        for comp in target.split('/') {
            match comp {
                "" | "." => {}
                ".." => {
                    for i in known..parts.len() {
                        if !is_dir(&RepoPath(parts[..=i].join("/"))) {
                            return None;
                        }
                    }
                    parts.pop()?;
                    known = parts.len();
                }
                c => parts.push(c),
            }
        }
        Some(RepoPath(parts.join("/")))
    }
}

impl TryFrom<String> for RepoPath {
    type Error = PathError;
    fn try_from(s: String) -> Result<Self, PathError> {
        RepoPath::new(&s)
    }
}

impl From<RepoPath> for String {
    fn from(p: RepoPath) -> String {
        p.0
    }
}

impl fmt::Display for RepoPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str(".")
        } else {
            f.write_str(&self.0)
        }
    }
}

impl fmt::Debug for RepoPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_escaping_paths() {
        for bad in [
            "/etc/passwd",
            "a/../b",
            "..",
            "a//b",
            "a/./b",
            "a/\0b",
            "a/",
        ] {
            assert!(RepoPath::new(bad).is_err(), "{bad:?} accepted");
        }
        for bad in ["", ".", "..", "a/b", "a\0"] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(RepoPath::new("a/b").unwrap().as_str(), "a/b");
    }

    #[test]
    fn prefix_is_component_wise() {
        let ab = RepoPath::new("a/b").unwrap();
        assert!(ab.starts_with(&RepoPath::new("a").unwrap()));
        assert!(ab.starts_with(&RepoPath::root()));
        assert!(!RepoPath::new("a/bc").unwrap().starts_with(&ab));
        assert_eq!(ab.parent().unwrap().as_str(), "a");
        assert_eq!(ab.file_name(), Some("b"));
    }

    #[test]
    fn resolves_relative_links() {
        let l = RepoPath::new("app/gen/linked.rs").unwrap();
        assert_eq!(
            l.resolve_link("../../shared_src/real.rs").unwrap().as_str(),
            "shared_src/real.rs"
        );
        assert_eq!(l.resolve_link("../../../x"), None);
        assert_eq!(l.resolve_link("/abs"), None);
    }

    #[test]
    fn resolving_against_the_tree_never_climbs_out_of_a_symlink() {
        let p = RepoPath::new("p").unwrap();
        let mut asked = Vec::new();
        let mut dirs = |d: &RepoPath| {
            asked.push(d.to_string());
            ["s1", "s1/s2", "s1/s2/s3", "s1/s2/s3/s4"].contains(&d.as_str())
        };
        // Textually fine, but `l` is a link: refused.
        let evil = "s1/s2/s3/s4/l/../../../../etc/passwd";
        assert!(p.resolve_link(evil).is_some());
        assert_eq!(p.resolve_link_in(evil, &mut dirs), None);
        assert_eq!(
            p.resolve_link_in("s1/s2/../s2/s3", &mut dirs)
                .unwrap()
                .as_str(),
            "s1/s2/s3"
        );
        assert_eq!(
            p.resolve_link_in("s1/s2/s3/s4/l", &mut dirs)
                .unwrap()
                .as_str(),
            "s1/s2/s3/s4/l"
        );
        let deep = RepoPath::new("a/b/link").unwrap();
        assert_eq!(
            deep.resolve_link_in("../../x", &mut dirs).unwrap().as_str(),
            "x"
        );
        assert_eq!(deep.resolve_link_in("../../../x", &mut dirs), None);
        assert_eq!(
            asked,
            [
                "s1",
                "s1/s2",
                "s1/s2/s3",
                "s1/s2/s3/s4",
                "s1/s2/s3/s4/l",
                "s1",
                "s1/s2"
            ]
        );
    }
}
