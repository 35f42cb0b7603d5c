//! Two-way sync between the workspace and the upper layer (the directory the
//! mount writes into), one-shot and under `--watch`, and its crash safety.

mod common;

use common::*;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

/// A workspace over a copy of the example monorepo, with an upper layer.
fn two_way_workspace() -> Sandbox {
    let sb = Sandbox::example_workspace();
    fs::create_dir_all(sb.path("ws/.antares/upper")).unwrap();
    sb.ok(&sb.path("ws"), &["sync", "."]);
    sb
}

fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn read(p: &Path) -> Option<String> {
    fs::read_to_string(p).ok()
}

/// A `sync --watch` child, killed on drop even when the test fails.
struct Watcher(std::process::Child);

impl Watcher {
    /// `antares sync --watch` in `ws`, given time to set its watches.
    fn start(sb: &Sandbox, ws: &Path) -> Watcher {
        let w = Watcher(
            sb.cmd(ws, &["sync", "--watch"])
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        std::thread::sleep(Duration::from_millis(500));
        w
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn one_shot_sync_writes_workspace_changes_into_the_upper_layer() {
    let sb = two_way_workspace();
    let (ws, up) = (sb.path("ws"), sb.path("ws/.antares/upper"));
    fs::write(ws.join("lib/proto/version.txt"), "9.9.9\n").unwrap();
    fs::write(ws.join("lib/util/src/extra.rs"), "// new\n").unwrap();
    fs::remove_file(ws.join("docs/index.md")).unwrap();
    let j = json(&sb.ok(&ws, &["sync", "--json"]));
    assert_eq!(
        j["summary"]["written_back"].as_array().unwrap().len(),
        2,
        "{j}"
    );
    assert_eq!(
        read(&up.join("lib/proto/version.txt")).as_deref(),
        Some("9.9.9\n")
    );
    assert_eq!(
        read(&up.join("lib/util/src/extra.rs")).as_deref(),
        Some("// new\n")
    );
    // The deletion is an overlayfs whiteout (0/0 character device) or fuse-overlayfs's `.wh.` file.
    let wh = fs::symlink_metadata(up.join("docs/index.md"));
    let wh_file = up.join("docs/.wh.index.md").exists();
    assert!(
        wh.map(|m| std::os::unix::fs::FileTypeExt::is_char_device(&m.file_type()))
            .unwrap_or(false)
            || wh_file
    );
    // The source itself is never written.
    assert_eq!(
        read(&sb.path("src/lib/proto/version.txt")).as_deref(),
        Some("0.1.0\n")
    );
    // Now the other way: an edit in the upper layer (as through the mount).
    fs::write(up.join("lib/proto/version.txt"), "from the mount\n").unwrap();
    let j = json(&sb.ok(&ws, &["sync", "--json"]));
    assert_eq!(j["summary"]["updated"], 1, "{j}");
    assert_eq!(
        read(&ws.join("lib/proto/version.txt")).as_deref(),
        Some("from the mount\n")
    );
    let st = json(&sb.ok(&ws, &["status", "--json"]));
    assert_eq!(
        st["modified"].as_array().unwrap().len() + st["added"].as_array().unwrap().len(),
        0,
        "{st}"
    );
}

#[test]
fn watch_follows_editor_save_patterns_both_ways() {
    let sb = two_way_workspace();
    let (ws, up) = (sb.path("ws"), sb.path("ws/.antares/upper"));
    let _w = Watcher::start(&sb, &ws);

    // Truncate and write in place.
    fs::write(ws.join("app/cli/main.rs"), "fn main() { /* v2 */ }\n").unwrap();
    wait_until("in-place edit in the upper", || {
        read(&up.join("app/cli/main.rs")).as_deref() == Some("fn main() { /* v2 */ }\n")
    });

    // vim: swap file, the 4913 probe, write a temp, rename over, drop the swap.
    let dir = ws.join("lib/util/src");
    fs::write(dir.join(".lib.rs.swp"), "swap").unwrap();
    fs::write(dir.join("4913"), "").unwrap();
    fs::remove_file(dir.join("4913")).unwrap();
    fs::write(dir.join("lib.rs~"), "backup").unwrap();
    fs::write(dir.join(".lib.rs.tmp"), "pub fn v3() {}\n").unwrap();
    fs::rename(dir.join(".lib.rs.tmp"), dir.join("lib.rs")).unwrap();
    fs::remove_file(dir.join(".lib.rs.swp")).unwrap();
    wait_until("rename-over edit in the upper", || {
        read(&up.join("lib/util/src/lib.rs")).as_deref() == Some("pub fn v3() {}\n")
    });
    std::thread::sleep(Duration::from_millis(300));
    let up_names: Vec<String> = fs::read_dir(up.join("lib/util/src"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        up_names,
        vec!["lib.rs"],
        "editor scratch files leaked into the upper layer"
    );

    // An edit on the mount side (the upper dir) shows up in the workspace.
    fs::create_dir_all(up.join("lib/proto")).unwrap();
    fs::write(up.join("lib/proto/.version.txt.new"), "7.0.0\n").unwrap();
    fs::rename(
        up.join("lib/proto/.version.txt.new"),
        up.join("lib/proto/version.txt"),
    )
    .unwrap();
    wait_until("mount edit in the workspace", || {
        read(&ws.join("lib/proto/version.txt")).as_deref() == Some("7.0.0\n")
    });

    // Deleting in the workspace whiteouts in the upper.
    fs::remove_file(ws.join("toolchains/BUCK")).unwrap();
    wait_until("deletion in the upper", || {
        fs::symlink_metadata(up.join("toolchains/BUCK")).is_ok()
            || up.join("toolchains/.wh.BUCK").exists()
    });
}

#[test]
fn sigkill_during_two_way_sync_loses_no_edit() {
    let sb = Sandbox::new();
    make_tree(&sb.path("src"), 1500, 4000);
    sb.ok(
        sb.dir.path(),
        &[
            "init",
            "--source",
            &format!("dir:{}", sb.path("src").display()),
            "ws",
        ],
    );
    let (ws, up) = (sb.path("ws"), sb.path("ws/.antares/upper"));
    fs::create_dir_all(&up).unwrap();
    sb.ok(&ws, &["sync", "."]);
    let rounds = if std::env::var_os("ANTARES_LONG_TESTS").is_some() {
        50
    } else {
        5
    };
    for r in 0..rounds {
        // Edits on both sides, on different files, before an interrupted sync.
        let mut ws_edits = Vec::new();
        let mut up_edits = Vec::new();
        for k in 0..40 {
            let i = (r * 97 + k * 31) % 1500;
            let rel = format!("d{:02}/f{i:05}.txt", i % 50);
            if k % 2 == 0 {
                let c = format!("ws round {r} edit {k}\n");
                fs::write(ws.join(&rel), &c).unwrap();
                ws_edits.push((rel, c));
            } else if !ws_edits.iter().any(|(p, _)| *p == rel) {
                let c = format!("upper round {r} edit {k}\n");
                fs::create_dir_all(up.join(format!("d{:02}", i % 50))).unwrap();
                fs::write(up.join(&rel), &c).unwrap();
                up_edits.push((rel, c));
            }
        }
        let mut child = sb
            .cmd(&ws, &["sync"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(5 + (r as u64 * 13) % 60));
        let _ = child.kill();
        let _ = child.wait();
        // Every edit is still somewhere.
        for (rel, c) in ws_edits.iter().chain(&up_edits) {
            let here = read(&ws.join(rel)).as_deref() == Some(c.as_str())
                || read(&up.join(rel)).as_deref() == Some(c.as_str());
            assert!(here, "round {r}: edit to {rel} lost after SIGKILL");
        }
        // The next sync converges: both sides hold every edit, then nothing to do.
        let out = sb.run(&ws, &["sync", "--json"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "round {r}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for (rel, c) in ws_edits.iter().chain(&up_edits) {
            assert_eq!(
                read(&ws.join(rel)).as_deref(),
                Some(c.as_str()),
                "round {r}: {rel} in the workspace"
            );
            assert_eq!(
                read(&up.join(rel)).as_deref(),
                Some(c.as_str()),
                "round {r}: {rel} in the upper"
            );
        }
        let j = json(&sb.ok(&ws, &["sync", "--json"]));
        let s = &j["summary"];
        assert_eq!(
            (
                s["added"].as_u64(),
                s["updated"].as_u64(),
                s["written_back"].as_array().map(Vec::len)
            ),
            (Some(0), Some(0), Some(0)),
            "round {r}: not converged: {j}"
        );
    }
}

#[test]
fn watch_is_not_woken_by_reads() {
    let sb = two_way_workspace();
    let (ws, up) = (sb.path("ws"), sb.path("ws/.antares/upper"));
    let log = sb.path("watch.log");
    let _w = Watcher(
        sb.cmd(&ws, &["sync", "--watch"])
            .env("RUST_LOG", "antares=debug")
            .env("NO_COLOR", "1")
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let cycles = || {
        read(&log)
            .unwrap_or_default()
            .matches("watch: changed paths")
            .count()
    };
    wait_until("the watcher to start", || {
        read(&log).is_some_and(|l| l.contains("watching"))
    });
    std::thread::sleep(Duration::from_millis(300));
    let before = cycles();
    // Readers (an editor opening files, a build reading sources) change nothing.
    for _ in 0..20 {
        for f in ["app/cli/main.rs", "lib/util/src/lib.rs", "toolchains/BUCK"] {
            read(&ws.join(f)).expect("readable");
        }
        fs::read_dir(ws.join("lib/util/src"))
            .unwrap()
            .for_each(drop);
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        cycles(),
        before,
        "reads woke the watcher:\n{:?}",
        read(&log)
    );
    // A write does.
    fs::write(ws.join("app/cli/main.rs"), "fn main() { /* v9 */ }\n").unwrap();
    wait_until("the edit in the upper", || {
        read(&up.join("app/cli/main.rs")).as_deref() == Some("fn main() { /* v9 */ }\n")
    });
    assert!(cycles() > before);
}

#[test]
fn watch_sees_a_source_file_edited_twice_in_quick_succession() {
    let sb = two_way_workspace();
    let ws = sb.path("ws");
    let _w = Watcher::start(&sb, &ws);
    // The second edit lands well within a second of the first one's sync:
    // the source must not be read through what the first sync listed.
    let src = sb.path("src/lib/proto/version.txt");
    for v in ["1.1.0\n", "1.2.0\n", "1.3.0\n"] {
        fs::write(&src, v).unwrap();
        wait_until(&format!("{v:?} in the workspace"), || {
            read(&ws.join("lib/proto/version.txt")).as_deref() == Some(v)
        });
    }
}
