//! `antares mount` end to end (root and /dev/fuse needed; skipped otherwise):
//! writes through the mount reach the upper layer and the workspace,
//! `buck-out` is local disk, SQLite WAL works, a killed daemon's stale mount
//! is cleaned by the next mount.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Unmounts (lazily if need be) on drop, so a failing test leaves no mount.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        for args in [vec!["-l"], vec![]] {
            let mut c = Command::new("umount");
            c.args(&args).arg(self.0.join("buck-out"));
            let _ = c.output();
            let mut c = Command::new("umount");
            c.args(&args).arg(&self.0);
            let _ = c.output();
        }
    }
}

fn setup(sb: &Sandbox) -> (PathBuf, PathBuf, Mounted) {
    let ws = sb.path("ws");
    let mnt = sb.path("mnt");
    let guard = Mounted(mnt.clone());
    sb.ok(&ws, &["mount", mnt.to_str().unwrap()]);
    (ws, mnt, guard)
}

fn statfs_type(p: &Path) -> String {
    let out = Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(p)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn edit_on_the_mount_reaches_the_workspace_and_buck_out_is_local() {
    if let Err(why) = can_mount() {
        eprintln!("SKIPPED mount test: {why}");
        return;
    }
    let sb = Sandbox::example_workspace();
    let (ws, mnt, _guard) = setup(&sb);
    assert_eq!(
        fs::read_to_string(mnt.join("lib/proto/version.txt")).unwrap(),
        "0.1.0\n"
    );
    assert!(fs::symlink_metadata(mnt.join(".buckconfig")).is_ok());
    // A dir: source can change under the mount: every open asks the daemon.
    // (The daemon says so once it is up, just after the mount appears.)
    let log_path = ws.join(".antares/logs/mount.log");
    let said = |log: &str| log.contains("opens: each one asks the daemon");
    let mut log = String::new();
    for _ in 0..100 {
        log = fs::read_to_string(&log_path).unwrap_or_default();
        if said(&log) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(said(&log), "{log}");
    // An edit through the mount lands in the upper layer, never in the source.
    fs::write(mnt.join("lib/proto/version.txt"), "2.0.0\n").unwrap();
    assert_eq!(
        fs::read_to_string(ws.join(".antares/upper/lib/proto/version.txt")).unwrap(),
        "2.0.0\n"
    );
    assert_eq!(
        fs::read_to_string(sb.path("src/lib/proto/version.txt")).unwrap(),
        "0.1.0\n"
    );
    // A sync run from inside the mount finds the workspace and brings the edit over.
    sb.ok(&mnt.join("lib/proto"), &["sync", ":version"]);
    assert_eq!(
        fs::read_to_string(ws.join("lib/proto/version.txt")).unwrap(),
        "2.0.0\n"
    );
    // And back: a workspace edit shows on the mount after a sync.
    fs::write(ws.join("lib/proto/version.txt"), "3.0.0\n").unwrap();
    sb.ok(&ws, &["sync"]);
    assert_eq!(
        fs::read_to_string(mnt.join("lib/proto/version.txt")).unwrap(),
        "3.0.0\n"
    );
    // buck-out on the mount is local disk; relative symlinks under it resolve inside the mount.
    assert!(
        !statfs_type(&mnt.join("buck-out")).contains("fuse"),
        "buck-out is on FUSE"
    );
    assert!(statfs_type(&mnt).contains("fuse"));
    fs::create_dir_all(mnt.join("buck-out/v2/art")).unwrap();
    std::os::unix::fs::symlink(
        "../../../lib/proto/version.txt",
        mnt.join("buck-out/v2/art/v.txt"),
    )
    .unwrap();
    assert_eq!(
        fs::read_to_string(mnt.join("buck-out/v2/art/v.txt")).unwrap(),
        "3.0.0\n"
    );
    assert!(
        ws.join("buck-out/v2/art/v.txt").exists()
            || fs::symlink_metadata(ws.join("buck-out/v2/art/v.txt")).is_ok()
    );
    // SQLite in WAL mode on the mount itself.
    let out = Command::new("sqlite3")
        .arg(mnt.join("state.db"))
        .arg("PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES (42); SELECT x FROM t;")
        .output()
        .expect("sqlite3");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "wal\n42".trim(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sb.ok(&ws, &["umount"]);
    assert!(!mnt.join("lib").exists(), "still mounted after umount");
}

#[test]
fn a_killed_daemon_leaves_a_stale_mount_the_next_mount_cleans() {
    if let Err(why) = can_mount() {
        eprintln!("SKIPPED mount test: {why}");
        return;
    }
    let sb = Sandbox::example_workspace();
    let (ws, mnt, _guard) = setup(&sb);
    let pid: i32 = fs::read_to_string(ws.join(".antares/mount.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: killing the daemon this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        fs::read_dir(&mnt).is_err(),
        "the mount should be dead (ENOTCONN)"
    );
    sb.ok(&ws, &["mount", mnt.to_str().unwrap()]);
    assert_eq!(
        fs::read_to_string(mnt.join("lib/proto/version.txt")).unwrap(),
        "0.1.0\n"
    );
    sb.ok(&ws, &["umount", mnt.to_str().unwrap()]);
}

#[test]
fn umount_of_a_mount_point_works_from_outside_any_workspace() {
    if let Err(why) = can_mount() {
        eprintln!("SKIPPED mount test: {why}");
        return;
    }
    let sb = Sandbox::example_workspace();
    let (ws, mnt, _guard) = setup(&sb);
    let pid: i32 = fs::read_to_string(ws.join(".antares/mount.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // As a script's cleanup trap would, from an unrelated directory.
    sb.ok(Path::new("/"), &["umount", mnt.to_str().unwrap()]);
    assert!(!mnt.join("lib").exists(), "still mounted after umount");
    std::thread::sleep(std::time::Duration::from_millis(200));
    // SAFETY: signal 0 only checks whether the daemon this test started exists.
    assert_ne!(unsafe { libc::kill(pid, 0) }, 0, "the daemon still runs");
    // A relative mount point, from its parent directory.
    sb.ok(&ws, &["mount", mnt.to_str().unwrap()]);
    sb.ok(sb.dir.path(), &["umount", "mnt"]);
    assert!(!mnt.join("lib").exists(), "still mounted after umount");
}

#[test]
fn the_mount_names_its_workspace_without_the_registry() {
    if let Err(why) = can_mount() {
        eprintln!("SKIPPED mount test: {why}");
        return;
    }
    let sb = Sandbox::example_workspace();
    let (ws, mnt, _guard) = setup(&sb);
    // Another user's state dir (another HOME): no registry entry.
    let out = sb
        .cmd(&mnt.join("app"), &["root", "--json"])
        .env("XDG_STATE_HOME", sb.path("other-state"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(root["workspace"], ws.to_str().unwrap());
    assert_eq!(root["mount"], mnt.to_str().unwrap());
    assert_eq!(root["relative"], "app");
    // The mount's buck-out is the workspace's.
    fs::create_dir_all(ws.join("buck-out/v2")).unwrap();
    fs::write(ws.join("buck-out/v2/marker"), "built in the workspace\n").unwrap();
    assert_eq!(
        fs::read_to_string(mnt.join("buck-out/v2/marker")).unwrap(),
        "built in the workspace\n"
    );
}

#[test]
fn the_wrapper_never_builds_silently_on_a_mount_it_cannot_place() {
    if let Err(why) = can_mount() {
        eprintln!("SKIPPED mount test: {why}");
        return;
    }
    let sb = Sandbox::example_workspace();
    let (ws, mnt, _guard) = setup(&sb);
    let bin = sb.path("wrapper-bin");
    sb.ok(
        sb.dir.path(),
        &["hooks", "install", "--dir", bin.to_str().unwrap()],
    );
    let fake = sb.path("fake-bin");
    fs::create_dir_all(&fake).unwrap();
    let ran = sb.path("fake-buck2-ran");
    fs::write(
        fake.join("buck2"),
        format!("#!/bin/sh\ntouch {}\n", ran.display()),
    )
    .unwrap();
    fs::set_permissions(fake.join("buck2"), fs::Permissions::from_mode(0o755)).unwrap();
    // The workspace the mount names is gone (its config moved away).
    let config = ws.join(".antares/config.toml");
    fs::rename(&config, sb.path("config.toml")).unwrap();
    let out = Command::new(bin.join("buck2"))
        .args(["build", "//app/server:server"])
        .current_dir(mnt.join("app"))
        .env(
            "PATH",
            format!(
                "{}:{}:{}",
                bin.display(),
                fake.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("ANTARES_BIN", env!("CARGO_BIN_EXE_antares"))
        .env("XDG_STATE_HOME", sb.path("other-state"))
        .env_remove("ANTARES_REAL_BUCK2")
        .env_remove("ANTARES_ON_MOUNT")
        .output()
        .unwrap();
    fs::rename(sb.path("config.toml"), &config).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("inside the antares mount"), "{err}");
    assert!(err.contains("is gone"), "{err}");
    assert!(!ran.exists(), "buck2 ran on the mount");
}

/// A shell sitting in a directory of the mount keeps its working directory
/// when a file below it is first written (the directory is copied up into
/// the upper dir, which the daemon's own watch then sees): `getcwd` must
/// not fail, or every terminal and editor in the mount breaks on its first
/// save.
#[test]
fn the_first_write_below_a_directory_keeps_it_as_a_working_directory() {
    if let Err(why) = can_mount() {
        eprintln!("SKIPPED mount test: {why}");
        return;
    }
    let sb = Sandbox::example_workspace();
    sb.ok(&sb.path("ws"), &["sync", "."]);
    let (ws, mnt, _guard) = setup(&sb);
    let lib = mnt.join("lib/util/src");
    let file = fs::read_dir(&lib)
        .unwrap()
        .flatten()
        .next()
        .expect("a file in lib/util/src")
        .path();
    // The parent directory is in the upper dir already, and watched from
    // the start (mounted again).
    fs::write(mnt.join("lib/util/NEW"), "new\n").unwrap();
    sb.ok(&ws, &["umount", mnt.to_str().unwrap()]);
    sb.ok(&ws, &["mount", mnt.to_str().unwrap()]);
    // `pwd -P` asks the kernel (getcwd), after the watch has had its time.
    let out = Command::new("sh")
        .arg("-c")
        .arg("cd \"$1\" && echo '// edited' >> \"$2\" && sleep 1 && pwd -P")
        .arg("sh")
        .arg(&lib)
        .arg(file.file_name().unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "getcwd failed after the first write below it: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        lib.to_str().unwrap()
    );
}

/// Buck2 sub-projects keep their buck-out off FUSE: with no `.buckconfig`
/// at the tree root, buck2 run in `proj/` takes `proj/` as its project
/// root, and a `.buckroot` makes `fx/` one even below a root
/// `.buckconfig`; each gets a bind mount of a local directory of the
/// workspace's state on `<project>/buck-out`, gone after `umount`.
#[test]
fn sub_project_buck_out_is_local_disk() {
    if let Err(why) = can_mount() {
        eprintln!("SKIPPED mount test: {why}");
        return;
    }
    let sb = Sandbox::new();
    let src = sb.path("src");
    for (p, text) in [
        ("proj/.buckconfig", "[cells]\nroot = .\n"),
        ("proj/BUCK", ""),
        ("proj/inner/.buckconfig", "[cells]\nroot = .\n"),
        ("fx/.buckroot", ""),
        ("fx/.buckconfig", "[cells]\nroot = .\n"),
        ("tools/readme.txt", "not a project\n"),
    ] {
        fs::create_dir_all(src.join(p).parent().unwrap()).unwrap();
        fs::write(src.join(p), text).unwrap();
    }
    let spec = format!("dir:{}", src.display());
    sb.ok(sb.dir.path(), &["init", "--source", &spec, "ws"]);
    let ws = sb.path("ws");
    let mnt = sb.path("mnt");
    let _guard = Mounted(mnt.clone());
    let _binds = Cleanup(mnt.clone());
    sb.ok(&ws, &["mount", mnt.to_str().unwrap()]);
    let mounts = || fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let bound = |p: &Path| {
        let p = p.to_string_lossy();
        mounts().lines().any(|l| l.split(' ').nth(1) == Some(&*p))
    };
    for project in ["proj", "fx"] {
        let out = mnt.join(project).join("buck-out");
        assert!(
            bound(&out),
            "{} is not bound; mount log:\n{}",
            out.display(),
            fs::read_to_string(ws.join(".antares/logs/mount.log")).unwrap_or_default()
        );
        assert!(!statfs_type(&out).contains("fuse"), "{}", statfs_type(&out));
        fs::create_dir_all(out.join("v2")).unwrap();
        fs::write(out.join("v2/state"), "sqlite here").unwrap();
        let local = ws.join(".antares/buck-out").join(project).join("v2/state");
        assert_eq!(fs::read_to_string(&local).unwrap(), "sqlite here");
        assert!(!ws
            .join(".antares/upper")
            .join(project)
            .join("buck-out/v2")
            .exists());
    }
    // Not a project root: below proj's .buckconfig, or no .buckconfig.
    assert!(!bound(&mnt.join("proj/inner/buck-out")));
    assert!(!bound(&mnt.join("tools/buck-out")));
    sb.ok(&ws, &["umount"]);
    let left: Vec<String> = mounts()
        .lines()
        .filter_map(|l| l.split(' ').nth(1))
        .filter(|m| m.starts_with(&*mnt.to_string_lossy()))
        .map(str::to_string)
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Lazily unmounts everything below a path on drop (a failed test's binds).
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        unmount_below(&self.0);
    }
}
