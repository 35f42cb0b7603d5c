//! The untracked-file scan: files below the selected directories of the
//! workspace that nothing claims, with `.gitignore` (and `.ignore`) applied
//! from the root down as git does.
//!
//! One walk from the root, entering only the selected subtrees and the
//! directories on the way to them (a walker per directory re-read every
//! `.gitignore` above it each time: a sync of 1,187 directories of
//! systeminit/si opened the root one 1,187 times). With a cache file (git's
//! untracked cache idea) a directory whose inode, mtime and ctime are those
//! of its last listing is not read again: creating, removing or renaming an
//! entry changes its directory's mtime, so its cached listing is what a
//! `readdir` would return. Ignore files are read on every scan (their
//! content may change without their directory's mtime), so a changed
//! `.gitignore` above a cached directory takes effect at once.

use crate::fsutil::{open_beneath, write_atomic, StatKey};
use crate::layout::STATE_DIR;
use antares_overlay::source::{BUCK_OUT, GIT_DIR};
use antares_overlay::RepoPath;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use std::collections::{HashMap, HashSet};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Directory names never reported as added: build outputs and state.
pub const NEVER_TRACKED: &[&str] = &[STATE_DIR, BUCK_OUT, GIT_DIR];

/// Editors' scratch files (vim swap and backup files and its `4913` probe,
/// emacs lock and autosave files): never reported, never written back.
pub fn is_editor_temp(name: &str) -> bool {
    name == "4913"
        || name.ends_with('~')
        || name.starts_with(".#")
        || (name.starts_with('#') && name.ends_with('#') && name.len() > 1)
        || (name.starts_with('.') && [".swp", ".swo", ".swx"].iter().any(|s| name.ends_with(s)))
}

/// Ignore files read in every directory, the stronger first.
const IGNORE_FILES: [&str; 2] = [".ignore", ".gitignore"];

/// A directory listed less than this before a scan started may still
/// change within the same timestamp tick (file times come from a coarse
/// clock): its listing is used but not cached ("racy", as git says).
const RACY: Duration = Duration::from_secs(1);

/// What one scan did, for tests and logs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScanStats {
    /// Directories read with `readdir`.
    pub listed: usize,
    /// Directories whose cached listing was used.
    pub reused: usize,
}

/// Files and symlinks below the `under` directories of the workspace at
/// `root` that `known` does not claim: what the user created. The walk
/// honours `.gitignore`, skips [`NEVER_TRACKED`] directories, the `ignored`
/// subtrees (e.g. `project.ignore`), names that are not valid repo paths,
/// editors' scratch files, and never follows a symlink. With `cache` (a
/// state file, written to a temp file and renamed), directories unchanged
/// since the scan that wrote it are not read again.
pub fn untracked(
    root: &Path,
    under: &[RepoPath],
    ignored: &[RepoPath],
    known: &(dyn Fn(&RepoPath) -> bool + Sync),
    cache: Option<&Path>,
) -> Vec<RepoPath> {
    let (found, stats) = scan(root, under, ignored, known, cache);
    tracing::debug!(
        listed = stats.listed,
        reused = stats.reused,
        "untracked scan"
    );
    found
}

/// [`untracked`] and what the scan did.
pub fn scan(
    root: &Path,
    under: &[RepoPath],
    ignored: &[RepoPath],
    known: &(dyn Fn(&RepoPath) -> bool + Sync),
    cache: Option<&Path>,
) -> (Vec<RepoPath>, ScanStats) {
    let mut stats = ScanStats::default();
    let Some(scope) = Scope::new(under, ignored) else {
        return (Vec::new(), stats);
    };
    let Ok(root_dir) = std::fs::File::open(root) else {
        return (Vec::new(), stats);
    };
    let mut old = cache.map(DirCache::load).unwrap_or_default();
    let old_len = old.dirs.len();
    let mut new = DirCache::default();
    let trusted_before = SystemTime::now()
        .checked_sub(RACY)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64);
    let mut found = Vec::new();
    let mut stack: Vec<(String, Arc<Vec<Gitignore>>)> = vec![(String::new(), Arc::new(Vec::new()))];
    while let Some((rel, rules)) = stack.pop() {
        let dir_path = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(&rel)
        };
        let entries = match list(
            &root_dir,
            &rel,
            &mut old,
            &mut new,
            trusted_before,
            &mut stats,
        ) {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!("{}: not scanned for new files: {e}", dir_path.display());
                continue;
            }
        };
        let rules = with_ignore_files(&rules, &dir_path, &entries);
        for (name, is_dir) in entries.iter() {
            let path = dir_path.join(name);
            if is_ignored(&rules, &path, *is_dir) {
                continue;
            }
            let child = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            if *is_dir {
                if !NEVER_TRACKED.contains(&name.as_str()) && scope.enters(&child) {
                    stack.push((child, rules.clone()));
                }
            } else if !is_editor_temp(name) {
                if let Ok(p) = RepoPath::new(&child) {
                    if scope.reports(&p, &path) && !known(&p) {
                        found.push(p);
                    }
                }
            }
        }
    }
    // Reused listings were moved out of the old cache, new ones listed.
    if let Some(path) = cache {
        if stats.listed > 0 || new.dirs.len() != old_len {
            if let Err(e) = new.save(path) {
                tracing::warn!("{}: untracked cache not stored: {e}", path.display());
            }
        }
    }
    found.sort();
    (found, stats)
}

/// The entries (name, is a directory) of the directory `rel` below
/// `root_dir`, reached without following a symlink: from `old` (moved out
/// of it) when its stat is unchanged, else read. Listings older than
/// `trusted_before` (ns since the epoch) go into `new`.
fn list(
    root_dir: &std::fs::File,
    rel: &str,
    old: &mut DirCache,
    new: &mut DirCache,
    trusted_before: i64,
    stats: &mut ScanStats,
) -> std::io::Result<Arc<Vec<(String, bool)>>> {
    let dir = open_beneath(root_dir, rel, libc::O_PATH | libc::O_DIRECTORY)?;
    let st = StatKey::of(&dir.metadata()?);
    if let Some(l) = old.dirs.remove(rel).filter(|l| l.matches(&st)) {
        stats.reused += 1;
        let entries = Arc::new(l.entries.clone());
        new.dirs.insert(rel.to_string(), l);
        return Ok(entries);
    }
    stats.listed += 1;
    // The open directory itself, through its /proc link: no path to swap.
    let pinned = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    let mut entries = Vec::new();
    for e in std::fs::read_dir(pinned)? {
        let e = e?;
        // Names that are not UTF-8 cannot be repo paths.
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        entries.push((name, e.file_type()?.is_dir()));
    }
    entries.sort();
    let entries = Arc::new(entries);
    if st.mtime_ns.max(st.ctime_ns) < trusted_before {
        new.dirs.insert(
            rel.to_string(),
            Listing {
                ino: st.ino,
                mtime_ns: st.mtime_ns,
                ctime_ns: st.ctime_ns,
                entries: entries.as_ref().clone(),
            },
        );
    }
    Ok(entries)
}

/// `rules` and, after them (deeper, so consulted first), the ignore files
/// of the directory `dir` that `entries` lists.
fn with_ignore_files(
    rules: &Arc<Vec<Gitignore>>,
    dir: &Path,
    entries: &[(String, bool)],
) -> Arc<Vec<Gitignore>> {
    let here: Vec<Gitignore> = IGNORE_FILES
        .iter()
        .rev()
        .filter(|f| entries.iter().any(|(n, d)| n == *f && !d))
        .filter_map(|f| {
            let mut b = GitignoreBuilder::new(dir);
            if let Some(e) = b.add(dir.join(f)) {
                tracing::debug!("{}: {e}", dir.join(f).display());
            }
            b.build().ok()
        })
        .collect();
    if here.is_empty() {
        return rules.clone();
    }
    let mut all = rules.as_ref().clone();
    all.extend(here);
    Arc::new(all)
}

/// Whether the deepest rule that speaks of `path` ignores it.
fn is_ignored(rules: &[Gitignore], path: &Path, is_dir: bool) -> bool {
    for g in rules.iter().rev() {
        let m = g.matched(path, is_dir);
        if m.is_ignore() {
            return true;
        }
        if m.is_whitelist() {
            return false;
        }
    }
    false
}

/// The listings of the last scan, by directory ("" is the root).
#[derive(Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct DirCache {
    dirs: HashMap<String, Listing>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Listing {
    ino: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    entries: Vec<(String, bool)>,
}

impl Listing {
    fn matches(&self, st: &StatKey) -> bool {
        self.ino == st.ino && self.mtime_ns == st.mtime_ns && self.ctime_ns == st.ctime_ns
    }
}

impl DirCache {
    /// The cache at `path`; empty if missing or unreadable (it is only an
    /// optimization: the scan then reads every directory).
    fn load(path: &Path) -> DirCache {
        match std::fs::read(path) {
            Ok(bytes) => postcard::from_bytes(&bytes).unwrap_or_else(|e| {
                tracing::debug!("{}: {e}; not used", path.display());
                DirCache::default()
            }),
            Err(_) => DirCache::default(),
        }
    }

    fn save(&self, path: &Path) -> crate::Result<()> {
        let bytes = postcard::to_allocvec(self).map_err(|e| crate::Error::Invalid {
            path: path.display().to_string(),
            message: format!("cannot encode the untracked cache: {e}"),
        })?;
        write_atomic(path, &bytes)
    }
}

/// Which parts of the workspace an untracked scan looks at.
struct Scope {
    /// The selected directories ("" for the whole workspace).
    starts: HashSet<String>,
    /// Their proper ancestors: walked through, nothing in them reported.
    on_the_way: HashSet<String>,
    ignored: Vec<RepoPath>,
}

impl Scope {
    /// `None` when nothing is selected. Whether each selected path is a
    /// directory is not asked up front (a stat per selected directory cost
    /// as much as the cached walk itself): the walk enters only directories
    /// it lists, and [`reports`](Self::reports) settles the rest.
    fn new(under: &[RepoPath], ignored: &[RepoPath]) -> Option<Scope> {
        let starts: HashSet<String> = under.iter().map(|d| d.as_str().to_string()).collect();
        if starts.is_empty() {
            return None;
        }
        let on_the_way = starts
            .iter()
            .flat_map(|s| prefixes(s).filter(|p| p.len() < s.len()).map(String::from))
            .collect();
        Some(Scope {
            starts,
            on_the_way,
            ignored: ignored.to_vec(),
        })
    }

    /// Whether `rel` is a selected directory or inside one.
    fn inside(&self, rel: &str) -> bool {
        self.starts.contains("") || prefixes(rel).any(|p| self.starts.contains(p))
    }

    /// Whether the walk enters the directory `rel`.
    fn enters(&self, rel: &str) -> bool {
        (self.on_the_way.contains(rel) || self.inside(rel))
            && !self.ignored.iter().any(|i| {
                !i.is_root()
                    && rel.starts_with(i.as_str())
                    && matches!(rel.as_bytes().get(i.as_str().len()), None | Some(b'/'))
            })
    }

    /// Whether the entry at `rel` (on disk at `path`), not a directory of
    /// the walk, is reported when nothing claims it: when inside a selected
    /// directory. A selected path that is itself such an entry counts only
    /// if it leads to a directory (a symlink to one), as when the selection
    /// was filtered by `is_dir` up front; that stat is taken only here.
    fn reports(&self, rel: &RepoPath, path: &Path) -> bool {
        let parent = rel.as_str().rsplit_once('/').map_or("", |(d, _)| d);
        let below = self.starts.contains("") || self.inside(parent);
        (below || (self.starts.contains(rel.as_str()) && path.is_dir()))
            && !self.ignored.iter().any(|i| rel.starts_with(i))
    }
}

/// `a`, `a/b`, `a/b/c` for `a/b/c` (nothing for the root, "").
fn prefixes(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/')
        .map(move |(i, _)| &path[..i])
        .chain((!path.is_empty()).then_some(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn nothing_known(_: &RepoPath) -> bool {
        false
    }

    /// Scans the whole workspace with the cache at `cache`.
    fn scan_all(root: &Path, cache: &Path) -> (Vec<String>, ScanStats) {
        let (found, stats) = scan(root, &[RepoPath::root()], &[], &nothing_known, Some(cache));
        (found.iter().map(|p| p.to_string()).collect(), stats)
    }

    /// A workspace of three directories, old enough to be cached.
    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("ws");
        for d in ["a/deep", "b"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        fs::write(root.join("a/deep/x.log"), "x").unwrap();
        fs::write(root.join("a/deep/y.rs"), "y").unwrap();
        fs::write(root.join("b/z.rs"), "z").unwrap();
        fs::write(root.join(".gitignore"), "*.tmp\n").unwrap();
        std::thread::sleep(RACY + Duration::from_millis(100));
        let cache = t.path().join("cache");
        (t, root, cache)
    }

    #[test]
    fn unchanged_directories_are_not_read_again() {
        let (_t, root, cache) = setup();
        let (first, s1) = scan_all(&root, &cache);
        assert_eq!(
            first,
            [".gitignore", "a/deep/x.log", "a/deep/y.rs", "b/z.rs"]
        );
        assert_eq!((s1.listed, s1.reused), (4, 0));
        let (second, s2) = scan_all(&root, &cache);
        assert_eq!(second, first);
        assert_eq!((s2.listed, s2.reused), (0, 4));
        // A new file changes its directory's mtime: that one is read again.
        fs::write(root.join("a/deep/new.rs"), "n").unwrap();
        let (third, s3) = scan_all(&root, &cache);
        assert!(third.contains(&"a/deep/new.rs".to_string()), "{third:?}");
        assert_eq!((s3.listed, s3.reused), (1, 3));
        // So does a removal.
        fs::remove_file(root.join("b/z.rs")).unwrap();
        let (fourth, _) = scan_all(&root, &cache);
        assert!(!fourth.contains(&"b/z.rs".to_string()), "{fourth:?}");
        // A corrupt cache is ignored.
        fs::write(&cache, b"\xff\xff\xff").unwrap();
        let (fifth, s5) = scan_all(&root, &cache);
        assert_eq!(fifth, fourth);
        assert_eq!(s5.reused, 0);
    }

    #[test]
    fn a_changed_gitignore_above_a_cached_directory_applies_at_once() {
        let (_t, root, cache) = setup();
        let (first, _) = scan_all(&root, &cache);
        assert!(first.contains(&"a/deep/x.log".to_string()));
        // Rewritten in place: the root's mtime does not change.
        let mtime = fs::metadata(&root).unwrap().modified().unwrap();
        fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(root.join(".gitignore"))
            .unwrap();
        fs::write(root.join(".gitignore"), "*.log\n").unwrap();
        assert_eq!(fs::metadata(&root).unwrap().modified().unwrap(), mtime);
        let (second, s2) = scan_all(&root, &cache);
        assert_eq!(second, [".gitignore", "a/deep/y.rs", "b/z.rs"]);
        assert_eq!(s2.listed, 0, "the listings were reused: {s2:?}");
        // And back: the file shows again.
        fs::write(root.join(".gitignore"), "\n").unwrap();
        let (third, _) = scan_all(&root, &cache);
        assert!(third.contains(&"a/deep/x.log".to_string()), "{third:?}");
    }

    #[test]
    fn a_directory_swapped_for_a_symlink_is_not_looked_into() {
        let (t, root, cache) = setup();
        scan_all(&root, &cache);
        let outside = t.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret"), "s").unwrap();
        fs::rename(root.join("b"), t.path().join("b.moved")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("b")).unwrap();
        let (found, _) = scan_all(&root, &cache);
        assert!(
            found.contains(&"b".to_string()),
            "the link itself: {found:?}"
        );
        assert!(!found.iter().any(|f| f.starts_with("b/")), "{found:?}");
    }

    /// Selected paths are not stat-ed up front: one that is missing is
    /// skipped, one that is a file is not reported as new, one that is a
    /// directory is scanned.
    #[test]
    fn only_selected_paths_that_are_directories_are_scanned() {
        let (_t, root, cache) = setup();
        let under = ["a/deep", "missing", "b/z.rs"].map(|p| RepoPath::new(p).unwrap());
        let (found, _) = scan(&root, &under, &[], &nothing_known, Some(&cache));
        let found: Vec<String> = found.iter().map(|p| p.to_string()).collect();
        assert_eq!(found, ["a/deep/x.log", "a/deep/y.rs"]);
    }

    /// Listings made within [`RACY`] of the scan are used, not cached.
    #[test]
    fn a_directory_changed_just_before_the_scan_is_not_cached() {
        let (_t, root, cache) = setup();
        fs::write(root.join("b/fresh.rs"), "f").unwrap();
        let (_, s1) = scan_all(&root, &cache);
        let (found, s2) = scan_all(&root, &cache);
        assert!(found.contains(&"b/fresh.rs".to_string()));
        assert_eq!((s1.listed, s2.listed, s2.reused), (4, 1, 3));
    }
}
