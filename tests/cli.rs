//! The command line itself: exit statuses that scripts can rely on.

mod common;

use common::Sandbox;

#[test]
fn usage_errors_exit_64_never_the_conflicts_status() {
    let sb = Sandbox::new();
    for args in [
        &["--no-such-flag"][..],
        &["no-such-command"],
        &["sync", "--bogus"],
        &["resolve", "x"],
    ] {
        let out = sb.run(sb.dir.path(), args);
        assert_eq!(out.status.code(), Some(64), "antares {args:?}: {out:?}");
        assert!(!out.stderr.is_empty(), "antares {args:?} said nothing");
    }
    let out = sb.run(sb.dir.path(), &["--help"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("sync"));
}

#[test]
fn status_quotes_names_like_git_so_one_path_is_one_line() {
    let sb = Sandbox::example_workspace();
    let ws = sb.path("ws");
    sb.ok(&ws, &["sync", "."]);
    std::fs::write(ws.join("M fake\nA"), "x").unwrap();
    std::fs::write(ws.join("tab\there \"q\" é"), "x").unwrap();
    std::fs::write(ws.join("plain name"), "x").unwrap();
    let out = sb.ok(&ws, &["status"]);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            r#"A "M fake\nA""#,
            r#"A "tab\there \"q\" \303\251""#,
            "A plain name"
        ],
        "{out}"
    );
}

#[test]
fn hooks_install_never_replaces_a_buck2_that_is_not_the_wrapper_unless_forced() {
    let sb = Sandbox::new();
    let dir = sb.path("bin");
    std::fs::create_dir_all(&dir).unwrap();
    let real = "#!/bin/sh\necho the real buck2\n";
    std::fs::write(dir.join("buck2"), real).unwrap();
    let d = dir.to_str().unwrap();
    let out = sb.run(sb.dir.path(), &["hooks", "install", "--dir", d]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&dir.join("buck2").display().to_string()) && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(dir.join("buck2")).unwrap(), real);
    sb.ok(sb.dir.path(), &["hooks", "install", "--dir", d, "--force"]);
    let wrapper = std::fs::read_to_string(dir.join("buck2")).unwrap();
    assert!(wrapper.contains("antares"), "{wrapper}");
    // Our own wrapper (an older one, say) is replaced without asking.
    std::fs::write(dir.join("buck2"), wrapper.replace("exec", "exec ")).unwrap();
    sb.ok(sb.dir.path(), &["hooks", "install", "--dir", d]);
    assert_eq!(std::fs::read_to_string(dir.join("buck2")).unwrap(), wrapper);
}

#[test]
fn a_pattern_naming_no_cell_or_nothing_is_an_error_and_keeps_the_selection() {
    let sb = Sandbox::example_workspace();
    let ws = sb.path("ws");
    sb.ok(&ws, &["sync", "//lib/util:util"]);
    let placed = ws.join("lib/util/src/lib.rs");
    assert!(placed.is_file());
    for bad in [
        "@foo",
        "@/etc/passwd",
        "@nosuchcell//x:y",
        "nosuchcell//x:y",
    ] {
        let out = sb.run(&ws, &["sync", bad]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{bad}: {stderr}");
        assert!(
            stderr.contains(bad),
            "{bad}: the error does not name it: {stderr}"
        );
        assert!(placed.is_file(), "{bad} emptied the selection");
    }
}
