//! End to end: `antares init` + `sync` + `status` + `resolve` with dir: and
//! git: sources, through the real binary.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;

#[test]
fn dir_source_syncs_the_example_monorepo_exactly() {
    let sb = Sandbox::new();
    let src = sb.path("src");
    example_repo(&src);
    let spec = format!("dir:{}", src.display());
    sb.ok(sb.dir.path(), &["init", "--source", &spec, "ws"]);
    let out = sb.ok(sb.dir.path(), &["-C", "ws", "sync", ".", "--json"]);
    let j = json(&out);
    let n = snapshot(&src).len() as u64;
    assert_eq!(j["summary"]["added"], n, "{out}");
    assert_eq!(snapshot(&sb.path("ws")), snapshot(&src));
    let run_sh = fs::metadata(sb.path("ws/app/cli/run.sh")).unwrap();
    assert_eq!(run_sh.permissions().mode() & 0o777, 0o755);
    assert_eq!(
        fs::read_link(sb.path("ws/docs/README.link.md"))
            .unwrap()
            .to_str(),
        Some("../README.md")
    );
    // Status is clean and the no-op re-sync changes nothing.
    let st = json(&sb.ok(&sb.path("ws"), &["status", "--json"]));
    assert_eq!(
        st["modified"].as_array().unwrap().len() + st["added"].as_array().unwrap().len(),
        0,
        "{st}"
    );
    let again = json(&sb.ok(&sb.path("ws/app"), &["sync", "--json"]));
    assert_eq!(again["summary"]["unchanged"], n);
    assert_eq!(again["summary"]["added"], 0);
}

#[test]
fn git_source_at_revisions_with_modes_and_symlinks() {
    let sb = Sandbox::new();
    let repo = sb.path("repo");
    example_repo(&repo);
    let first = git_commit_all(&repo, "first");
    fs::write(repo.join("lib/util/src/lib.rs"), "pub fn v2() {}\n").unwrap();
    fs::remove_file(repo.join("docs/index.md")).unwrap();
    let second = git_commit_all(&repo, "second");
    git(&repo, &["tag", "v1", &first]);

    sb.ok(
        sb.dir.path(),
        &[
            "init",
            "--source",
            &format!("git:{}@v1", repo.display()),
            "ws",
        ],
    );
    let j = json(&sb.ok(&sb.path("ws"), &["sync", ".", "--json"]));
    assert_eq!(j["revision"], first.as_str());
    git(&repo, &["checkout", "-q", &first]);
    assert_eq!(snapshot(&sb.path("ws")), snapshot(&repo));

    // Move to the second commit: one file changed, one deleted, nothing else touched.
    let j = json(&sb.ok(&sb.path("ws"), &["sync", "--rev", &second, "--json"]));
    assert_eq!(
        (
            j["summary"]["updated"].as_u64(),
            j["summary"]["removed"].as_u64()
        ),
        (Some(1), Some(1)),
        "{j}"
    );
    git(&repo, &["checkout", "-q", &second]);
    assert_eq!(snapshot(&sb.path("ws")), snapshot(&repo));
    // The revision is remembered.
    let j = json(&sb.ok(&sb.path("ws"), &["sync", "--json"]));
    assert_eq!(j["revision"], second.as_str());
}

#[test]
fn bare_repository_and_subtree_selection() {
    let sb = Sandbox::new();
    let repo = sb.path("repo");
    example_repo(&repo);
    git_commit_all(&repo, "first");
    let bare = sb.path("bare.git");
    git(
        sb.dir.path(),
        &[
            "clone",
            "-q",
            "--bare",
            repo.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    sb.ok(
        sb.dir.path(),
        &["init", "--source", &format!("git:{}", bare.display()), "ws"],
    );
    sb.ok(&sb.path("ws"), &["sync", "lib", "app/cli"]);
    let snap = snapshot(&sb.path("ws"));
    assert!(
        snap.keys()
            .all(|k| k.starts_with("lib/") || k.starts_with("app/cli/")),
        "{:?}",
        snap.keys()
    );
    assert!(snap.contains_key("lib/util/src/lib.rs") && snap.contains_key("app/cli/run.sh"));
    // Narrowing the selection removes what is no longer requested (unmodified).
    fs::write(sb.path("ws/lib/util/src/lib.rs"), "edited").unwrap();
    sb.ok(&sb.path("ws"), &["sync", "app/cli"]);
    let snap = snapshot(&sb.path("ws"));
    assert_eq!(
        snap.keys()
            .filter(|k| k.starts_with("lib/"))
            .collect::<Vec<_>>(),
        vec!["lib/util/src/lib.rs"]
    );
    // --add widens it again.
    sb.ok(&sb.path("ws"), &["sync", "--add", "toolchains"]);
    assert!(sb.path("ws/toolchains/BUCK").exists() && sb.path("ws/app/cli/BUCK").exists());
}

#[test]
fn bad_input_is_refused_clearly_and_changes_nothing() {
    let sb = Sandbox::new();
    let src = sb.path("src");
    example_repo(&src);
    // Bad specs: nothing is created.
    for (spec, needle) in [
        ("svn:/x", "unknown source kind"),
        (&format!("git:{}", src.display()) as &str, "git"),
        ("dir:/nonexistent/antares", "nonexistent"),
    ] {
        let out = sb.run(sb.dir.path(), &["init", "--source", spec, "bad"]);
        assert_eq!(out.status.code(), Some(1), "{spec}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{spec}: {err}");
        assert!(!sb.path("bad").exists(), "{spec} left a workspace behind");
    }
    sb.ok(
        sb.dir.path(),
        &["init", "--source", &format!("dir:{}", src.display()), "ws"],
    );
    sb.ok(&sb.path("ws"), &["sync", "lib"]);
    let before = snapshot(&sb.path("ws"));
    for (args, needle) in [
        (vec!["sync", "../outside"], "escapes"),
        (vec!["sync", "no/such/dir"], "no/such/dir"),
        (vec!["resolve", "lib/util/BUCK", "--ours"], "no conflict"),
    ] {
        let out = sb.run(&sb.path("ws"), &args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(needle),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(snapshot(&sb.path("ws")), before);
    // Outside any workspace.
    let out = sb.run(sb.dir.path(), &["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not inside an antares workspace"));
    // Re-init refused.
    let out = sb.run(
        sb.dir.path(),
        &["init", "--source", &format!("dir:{}", src.display()), "ws"],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("already an antares workspace"));
}

#[test]
fn conflicts_exit_2_and_resolve_settles_them() {
    let sb = Sandbox::new();
    let src = sb.path("src");
    example_repo(&src);
    sb.ok(
        sb.dir.path(),
        &["init", "--source", &format!("dir:{}", src.display()), "ws"],
    );
    sb.ok(&sb.path("ws"), &["sync", "."]);
    fs::write(sb.path("ws/lib/proto/version.txt"), "mine\n").unwrap();
    fs::write(src.join("lib/proto/version.txt"), "theirs\n").unwrap();
    fs::write(sb.path("ws/app/cli/main.rs"), "fn main() {} // edited\n").unwrap();
    let out = sb.run(&sb.path("ws"), &["sync", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let j = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(j["summary"]["conflicts"][0], "lib/proto/version.txt");
    assert_eq!(
        fs::read_to_string(sb.path("ws/lib/proto/version.txt")).unwrap(),
        "mine\n"
    );
    assert_eq!(
        fs::read_to_string(sb.path("ws/.antares/conflicts/lib/proto/version.txt")).unwrap(),
        "theirs\n"
    );
    let out = sb.run(&sb.path("ws"), &["status"]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("C lib/proto/version.txt") && text.contains("M app/cli/main.rs"),
        "{text}"
    );
    sb.ok(
        &sb.path("ws/lib/proto"),
        &["resolve", "version.txt", "--theirs"],
    );
    assert_eq!(
        fs::read_to_string(sb.path("ws/lib/proto/version.txt")).unwrap(),
        "theirs\n"
    );
    let out = sb.run(&sb.path("ws"), &["status"]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn a_second_sync_waits_for_the_lock_or_refuses() {
    let sb = Sandbox::new();
    let src = sb.path("src");
    example_repo(&src);
    sb.ok(
        sb.dir.path(),
        &["init", "--source", &format!("dir:{}", src.display()), "ws"],
    );
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(sb.path("ws/.antares/lock"))
        .unwrap();
    lock.lock().unwrap();
    let out = sb.run(&sb.path("ws"), &["sync", ".", "--no-wait"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("locked"));
    assert!(!sb.path("ws/lib").exists(), "a refused sync wrote files");
    let child = sb
        .cmd(&sb.path("ws"), &["sync", "."])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400));
    assert!(!sb.path("ws/lib").exists(), "the waiting sync did not wait");
    drop(lock);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("waiting"));
    assert_eq!(snapshot(&sb.path("ws")), snapshot(&src));
}
