//! End to end: `antares sync //target`, `graph`, `why` on the example monorepo.

mod common;

use common::*;

const SERVER_FILES: &[&str] = &[
    ".buckconfig",
    ".buckroot",
    "app/PACKAGE",
    "app/server/BUCK",
    "app/server/src/main.rs",
    "build/defs.bzl",
    "lib/util/BUCK",
    "lib/util/src/lib.rs",
    "toolchains/BUCK",
];

#[test]
fn sync_of_a_target_places_exactly_its_file_set() {
    let sb = Sandbox::example_workspace();
    sb.ok(&sb.path("ws"), &["sync", "//app/server:server"]);
    let got: Vec<String> = snapshot(&sb.path("ws")).into_keys().collect();
    assert_eq!(got, SERVER_FILES);
    // The workspace tells Buck2 to ignore .antares, keeping the repo's own ignore list.
    let local = std::fs::read_to_string(sb.path("ws/.buckconfig.local")).unwrap();
    assert!(local.contains("ignore = docs/drafts, .antares"), "{local}");
    let st = json(&sb.ok(&sb.path("ws"), &["status", "--json"]));
    assert_eq!(st["added"].as_array().unwrap().len(), 0, "{st}");
    // `why` explains a dependency's file through the chain from the target.
    let why = sb.ok(&sb.path("ws"), &["why", "lib/util/src/lib.rs"]);
    assert!(
        why.contains("//app/server:server") && why.contains("//lib/util:util"),
        "{why}"
    );
    let out = sb.run(&sb.path("ws"), &["why", "docs/index.md"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not in the file set"));
}

#[test]
fn relative_pattern_from_a_package_directory_and_saved_selection() {
    let sb = Sandbox::example_workspace();
    sb.ok(&sb.path("ws"), &["sync", "//lib/util:util"]);
    std::fs::create_dir_all(sb.path("ws/app/server")).unwrap();
    // `:server` from app/server means //app/server:server; --add keeps //lib/util:util.
    sb.ok(&sb.path("ws/app/server"), &["sync", "--add", ":server"]);
    let got: Vec<String> = snapshot(&sb.path("ws")).into_keys().collect();
    assert_eq!(got, SERVER_FILES);
    // A plain re-sync replays the saved targets and changes nothing.
    let j = json(&sb.ok(&sb.path("ws"), &["sync", "--json"]));
    assert_eq!(j["summary"]["unchanged"], SERVER_FILES.len());
    // Switching to another target removes what is no longer needed.
    sb.ok(&sb.path("ws"), &["sync", "//lib/proto:version"]);
    let got: Vec<String> = snapshot(&sb.path("ws")).into_keys().collect();
    assert!(
        got.contains(&"lib/proto/version.txt".to_string())
            && !got.contains(&"app/server/src/main.rs".to_string()),
        "{got:?}"
    );
}

#[test]
fn graph_reports_targets_packages_and_files() {
    let sb = Sandbox::example_workspace();
    let j = json(&sb.ok(&sb.path("ws"), &["graph", "//app/server:server", "--json"]));
    let files: Vec<&str> = j["files"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(files, SERVER_FILES);
    assert!(j["targets"]["//lib/util:util"].is_object(), "{j}");
    let text = sb.ok(&sb.path("ws"), &["graph", "//app/server:server"]);
    assert!(
        text.starts_with(&format!(
            "6 targets, 3 packages, {} files",
            SERVER_FILES.len()
        )),
        "{text}"
    );
    // A bad pattern is an error naming it.
    let out = sb.run(&sb.path("ws"), &["graph", "//no/such:pkg"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no/such"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The prelude-hooks Starlark files evaluate in the built-in evaluator: the
/// toolchain switch follows `[antares] toolchains`, the mirror wrapper
/// defines its archive, and neither falls back to label scanning.
#[test]
fn prelude_hooks_bzl_files_evaluate() {
    let sb = Sandbox::new();
    let src = sb.path("src");
    copy_tree(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hooks-repo"),
        &src,
    );
    for f in ["toolchains.bzl", "mirror.bzl"] {
        std::fs::copy(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("prelude-hooks/defs")
                .join(f),
            src.join("build/antares").join(f),
        )
        .unwrap();
    }
    sb.ok(
        sb.dir.path(),
        &["init", "--source", &format!("dir:{}", src.display()), "ws"],
    );
    // `cxx_alt` is no default toolchain of the closure's rules: asked for.
    let graph = ["graph", "//app:app", "toolchains//:cxx_alt", "--json"];
    let j = json(&sb.ok(&sb.path("ws"), &graph));
    assert_eq!(
        j["warnings"].as_array().map(Vec::len),
        Some(0),
        "{}",
        j["warnings"]
    );
    assert!(
        j["targets"]["//third_party:zlib"].is_object(),
        "{}",
        j["targets"]
    );
    assert_eq!(
        j["targets"]["toolchains//:cxx_alt"]["kind"], "system_cxx_toolchain",
        "{}",
        j["targets"]
    );
    assert!(
        !j["files"]["build/antares/mirror.bzl"].is_null()
            && !j["files"]["build/antares/toolchains.bzl"].is_null(),
        "{}",
        j["files"]
    );
    // Hermetic mode picks the other rule.
    let cfg = std::fs::read_to_string(src.join("toolchains/.buckconfig"))
        .unwrap()
        .replace("toolchains = system", "toolchains = hermetic");
    std::fs::write(src.join("toolchains/.buckconfig"), cfg).unwrap();
    let j = json(&sb.ok(&sb.path("ws"), &graph));
    assert_eq!(
        j["targets"]["toolchains//:cxx_alt"]["kind"], "downloaded_cxx_toolchain",
        "{}",
        j["targets"]
    );
}

/// A `.bzl` that fails is one warning line naming the innermost place,
/// however many build files load it, followed by a count; `-v` logs the
/// whole error (with starlark's source excerpt).
#[test]
fn a_failing_bzl_is_one_short_warning_and_a_count() {
    let sb = Sandbox::with_files(&[
        (".buckconfig", "[cells]\nroot = .\n"),
        (
            "defs/bad.bzl",
            "def mk(name):\n    pass\nboom = 1 + \"a\"\n",
        ),
        (
            "a/BUCK",
            "load(\"//defs:bad.bzl\", \"mk\")\nx(name = \"a\", deps = [\"//b:b\"])\n",
        ),
        (
            "b/BUCK",
            "load(\"//defs:bad.bzl\", \"mk\")\nx(name = \"b\")\n",
        ),
    ]);
    let out = sb.run(&sb.path("ws"), &["graph", "//a:a"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warnings.len(), 2, "{stderr}");
    assert!(
        warnings[0].starts_with("warning: could not evaluate defs/bad.bzl:3:8: "),
        "{stderr}"
    );
    assert!(
        warnings[1].contains("1 file(s) could not be evaluated"),
        "{stderr}"
    );
    let verbose = sb.run(&sb.path("ws"), &["graph", "-v", "//a:a"]);
    let stderr = String::from_utf8_lossy(&verbose.stderr);
    assert!(stderr.contains("boom = 1 + \"a\""), "{stderr}");
}

#[test]
fn a_no_op_resync_evaluates_nothing() {
    let sb = Sandbox::example_workspace();
    let ws = sb.path("ws");
    let first = json(&sb.ok(&ws, &["sync", "//app/server:server", "--json"]));
    assert!(
        first["graph"]["evaluations"].as_u64() > Some(0) && first["graph"]["cached"] == false,
        "{first}"
    );
    let again = json(&sb.ok(&ws, &["sync", "--json"]));
    assert_eq!(again["graph"]["evaluations"], 0, "{again}");
    assert_eq!(again["graph"]["cached"], true, "{again}");
    assert_eq!(again["summary"]["unchanged"], SERVER_FILES.len());
    // A changed build file is evaluated again.
    let buck = sb.path("src/lib/util/BUCK");
    let text = std::fs::read_to_string(&buck).unwrap();
    std::fs::write(&buck, format!("{text}\n# edited\n")).unwrap();
    let third = json(&sb.ok(&ws, &["sync", "--json"]));
    assert!(third["graph"]["evaluations"].as_u64() > Some(0), "{third}");
}

/// A pattern in another cell that matches nothing, and an unknown cell,
/// are errors naming the pattern (and the project's cells), as a root-cell
/// pattern matching nothing is: never an empty selection with exit 0.
#[test]
fn a_pattern_of_another_cell_matching_nothing_or_an_unknown_cell_is_an_error() {
    let sb = Sandbox::with_files(&[
        (
            ".buckconfig",
            "[cells]\nroot = .\nother = other\nempty = empty\n[cell_aliases]\no = other\n",
        ),
        ("other/.buckconfig", ""),
        ("other/lib/BUCK", "x(name = \"lib\")\n"),
        ("empty/.buckconfig", ""),
        ("empty/README", "no build file here\n"),
        (
            "app/BUCK",
            "x(name = \"app\", deps = [\"other//lib:lib\"])\n",
        ),
    ]);
    let ws = sb.path("ws");
    // What does match, in the cell and through its alias, is accepted.
    for good in [
        "other//lib:lib",
        "o//lib:lib",
        "other//...",
        "root//app:app",
    ] {
        sb.ok(&ws, &["graph", good]);
    }
    for bad in [
        "other//nothing:here",
        "o//lib:nope",
        "empty//...",
        "other//lib/sub:",
    ] {
        let out = sb.run(&ws, &["graph", bad]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{bad}: {stderr}");
        assert!(
            stderr.contains(bad) && stderr.contains("no such target"),
            "{bad}: {stderr}"
        );
        // A sync is refused too, and places nothing.
        let out = sb.run(&ws, &["sync", bad]);
        assert_eq!(out.status.code(), Some(1), "{bad}");
        assert!(!ws.join("other").exists(), "{bad}");
    }
    let out = sb.run(&ws, &["sync", "nosuch//x:y"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("unknown cell \"nosuch\"") && stderr.contains("empty, other, root"),
        "{stderr}"
    );
    let out = sb.run(&ws, &["sync", "@foo"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("@foo"));
}

/// `antares sync --json ARGS` logging how the file set's entries were
/// found: the summary, and that log line.
fn sync_logged(sb: &Sandbox, ws: &std::path::Path, args: &[&str]) -> (serde_json::Value, String) {
    let mut all = vec!["sync", "--json"];
    all.extend(args);
    let out = sb
        .cmd(ws, &all)
        .env("RUST_LOG", "antares::set_entries=debug")
        .output()
        .expect("run antares");
    let stderr = without_colours(&String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "antares {all:?}: {stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("file set entries"))
        .unwrap_or_else(|| panic!("no file set entries line in: {stderr}"))
        .to_string();
    (json(&String::from_utf8_lossy(&out.stdout)), line)
}

/// `text` without ANSI colour sequences (`ESC [ … m`).
fn without_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}

/// A workspace of `//app/server:server` over the example monorepo
/// committed to `repo/` (a `git:` source following its HEAD).
fn git_workspace(upper: bool) -> Sandbox {
    let sb = Sandbox::new();
    let repo = sb.path("repo");
    example_repo(&repo);
    git_commit_all(&repo, "one");
    let spec = format!("git:{}", repo.display());
    sb.ok(sb.dir.path(), &["init", "--source", &spec, "ws"]);
    if upper {
        std::fs::create_dir_all(sb.path("ws/.antares/upper")).unwrap();
    }
    sb.ok(&sb.path("ws"), &["sync", "//app/server:server"]);
    sb
}

fn ws_text(sb: &Sandbox, rel: &str) -> String {
    std::fs::read_to_string(sb.path("ws").join(rel)).unwrap()
}

/// At the same commit a no-op re-sync lists nothing: the entries recorded
/// at the last sync hold. A new commit changing a source file (the graph
/// cache still holds) or a build file is seen all the same.
#[test]
fn a_no_op_resync_at_the_same_commit_lists_nothing_and_sees_new_commits() {
    let sb = git_workspace(false);
    let (ws, repo) = (sb.path("ws"), sb.path("repo"));
    let (j, log) = sync_logged(&sb, &ws, &[]);
    assert!(
        log.contains("relisted=0") && log.contains("same_commit=true"),
        "{log}"
    );
    assert_eq!(j["summary"]["unchanged"], SERVER_FILES.len(), "{j}");

    std::fs::write(repo.join("lib/util/src/lib.rs"), "pub fn changed() {}\n").unwrap();
    git_commit_all(&repo, "a source file");
    let (j, log) = sync_logged(&sb, &ws, &[]);
    assert_eq!(ws_text(&sb, "lib/util/src/lib.rs"), "pub fn changed() {}\n");
    assert_eq!(j["summary"]["updated"], 1, "{j}");
    assert_eq!(j["graph"]["cached"], true, "{j}");
    assert!(log.contains("same_commit=false"), "{log}");

    let buck = repo.join("app/server/BUCK");
    let text = std::fs::read_to_string(&buck).unwrap();
    std::fs::write(&buck, format!("{text}\n# edited\n")).unwrap();
    git_commit_all(&repo, "a build file");
    let (j, _) = sync_logged(&sb, &ws, &[]);
    assert!(j["graph"]["evaluations"].as_u64() > Some(0), "{j}");
    assert!(ws_text(&sb, "app/server/BUCK").ends_with("# edited\n"));
    let (_, log) = sync_logged(&sb, &ws, &[]);
    assert!(log.contains("relisted=0"), "{log}");
}

/// Through the View (an upper layer, as `antares mount` makes) a no-op
/// re-sync lists only directories whose git tree id cannot vouch for them
/// (the merged root), and still sees an edit in the upper layer, a new
/// commit below an unchanged sibling, and a new file in the workspace.
#[test]
fn a_no_op_resync_through_the_view_lists_only_what_changed() {
    let sb = git_workspace(true);
    let (ws, repo, up) = (sb.path("ws"), sb.path("repo"), sb.path("ws/.antares/upper"));
    let (j, log) = sync_logged(&sb, &ws, &[]);
    assert!(log.contains("relisted=1 "), "only the merged root: {log}");
    assert_eq!(j["summary"]["unchanged"], SERVER_FILES.len(), "{j}");

    // An edit in the upper layer (as through the mount).
    std::fs::create_dir_all(up.join("lib/util/src")).unwrap();
    std::fs::write(up.join("lib/util/src/lib.rs"), "pub fn upper() {}\n").unwrap();
    let (_, log) = sync_logged(&sb, &ws, &[]);
    assert!(!log.contains("relisted=1 "), "{log}");
    assert_eq!(ws_text(&sb, "lib/util/src/lib.rs"), "pub fn upper() {}\n");
    // Edited again in place: no directory of the upper layer changes.
    std::fs::write(up.join("lib/util/src/lib.rs"), "pub fn again() {}\n").unwrap();
    sync_logged(&sb, &ws, &[]);
    assert_eq!(ws_text(&sb, "lib/util/src/lib.rs"), "pub fn again() {}\n");

    // A new commit: its changed directories are listed, the rest kept.
    std::fs::write(repo.join("app/server/src/main.rs"), "fn main() { new() }\n").unwrap();
    git_commit_all(&repo, "a source file");
    sync_logged(&sb, &ws, &[]);
    assert_eq!(
        ws_text(&sb, "app/server/src/main.rs"),
        "fn main() { new() }\n"
    );

    // A new file in the workspace, in a directory the untracked scan has
    // cached (listed more than a second before the scan), is written back.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    sync_logged(&sb, &ws, &[]);
    std::fs::write(ws.join("app/server/src/extra.rs"), "// new\n").unwrap();
    let (j, _) = sync_logged(&sb, &ws, &[]);
    assert!(up.join("app/server/src/extra.rs").is_file(), "{j}");
}
