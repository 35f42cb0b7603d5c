//! `antares serve` end to end: every route of the Antares management API
//! against a real server process whose mounts are real FUSE mounts (root and
//! /dev/fuse needed; skipped otherwise).

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
        let mut args = vec!["serve", "--bind", "127.0.0.1:0"];
        args.extend(extra);
        let mut child = sb
            .cmd(&sb.path("ws"), &args)
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
        let Ok(mounts) = fs::read_to_string("/proc/mounts") else {
            return;
        };
        let root = self.root.to_string_lossy().into_owned();
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

#[test]
fn every_route_of_the_management_api() {
    if let Err(why) = can_mount() {
        eprintln!("SKIPPED serve test: {why}");
        return;
    }
    let sb = Sandbox::example_workspace();
    let mut srv = Served::start(&sb, &[]);

    let health = srv.expect(200, "GET", "/antares/health", None);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["mounts"], 0);

    // Create with a job id: 201, the mountpoint shows `path` of the repository.
    let made = srv.expect(
        201,
        "POST",
        "/antares/mounts",
        Some(r#"{"path":"/lib/proto","job_id":"job-1"}"#),
    );
    let id = str_of(&made, "mount_id").to_string();
    let mountpoint = PathBuf::from(str_of(&made, "mountpoint"));
    assert_eq!(
        fs::read_to_string(mountpoint.join("version.txt")).unwrap(),
        fs::read_to_string(sb.path("src/lib/proto/version.txt")).unwrap()
    );
    let ready = srv.expect(200, "GET", &format!("/antares/mounts/{id}/ready"), None);
    assert_eq!(ready["ready"], true);

    // Idempotent per job id: the same mount again, 200, nothing new mounted.
    let again = srv.expect(
        200,
        "POST",
        "/antares/mounts",
        Some(r#"{"path":"/lib/proto","job_id":"job-1"}"#),
    );
    assert_eq!(again["mount_id"], made["mount_id"]);
    assert_eq!(again["mountpoint"], made["mountpoint"]);

    // Without a job id every create is a new mount; `/` is the whole repo.
    let whole = srv.expect(201, "POST", "/antares/mounts", Some(r#"{"path":"/"}"#));
    let other = srv.expect(201, "POST", "/antares/mounts", Some(r#"{"path":""}"#));
    assert_ne!(whole["mount_id"], other["mount_id"]);
    let whole_id = str_of(&whole, "mount_id").to_string();
    let whole_mnt = PathBuf::from(str_of(&whole, "mountpoint"));
    assert!(whole_mnt.join(".buckconfig").exists());

    let list = srv.expect(200, "GET", "/antares/mounts", None);
    let ids: Vec<&str> = list
        .as_array()
        .expect("list is an array")
        .iter()
        .map(|m| str_of(m, "mount_id"))
        .collect();
    assert_eq!(ids.len(), 3, "{list}");
    assert!(ids.contains(&id.as_str()) && ids.contains(&whole_id.as_str()));

    let one = srv.expect(200, "GET", &format!("/antares/mounts/{id}"), None);
    assert_eq!(one["path"], "/lib/proto");
    assert_eq!(one["job_id"], "job-1");
    assert_eq!(one["state"], "mounted");
    let by_job = srv.expect(200, "GET", "/antares/mounts/by-job/job-1", None);
    assert_eq!(by_job["mount_id"], made["mount_id"]);

    // Sync: the target's files land in that mount's workspace; the summary
    // is what `antares sync --json` prints.
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
    let ws = PathBuf::from(str_of(&one_of(&srv, &whole_id), "workspace"));
    assert_eq!(
        fs::read(ws.join("app/server/BUCK")).unwrap(),
        fs::read(sb.path("src/app/server/BUCK")).unwrap()
    );
    // Only the target's closure: a package it does not need stays out.
    assert!(!ws.join("app/cli").exists());

    // 404s: unknown id, unknown job, unknown route; errors are {error, code}.
    for (m, t) in [
        ("GET", "/antares/mounts/nope".to_string()),
        ("DELETE", "/antares/mounts/nope".to_string()),
        ("GET", "/antares/mounts/nope/ready".to_string()),
        ("GET", "/antares/mounts/by-job/nope".to_string()),
        ("DELETE", "/antares/mounts/by-job/nope".to_string()),
        ("GET", "/antares/nothing-here".to_string()),
    ] {
        let e = srv.expect(404, m, &t, None);
        assert_eq!(e["code"], 404, "{m} {t}: {e}");
        assert!(e["error"].as_str().is_some_and(|s| !s.is_empty()), "{e}");
    }
    let e = srv.expect(
        404,
        "POST",
        "/antares/mounts/nope/sync",
        Some(r#"{"targets":["//app/server:server"]}"#),
    );
    assert_eq!(e["code"], 404);

    // 400s: malformed JSON, missing path, escaping path, cl layers, bad targets.
    for body in [
        "{not json",
        r#"{"job_id":"x"}"#,
        r#"{"path":"/../etc"}"#,
        r#"{"path":"/lib","cl":"12345"}"#,
        r#"{"path":7}"#,
    ] {
        let e = srv.expect(400, "POST", "/antares/mounts", Some(body));
        assert_eq!(e["code"], 400, "{body}: {e}");
        assert!(e["error"].as_str().is_some_and(|s| !s.is_empty()), "{e}");
    }
    for body in ["{", r#"{"targets":[]}"#, r#"{"targets":["--help"]}"#] {
        let e = srv.expect(
            400,
            "POST",
            &format!("/antares/mounts/{whole_id}/sync"),
            Some(body),
        );
        assert_eq!(e["code"], 400, "{body}: {e}");
    }
    // A path that is not in the repository: an error, and nothing is left.
    let e = srv.expect(
        500,
        "POST",
        "/antares/mounts",
        Some(r#"{"path":"/no/such/dir"}"#),
    );
    assert_eq!(e["code"], 500);
    assert_eq!(
        srv.expect(200, "GET", "/antares/mounts", None)
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    // A bad sync target is the sync's error, reported as 500 with its message.
    let e = srv.expect(
        500,
        "POST",
        &format!("/antares/mounts/{whole_id}/sync"),
        Some(r#"{"targets":["//no/such:target"]}"#),
    );
    assert!(str_of(&e, "error").contains("no/such"), "{e}");

    // A restarted server still knows its mounts.
    srv.stop();
    let srv = Served::start(&sb, &[]);
    let list = srv.expect(200, "GET", "/antares/mounts", None);
    assert_eq!(list.as_array().map(Vec::len), Some(3), "{list}");

    // Delete by id and by job: unmounted, directory gone, 404 afterwards.
    let root_of = |v: &Value| {
        PathBuf::from(str_of(v, "workspace"))
            .parent()
            .expect("mount dir")
            .to_path_buf()
    };
    let whole_dir = root_of(&one_of(&srv, &whole_id));
    srv.expect(200, "DELETE", &format!("/antares/mounts/{whole_id}"), None);
    assert!(!mounted(&whole_dir.join("mnt")));
    assert!(!whole_dir.exists());
    srv.expect(404, "GET", &format!("/antares/mounts/{whole_id}"), None);

    let job_dir = root_of(&one_of(&srv, &id));
    srv.expect(200, "DELETE", "/antares/mounts/by-job/job-1", None);
    assert!(!mounted(&job_dir.join("mnt")));
    assert!(!job_dir.exists());
    srv.expect(404, "GET", "/antares/mounts/by-job/job-1", None);

    let health = srv.expect(200, "GET", "/antares/health", None);
    assert_eq!(health["mounts"], 1);
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
    let made = srv.expect(201, "POST", "/antares/mounts", Some(r#"{"path":"/lib"}"#));
    let mp = PathBuf::from(str_of(&made, "mountpoint"));
    let root = mp.parent().expect("mount root").to_path_buf();
    assert!(mounted(&root));
    srv.stop();
    assert!(!mounted(&root), "{} still mounted", root.display());
    let table = fs::read_to_string(sb.path("ws").join(".antares/serve/mounts.json")).unwrap();
    assert_eq!(json(&table), serde_json::json!({}));
}
