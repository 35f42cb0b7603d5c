//! Shared helpers of the end-to-end tests: running the binary in a sandbox
//! (its own cache dir), building fixture trees and git repos, comparing trees.
#![allow(dead_code)] // each test crate uses a different subset

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temp dir with a cache for the binary.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }
    /// A sandbox with the example monorepo copied to `src/` and a workspace
    /// `ws/` initialised from it as a `dir:` source.
    pub fn example_workspace() -> Sandbox {
        let sb = Sandbox::new();
        example_repo(&sb.path("src"));
        let spec = format!("dir:{}", sb.path("src").display());
        sb.ok(sb.dir.path(), &["init", "--source", &spec, "ws"]);
        sb
    }
    /// A sandbox whose `src/` holds `files` (path, text) and a workspace
    /// `ws/` initialised from it as a `dir:` source.
    pub fn with_files(files: &[(&str, &str)]) -> Sandbox {
        let sb = Sandbox::new();
        for (path, text) in files {
            let p = sb.path("src").join(path);
            fs::create_dir_all(p.parent().expect("a file below src")).unwrap();
            fs::write(p, text).unwrap();
        }
        let spec = format!("dir:{}", sb.path("src").display());
        sb.ok(sb.dir.path(), &["init", "--source", &spec, "ws"]);
        sb
    }
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    /// `antares ARGS…` with cwd `cwd`, the sandbox's cache, no terminal.
    pub fn cmd(&self, cwd: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_antares"));
        c.args(args)
            .current_dir(cwd)
            .env("XDG_CACHE_HOME", self.path("xdg-cache"))
            .env("XDG_STATE_HOME", self.path("xdg-state"))
            .env_remove("ANTARES_WORKSPACE")
            .env_remove("ANTARES_CACHE")
            .env_remove("RUST_LOG");
        c
    }
    pub fn run(&self, cwd: &Path, args: &[&str]) -> Output {
        self.cmd(cwd, args).output().expect("run antares")
    }
    /// Runs and asserts the exit code, returning stdout.
    pub fn ok(&self, cwd: &Path, args: &[&str]) -> String {
        let out = self.run(cwd, args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "antares {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Copies the example monorepo (with its symlinks) to `dest`.
pub fn example_repo(dest: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/monorepo");
    copy_tree(&src, dest);
}

pub fn copy_tree(src: &Path, dest: &Path) {
    fs::create_dir_all(dest).unwrap();
    for e in fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let (from, to) = (e.path(), dest.join(e.file_name()));
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            copy_tree(&from, &to);
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&from).unwrap(), &to).unwrap();
        } else {
            fs::copy(&from, &to).unwrap();
        }
    }
}

/// Runs git with a fixed identity in `dir`.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Makes `dir` a git repository with everything committed; returns HEAD.
pub fn git_commit_all(dir: &Path, msg: &str) -> String {
    if !dir.join(".git").exists() {
        git(dir, &["init", "-q"]);
    }
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "--allow-empty", "-m", msg]);
    git(dir, &["rev-parse", "HEAD"])
}

/// What a tree holds: path → ("file", mode, bytes) or ("link", target).
#[derive(Debug, PartialEq, Eq, Clone)]
pub enum Node {
    File { exec: bool, bytes: Vec<u8> },
    Link(String),
}

/// Files and symlinks below `root`, skipping `.git`, `.antares`, `buck-out`.
pub fn snapshot(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if dir == root && (name == ".antares" || name == "buck-out") || name == ".git" {
            continue;
        }
        // antares' own .buckconfig.local (see prelude-hooks/antares.buckconfig).
        if dir == root
            && name == ".buckconfig.local"
            && fs::read_to_string(e.path()).is_ok_and(|t| t.starts_with("# >>> antares"))
        {
            continue;
        }
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let meta = fs::symlink_metadata(&p).unwrap();
        if meta.is_dir() {
            walk(root, &p, out);
        } else if meta.file_type().is_symlink() {
            out.insert(
                rel,
                Node::Link(fs::read_link(&p).unwrap().to_string_lossy().into_owned()),
            );
        } else {
            let exec = meta.permissions().mode() & 0o100 != 0;
            out.insert(
                rel,
                Node::File {
                    exec,
                    bytes: fs::read(&p).unwrap(),
                },
            );
        }
    }
}

/// Writes `n` files of `size` bytes (distinct content) under `dir/dNN/`.
pub fn make_tree(dir: &Path, n: usize, size: usize) {
    for i in 0..n {
        let d = dir.join(format!("d{:02}", i % 50));
        fs::create_dir_all(&d).unwrap();
        let mut bytes = format!("file {i}\n").into_bytes();
        bytes.resize(size.max(bytes.len()), b'a' + (i % 26) as u8);
        fs::write(d.join(format!("f{i:05}.txt")), bytes).unwrap();
    }
}

pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}):\n{s}"))
}

/// Whether FUSE mounts can be made here (root and /dev/fuse); the mounting
/// tests skip with the reason otherwise.
pub fn can_mount() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root".into());
    }
    if !Path::new("/dev/fuse").exists() {
        return Err("no /dev/fuse".into());
    }
    Ok(())
}

/// The example monorepo committed at `dest` (the default branch stays
/// there), plus a change list's head commit on branch `cl` that does one of
/// each thing a Mono CL lists: modifies `lib/proto/version.txt`, adds
/// `app/server/src/added.rs`, deletes `docs/index.md` and renames the
/// executable `app/cli/run.sh` to `app/cli/start.sh`. Returns (base, head).
pub fn example_repo_with_cl(dest: &Path) -> (String, String) {
    example_repo(dest);
    let base = git_commit_all(dest, "example");
    git(dest, &["checkout", "-q", "-b", "cl"]);
    fs::write(dest.join("lib/proto/version.txt"), "0.2.0-cl\n").unwrap();
    fs::write(dest.join("app/server/src/added.rs"), "pub fn added() {}\n").unwrap();
    git(dest, &["rm", "-q", "docs/index.md"]);
    git(dest, &["mv", "app/cli/run.sh", "app/cli/start.sh"]);
    let head = git_commit_all(dest, "the change list");
    git(dest, &["checkout", "-q", "main"]);
    (base, head)
}

/// Checks what [`example_repo_with_cl`]'s CL shows in tree `root`
/// (`with_cl`) or what the base shows (not).
pub fn assert_cl_tree(root: &Path, with_cl: bool) {
    let read = |p: &str| fs::read_to_string(root.join(p)).ok();
    if with_cl {
        assert_eq!(read("lib/proto/version.txt").as_deref(), Some("0.2.0-cl\n"));
        assert_eq!(
            read("app/server/src/added.rs").as_deref(),
            Some("pub fn added() {}\n")
        );
        assert!(!root.join("docs/index.md").exists());
        assert!(!root.join("app/cli/run.sh").exists());
        let start = root.join("app/cli/start.sh");
        let mode = fs::metadata(&start)
            .expect("renamed file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "the renamed file keeps its exec bit");
    } else {
        assert_eq!(read("lib/proto/version.txt").as_deref(), Some("0.1.0\n"));
        assert!(!root.join("app/server/src/added.rs").exists());
        assert!(root.join("docs/index.md").exists());
        assert!(root.join("app/cli/run.sh").exists());
        assert!(!root.join("app/cli/start.sh").exists());
    }
    // Untouched files are there either way.
    assert!(root.join("app/server/BUCK").exists());
}

/// Lazily unmounts every mount below `root` (cleanup of a test that may
/// have failed half-way).
pub fn unmount_below(root: &Path) {
    let Ok(mounts) = fs::read_to_string("/proc/mounts") else {
        return;
    };
    let root = root.to_string_lossy().into_owned();
    let mut ours: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(1))
        .filter(|m| m.starts_with(&root))
        .collect();
    ours.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in ours {
        let _ = Command::new("umount").args(["-l", m]).output();
    }
}
