//! Editors on the mount: `antares rust-project …` and `antares compdb …`
//! answer with mount paths, with a fake `rust-project`/`buck2` replaying
//! recorded answers (paths of the directory they run in).

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn write_exec(p: &Path, text: &str) {
    fs::write(p, text).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
}

/// The example workspace and a directory standing for its mount, known
/// through the per-user registry (what `antares mount` writes).
fn workspace_and_mount() -> (Sandbox, PathBuf, PathBuf) {
    let sb = Sandbox::example_workspace();
    let ws = sb.path("ws");
    let mnt = sb.path("ws.mount");
    fs::create_dir_all(mnt.join("app/server")).unwrap();
    let registry = sb.path("xdg-state/antares");
    fs::create_dir_all(&registry).unwrap();
    fs::write(
        registry.join("mounts.json"),
        serde_json::to_string(&serde_json::json!({ mnt.to_str().unwrap(): ws })).unwrap(),
    )
    .unwrap();
    (sb, ws, mnt)
}

/// A rust-project that logs its cwd and arguments and prints the answer
/// real rust-project gave for with_prelude's //rust:main (its paths made
/// those of the directory it runs in).
fn fake_rust_project(sb: &Sandbox) -> PathBuf {
    let p = sb.path("fake-rust-project");
    write_exec(
        &p,
        &format!(
            r#"#!/bin/sh
{{ echo "cwd=$(pwd)"; for a in "$@"; do echo "arg=$a"; done; }} > {log}
W=$(pwd)
echo '{{"kind":"progress","message":"finding relevant buck targets"}}'
echo '{{"kind":"finished","buildfile":"'$W'/rust/BUCK","project":{{"sysroot":"/opt/rust","crates":[{{"display_name":"main","root_module":"'$W'/rust/bin/main.rs","source":{{"include_dirs":["'$W'/rust/bin"]}},"build":{{"label":"root//rust:main","build_file":"'$W'/rust/BUCK"}}}}],"runnables":[{{"program":"buck","cwd":"'$W'"}}]}}}}'
"#,
            log = sb.path("rust-project.log").display()
        ),
    );
    p
}

#[test]
fn rust_project_on_the_mount_speaks_mount_paths_both_ways() {
    let (sb, ws, mnt) = workspace_and_mount();
    let fake = fake_rust_project(&sb);
    let file = format!("{}/app/server/main.rs", mnt.display());
    let arg = format!(r#"{{"path":"{file}"}}"#);
    let out = sb
        .cmd(&mnt, &["rust-project", "develop-json", &arg])
        .env("ANTARES_REAL_RUST_PROJECT", &fake)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = fs::read_to_string(sb.path("rust-project.log")).unwrap();
    // Run in the workspace, the file named by its workspace path.
    assert!(log.starts_with(&format!("cwd={}\n", ws.display())), "{log}");
    assert!(
        log.contains(&format!(
            r#"arg={{"path":"{}/app/server/main.rs"}}"#,
            ws.display()
        )),
        "{log}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let finished = json(lines[1]);
    let m = mnt.to_str().unwrap();
    assert_eq!(finished["buildfile"], format!("{m}/rust/BUCK"));
    let krate = &finished["project"]["crates"][0];
    assert_eq!(krate["root_module"], format!("{m}/rust/bin/main.rs"));
    assert_eq!(krate["source"]["include_dirs"][0], format!("{m}/rust/bin"));
    assert_eq!(krate["build"]["build_file"], format!("{m}/rust/BUCK"));
    assert_eq!(finished["project"]["runnables"][0]["cwd"], m);
    assert_eq!(finished["project"]["sysroot"], "/opt/rust");
    assert!(!stdout.contains(&format!("{}/", ws.display())), "{stdout}");

    // `develop` writes its file where the editor runs it, with mount paths.
    sb.ok(&ws, &["sync", "//app/server:server"]);
    let out = sb
        .cmd(
            &mnt.join("app/server"),
            &[
                "rust-project",
                "develop",
                "-o",
                "rp.json",
                "//app/server:server",
            ],
        )
        .env("ANTARES_REAL_RUST_PROJECT", &fake)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = fs::read_to_string(sb.path("rust-project.log")).unwrap();
    assert!(
        log.starts_with(&format!("cwd={}/app/server\n", ws.display())),
        "{log}"
    );
    assert!(
        log.ends_with("arg=//app/server:server\narg=--stdout\n"),
        "{log}"
    );
    let written = fs::read_to_string(mnt.join("app/server/rp.json")).unwrap();
    assert!(
        written.contains(&format!("{m}/app/server/rust/BUCK")),
        "{written}"
    );

    // Run in the workspace itself, nothing is rewritten.
    let out = sb
        .cmd(&ws, &["rust-project", "develop-json", "{}"])
        .env("ANTARES_REAL_RUST_PROJECT", &fake)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("{}/rust/BUCK", ws.display())),
        "{stdout}"
    );
}

#[test]
fn compdb_on_the_mount_names_the_mount() {
    let (sb, ws, mnt) = workspace_and_mount();
    // A buck2 that answers the BXL as real buck2 did for
    // //cpp/hello_world:main: a database under buck-out, printed relative.
    let fake = sb.path("fake-buck2");
    write_exec(
        &fake,
        r#"#!/bin/sh
W=$(pwd)
D=buck-out/v2/art-bxl/prelude/x/compile_commands.json
mkdir -p "$(dirname "$D")"
cat > "$D" <<EOF
[
  {
    "arguments": ["g++", "-I", ".", "-I$W/include", "@buck-out/v2/art/root/app/server/argsfile", "-c", "app/server/main.cpp"],
    "directory": "$W",
    "file": "app/server/main.cpp"
  }
]
EOF
echo "$D"
"#,
    );
    let out = sb
        .cmd(&mnt.join("app/server"), &["compdb", ":server"])
        .env("ANTARES_REAL_BUCK2", &fake)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db = json(&fs::read_to_string(mnt.join("compile_commands.json")).unwrap());
    let m = mnt.to_str().unwrap();
    assert_eq!(db[0]["directory"], m);
    assert_eq!(db[0]["file"], "app/server/main.cpp");
    assert_eq!(db[0]["arguments"][3], format!("-I{m}/include"));
    assert_eq!(
        db[0]["arguments"][4],
        "@buck-out/v2/art/root/app/server/argsfile"
    );
    // The targets were synced first.
    assert!(ws.join("app/server/BUCK").is_file());
}

/// A tool from `../shared/tools` beside the repository (or one level
/// further up, for a worktree).
fn shared_tool(name: &str) -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    ["../shared/tools", "../../shared/tools"]
        .iter()
        .map(|d| root.join(d).join(name))
        .find(|p| p.is_file())
}

/// Unmounts (buck-out first) and stops buck2 when the test ends.
struct Cleanup {
    mnt: PathBuf,
    buck2: PathBuf,
    ws: PathBuf,
    home: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.buck2)
            .arg("kill")
            .current_dir(&self.ws)
            .env("HOME", &self.home)
            .output();
        for lazy in [false, true] {
            for p in [self.mnt.join("buck-out"), self.mnt.clone()] {
                let mut c = std::process::Command::new("umount");
                if lazy {
                    c.arg("-l");
                }
                let _ = c.arg(p).output();
            }
        }
    }
}

#[test]
fn real_tools_on_the_mount_clangd_and_rust_project() {
    let (Some(buck2), Some(rust_project)) = (shared_tool("buck2"), shared_tool("rust-project"))
    else {
        eprintln!("SKIPPED: no real buck2/rust-project in ../shared/tools");
        return;
    };
    if let Err(why) = can_mount() {
        eprintln!("SKIPPED: cannot mount: {why}");
        return;
    }
    let sb = Sandbox::new();
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/with-prelude"),
        &sb.path("src"),
    );
    let spec = format!("dir:{}", sb.path("src").display());
    sb.ok(sb.dir.path(), &["init", "--source", &spec, "ws"]);
    let (ws, mnt, home) = (sb.path("ws"), sb.path("ws.mount"), sb.path("home"));
    fs::create_dir_all(&home).unwrap();
    let _cleanup = Cleanup {
        mnt: mnt.clone(),
        buck2: buck2.clone(),
        ws: ws.clone(),
        home: home.clone(),
    };
    sb.ok(
        &ws,
        &[
            "sync",
            "--toolchains",
            "system",
            "//rust:main",
            "//cpp/hello_world:main",
        ],
    );
    sb.ok(&ws, &["mount", mnt.to_str().unwrap()]);
    let tools_dir = buck2.parent().unwrap();
    let path = format!(
        "{}:{}",
        tools_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let rustup_home = std::env::var_os("RUSTUP_HOME").unwrap_or_else(|| {
        Path::new(&std::env::var_os("HOME").unwrap_or_default())
            .join(".rustup")
            .into()
    });
    let tool = |cwd: &Path, args: &[&str]| {
        let mut c = sb.cmd(cwd, args);
        c.env("HOME", &home)
            .env("RUSTUP_HOME", &rustup_home)
            .env("PATH", &path)
            .env("ANTARES_REAL_BUCK2", &buck2)
            .env("ANTARES_REAL_RUST_PROJECT", &rust_project);
        c
    };
    let run = |cwd: &Path, args: &[&str]| {
        let out = tool(cwd, args).output().unwrap();
        assert!(
            out.status.success(),
            "antares {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let m = mnt.to_str().unwrap();

    // rust-analyzer's project model, from the mount, in mount paths.
    let out = run(
        &mnt.join("rust"),
        &["rust-project", "develop-json", r#"{"label":"//rust:main"}"#],
    );
    let finished = out
        .lines()
        .map(json)
        .find(|l| l["kind"] == "finished")
        .unwrap_or_else(|| panic!("no finished line in {out}"));
    let crates = finished["project"]["crates"].as_array().unwrap();
    let main = crates.iter().find(|c| c["display_name"] == "main").unwrap();
    assert_eq!(main["root_module"], format!("{m}/rust/bin/main.rs"));
    assert_eq!(finished["buildfile"], format!("{m}/rust/BUCK"));
    assert!(!out.contains(&format!("{}/", ws.display())), "{out}");
    eprintln!(
        "rust-project develop-json on the mount: {}",
        finished["buildfile"]
    );

    // Diagnostics on save: an edit made on the mount reaches the workspace
    // before rust-project checks, and its spans name the mount's file.
    let main_rs = mnt.join("rust/bin/main.rs");
    let good = fs::read_to_string(&main_rs).unwrap();
    fs::write(&main_rs, "fn main() { let x: u32 = \"not a number\"; }\n").unwrap();
    let out = tool(
        &mnt.join("rust"),
        &["rust-project", "check", main_rs.to_str().unwrap()],
    )
    .output()
    .unwrap();
    fs::write(&main_rs, good).unwrap();
    let diagnostics = String::from_utf8_lossy(&out.stdout);
    assert!(
        diagnostics.contains("mismatched types")
            && diagnostics.contains(&format!("{m}/rust/bin/main.rs")),
        "rust-project check: {diagnostics}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !diagnostics.contains(&format!("{}/", ws.display())),
        "{diagnostics}"
    );
    eprintln!(
        "rust-project check on the mount: {}",
        diagnostics.lines().count()
    );

    // The compilation database, at the mount root, and clangd on a mount file.
    run(&mnt.join("cpp/hello_world"), &["compdb", ":main"]);
    let db = json(&fs::read_to_string(mnt.join("compile_commands.json")).unwrap());
    assert_eq!(db[0]["directory"], m, "{db}");
    let argsfile = db[0]["arguments"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str()?.strip_prefix('@'))
        .next()
        .expect("an @argsfile");
    assert!(
        mnt.join(argsfile).is_file(),
        "{argsfile} does not resolve on the mount"
    );
    match which("clangd") {
        None => eprintln!("SKIPPED clangd check: no clangd on PATH"),
        Some(clangd) => {
            let file = mnt.join("cpp/hello_world/main.cpp");
            let out = std::process::Command::new(clangd)
                .arg(format!("--check={}", file.display()))
                .current_dir(&mnt)
                .output()
                .unwrap();
            let log = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "clangd --check failed:\n{log}");
            assert!(
                log.contains(&format!(
                    "Loaded compilation database from {m}/compile_commands.json"
                )),
                "{log}"
            );
            // Its headers come through the mount's buck-out (the workspace's).
            assert!(log.contains("buck-out/v2/art/root/cpp/library"), "{log}");
            assert!(!log.contains("[pp_file_not_found]"), "{log}");
            assert!(log.contains("All checks completed, 0 errors"), "{log}");
        }
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
