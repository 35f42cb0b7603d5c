//! `antares sync --toolchains system|auto`: the generated `antares-toolchains`
//! cell, the managed `.buckconfig.local` beside a user's own, and (with real
//! buck2, SKIPPED where absent) offline builds of rust, C++ and python in a
//! workspace of a repository shaped like buck2's `examples/with_prelude`.

mod common;

use common::{copy_tree, json, Sandbox};
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

/// A workspace `ws/` of a copy of `fixture` (a `dir:` source at `src/`).
fn workspace(fixture_dir: &Path) -> Sandbox {
    let sb = Sandbox::new();
    copy_tree(fixture_dir, &sb.path("src"));
    let spec = format!("dir:{}", sb.path("src").display());
    sb.ok(sb.dir.path(), &["init", "--source", &spec, "ws"]);
    sb
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn system_generates_the_cell_and_keeps_the_setting() {
    let sb = workspace(&fixture("tests/fixtures/with-prelude"));
    let ws = sb.path("ws");
    let out = sb.run(&ws, &["sync", "--toolchains", "system", "//rust:main"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("toolchains (system):"), "{err}");

    let buck = read(&ws.join("antares-toolchains/BUCK"));
    assert!(
        buck.contains("__antares_system_python_toolchain(\n    name = \"python\""),
        "{buck}"
    );
    assert!(buck.contains("interpreter = \"python3\""), "{buck}");
    assert!(!buck.contains("system_demo_toolchains()"), "{buck}");
    // The cell's other files come along.
    assert!(ws.join("antares-toolchains/.buckconfig").is_file());
    let local = read(&ws.join(".buckconfig.local"));
    assert!(
        local.contains("[cells]\n  toolchains = antares-toolchains\n"),
        "{local}"
    );
    assert!(local.contains("ignore = .antares"), "{local}");

    // Which toolchains were replaced, and the tool each uses.
    let report = json(&sb.ok(&ws, &["graph", "--toolchains", "--json"]));
    let python = report["toolchains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "python")
        .unwrap();
    assert_eq!(python["system_rule"], "system_python_toolchain");
    assert!(
        python["tool"].as_str().unwrap().ends_with("/python3"),
        "{python}"
    );
    let human = sb.ok(&ws, &["graph", "--toolchains"]);
    assert!(human.contains("replaced python"), "{human}");

    // antares' own files are neither added in `status` nor in the source.
    let st = json(&sb.ok(&ws, &["status", "--json"]));
    assert_eq!(st["added"].as_array().unwrap().len(), 0, "{st}");
    assert!(!sb.path("src/antares-toolchains").exists());

    // A plain sync keeps the setting; `repo` takes the cell away again.
    std::fs::remove_file(ws.join("antares-toolchains/BUCK")).unwrap();
    sb.ok(&ws, &["sync"]);
    assert!(ws.join("antares-toolchains/BUCK").is_file());
    sb.ok(&ws, &["sync", "--toolchains", "repo"]);
    assert!(!ws.join("antares-toolchains").exists());
    let local = read(&ws.join(".buckconfig.local"));
    assert!(!local.contains("[cells]"), "{local}");
}

#[test]
fn auto_replaces_only_toolchains_whose_downloads_are_unreachable() {
    let sb = Sandbox::new();
    copy_tree(
        &fixture("buck-integration/tests/toolchains/si"),
        &sb.path("src"),
    );
    // python's download host listens; rust's and clang's do not.
    let live = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let dist = sb.path("src/prelude-si/toolchains");
    for (file, host) in [
        (
            "python_distribution.bzl",
            format!("127.0.0.1:{}", live.local_addr().unwrap().port()),
        ),
        ("rust_distribution.bzl", format!("127.0.0.1:{dead_port}")),
        ("clang_distribution.bzl", format!("127.0.0.1:{dead_port}")),
    ] {
        let p = dist.join(file);
        let text = read(&p)
            .replace("https://", "http://")
            .replace("python.example.invalid", &host)
            .replace("rust.example.invalid", &host)
            .replace("clang.example.invalid", &host);
        std::fs::write(&p, text).unwrap();
    }
    let spec = format!("dir:{}", sb.path("src").display());
    sb.ok(sb.dir.path(), &["init", "--source", &spec, "ws"]);
    let ws = sb.path("ws");
    sb.ok(&ws, &["sync", "--toolchains", "auto", "toolchains"]);
    let report = json(&sb.ok(&ws, &["graph", "--toolchains", "--json"]));
    let get = |n: &str| {
        report["toolchains"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == n)
            .unwrap_or_else(|| panic!("{n} in {report}"))
            .clone()
    };
    assert_eq!(get("python")["kept_because"], "its downloads are reachable");
    assert_eq!(get("rust_debug")["system_rule"], "system_rust_toolchain");
    assert_eq!(get("genrule")["kept_because"], "downloads nothing");
    assert_eq!(
        get("si_rust")["kept_because"],
        "no system rule provides the same"
    );
    let buck = read(&ws.join("antares-toolchains/BUCK"));
    assert!(
        buck.contains("hermetic_python_toolchain(\n    name = \"python\""),
        "{buck}"
    );
    assert!(
        buck.contains("__antares_system_rust_toolchain(\n    name = \"rust_debug\""),
        "{buck}"
    );
    // The cell's own .bzl comes along for the kept toolchain_alias.
    assert!(ws.join("antares-toolchains/toolchain.bzl").is_file());
    // The verdicts are cached.
    let probes = read(&ws.join(".antares/toolchains-probes.json"));
    assert!(
        probes.contains(&format!("127.0.0.1:{dead_port}")),
        "{probes}"
    );
}

#[test]
fn a_users_buckconfig_local_on_the_mount_side_coexists_with_antares_lines() {
    let sb = Sandbox::example_workspace();
    let ws = sb.path("ws");
    sb.ok(&ws, &["sync", "//app/server:server"]);
    // The mount's upper layer (what `antares mount` writes into) gets the
    // user's own file, as if created on the mount.
    let upper = ws.join(".antares/upper");
    std::fs::create_dir_all(&upper).unwrap();
    std::fs::write(upper.join(".buckconfig.local"), "[build]\n  threads = 3\n").unwrap();
    let out = sb.run(&ws, &["sync"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("CONFLICT"), "{err}");
    let local = read(&ws.join(".buckconfig.local"));
    assert!(
        local.starts_with("[build]\n  threads = 3\n# >>> antares"),
        "{local}"
    );
    assert!(local.contains("ignore = docs/drafts, .antares"), "{local}");

    // An edit of the user's lines in the workspace goes back to the mount
    // side, without antares' block.
    let edited = local.replace("threads = 3", "threads = 4");
    std::fs::write(ws.join(".buckconfig.local"), &edited).unwrap();
    sb.ok(&ws, &["sync"]);
    assert_eq!(
        read(&upper.join(".buckconfig.local")),
        "[build]\n  threads = 4\n"
    );
    assert_eq!(read(&ws.join(".buckconfig.local")), edited);
    let st = json(&sb.ok(&ws, &["status", "--json"]));
    assert_eq!(st["conflicts"].as_array().unwrap().len(), 0, "{st}");

    // Both sides changed: the workspace's lines stay (and go back to the
    // mount side), the source's are kept.
    std::fs::write(upper.join(".buckconfig.local"), "[build]\n  threads = 5\n").unwrap();
    std::fs::write(
        ws.join(".buckconfig.local"),
        edited.replace("threads = 4", "threads = 6"),
    )
    .unwrap();
    sb.ok(&ws, &["sync"]);
    assert!(read(&ws.join(".buckconfig.local")).starts_with("[build]\n  threads = 6\n"));
    assert_eq!(
        read(&ws.join(".antares/buckconfig.local.source")),
        "[build]\n  threads = 5\n"
    );
    assert_eq!(
        read(&upper.join(".buckconfig.local")),
        "[build]\n  threads = 6\n"
    );
    // And it stays settled.
    sb.ok(&ws, &["sync"]);
    assert!(read(&ws.join(".buckconfig.local")).starts_with("[build]\n  threads = 6\n"));
}

/// Real buck2 beside the repository (`../shared/tools/buck2`, or one level
/// further up for a worktree), or `None`.
fn real_buck2() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    ["../shared/tools/buck2", "../../shared/tools/buck2"]
        .iter()
        .map(|r| root.join(r))
        .find(|p| p.is_file())
}

/// Kills the buck2 daemon of a workspace when the test ends, passed or not.
struct Daemon<'a> {
    buck2: &'a Path,
    ws: &'a Path,
    home: &'a Path,
}

impl Drop for Daemon<'_> {
    fn drop(&mut self) {
        let _ = buck2_cmd(self.buck2, self.ws, self.home)
            .arg("kill")
            .output();
    }
}

/// buck2 with a throw-away HOME; rustup keeps finding its toolchains.
fn buck2_cmd(buck2: &Path, ws: &Path, home: &Path) -> Command {
    let mut c = Command::new(buck2);
    c.current_dir(ws).env("HOME", home);
    if std::env::var_os("RUSTUP_HOME").is_none() {
        if let Some(h) = std::env::var_os("HOME") {
            c.env("RUSTUP_HOME", Path::new(&h).join(".rustup"));
        }
    }
    c
}

#[test]
fn with_prelude_targets_build_offline_with_system_toolchains() {
    let Some(buck2) = real_buck2() else {
        eprintln!("SKIPPED: no real buck2 at ../shared/tools/buck2");
        return;
    };
    let sb = workspace(&fixture("tests/fixtures/with-prelude"));
    let ws = sb.path("ws");
    let targets = [
        "//rust:main",
        "//cpp/hello_world:main",
        "//python/hello_world:main",
    ];
    let mut args = vec!["sync", "--toolchains", "system"];
    args.extend(targets);
    sb.ok(&ws, &args);
    let home = sb.path("home");
    std::fs::create_dir_all(&home).unwrap();
    let _daemon = Daemon {
        buck2: &buck2,
        ws: &ws,
        home: &home,
    };
    for (target, greeting) in targets.iter().zip(["rust", "cpp", "python"]) {
        let out = buck2_cmd(&buck2, &ws, &home)
            .args(["run", target])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "buck2 run {target} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            stdout.trim(),
            format!("hello from an antares {greeting} toolchain")
        );
    }
}

/// `auto` also replaces a toolchain the repository already declares with a
/// system rule when the tools it would run are not on the machine: buck2's
/// demo `system_cxx_toolchain` runs `clang`/`clang++`, and on a machine
/// with only gcc `buck2 build //rust:main` failed at its link step
/// (`clang++: command not found`) while `cxx` was kept as "downloads nothing".
#[test]
fn auto_replaces_a_system_cxx_toolchain_whose_compilers_are_absent() {
    let which = |name: &str| {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    };
    let Some(tools) = ["gcc", "g++", "sh"]
        .iter()
        .map(|t| which(t).map(|p| (t, p)))
        .collect::<Option<Vec<_>>>()
    else {
        println!("SKIPPED: no gcc, g++ and sh on PATH");
        return;
    };
    let sb = workspace(&fixture("tests/fixtures/with-prelude"));
    // A PATH with gcc and g++ but no clang.
    let bin = sb.path("bin");
    std::fs::create_dir(&bin).unwrap();
    for (name, path) in tools {
        std::os::unix::fs::symlink(path, bin.join(name)).unwrap();
    }
    let ws = sb.path("ws");
    let out = sb
        .cmd(
            &ws,
            &["sync", "--toolchains", "auto", "//cpp/hello_world:main"],
        )
        .env("PATH", &bin)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&sb.ok(&ws, &["graph", "--toolchains", "--json"]));
    let cxx = report["toolchains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "cxx")
        .unwrap_or_else(|| panic!("cxx in {report}"))
        .clone();
    assert_eq!(cxx["system_rule"], "system_cxx_toolchain", "{cxx}");
    assert!(
        cxx["tool"].as_str().is_some_and(|t| t.ends_with("/gcc")),
        "{cxx}"
    );
    let buck = read(&ws.join("antares-toolchains/BUCK"));
    assert!(buck.contains("cxx_compiler = \"g++\""), "{buck}");
}
