//! The test server's answers on the wire, read with a bare TCP client so
//! that what is checked is exactly what was sent.

use antares_mono_test_server::{client, TestServer};
use serde_json::Value;
use sha1::Digest;
use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .args(["-c", "user.name=T", "-c", "user.email=t@example.com"])
        .args(["-c", "init.defaultBranch=main"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `z/` (a directory sorting after files), `a.txt`, `b/c.txt`.
fn repo() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let w = t.path();
    git(w, &["init", "-q"]);
    std::fs::write(w.join("a.txt"), "hello\n").unwrap();
    std::fs::create_dir_all(w.join("z")).unwrap();
    std::fs::write(w.join("z/last.txt"), "zz\n").unwrap();
    std::fs::create_dir_all(w.join("b")).unwrap();
    std::fs::write(w.join("b/c.txt"), "c".repeat(1000)).unwrap();
    git(w, &["add", "-A"]);
    git(w, &["commit", "-q", "-m", "one"]);
    t
}

/// One request; status, headers and every body byte that arrived.
fn request(
    server: &TestServer,
    method: &str,
    target: &str,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let r = client::request(&server.url(), method, target, None).unwrap();
    (r.status, r.headers, r.body)
}

fn json(server: &TestServer, target: &str) -> (u16, Value) {
    let (status, _, body) = request(server, "GET", target);
    (status, serde_json::from_slice(&body).unwrap())
}

fn git_id(kind: &str, body: &[u8]) -> String {
    let mut h = sha1::Sha1::new();
    h.update(format!("{kind} {}\0", body.len()).as_bytes());
    h.update(body);
    hex::encode(h.finalize())
}

#[test]
fn listings_are_wrapped_with_directories_first() {
    let t = repo();
    let server = TestServer::start(t.path()).unwrap();
    let (status, v) = json(&server, "/api/v1/tree/content-hash?path=/");
    assert_eq!(status, 200);
    assert_eq!(v["req_result"], true);
    let names: Vec<(&str, &str)> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap(),
                i["content_type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [("b", "directory"), ("z", "directory"), ("a.txt", "file")]
    );
    let b_oid = v["data"][0]["oid"].as_str().unwrap().to_string();

    // dir-hash names a directory's tree in its parent; the root has none.
    let (_, v) = json(&server, "/api/v1/tree/dir-hash?path=/b");
    assert_eq!(v["data"][0]["oid"], b_oid.as_str());
    let (_, v) = json(&server, "/api/v1/tree/dir-hash?path=/");
    assert_eq!(v["data"], serde_json::json!([]));
    let (_, v) = json(&server, "/api/v1/tree/dir-hash?path=/a.txt");
    assert_eq!(v["data"], serde_json::json!([]));

    // The raw tree is the object the listing named.
    let (status, _, body) = request(
        &server,
        "GET",
        &format!("/api/v1/file/tree?path=/b&oid={b_oid}"),
    );
    assert_eq!(status, 200);
    assert_eq!(git_id("tree", &body), b_oid);
    let (_, _, by_path) = request(&server, "GET", "/api/v1/file/tree?path=/b");
    assert_eq!(by_path, body);

    // Mono lists a missing path as nothing.
    let (status, v) = json(&server, "/api/v1/tree/content-hash?path=/nope");
    assert_eq!((status, &v["req_result"]), (200, &Value::Bool(true)));
    assert_eq!(v["data"], serde_json::json!([]));
    let (status, _, _) = request(&server, "GET", "/api/v1/file/blob/not-hex");
    assert_eq!(status, 400);
    assert_eq!(server.request_count(), 8);
}

#[test]
fn blobs_refs_and_commits() {
    let t = repo();
    let server = TestServer::start(t.path()).unwrap();
    let (_, v) = json(&server, "/api/v1/tree/content-hash?path=/");
    let a_oid = v["data"][2]["oid"].as_str().unwrap().to_string();
    let (status, headers, body) = request(&server, "GET", &format!("/api/v1/file/blob/{a_oid}"));
    assert_eq!((status, body.as_slice()), (200, b"hello\n".as_slice()));
    assert!(headers.contains(&("content-length".into(), "6".into())));
    let (status, _, body) = request(&server, "HEAD", &format!("/api/v1/file/blob/{a_oid}"));
    assert_eq!((status, body.len()), (200, 0));

    let first = git(t.path(), &["rev-parse", "HEAD"]);
    let (_, v) = json(&server, "/api/v1/latest-commit?path=/");
    assert_eq!(v["oid"], first.as_str());
    assert_eq!(v["short_message"], "one");
    // A commit made while serving is seen; older refs still resolve.
    std::fs::write(t.path().join("a.txt"), "again\n").unwrap();
    git(t.path(), &["commit", "-q", "-am", "two"]);
    git(t.path(), &["tag", "old", &first]);
    let (_, v) = json(&server, "/api/v1/latest-commit?path=/");
    assert_ne!(v["oid"], first.as_str());
    for refs in ["old", first.as_str()] {
        let (_, v) = json(
            &server,
            &format!("/api/v1/tree/content-hash?path=/&refs={refs}"),
        );
        assert_eq!(v["data"][2]["oid"], a_oid.as_str(), "{refs}");
    }
    // Mono's refs: a branch name (or any name that is no tag) is a 500,
    // an unknown commit id a 404.
    git(t.path(), &["branch", "topic"]);
    for refs in ["nope", "topic"] {
        for route in ["latest-commit", "tree/content-hash", "tree/dir-hash"] {
            let (status, v) = json(&server, &format!("/api/v1/{route}?path=/&refs={refs}"));
            assert_eq!(status, 500, "{route} {refs}");
            assert!(
                v["err_message"].as_str().unwrap().contains("Invalid refs"),
                "{v}"
            );
        }
    }
    let (status, _) = json(
        &server,
        &format!("/api/v1/latest-commit?path=/&refs={}", "0".repeat(40)),
    );
    assert_eq!(status, 404);
}

#[test]
fn file_tree_ignores_refs_and_answers_a_moved_tree_with_nothing() {
    let t = repo();
    let server = TestServer::start(t.path()).unwrap();
    let first = git(t.path(), &["rev-parse", "HEAD"]);
    let (_, v) = json(&server, "/api/v1/tree/content-hash?path=/");
    let b_old = v["data"][0]["oid"].as_str().unwrap().to_string();
    std::fs::write(t.path().join("b/c.txt"), "changed").unwrap();
    git(t.path(), &["commit", "-q", "-am", "two"]);
    // The old tree of /b, asked by id (and refs naming the old commit):
    // 200 and an empty body, because /b on the default branch is another tree.
    let (status, _, body) = request(
        &server,
        "GET",
        &format!("/api/v1/file/tree?path=/b&oid={b_old}&refs={first}"),
    );
    assert_eq!((status, body.len()), (200, 0));
    // content-hash at the old commit still has it.
    let (_, v) = json(
        &server,
        &format!("/api/v1/tree/content-hash?path=/&refs={first}"),
    );
    assert_eq!(v["data"][0]["oid"], b_old.as_str());
}

#[test]
fn change_lists_list_every_action() {
    let t = repo();
    let base = git(t.path(), &["rev-parse", "HEAD"]);
    std::fs::write(t.path().join("a.txt"), "modified\n").unwrap();
    std::fs::write(t.path().join("new.txt"), "new\n").unwrap();
    git(t.path(), &["mv", "b/c.txt", "b/moved.bin"]);
    git(t.path(), &["rm", "-q", "z/last.txt"]);
    git(t.path(), &["add", "-A"]);
    git(t.path(), &["commit", "-q", "-m", "cl"]);
    let head = git(t.path(), &["rev-parse", "HEAD"]);
    let server = TestServer::start(t.path()).unwrap();
    server.add_cl("CLX", &base, &head);
    let (status, v) = json(&server, "/api/v1/cl/CLX/files-list");
    assert_eq!(status, 200);
    let rows: Vec<(String, String, String)> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["path"].as_str().unwrap().to_string(),
                i["action"].as_str().unwrap().to_string(),
                i["old_path"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let row = |p: &str, a: &str, o: &str| (p.to_string(), a.to_string(), o.to_string());
    assert_eq!(
        rows,
        [
            row("a.txt", "modified", ""),
            row("b/moved.bin", "renamed", "b/c.txt"),
            row("new.txt", "new", ""),
            row("z/last.txt", "deleted", ""),
        ]
    );
    let (status, v) = json(&server, "/api/v1/cl/NOPE/files-list");
    assert_eq!((status, &v["req_result"]), (404, &Value::Bool(false)));
}

#[test]
fn faults_do_what_they_say() {
    let t = repo();
    let server = TestServer::start(t.path()).unwrap();
    let (_, v) = json(&server, "/api/v1/tree/content-hash?path=/b");
    let c_oid = v["data"][0]["oid"].as_str().unwrap().to_string();
    let blob = format!("/api/v1/file/blob/{c_oid}");

    server.faults().fail_next(2);
    assert_eq!(request(&server, "GET", &blob).0, 500);
    assert_eq!(request(&server, "GET", &blob).0, 500);
    assert_eq!(request(&server, "GET", &blob).0, 200);

    // Truncation: the promised length is not what arrives.
    server.faults().truncate_blobs(true);
    let (status, headers, body) = request(&server, "GET", &blob);
    assert_eq!(status, 200);
    assert!(
        headers.contains(&("content-length".into(), "1000".into())),
        "{headers:?}"
    );
    assert!(body.len() < 1000, "{} bytes arrived", body.len());
    server.faults().truncate_blobs(false);

    server.faults().corrupt_blobs(true);
    let (_, _, body) = request(&server, "GET", &blob);
    assert_eq!(body.len(), 1000);
    assert_ne!(git_id("blob", &body), c_oid);
    server.faults().corrupt_blobs(false);
    assert_eq!(git_id("blob", &request(&server, "GET", &blob).2), c_oid);

    server.faults().malformed_json(true);
    let (_, _, body) = request(&server, "GET", "/api/v1/tree/content-hash?path=/");
    assert!(serde_json::from_slice::<Value>(&body).is_err());
    server.faults().malformed_json(false);

    server.faults().hostile_name(Some("..".into()));
    let (_, v) = json(&server, "/api/v1/tree/content-hash?path=/b");
    assert_eq!(v["data"][1]["name"], "..");
    server.faults().hostile_name(None);

    server.faults().status_for_blobs(Some(403));
    assert_eq!(request(&server, "GET", &blob).0, 403);
    server.faults().status_for_blobs(None);

    server.faults().delay(std::time::Duration::from_millis(200));
    let started = std::time::Instant::now();
    assert_eq!(request(&server, "GET", &blob).0, 200);
    assert!(started.elapsed() >= std::time::Duration::from_millis(200));
    server.faults().delay(std::time::Duration::ZERO);

    // The test endpoints are neither logged nor faulted.
    server.faults().fail_always(true);
    let (status, v) = json(&server, "/_test/requests");
    assert_eq!(status, 200);
    assert_eq!(v["count"], 11);
    assert_eq!(request(&server, "POST", "/_test/reset").0, 204);
    assert_eq!(server.request_count(), 0);
}
