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
