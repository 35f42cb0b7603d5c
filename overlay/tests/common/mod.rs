//! A git fixture repository built with the git CLI, shared by the source tests.
#![allow(dead_code)] // each test crate uses a different subset

use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs git in `dir` with a fixed identity and no user/system config.
pub fn git(dir: &Path, args: &[&str]) -> String {
    git_stdin(dir, args, None)
}

pub fn git_stdin(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> String {
    let mut child = Command::new("git")
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .args([
            "-c",
            "user.name=T",
            "-c",
            "user.email=t@example.com",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(["-c", "core.symlinks=true"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

pub fn write(root: &Path, rel: &str, content: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

/// Commit 1 (tags `v1` annotated and `light`): a.txt = "one\n", bin/run.sh
/// (755), src/lib/x.rs, rel -> src/lib/x.rs, abs -> /etc/hostname,
/// vendor/sub as a gitlink. Branch `feature` adds feature.txt. Commit 2 on
/// main changes a.txt to "two\n"; `bare` is a bare clone.
pub struct Fixture {
    pub _t: tempfile::TempDir,
    pub work: std::path::PathBuf,
    pub bare: std::path::PathBuf,
    pub c1: String,
    pub c2: String,
}

pub const GITLINK: &str = "1111111111111111111111111111111111111111";

pub fn fixture() -> Fixture {
    let t = tempfile::tempdir().unwrap();
    let work = t.path().join("work");
    fs::create_dir(&work).unwrap();
    git(&work, &["init", "-q"]);
    write(&work, "a.txt", "one\n");
    write(&work, "bin/run.sh", "#!/bin/sh\necho hi\n");
    fs::set_permissions(work.join("bin/run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    write(&work, "src/lib/x.rs", "pub fn x() {}\n");
    symlink("src/lib/x.rs", work.join("rel")).unwrap();
    symlink("/etc/hostname", work.join("abs")).unwrap();
    git(&work, &["add", "-A"]);
    git(
        &work,
        &[
            "update-index",
            "--add",
            "--cacheinfo",
            &format!("160000,{GITLINK},vendor/sub"),
        ],
    );
    git(&work, &["commit", "-q", "-m", "one"]);
    let c1 = git(&work, &["rev-parse", "HEAD"]);
    git(&work, &["tag", "-a", "v1", "-m", "v1"]);
    git(&work, &["tag", "light"]);
    git(&work, &["checkout", "-q", "-b", "feature"]);
    write(&work, "feature.txt", "feat\n");
    git(&work, &["add", "feature.txt"]);
    git(&work, &["commit", "-q", "-m", "feature"]);
    git(&work, &["checkout", "-q", "main"]);
    write(&work, "a.txt", "two\n");
    // Not `commit -a`: that would stage the (never checked out) gitlink's removal.
    git(&work, &["add", "a.txt"]);
    git(&work, &["commit", "-q", "-m", "two"]);
    let c2 = git(&work, &["rev-parse", "HEAD"]);
    let bare = t.path().join("bare.git");
    git(
        t.path(),
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    Fixture {
        _t: t,
        work,
        bare,
        c1,
        c2,
    }
}
