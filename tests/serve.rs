//! `antares serve` end to end: every route of the Antares management API,
//! with scorpiofs' fields, status codes and error bodies, against a real
//! server process whose mounts are real FUSE mounts (root and /dev/fuse
//! needed; skipped otherwise); Orion's own call sequence; the safety of
//! mount paths, syncs and the server itself.

mod common;

use antares_mono_test_server::client::{request, Reply};
use common::*;
use serde_json::Value;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running `antares serve`; on drop it is killed and every FUSE mount it
/// left under the sandbox is lazily unmounted, so a failing test leaves none.
struct Served {
    child: Option<Child>,
    url: String,
    root: PathBuf,
}

impl Served {
    /// Starts `antares serve --bind 127.0.0.1:0 EXTRA…` in the sandbox's
    /// workspace and reads the address it prints.
    fn start(sb: &Sandbox, extra: &[&str]) -> Served {
        Self::start_in(sb, &sb.path("ws"), extra)
    }

    fn start_in(sb: &Sandbox, ws: &Path, extra: &[&str]) -> Served {
        let mut args = vec!["serve", "--bind", "127.0.0.1:0"];
        args.extend(extra);
        let mut child = sb
            .cmd(ws, &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start antares serve");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout).read_line(&mut line).expect("read");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Served {
            child: Some(child),
            url,
            root: sb.dir.path().to_path_buf(),
        }
    }

    fn call(&self, method: &str, target: &str, body: Option<&str>) -> Reply {
        request(&self.url, method, target, body).expect("request")
    }

    /// Calls and asserts the status, returning the JSON body.
    fn expect(&self, status: u16, method: &str, target: &str, body: Option<&str>) -> Value {
        let r = self.call(method, target, body);
        assert_eq!(
            r.status,
            status,
            "{method} {target}: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()
    }

    /// Stops the server with SIGTERM, as a service manager would.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill has no memory preconditions; the pid is our child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        unmount_below(&self.root);
    }
}

fn mounted(p: &Path) -> bool {
    let p = p.to_string_lossy();
    fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(&*p))
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string {key:?} in {v}"))
}

fn is_uuid(s: &str) -> bool {
    let g: Vec<&str> = s.split('-').collect();
    g.iter().map(|x| x.len()).eq([8, 4, 4, 4, 12])
        && g.iter().all(|x| x.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[test]
fn every_route_of_the_management_api() {
    if let Err(why) = can_mount() {
        eprintln!("SKIPPED serve test: {why}");
        return;
    }
    let sb = Sandbox::example_workspace();
    let mut srv = Served::start(&sb, &[]);
    let mount_root = sb.path("xdg-state/antares/mounts");

    let health = srv.expect(200, "GET", "/antares/health", None);
    assert_eq!(health["status"], "healthy");
    assert_eq!(health["mount_count"], 0);
    assert!(health["uptime_secs"].is_u64(), "{health}");

    // Create with a job id: 200 {mount_id, mountpoint}; the mount point is
    // MOUNT_ROOT/<uuid> (outside the workspace), `path` inside it.
    let made = srv.expect(
        200,
        "POST",
        "/antares/mounts",
        Some(r#"{"path":"/lib/proto/","job_id":"job-1"}"#),
    );
    let id = str_of(&made, "mount_id").to_string();
    assert!(is_uuid(&id), "{id}");
    let mountpoint = PathBuf::from(str_of(&made, "mountpoint"));
    // As Scorpio: the mount point shows `path` itself (a bind mount of it).
    assert_eq!(mountpoint, mount_root.join(&id));
    assert_eq!(
        fs::read_to_string(mountpoint.join("version.txt")).unwrap(),
        fs::read_to_string(sb.path("src/lib/proto/version.txt")).unwrap()
    );
    let ready = srv.expect(200, "GET", &format!("/antares/mounts/{id}/ready"), None);
    assert_eq!(
        ready,
        serde_json::json!({"mount_id": id, "ready": true, "state": "Ready"})
    );

    // Idempotent per job id; the same job id with another path is refused.
    let again = srv.expect(
        200,
        "POST",
        "/antares/mounts",
        Some(r#"{"path":"lib/proto","job_id":"job-1"}"#),
    );
    assert_eq!(again, made);
    let e = srv.expect(
        400,
        "POST",
        "/antares/mounts",
        Some(r#"{"path":"/lib","job_id":"job-1"}"#),
    );
    assert_eq!(e["code"], "INVALID_REQUEST");
    assert!(str_of(&e, "error").contains("different path/cl"), "{e}");

    // Without a task id, one mount per (path, cl); `/` is the whole tree at
    // MOUNT_ROOT/<uuid> itself. build_id is the task id when job_id is absent.
    let whole = srv.expect(200, "POST", "/antares/mounts", Some(r#"{"path":"/"}"#));
    let whole_id = str_of(&whole, "mount_id").to_string();
    let whole_mnt = PathBuf::from(str_of(&whole, "mountpoint"));
    assert_eq!(whole_mnt, mount_root.join(&whole_id));
    assert!(whole_mnt.join(".buckconfig").exists());
    let e = srv.expect(400, "POST", "/antares/mounts", Some(r#"{"path":"/"}"#));
    assert!(str_of(&e, "error").contains("already mounted"), "{e}");
    let by_build = srv.expect(
        200,
        "POST",
        "/antares/mounts",
        Some(r#"{"path":"/lib","build_id":"build-7"}"#),
    );

    let list = srv.expect(200, "GET", "/antares/mounts", None);
    let mounts = list["mounts"].as_array().expect("{mounts: [...]}");
    assert_eq!(mounts.len(), 3, "{list}");

    // A mount's status, field for field as Scorpio's MountStatus.
    let one = srv.expect(200, "GET", &format!("/antares/mounts/{id}"), None);
    assert_eq!(one["mount_id"], id.as_str());
    assert_eq!(one["path"], "/lib/proto");
    assert_eq!(one["job_id"], "job-1");
    assert_eq!(one["cl"], Value::Null);
    assert_eq!(one["mountpoint"], made["mountpoint"]);
    assert_eq!(one["state"], "Ready");
    assert_eq!(one["layers"]["cl"], Value::Null);
    assert!(
        PathBuf::from(str_of(&one["layers"], "upper")).is_dir(),
        "{one}"
    );
    assert_eq!(one["layers"]["dicfuse"], "shared", "{one}");
    assert!(one["created_at_epoch_ms"].as_u64().unwrap() > 1_600_000_000_000);
    assert!(one["last_seen_epoch_ms"].as_u64() >= one["created_at_epoch_ms"].as_u64());
    // Exactly Scorpio's MountStatus fields and MountLayers fields, no more.
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k.join(",")
    };
    assert_eq!(
        keys(&one),
        "cl,created_at_epoch_ms,job_id,last_seen_epoch_ms,layers,mount_id,mountpoint,path,state"
    );
    assert_eq!(keys(&one["layers"]), "cl,dicfuse,upper");
    // As Scorpio: looking at a mount (GET, ready, list) does not move
    // last_seen_epoch_ms; a reused task id does.
    std::thread::sleep(std::time::Duration::from_millis(20));
    srv.expect(200, "GET", &format!("/antares/mounts/{id}/ready"), None);
    srv.expect(200, "GET", "/antares/mounts", None);
    let looked = srv.expect(200, "GET", &format!("/antares/mounts/{id}"), None);
    assert_eq!(looked["last_seen_epoch_ms"], one["last_seen_epoch_ms"]);
    srv.expect(
        200,
        "POST",
        "/antares/mounts",
        Some(r#"{"path":"/lib/proto","job_id":"job-1"}"#),
    );
    let reused = srv.expect(200, "GET", &format!("/antares/mounts/{id}"), None);
    assert!(reused["last_seen_epoch_ms"].as_u64() > one["last_seen_epoch_ms"].as_u64());
    // Ids are parsed as UUIDs, as Scorpio's Path<Uuid>: another spelling
    // of the same UUID finds the same mount.
    let upper_id = srv.expect(
        200,
        "GET",
        &format!("/antares/mounts/{}", id.to_uppercase()),
        None,
    );
    assert_eq!(upper_id["mount_id"], id.as_str());
    let by_job = srv.expect(200, "GET", "/antares/mounts/by-job/build-7", None);
    assert_eq!(by_job["mount_id"], by_build["mount_id"]);
    assert_eq!(by_job["job_id"], "build-7");

    // The sync extension: the target's files land in that mount's
    // workspace; the summary is what `antares sync --json` prints.
    let summary = srv.expect(
        200,
        "POST",
        &format!("/antares/mounts/{whole_id}/sync"),
        Some(r#"{"targets":["//app/server:server"]}"#),
    );
    assert!(
        summary["summary"]["added"].as_u64().unwrap_or(0) > 0,
        "{summary}"
    );
    assert_eq!(one_of(&srv, &whole_id)["state"], "Ready");
    let ws = mount_workspace(&sb, &whole_id);
    assert_eq!(
        fs::read(ws.join("app/server/BUCK")).unwrap(),
        fs::read(sb.path("src/app/server/BUCK")).unwrap()
    );
    assert!(!ws.join("app/cli").exists());

    // 404 NOT_FOUND for unknown mounts and jobs, Scorpio's messages.
    let nope = "00000000-0000-4000-8000-000000000000";
    for (m, t) in [
        ("GET", format!("/antares/mounts/{nope}")),
        ("DELETE", format!("/antares/mounts/{nope}")),
        ("GET", format!("/antares/mounts/{nope}/ready")),
        ("DELETE", format!("/antares/mounts/{nope}/cl")),
        ("GET", "/antares/mounts/by-job/nope".to_string()),
        ("DELETE", "/antares/mounts/by-job/nope".to_string()),
    ] {
        let e = srv.expect(404, m, &t, None);
        assert_eq!(e["code"], "NOT_FOUND", "{m} {t}: {e}");
        assert!(str_of(&e, "error").contains("not found"), "{e}");
    }
    // A mount id that is not a UUID: axum's Path<Uuid> rejection, as in
    // Scorpio: 400 with a plain-text body, on every route taking an id.
    for (m, t) in [
        ("GET", "/antares/mounts/nope"),
        ("DELETE", "/antares/mounts/nope"),
        ("GET", "/antares/mounts/nope/ready"),
        ("POST", "/antares/mounts/nope/cl"),
        ("DELETE", "/antares/mounts/nope/cl"),
    ] {
        let r = srv.call(m, t, Some(r#"{"cl":"x"}"#));
        let body = String::from_utf8_lossy(&r.body).into_owned();
        assert_eq!(r.status, 400, "{m} {t}: {body}");
        assert!(
            r.header("content-type")
                .is_some_and(|c| c.starts_with("text/plain")),
            "{m} {t}: {:?}",
            r.headers
        );
        assert!(
            body.starts_with(
                "Invalid URL: Cannot parse `mount_id` with value `nope`: UUID parsing failed"
            ),
            "{m} {t}: {body}"
        );
    }
    assert_eq!(srv.call("GET", "/antares/nothing-here", None).status, 404);

    // Bad bodies: axum's own rejections (Scorpio's Json extractor), and
    // Scorpio's INVALID_REQUEST for an empty path; antares refuses a path
    // that could escape.
    assert_eq!(
        srv.call("POST", "/antares/mounts", Some("{not json"))
            .status,
        400
    );
    assert_eq!(
        srv.call("POST", "/antares/mounts", Some(r#"{"job_id":"x"}"#))
            .status,
        422
    );
    for body in [
        r#"{"path":""}"#,
        r#"{"path":"/../etc"}"#,
        r#"{"path":"/","cl":""}"#,
        r#"{"path":"/","cl":" "}"#,
    ] {
        let e = srv.expect(400, "POST", "/antares/mounts", Some(body));
        assert_eq!(e["code"], "INVALID_REQUEST", "{body}: {e}");
    }
    for body in [r#"{"targets":[]}"#, r#"{"targets":["--help"]}"#] {
        let e = srv.expect(
            400,
            "POST",
            &format!("/antares/mounts/{whole_id}/sync"),
            Some(body),
        );
        assert_eq!(e["code"], "INVALID_REQUEST", "{body}: {e}");
    }
    // A path that is not a directory of the tree: refused, nothing left.
    for path in ["/no/such/dir", "/lib/proto/version.txt"] {
        let e = srv.expect(
            400,
            "POST",
            "/antares/mounts",
            Some(&format!(r#"{{"path":"{path}"}}"#)),
        );
        assert_eq!(e["code"], "INVALID_REQUEST", "{e}");
    }
    let shown = fs::read_dir(&mount_root)
        .unwrap()
        .filter(|e| {
            !e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count();
    assert_eq!(shown, 3);
    // CL routes need a mono: source; clearing a CL that is not there is refused.
    let e = srv.expect(400, "DELETE", &format!("/antares/mounts/{id}/cl"), None);
    assert!(str_of(&e, "error").contains("no CL layer"), "{e}");
    let e = srv.expect(
        400,
        "POST",
        &format!("/antares/mounts/{id}/cl"),
        Some(r#"{"cl":"CL1"}"#),
    );
    assert!(str_of(&e, "error").contains("not mono:"), "{e}");
    let e = srv.expect(
        400,
        "POST",
        "/antares/mounts",
        Some(r#"{"path":"/app","cl":"CL1"}"#),
    );
    assert!(str_of(&e, "error").contains("not mono:"), "{e}");
    let e = srv.expect(
        500,
        "POST",
        &format!("/antares/mounts/{id}/sync"),
        Some(r#"{"targets":["//no/such:target"]}"#),
    );
    assert_eq!(e["code"], "INTERNAL_ERROR");

    // A restarted server still knows its mounts.
    srv.stop();
    let srv = Served::start(&sb, &[]);
    let list = srv.expect(200, "GET", "/antares/mounts", None);
    assert_eq!(list["mounts"].as_array().map(Vec::len), Some(3), "{list}");

    // Delete by id and by job: state "Unmounted", mount point gone, 404 after.
    let gone = srv.expect(200, "DELETE", &format!("/antares/mounts/{whole_id}"), None);
    assert_eq!(gone["state"], "Unmounted");
    assert!(!mounted(&whole_mnt));
    assert!(!whole_mnt.exists());
    srv.expect(404, "GET", &format!("/antares/mounts/{whole_id}"), None);
    let gone = srv.expect(200, "DELETE", "/antares/mounts/by-job/job-1", None);
    assert_eq!(gone["state"], "Unmounted");
    assert!(!mount_root.join(&id).exists());
    assert!(!mount_root.join(format!(".{id}")).exists());
    srv.expect(404, "GET", "/antares/mounts/by-job/job-1", None);
    let health = srv.expect(200, "GET", "/antares/health", None);
    assert_eq!(health["mount_count"], 1);
}

/// Where the server keeps mount `id`'s own workspace (its upper layer,
/// its syncs): not a field of Scorpio's MountStatus.
fn mount_workspace(sb: &Sandbox, id: &str) -> PathBuf {
    sb.path(&format!("ws/.antares/serve/{id}/ws"))
}

fn one_of(srv: &Served, id: &str) -> Value {
    srv.expect(200, "GET", &format!("/antares/mounts/{id}"), None)
}

#[test]
fn unmount_on_exit_leaves_no_mount() {
    if let Err(why) = can_mount() {
        eprintln!("SKIPPED serve test: {why}");
        return;
    }
    let sb = Sandbox::example_workspace();
    let mut srv = Served::start(&sb, &["--unmount-on-exit"]);
    let made = srv.expect(200, "POST", "/antares/mounts", Some(r#"{"path":"/lib"}"#));
    let mp = PathBuf::from(str_of(&made, "mountpoint"));
    let tree = mp.with_file_name(format!(".{}", str_of(&made, "mount_id")));
    assert!(mounted(&mp) && mounted(&tree));
    srv.stop();
    assert!(!mounted(&mp), "{} still mounted", mp.display());
    assert!(!mounted(&tree), "{} still mounted", tree.display());
    let table = fs::read_to_string(sb.path("ws").join(".antares/serve/mounts.json")).unwrap();
    assert_eq!(json(&table), serde_json::json!({}));
}

/// Orion's own sequence, from mega's `orion/src/buck_controller.rs` and
/// `scorpio_api.rs` at fa514a82f: mount the base (`{id}-old-1`) and the CL
/// job (`{id}-1`) at path `/`, poll `ready` until true, run a command in
/// `<mountpoint>/<repo_prefix>`, delete both, expect `state: "Unmounted"`.
#[test]
fn orion_build_sequence() {
    if let Err(why) = can_mount() {
        eprintln!("SKIPPED serve test: {why}");
        return;
    }
    let sb = Sandbox::new();
    let (base, head) = example_repo_with_cl(&sb.path("src"));
    let mono = antares_mono_test_server::TestServer::start(&sb.path("src")).unwrap();
    mono.add_cl("CL7", &base, &head);
    sb.ok(
        sb.dir.path(),
        &["init", "--source", &format!("mono:{}", mono.url()), "ws"],
    );
    let srv = Served::start(&sb, &[]);
    let (id, cl, repo) = ("task-42", "CL7", "/app");
    let repo_prefix = repo.strip_prefix('/').unwrap_or(repo);
    println!("orion: repo={repo} cl={cl} repo_prefix={repo_prefix}");

    // mount_antares_fs(job_id, "/", None) and (job_id, "/", Some(cl)).
    let mount = |job: &str, cl: Option<&str>| {
        let payload = match cl {
            Some(c) => serde_json::json!({ "path": "/", "cl": c, "job_id": job }),
            None => serde_json::json!({ "path": "/", "job_id": job }),
        };
        let r = srv.call("POST", "/antares/mounts", Some(&payload.to_string()));
        let body = r.json();
        println!("POST /antares/mounts {payload} -> {} {body}", r.status);
        let mountpoint = body
            .get("mountpoint")
            .and_then(Value::as_str)
            .expect("Missing mountpoint");
        let mount_id = body
            .get("mount_id")
            .and_then(Value::as_str)
            .expect("Missing mount_id");
        (mountpoint.to_string(), mount_id.to_string())
    };
    let (old_mp, old_id) = mount(&format!("{id}-old-1"), None);
    let (new_mp, new_id) = mount(&format!("{id}-1"), Some(cl));

    // wait_for_mount_ready: poll every 500 ms until `ready` is true.
    for mid in [&new_id, &old_id] {
        let started = std::time::Instant::now();
        loop {
            let r = srv.call("GET", &format!("/antares/mounts/{mid}/ready"), None);
            let body = r.json();
            if body.get("ready").and_then(Value::as_bool).unwrap_or(false) {
                println!("GET /antares/mounts/{mid}/ready -> {} {body}", r.status);
                break;
            }
            assert!(started.elapsed().as_secs() < 60, "never ready: {body}");
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }

    // The build runs in <mountpoint>/<repo_prefix> of each mount.
    let run = |mp: &str| {
        let project_root = PathBuf::from(mp).join(repo_prefix);
        let out = Command::new("sh")
            .args([
                "-c",
                "cat server/BUCK >/dev/null && ls cli server/src && cat ../lib/proto/version.txt",
            ])
            .current_dir(&project_root)
            .output()
            .expect("run in the mount");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        println!("in {}:\n{text}", project_root.display());
        text
    };
    let old = run(&old_mp);
    let new = run(&new_mp);
    // And buck2 itself, as Orion runs it (`--isolation-dir` per mount),
    // where a real buck2 is at hand.
    match real_buck2() {
        Some(buck2) => {
            let home = tempfile::tempdir().unwrap();
            // The CL's new source file is an input of the server in the CL
            // job's mount only (its srcs are a glob).
            for (mp, with_cl) in [(&old_mp, false), (&new_mp, true)] {
                let project_root = PathBuf::from(mp).join(repo_prefix);
                let iso = format!("buck2-isolation-{}", &mp[mp.len() - 8..]);
                let buck = |args: &[&str]| {
                    Command::new(&buck2)
                        .args(["--isolation-dir", &iso])
                        .args(args)
                        .current_dir(&project_root)
                        .env("HOME", home.path())
                        .output()
                        .expect("run buck2")
                };
                let out = buck(&["uquery", "inputs(//app/server:server)"]);
                let _ = buck(&["kill"]);
                let text = String::from_utf8_lossy(&out.stdout);
                println!(
                    "buck2 --isolation-dir {iso} uquery 'inputs(//app/server:server)' in {}:\n{text}",
                    project_root.display()
                );
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                assert!(text.contains("app/server/src/main.rs"), "{text}");
                assert_eq!(text.contains("app/server/src/added.rs"), with_cl, "{text}");
            }
        }
        None => println!("SKIPPED the buck2 step: no real buck2 (../shared/tools/buck2)"),
    }
    assert!(old.contains("run.sh") && old.contains("0.1.0"), "{old}");
    assert!(
        new.contains("start.sh") && new.contains("added.rs") && new.contains("0.2.0-cl"),
        "{new}"
    );
    assert_cl_tree(Path::new(&old_mp), false);
    assert_cl_tree(Path::new(&new_mp), true);
    let status = srv.expect(200, "GET", &format!("/antares/mounts/{new_id}"), None);
    assert_eq!(status["cl"], cl);
    // The CL under review has all four of Mono's actions.
    let listed = request(&mono.url(), "GET", "/api/v1/cl/CL7/files-list", None)
        .expect("files-list")
        .json();
    let mut actions: Vec<&str> = listed["data"]
        .as_array()
        .expect("files-list data")
        .iter()
        .filter_map(|f| f["action"].as_str())
        .collect();
    actions.sort_unstable();
    actions.dedup();
    assert_eq!(
        actions,
        ["deleted", "modified", "new", "renamed"],
        "{listed}"
    );
    // layers.cl: Scorpio's CL directory, files and 0/0 whiteouts.
    let cl_dir = PathBuf::from(str_of(&status["layers"], "cl"));
    assert_eq!(
        fs::read_to_string(cl_dir.join("app/server/src/added.rs")).unwrap(),
        "pub fn added() {}\n"
    );
    assert!(cl_dir.join("app/cli/start.sh").is_file());
    for gone in ["docs/index.md", "app/cli/run.sh"] {
        use std::os::unix::fs::FileTypeExt;
        let md = fs::symlink_metadata(cl_dir.join(gone)).expect("whiteout");
        assert!(md.file_type().is_char_device(), "{gone}");
    }

    // The CL routes: clear it (the base shows), lay it again.
    let cleared = srv.expect(200, "DELETE", &format!("/antares/mounts/{new_id}/cl"), None);
    assert_eq!(
        (cleared["cl"].clone(), cleared["state"].clone()),
        (Value::Null, "Ready".into())
    );
    assert_cl_tree(Path::new(&new_mp), false);
    let e = srv.expect(
        400,
        "POST",
        &format!("/antares/mounts/{new_id}/cl"),
        Some(r#"{"cl":" "}"#),
    );
    assert_eq!(e["code"], "INVALID_REQUEST");
    // A CL that cannot be read: Scorpio's 500 INTERNAL_ERROR; the mount
    // keeps its layering and is then `Mounted`, not `Ready`, until a CL
    // change succeeds.
    let e = srv.expect(
        500,
        "POST",
        &format!("/antares/mounts/{new_id}/cl"),
        Some(r#"{"cl":"NOPE"}"#),
    );
    assert_eq!(e["code"], "INTERNAL_ERROR", "{e}");
    assert!(str_of(&e, "error").contains("NOPE"), "{e}");
    assert_cl_tree(Path::new(&new_mp), false);
    let r = srv.expect(200, "GET", &format!("/antares/mounts/{new_id}/ready"), None);
    assert_eq!(
        (r["ready"].clone(), r["state"].clone()),
        (false.into(), "Mounted".into())
    );
    assert!(!cl_dir.exists(), "cleared CL leaves no layers.cl directory");
    let laid = srv.expect(
        200,
        "POST",
        &format!("/antares/mounts/{new_id}/cl"),
        Some(r#"{"cl":"CL7"}"#),
    );
    assert_eq!(laid["cl"], cl);
    assert_eq!(laid["state"], "Ready");
    assert_cl_tree(Path::new(&new_mp), true);

    // A subtree with a CL: the mount point shows `/app` itself, and stays
    // bound to it across a CL change.
    let sub = srv.expect(
        200,
        "POST",
        "/antares/mounts",
        Some(r#"{"path":"/app","cl":"CL7","job_id":"sub"}"#),
    );
    let sub_mp = PathBuf::from(str_of(&sub, "mountpoint"));
    let sub_id = str_of(&sub, "mount_id").to_string();
    assert!(sub_mp.join("server/src/added.rs").is_file());
    assert!(sub_mp.join("cli/start.sh").is_file());
    srv.expect(200, "DELETE", &format!("/antares/mounts/{sub_id}/cl"), None);
    assert!(!sub_mp.join("server/src/added.rs").exists());
    assert!(sub_mp.join("cli/run.sh").is_file());
    let gone = srv.expect(200, "DELETE", "/antares/mounts/by-job/sub", None);
    assert_eq!(gone["state"], "Unmounted");
    assert!(!sub_mp.exists());

    // unmount_antares_fs: DELETE, and the state must be "Unmounted".
    for mid in [&new_id, &old_id] {
        let r = srv.call("DELETE", &format!("/antares/mounts/{mid}"), None);
        let body = r.json();
        println!(
            "DELETE /antares/mounts/{mid} -> {} state={}",
            r.status, body["state"]
        );
        assert_eq!(body.get("state").and_then(Value::as_str), Some("Unmounted"));
    }
    assert!(!mounted(Path::new(&old_mp)) && !mounted(Path::new(&new_mp)));
}

/// The real buck2: `ANTARES_TEST_BUCK2`, else `../shared/tools/buck2`
/// beside the repository (as CI lays it out).
fn real_buck2() -> Option<PathBuf> {
    let p = std::env::var_os("ANTARES_TEST_BUCK2")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/tools/buck2"));
    p.is_file().then_some(p)
}

/// Issue 12 item 5: a path through a symlink of the tree (`etcdir -> /etc`)
/// is resolved in the tree, not on the host, and refused.
#[test]
fn a_path_through_a_symlink_is_refused() {
    if let Err(why) = can_mount() {
        eprintln!("SKIPPED serve test: {why}");
        return;
    }
    let sb = Sandbox::new();
    example_repo(&sb.path("src"));
    std::os::unix::fs::symlink("/etc", sb.path("src/etcdir")).unwrap();
    let spec = format!("dir:{}", sb.path("src").display());
    sb.ok(sb.dir.path(), &["init", "--source", &spec, "ws"]);
    let srv = Served::start(&sb, &[]);
    for path in ["/etcdir", "/etcdir/ssl"] {
        let e = srv.expect(
            400,
            "POST",
            "/antares/mounts",
            Some(&format!(r#"{{"path":"{path}"}}"#)),
        );
        assert!(str_of(&e, "error").contains("symlink"), "{path}: {e}");
    }
    let list = srv.expect(200, "GET", "/antares/mounts", None);
    assert_eq!(list["mounts"], serde_json::json!([]));
    assert_eq!(
        fs::read_dir(sb.path("xdg-state/antares/mounts"))
            .unwrap()
            .count(),
        0
    );
}

/// Issue 12 item 10: a second server on one workspace is refused; `ready`
/// checks that the mount answers (a dead daemon: ENOTCONN).
#[test]
fn one_server_per_workspace_and_ready_checks_the_mount() {
    if let Err(why) = can_mount() {
        eprintln!("SKIPPED serve test: {why}");
        return;
    }
    let sb = Sandbox::example_workspace();
    let srv = Served::start(&sb, &[]);
    let out = sb.run(&sb.path("ws"), &["serve", "--bind", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another antares serve"), "{err}");

    let made = srv.expect(
        200,
        "POST",
        "/antares/mounts",
        Some(r#"{"path":"/","job_id":"j-dead"}"#),
    );
    let id = str_of(&made, "mount_id").to_string();
    let ws = mount_workspace(&sb, &id);
    let pid: i32 = fs::read_to_string(ws.join(".antares/mount.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: kill with the pid of the mount daemon this test made.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    std::thread::sleep(std::time::Duration::from_millis(300));
    let ready = srv.expect(200, "GET", &format!("/antares/mounts/{id}/ready"), None);
    assert_eq!(ready["ready"], false, "{ready}");
    assert!(ready["state"]["Failed"]["reason"].is_string(), "{ready}");
    // Its task id is not handed out again while it is dead.
    let e = srv.expect(
        400,
        "POST",
        "/antares/mounts",
        Some(r#"{"path":"/","job_id":"j-dead"}"#),
    );
    assert!(
        str_of(&e, "error").contains("is currently in state Failed { reason: "),
        "{e}"
    );
    // Nor are CL changes made to it (Scorpio's check comes first).
    for (m, body, what) in [
        ("POST", Some(r#"{"cl":"CL1"}"#), "cannot build CL"),
        ("DELETE", None, "cannot clear CL"),
    ] {
        let e = srv.expect(400, m, &format!("/antares/mounts/{id}/cl"), body);
        assert_eq!(e["code"], "INVALID_REQUEST");
        assert!(
            str_of(&e, "error").starts_with(&format!("mount {id} is currently in state Failed")),
            "{e}"
        );
        assert!(str_of(&e, "error").ends_with(what), "{e}");
    }
    // Deleting it still cleans up.
    let gone = srv.expect(200, "DELETE", &format!("/antares/mounts/{id}"), None);
    assert_eq!(gone["state"], "Unmounted", "{gone}");
}

/// Issue 14 item 5: the mount root is refused inside a Buck2 project.
#[test]
fn a_mount_root_inside_a_buck_project_is_refused() {
    let sb = Sandbox::example_workspace();
    fs::create_dir_all(sb.path("proj/deep")).unwrap();
    fs::write(sb.path("proj/.buckconfig"), "").unwrap();
    let root = sb.path("proj/deep/mounts");
    let out = sb.run(
        &sb.path("ws"),
        &[
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--mount-root",
            root.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(".buckconfig"), "{err}");
    assert!(!root.exists());
}

/// The antares processes whose command line mentions `needle`.
fn processes_with(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmd = fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(needle) && cmd.contains(" sync ") {
            out.push(pid);
        }
    }
    out
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !f() {
        assert!(
            started.elapsed().as_secs() < 20,
            "timed out waiting: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Issue 12 item 8: a sync started through the API is killed when its
/// deadline passes, when its mount is deleted, and when the client leaves.
#[test]
fn a_sync_through_the_api_can_be_stopped() {
    if let Err(why) = can_mount() {
        eprintln!("SKIPPED serve test: {why}");
        return;
    }
    let sb = Sandbox::new();
    example_repo(&sb.path("src"));
    git_commit_all(&sb.path("src"), "example");
    let mono = antares_mono_test_server::TestServer::start(&sb.path("src")).unwrap();
    sb.ok(
        sb.dir.path(),
        &["init", "--source", &format!("mono:{}", mono.url()), "ws"],
    );
    let srv = Served::start(&sb, &[]);
    let made = srv.expect(200, "POST", "/antares/mounts", Some(r#"{"path":"/"}"#));
    let id = str_of(&made, "mount_id").to_string();
    let ws = mount_workspace(&sb, &id).to_string_lossy().into_owned();
    // Every Mono answer now takes 3 s: a sync cannot finish soon.
    mono.faults().delay(std::time::Duration::from_secs(3));
    let sync = format!("/antares/mounts/{id}/sync");

    // The deadline.
    let e = srv.expect(
        500,
        "POST",
        &sync,
        Some(r#"{"targets":["//app/...:"],"timeout_secs":1}"#),
    );
    assert!(str_of(&e, "error").contains("deadline"), "{e}");
    wait_until("the sync past its deadline is gone", || {
        processes_with(&ws).is_empty()
    });

    // The client leaves: the request is dropped, the child killed.
    {
        use std::io::Write;
        let addr = srv.url.trim_start_matches("http://").to_string();
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        let body = r#"{"targets":["//app/...:"]}"#;
        write!(
            s,
            "POST {sync} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        wait_until("the sync started", || !processes_with(&ws).is_empty());
    }
    wait_until("the sync of a gone client is killed", || {
        processes_with(&ws).is_empty()
    });

    // The mount is deleted while a sync runs.
    let url = srv.url.clone();
    let target = sync.clone();
    let pending = std::thread::spawn(move || {
        antares_mono_test_server::client::request(
            &url,
            "POST",
            &target,
            Some(r#"{"targets":["//app/...:"]}"#),
        )
        .expect("request")
    });
    wait_until("the sync started", || !processes_with(&ws).is_empty());
    let gone = srv.expect(200, "DELETE", &format!("/antares/mounts/{id}"), None);
    assert_eq!(gone["state"], "Unmounted");
    let r = pending.join().unwrap();
    assert_eq!(r.status, 500);
    assert!(String::from_utf8_lossy(&r.body).contains("mount was deleted"));
    assert!(processes_with(&ws).is_empty());
    mono.faults().delay(std::time::Duration::ZERO);
}

/// A Buck2 sub-project of the served tree (here one with a `.buckroot`)
/// keeps its buck-out off FUSE in API mounts too: at `<mountpoint>/fx`
/// for a mount of `/`, and at the mount point itself for a mount of
/// `/fx`, which shows the tree's directory with the mounts below it.
#[test]
fn api_mounts_keep_sub_project_buck_out_off_fuse() {
    if let Err(why) = can_mount() {
        eprintln!("SKIPPED serve test: {why}");
        return;
    }
    let sb = Sandbox::example_workspace();
    for p in ["fx/.buckroot", "fx/.buckconfig"] {
        fs::create_dir_all(sb.path("src/fx")).unwrap();
        fs::write(sb.path("src").join(p), "").unwrap();
    }
    let srv = Served::start(&sb, &[]);
    let not_fuse = |p: &Path| {
        let out = Command::new("stat")
            .args(["-f", "-c", "%T"])
            .arg(p)
            .output()
            .unwrap();
        !String::from_utf8_lossy(&out.stdout).contains("fuse")
    };
    for (path, below) in [("/", "fx/buck-out"), ("/fx", "buck-out")] {
        let made = srv.expect(
            200,
            "POST",
            "/antares/mounts",
            Some(&format!(r#"{{"path":"{path}"}}"#)),
        );
        let out = PathBuf::from(str_of(&made, "mountpoint")).join(below);
        assert!(mounted(&out), "{path}: {} is not a mount", out.display());
        assert!(not_fuse(&out), "{path}: {} is on FUSE", out.display());
        fs::write(out.join("state"), "sqlite").unwrap();
        let id = str_of(&made, "mount_id");
        let gone = srv.expect(200, "DELETE", &format!("/antares/mounts/{id}"), None);
        assert_eq!(gone["state"], "Unmounted");
        assert!(!mounted(&out));
    }
}
