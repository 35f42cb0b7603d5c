//! Hostile sources, end to end: trees crafted with `git hash-object` and
//! `git mktree` (names and links no honest checkout has) never make
//! antares write, delete or follow outside the workspace, nor take over
//! its configuration.

mod common;

use common::{git, Sandbox};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// An entry of a crafted tree.
enum E<'a> {
    File(&'a str),
    Link(&'a str),
}

/// Writes a tree holding `entries` (paths with '/', in any order, names
/// repeated if given twice) into the repository `repo`; returns its id.
fn mktree(repo: &Path, entries: &[(&str, E)]) -> String {
    enum Item {
        Blob(&'static str, String),
        Dir(Vec<(String, usize)>),
    }
    // Directories by path, each with (name, index into `items`) children.
    let mut items: Vec<Item> = vec![Item::Dir(Vec::new())];
    let mut dirs: BTreeMap<String, usize> = BTreeMap::from([(String::new(), 0)]);
    for (path, e) in entries {
        let (mode, bytes) = match e {
            E::File(c) => ("100644", *c),
            E::Link(t) => ("120000", *t),
        };
        let blob = hash_object(repo, bytes.as_bytes());
        let mut parent = String::new();
        let comps: Vec<&str> = path.split('/').collect();
        for (i, name) in comps.iter().enumerate() {
            let here = if parent.is_empty() {
                name.to_string()
            } else {
                format!("{parent}/{name}")
            };
            let idx = if i + 1 == comps.len() {
                items.push(Item::Blob(mode, blob.clone()));
                Some(items.len() - 1)
            } else if dirs.contains_key(&here) {
                None
            } else {
                items.push(Item::Dir(Vec::new()));
                dirs.insert(here.clone(), items.len() - 1);
                Some(items.len() - 1)
            };
            if let Some(idx) = idx {
                let p = dirs[&parent];
                if let Item::Dir(children) = &mut items[p] {
                    children.push((name.to_string(), idx));
                }
            }
            parent = here;
        }
    }
    fn write(repo: &Path, items: &[Item], idx: usize) -> (String, String) {
        match &items[idx] {
            Item::Blob(mode, id) => (format!("{mode} blob {id}"), id.clone()),
            Item::Dir(children) => {
                let mut input = String::new();
                for (name, c) in children {
                    let (line, _) = write(repo, items, *c);
                    input.push_str(&format!("{line}\t{name}\n"));
                }
                let id = git_stdin(repo, &["mktree"], input.as_bytes());
                (format!("040000 tree {id}"), id)
            }
        }
    }
    write(repo, &items, 0).1
}

fn hash_object(repo: &Path, bytes: &[u8]) -> String {
    git_stdin(repo, &["hash-object", "-w", "--stdin"], bytes)
}

fn git_stdin(repo: &Path, args: &[&str], input: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("git")
        .args(args)
        .current_dir(repo)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("git");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "git {args:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A repository at `sb/repo` whose HEAD commit has the crafted tree, and a
/// workspace `sb/ws` initialised from it.
fn crafted_workspace(sb: &Sandbox, entries: &[(&str, E)]) {
    let repo = sb.path("repo");
    fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    let tree = mktree(&repo, entries);
    let commit = git(&repo, &["commit-tree", &tree, "-m", "crafted"]);
    git(&repo, &["update-ref", "refs/heads/main", &commit]);
    let spec = format!("git:{}", repo.display());
    sb.ok(sb.dir.path(), &["init", "--source", &spec, "ws"]);
}

/// A fingerprint of everything below `dir`, symlinks not followed.
fn checksum(dir: &Path) -> String {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let what = if m.file_type().is_symlink() {
                format!("-> {}", fs::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                stack.push(p.clone());
                "dir".into()
            } else {
                String::from_utf8_lossy(&fs::read(&p).unwrap()).into_owned()
            };
            out.push(format!("{} {what}", p.display()));
        }
    }
    out.sort();
    out.join("\n")
}

/// A directory outside every workspace with a file a repository would like
/// to read or delete.
fn sentinel(sb: &Sandbox) -> (std::path::PathBuf, String) {
    let dir = sb.path("outside");
    fs::create_dir_all(dir.join("keys")).unwrap();
    fs::write(dir.join("keys/id_rsa"), "PRIVATE KEY").unwrap();
    let sum = checksum(&dir);
    (dir, sum)
}

#[test]
fn a_committed_antares_dir_is_never_placed_nor_taken_for_the_workspace() {
    let sb = Sandbox::new();
    let (outside, before) = sentinel(&sb);
    let hostile = format!(
        "source = \"dir:{}\"\ncache = \"{}\"\npaths = [\"keys\"]\n",
        outside.display(),
        sb.path("ws/app/stolen").display()
    );
    crafted_workspace(
        &sb,
        &[
            ("app/main.rs", E::File("fn main() {}")),
            ("app/.antares/config.toml", E::File(&hostile)),
            ("lib/deep/.antares/config.toml", E::File(&hostile)),
            ("lib/deep/x.txt", E::File("x")),
        ],
    );
    let ws = sb.path("ws");
    let out = sb.run(&ws, &["sync", "app", "lib"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(ws.join("app/main.rs").is_file() && ws.join("lib/deep/x.txt").is_file());
    assert!(!ws.join("app/.antares").exists(), "{stderr}");
    assert!(!ws.join("lib/deep/.antares").exists(), "{stderr}");
    assert!(
        stderr.contains("app/.antares"),
        "no warning naming it: {stderr}"
    );

    // One left there anyway (an older antares, a copy): the search passes it by.
    fs::create_dir_all(ws.join("app/.antares")).unwrap();
    fs::write(ws.join("app/.antares/config.toml"), &hostile).unwrap();
    let root = sb.ok(&ws.join("app"), &["root"]);
    assert_eq!(root.trim(), ws.display().to_string());
    let out = sb.run(&ws.join("app"), &["sync"]);
    assert!(
        !ws.join("app/keys").exists() && !ws.join("app/stolen").exists(),
        "{out:?}"
    );
    assert_eq!(checksum(&outside), before);
}

#[test]
fn a_link_climbing_out_through_another_link_is_refused() {
    let sb = Sandbox::new();
    let (outside, before) = sentinel(&sb);
    crafted_workspace(
        &sb,
        &[
            ("ok.txt", E::File("ok")),
            // Textually inside the root; `l` itself resolves to the root.
            ("s1/s2/s3/s4/l", E::Link("../../../..")),
            ("p", E::Link("s1/s2/s3/s4/l/../../../../etc/passwd")),
            ("q", E::Link("s1/s2/s3/s4/l/../outside/keys/id_rsa")),
            ("d/r", E::Link("../s1/s2/s3/s4/l/x/../../outside")),
            // Honest ones: `..` only through real directories.
            ("s1/up", E::Link("s2/s3/../../../ok.txt")),
            ("s1/s2/s3/s4/via", E::Link("l/ok.txt")),
        ],
    );
    let ws = sb.path("ws");
    let out = sb.run(&ws, &["sync", "."]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for bad in ["p", "q", "d/r"] {
        assert!(fs::symlink_metadata(ws.join(bad)).is_err(), "{bad} placed");
        assert!(stderr.contains(bad), "no error naming {bad}: {stderr}");
    }
    assert_eq!(
        fs::read_to_string(ws.join("s1/up")).ok().as_deref(),
        Some("ok"),
        "{stderr}"
    );
    assert_eq!(
        fs::read_to_string(ws.join("s1/s2/s3/s4/via")).unwrap(),
        "ok"
    );
    assert_eq!(checksum(&outside), before);
}

#[test]
fn a_duplicate_name_or_an_overlong_path_is_one_clear_error_not_a_stuck_sync() {
    let sb = Sandbox::new();
    let long_dir = vec!["d".repeat(200); 22].join("/");
    let long = format!("{long_dir}/f.txt");
    crafted_workspace(
        &sb,
        &[
            ("ok.txt", E::File("ok")),
            ("dup.txt", E::File("first")),
            ("dup.txt", E::File("second")),
            (&long, E::File("deep")),
        ],
    );
    let ws = sb.path("ws");
    for round in 0..2 {
        let out = sb.run(&ws, &["sync", "."]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "round {round}: {stderr}");
        assert_eq!(fs::read_to_string(ws.join("ok.txt")).unwrap(), "ok");
        assert!(!stderr.contains("CONFLICT"), "round {round}: {stderr}");
        assert!(stderr.contains("dup.txt"), "round {round}: {stderr}");
        assert_eq!(fs::read_to_string(ws.join("dup.txt")).unwrap(), "first");
        assert!(
            stderr.len() < 4000,
            "round {round}: a huge message: {stderr}"
        );
        let status = sb.run(&ws, &["status"]);
        assert_eq!(status.status.code(), Some(0), "round {round}: {status:?}");
    }
}
