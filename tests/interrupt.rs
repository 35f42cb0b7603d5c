//! `docs/architecture.md#no-torn-files`: a sync killed with SIGKILL at any moment leaves every file
//! old or new, never torn, and the next sync converges.
//!
//! Iterations: ANTARES_LONG_TESTS=1 runs 50, otherwise 6.

mod common;

use common::*;
use std::fs;
use std::time::Duration;

#[test]
fn kill_9_mid_sync_then_resync_converges() {
    let sb = Sandbox::new();
    let src = sb.path("src");
    make_tree(&src, 3000, 6000);
    sb.ok(
        sb.dir.path(),
        &["init", "--source", &format!("dir:{}", src.display()), "ws"],
    );
    let iterations = if std::env::var_os("ANTARES_LONG_TESTS").is_some() {
        50
    } else {
        6
    };
    let mut killed_mid_way = 0;
    for i in 0..iterations {
        // Change some source files each round so there is work to interrupt.
        for j in (i..3000).step_by(7) {
            let d = src.join(format!("d{:02}", j % 50));
            fs::write(
                d.join(format!("f{j:05}.txt")),
                format!("round {i} file {j}\n").repeat(300),
            )
            .unwrap();
        }
        let mut child = sb.cmd(&sb.path("ws"), &["sync", "."]).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(15 + (i as u64 * 37) % 200));
        let finished = child.try_wait().unwrap().is_some();
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        if !finished {
            killed_mid_way += 1;
        }
        // Every file in the workspace is complete: old or new content, never partial.
        for (path, node) in snapshot(&sb.path("ws")) {
            let Node::File { bytes, .. } = node else {
                continue;
            };
            let text = String::from_utf8_lossy(&bytes);
            let ok = text.starts_with("file ") && bytes.len() == 6000
                || text.starts_with("round ")
                    && text.lines().all(|l| l == text.lines().next().unwrap())
                    && text.len().is_multiple_of(300);
            assert!(ok, "torn file {path} after kill in round {i}");
        }
        // No staging leftovers outside .antares.
        let stray: Vec<_> = snapshot(&sb.path("ws"))
            .into_keys()
            .filter(|p| !p.ends_with(".txt"))
            .collect();
        assert!(stray.is_empty(), "stray files {stray:?}");
        let out = sb.run(&sb.path("ws"), &["sync", ".", "--json"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let j = json(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(
            j["summary"]["conflicts"].as_array().map(Vec::len),
            Some(0),
            "{j}"
        );
        assert_eq!(
            snapshot(&sb.path("ws")),
            snapshot(&src),
            "round {i}: not converged"
        );
        let again = json(&sb.ok(&sb.path("ws"), &["sync", ".", "--json"]));
        assert_eq!(
            again["summary"]["unchanged"], 3000,
            "round {i}: second sync not a no-op"
        );
    }
    eprintln!("{killed_mid_way}/{iterations} syncs were killed mid-way");
    assert!(
        killed_mid_way > 0,
        "no sync was interrupted; the test proved nothing"
    );
}
