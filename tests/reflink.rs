//! Placement by reflink on a file system that has them (XFS loop image, as
//! root), and by copy where it does not (the default file system).

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// An XFS image mounted on a loop device; unmounted (lazily if need be) and
/// detached on drop, so a failing test never leaves a mount behind.
struct XfsMount {
    mnt: PathBuf,
}

impl XfsMount {
    fn new(dir: &Path) -> Result<XfsMount, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not root".into());
        }
        let img = dir.join("xfs.img");
        let mnt = dir.join("xfs");
        std::fs::create_dir_all(&mnt).map_err(|e| e.to_string())?;
        let run = |cmd: &mut Command| -> Result<(), String> {
            let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr)))
            }
        };
        run(Command::new("truncate").args(["-s", "512M"]).arg(&img))?;
        run(Command::new("mkfs.xfs")
            .args(["-q", "-m", "reflink=1"])
            .arg(&img))?;
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&img)
            .arg(&mnt))?;
        Ok(XfsMount { mnt })
    }
}

impl Drop for XfsMount {
    fn drop(&mut self) {
        // umount of a loop mount auto-detaches the loop device (autoclear).
        let ok = Command::new("umount")
            .arg(&self.mnt)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
    }
}

fn sync_json(sb: &Sandbox, base: &Path, src: &Path) -> serde_json::Value {
    let cache = base.join("cache");
    let (cache, ws) = (cache.to_str().unwrap(), base.join("ws"));
    sb.ok(
        base,
        &[
            "--cache",
            cache,
            "init",
            "--source",
            &format!("dir:{}", src.display()),
            "ws",
        ],
    );
    let j = json(&sb.ok(&ws, &["--cache", cache, "sync", ".", "--json"]));
    assert_eq!(snapshot(&ws), snapshot(src));
    j
}

#[test]
fn reflinks_on_xfs() {
    let sb = Sandbox::new();
    let xfs = match XfsMount::new(sb.dir.path()) {
        Ok(m) => m,
        Err(why) => {
            eprintln!("SKIPPED reflinks_on_xfs: no XFS loop image ({why})");
            return;
        }
    };
    let src = sb.path("src");
    make_tree(&src, 40, 100_000); // above the clone threshold
    make_tree(&src.join("small"), 40, 500); // below it: copied
    let j = sync_json(&sb, &xfs.mnt, &src);
    assert_eq!(j["summary"]["reflinked"], 40, "{j}");
    assert_eq!(j["summary"]["copied"], 40, "{j}");
}

#[test]
fn copies_where_reflinks_are_unsupported() {
    let sb = Sandbox::new();
    let src = sb.path("src");
    make_tree(&src, 40, 100_000);
    // The sandbox lives on the default temp file system (ext4 or tmpfs here).
    let j = sync_json(&sb, sb.dir.path(), &src);
    let (r, c) = (
        j["summary"]["reflinked"].as_u64().unwrap(),
        j["summary"]["copied"].as_u64().unwrap(),
    );
    assert_eq!(r + c, 40, "{j}");
    let fstype = Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(sb.dir.path())
        .output()
        .unwrap();
    let fstype = String::from_utf8_lossy(&fstype.stdout).trim().to_string();
    if fstype == "ext2/ext3" || fstype == "tmpfs" {
        assert_eq!(c, 40, "{fstype} cannot clone, yet {r} files were reflinked");
    }
}
