//! The buck2 wrapper (prelude-hooks/bin/buck2) end to end, with a fake
//! `buck2` that records its cwd, argv and exit code.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A sandbox with a workspace over the example monorepo, the wrapper
/// installed by `antares hooks install`, and a fake buck2 after it on PATH.
struct Setup {
    sb: Sandbox,
    bin: PathBuf,
    fake_dir: PathBuf,
    log: PathBuf,
}

fn write_exec(p: &Path, text: &str) {
    fs::write(p, text).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
}

fn setup() -> Setup {
    let sb = Sandbox::example_workspace();
    let bin = sb.path("wrapper-bin");
    sb.ok(
        sb.dir.path(),
        &["hooks", "install", "--dir", bin.to_str().unwrap()],
    );
    let fake_dir = sb.path("fake-bin");
    fs::create_dir_all(&fake_dir).unwrap();
    let log = sb.path("buck2.log");
    write_exec(
        &fake_dir.join("buck2"),
        &format!(
            "#!/bin/sh\n{{ echo \"cwd=$(pwd)\"; for a in \"$@\"; do echo \"arg=$a\"; done; }} > {}\nexit ${{FAKE_BUCK2_EXIT:-0}}\n",
            log.display()
        ),
    );
    Setup {
        sb,
        bin,
        fake_dir,
        log,
    }
}

impl Setup {
    /// Runs the wrapper with the wrapper, then the fake buck2, first on PATH.
    fn output(&self, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        let path = format!(
            "{}:{}:{}",
            self.bin.display(),
            self.fake_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut c = Command::new(self.bin.join("buck2"));
        c.args(args)
            .current_dir(cwd)
            .env("PATH", path)
            .env("ANTARES_BIN", env!("CARGO_BIN_EXE_antares"))
            .env("XDG_CACHE_HOME", self.sb.path("xdg-cache"))
            .env("XDG_STATE_HOME", self.sb.path("xdg-state"))
            .env_remove("ANTARES_REAL_BUCK2")
            .env_remove("ANTARES_ON_MOUNT")
            .envs(env.iter().copied());
        c.output().unwrap()
    }
    fn run(&self, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
        let out = self.output(cwd, args, env);
        let _ = fs::remove_file(&self.log);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
    fn run_logged(&self, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, Vec<String>) {
        let out = self.output(cwd, args, env);
        assert!(
            self.log.exists(),
            "the fake buck2 did not run: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let log = fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        fs::remove_file(&self.log).unwrap();
        (out.status.code().unwrap_or(-1), log)
    }
}

#[test]
fn build_syncs_the_targets_then_runs_buck2_in_the_workspace() {
    let s = setup();
    let ws = s.sb.path("ws");
    let (code, log) = s.run_logged(
        &ws,
        &[
            "build",
            "//app/server:server",
            "--show-output",
            "-c",
            "a.b=c d",
        ],
        &[],
    );
    assert_eq!(code, 0);
    assert_eq!(log[0], format!("cwd={}", ws.display()));
    assert_eq!(
        &log[1..],
        [
            "arg=build",
            "arg=//app/server:server",
            "arg=--show-output",
            "arg=-c",
            "arg=a.b=c d"
        ]
    );
    // The sync happened: the target's sources are in the workspace.
    assert!(ws.join("app/server/src/main.rs").exists() && ws.join("lib/util/src/lib.rs").exists());
}

#[test]
fn relative_pattern_args_after_dashdash_and_exit_code_pass_through() {
    let s = setup();
    let ws = s.sb.path("ws");
    fs::create_dir_all(ws.join("app/cli")).unwrap();
    let (code, log) = s.run_logged(
        &ws.join("app/cli"),
        &["run", ":cli", "--", "--flag", "x y"],
        &[("FAKE_BUCK2_EXIT", "3")],
    );
    assert_eq!(code, 3);
    assert_eq!(log[0], format!("cwd={}", ws.join("app/cli").display()));
    assert_eq!(
        &log[1..],
        ["arg=run", "arg=:cli", "arg=--", "arg=--flag", "arg=x y"]
    );
    // `:cli` was resolved against app/cli and synced (with --add: both targets' files stay).
    assert!(ws.join("app/cli/main.rs").exists() && ws.join("lib/proto/version.txt").exists());
    let cfg = fs::read_to_string(ws.join(".antares/config.toml")).unwrap();
    assert!(cfg.contains("//app/cli:cli"), "{cfg}");
}

#[test]
fn commands_without_targets_do_not_sync() {
    let s = setup();
    let ws = s.sb.path("ws");
    for cmd in ["kill", "clean", "log"] {
        let (code, log) = s.run_logged(&ws, &[cmd], &[]);
        assert_eq!(code, 0);
        assert_eq!(
            log,
            vec![format!("cwd={}", ws.display()), format!("arg={cmd}")]
        );
    }
    assert!(!ws.join("app").exists(), "a target-less command synced");
}

#[test]
fn real_buck2_choice_mount_fallback_and_errors() {
    let s = setup();
    let ws = s.sb.path("ws");
    // ANTARES_REAL_BUCK2 wins over PATH.
    let other = s.sb.path("other-buck2");
    write_exec(
        &other,
        &format!("#!/bin/sh\necho other > {}\n", s.log.display()),
    );
    let (_, log) = s.run_logged(
        &ws,
        &["kill"],
        &[("ANTARES_REAL_BUCK2", other.to_str().unwrap())],
    );
    assert_eq!(log, vec!["other"]);
    // ANTARES_ON_MOUNT=1 runs right here, without syncing.
    let here = s.sb.path("elsewhere");
    fs::create_dir_all(&here).unwrap();
    let (_, log) = s.run_logged(
        &here,
        &["build", "//app/server:server"],
        &[("ANTARES_ON_MOUNT", "1")],
    );
    assert_eq!(log[0], format!("cwd={}", here.display()));
    assert!(!ws.join("app").exists());
    // An unknown target: antares says why, buck2 is not run (no mount to fall back to).
    let (code, err) = s.run(&ws, &["build", "//no/such:target"], &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no/such") && err.contains("not running buck2"),
        "{err}"
    );
    // No real buck2 at all.
    fs::remove_file(s.fake_dir.join("buck2")).unwrap();
    let out = Command::new(s.bin.join("buck2"))
        .arg("build")
        .env("PATH", format!("{}:/usr/bin:/bin", s.bin.display()))
        .current_dir(&ws)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no real buck2"));
}

#[test]
fn mount_paths_in_arguments_reach_buck2_as_workspace_paths() {
    let s = setup();
    let ws = s.sb.path("ws");
    // A directory standing for the mount, known to antares through the
    // per-user registry (what `antares mount` writes).
    let mnt = s.sb.path("ws.mount");
    fs::create_dir_all(mnt.join("app/server")).unwrap();
    let registry = s.sb.path("xdg-state/antares");
    fs::create_dir_all(&registry).unwrap();
    fs::write(
        registry.join("mounts.json"),
        serde_json::to_string(&serde_json::json!({ mnt.to_str().unwrap(): ws })).unwrap(),
    )
    .unwrap();
    let file = format!("{}/app/server/main.rs", mnt.display());
    let (code, log) = s.run_logged(
        &mnt.join("app/server"),
        &[
            "bxl",
            "prelude//rust/rust-analyzer/resolve_deps.bxl:resolve_owning_buildfile",
            "--",
            "--files",
            &file,
            &format!("--root={}", mnt.display()),
        ],
        &[],
    );
    assert_eq!(code, 0, "{log:?}");
    assert_eq!(log[0], format!("cwd={}/app/server", ws.display()));
    assert!(
        log.contains(&format!("arg={}/app/server/main.rs", ws.display())),
        "{log:?}"
    );
    assert!(
        log.contains(&format!("arg=--root={}", ws.display())),
        "{log:?}"
    );

    // The fallback runs on the mount under its own isolation dir, with the
    // arguments as given.
    let (code, log) = s.run_logged(
        &mnt,
        &["build", "//app/server:server"],
        &[("ANTARES_ON_MOUNT", "1")],
    );
    assert_eq!(code, 0);
    assert_eq!(log[0], format!("cwd={}", mnt.display()));
    assert_eq!(log[1..3], ["arg=--isolation-dir", "arg=antares-mount"]);
}
