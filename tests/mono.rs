//! End to end: workspaces on a `mono:` source served by the Mono-compatible
//! test server, against the same commit read through `git:`.

mod common;

use antares_mono_test_server::TestServer;
use common::*;
use std::fs;
use std::process::Output;

/// The example monorepo committed to a git repo at `src/`, served.
fn served() -> (Sandbox, TestServer) {
    let sb = Sandbox::new();
    let src = sb.path("src");
    example_repo(&src);
    git_commit_all(&src, "example");
    let server = TestServer::start(&src).unwrap();
    (sb, server)
}

fn init(sb: &Sandbox, spec: &str, ws: &str) {
    sb.ok(sb.dir.path(), &["init", "--source", spec, ws]);
}

/// A sync with quick give-up settings, so faults fail fast.
fn sync(sb: &Sandbox, ws: &str, args: &[&str]) -> Output {
    let mut all = vec!["-C", ws, "sync"];
    all.extend_from_slice(args);
    sb.cmd(sb.dir.path(), &all)
        .env("ANTARES_MONO_ATTEMPTS", "2")
        .env("ANTARES_MONO_TIMEOUT_MS", "400")
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_mono_sync_equals_a_git_sync_byte_for_byte() {
    let (sb, server) = served();
    let src = sb.path("src");
    init(&sb, &format!("git:{}", src.display()), "git-ws");
    init(&sb, &format!("mono:{}", server.url()), "mono-ws");
    ok(&sync(&sb, "git-ws", &["."]));
    let j = json(&ok(&sync(&sb, "mono-ws", &[".", "--json"])));
    let want = snapshot(&sb.path("git-ws"));
    assert!(want.len() > 10);
    assert_eq!(snapshot(&sb.path("mono-ws")), want);
    assert_eq!(j["summary"]["added"], want.len() as u64, "{j}");

    // A target sync reads BUCK files and the closure through the server too.
    init(&sb, &format!("git:{}", src.display()), "git-t");
    init(&sb, &format!("mono:{}", server.url()), "mono-t");
    ok(&sync(&sb, "git-t", &["//app/server:server"]));
    ok(&sync(&sb, "mono-t", &["//app/server:server"]));
    let t = snapshot(&sb.path("mono-t"));
    assert!(t.len() < want.len(), "a target needs less than everything");
    assert_eq!(t, snapshot(&sb.path("git-t")));

    // A change in one directory: the re-sync asks about that subtree only.
    fs::write(src.join("lib/util/src/lib.rs"), "pub fn changed() {}\n").unwrap();
    git_commit_all(&src, "change lib/util");
    server.reset_requests();
    let j = json(&ok(&sync(&sb, "mono-ws", &["--json"])));
    assert_eq!(j["summary"]["updated"], 1, "{j}");
    let reqs = server.requests();
    let trees: Vec<&String> = reqs
        .iter()
        .filter(|r| r.contains("/file/tree?path=/") && r.contains("oid="))
        .collect();
    assert!(
        trees
            .iter()
            .all(|r| r.contains("path=/lib&") || r.contains("path=/lib/util")),
        "{reqs:#?}"
    );
    assert_eq!(
        reqs.iter().filter(|r| r.contains("/file/blob/")).count(),
        1,
        "{reqs:#?}"
    );
    ok(&sync(&sb, "git-ws", &[]));
    assert_eq!(snapshot(&sb.path("mono-ws")), snapshot(&sb.path("git-ws")));
}

#[test]
fn faults_leave_the_workspace_unchanged() {
    let (sb, server) = served();
    let src = sb.path("src");
    init(&sb, &format!("mono:{}", server.url()), "ws");
    ok(&sync(&sb, "ws", &["."]));
    // The source moves on: edits, an addition, a deletion.
    fs::write(src.join("lib/util/src/lib.rs"), "pub fn v2() {}\n").unwrap();
    fs::write(src.join("README.md"), "v2\n").unwrap();
    fs::write(src.join("app/new.txt"), "new\n").unwrap();
    fs::remove_file(src.join("app/cli/run.sh")).unwrap();
    git_commit_all(&src, "v2");
    let before = snapshot(&sb.path("ws"));

    type Fault = (&'static str, fn(&TestServer, bool));
    let faults: [Fault; 7] = [
        ("every request fails", |s, on| s.faults().fail_always(on)),
        ("wrong bytes", |s, on| s.faults().corrupt_blobs(on)),
        ("truncated bodies", |s, on| s.faults().truncate_blobs(on)),
        ("blobs missing", |s, on| {
            s.faults().status_for_blobs(on.then_some(404))
        }),
        ("malformed JSON", |s, on| s.faults().malformed_json(on)),
        ("hostile name", |s, on| {
            s.faults().hostile_name(on.then(|| "../escape".to_string()))
        }),
        ("too slow", |s, on| {
            s.faults()
                .delay(std::time::Duration::from_millis(if on { 600 } else { 0 }))
        }),
    ];
    for (what, set) in faults {
        set(&server, true);
        let out = sync(&sb, "ws", &[]);
        set(&server, false);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        assert!(
            err.contains(&server.url()),
            "{what}: the error names the URL: {err}"
        );
        assert_eq!(
            snapshot(&sb.path("ws")),
            before,
            "{what} changed the workspace"
        );
        let status = sb.ok(&sb.path("ws"), &["status", "--json"]);
        assert!(
            json(&status)["modified"]
                .as_array()
                .is_none_or(|a| a.is_empty()),
            "{what}: {status}"
        );
    }
    // Once the server behaves, the sync converges on the new commit.
    ok(&sync(&sb, "ws", &[]));
    assert_eq!(fs::read_to_string(sb.path("ws/README.md")).unwrap(), "v2\n");
    assert!(!sb.path("ws/app/cli/run.sh").exists());
    assert!(sb.path("ws/app/new.txt").exists());
}

#[test]
fn init_refuses_an_unreachable_server_and_leaves_nothing() {
    let sb = Sandbox::new();
    let out = sb
        .cmd(
            sb.dir.path(),
            &["init", "--source", "mono:http://127.0.0.1:1", "ws"],
        )
        .env("ANTARES_MONO_ATTEMPTS", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("http://127.0.0.1:1/api/v1/") && err.contains("cannot connect"),
        "{err}"
    );
    assert!(!sb.path("ws").exists());
}

/// Lazily unmounts what a test mounted, even when it fails.
struct Cleanup(std::path::PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        unmount_below(&self.0);
    }
}

/// `antares mount --cl` and `antares sync --cl` on a mono: source: the
/// CL's four actions (new, modified, deleted, renamed) seen through a real
/// FUSE mount and in a synced workspace; edits on the mount go to the upper
/// layer, never into the CL.
#[test]
fn a_change_list_through_mount_and_sync() {
    let sb = Sandbox::new();
    let (base, head) = example_repo_with_cl(&sb.path("src"));
    let server = TestServer::start(&sb.path("src")).unwrap();
    server.add_cl("CL1", &base, &head);
    let spec = format!("mono:{}", server.url());

    // sync --cl: the selection lands with the CL applied, and is remembered.
    init(&sb, &spec, "ws");
    ok(&sync(&sb, "ws", &["--cl", "CL1", "lib", "app", "docs"]));
    assert_cl_tree(&sb.path("ws"), true);
    // Dropping the CL brings the base back.
    ok(&sync(&sb, "ws", &["--cl", ""]));
    assert_cl_tree(&sb.path("ws"), false);
    // An unknown CL: an error naming it, the workspace unchanged.
    let out = sync(&sb, "ws", &["--cl", "NOPE"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no change list \"NOPE\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_cl_tree(&sb.path("ws"), false);
    // A CL needs a mono: source.
    sb.ok(
        sb.dir.path(),
        &[
            "init",
            "--source",
            &format!("dir:{}", sb.path("src").display()),
            "plain",
        ],
    );
    let out = sb.run(&sb.path("plain"), &["sync", "--cl", "CL1", "."]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs a mono: source"));

    if let Err(why) = can_mount() {
        eprintln!("SKIPPED the mount half: {why}");
        return;
    }
    init(&sb, &spec, "mws");
    let mnt = sb.path("mnt");
    let _cleanup = Cleanup(mnt.clone());
    sb.ok(
        &sb.path("mws"),
        &["mount", "--cl", "CL1", mnt.to_str().unwrap()],
    );
    assert_cl_tree(&mnt, true);
    fs::write(mnt.join("lib/proto/version.txt"), "edited on the mount\n").unwrap();
    let upper = sb.path("mws/.antares/upper/lib/proto/version.txt");
    assert_eq!(fs::read_to_string(upper).unwrap(), "edited on the mount\n");
    sb.ok(&sb.path("mws"), &["umount"]);
    // Remounted without the CL: the base, with the upper layer's edit.
    sb.ok(
        &sb.path("mws"),
        &["mount", "--cl", "", mnt.to_str().unwrap()],
    );
    assert_eq!(
        fs::read_to_string(mnt.join("lib/proto/version.txt")).unwrap(),
        "edited on the mount\n"
    );
    assert!(mnt.join("docs/index.md").exists());
    assert!(!mnt.join("app/server/src/added.rs").exists());
    sb.ok(&sb.path("mws"), &["umount"]);
}

/// A mono mount reads through the same content store as a sync: what a sync
/// or an earlier mount fetched is not asked of the server again (a file's
/// content, which the FUSE daemon reads from the store, and a symlink's
/// target, which the View reads from the lower source: only a store-backed
/// lower keeps that).
#[test]
fn a_mono_mount_reads_what_was_fetched_before_without_asking_the_server() {
    if let Err(why) = can_mount() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let (sb, server) = served();
    init(&sb, &format!("mono:{}", server.url()), "ws");
    ok(&sync(&sb, "ws", &["."]));
    let link = fs::read_link(sb.path("ws/docs/README.link.md")).unwrap();
    let mnt = sb.path("mnt");
    let _cleanup = Cleanup(mnt.clone());
    sb.ok(&sb.path("ws"), &["mount", mnt.to_str().unwrap()]);
    assert_eq!(
        fs::read_link(mnt.join("docs/README.link.md")).unwrap(),
        link
    );
    sb.ok(&sb.path("ws"), &["umount"]);
    server.reset_requests();
    sb.ok(&sb.path("ws"), &["mount", mnt.to_str().unwrap()]);
    assert_eq!(
        fs::read_link(mnt.join("docs/README.link.md")).unwrap(),
        link
    );
    assert_eq!(
        fs::read(mnt.join("lib/util/src/lib.rs")).unwrap(),
        fs::read(sb.path("ws/lib/util/src/lib.rs")).unwrap()
    );
    sb.ok(&sb.path("ws"), &["umount"]);
    let reqs = server.requests();
    let blobs: Vec<&String> = reqs.iter().filter(|r| r.contains("/file/blob/")).collect();
    assert!(blobs.is_empty(), "{blobs:#?}");
}
