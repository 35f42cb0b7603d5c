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
