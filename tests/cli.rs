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
