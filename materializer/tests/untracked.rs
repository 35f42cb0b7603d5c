//! The untracked-file scan of a sync's selected directories: one walk from
//! the root, `.gitignore` applied from the root down as git does.

use antares_materializer::untracked::untracked;
use antares_overlay::RepoPath;
use std::fs;

fn p(s: &str) -> RepoPath {
    RepoPath::new(s).unwrap()
}

#[test]
fn selected_directories_only_with_gitignores_from_the_root() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    for d in ["lib/a/deep", "lib/b", "lib/c", "bin/x", "buck-out/v2"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::write(root.join(".gitignore"), "*.log\n").unwrap();
    fs::write(root.join("lib/.gitignore"), "generated/\n").unwrap();
    for f in [
        "top.txt",            // on the way to a selected dir: not reported
        "lib/on-the-way.txt", // likewise
        "lib/a/new.rs",
        "lib/a/known.rs",
        "lib/a/debug.log", // ignored by the root .gitignore
        "lib/a/deep/new.txt",
        "lib/b/new.txt",
        "lib/c/not-selected.txt",
        "bin/x/new.sh",
        "buck-out/v2/out",
    ] {
        fs::write(root.join(f), "x").unwrap();
    }
    fs::create_dir_all(root.join("lib/a/generated")).unwrap();
    fs::write(root.join("lib/a/generated/g.rs"), "x").unwrap();
    fs::create_dir_all(root.join("lib/b/skip")).unwrap();
    fs::write(root.join("lib/b/skip/s.txt"), "x").unwrap();

    let under = [
        p("lib/a"),
        p("lib/a/deep"),
        p("lib/b"),
        p("bin/x"),
        p("gone"),
    ];
    let found = untracked(
        root,
        &under,
        &[p("lib/b/skip")],
        &|rel| rel.as_str() == "lib/a/known.rs",
        None,
    );
    let found: Vec<&str> = found.iter().map(RepoPath::as_str).collect();
    assert_eq!(
        found,
        [
            "bin/x/new.sh",
            "lib/a/deep/new.txt",
            "lib/a/new.rs",
            "lib/b/new.txt"
        ]
    );
    // The whole workspace.
    let all = untracked(root, &[RepoPath::root()], &[], &|_| false, None);
    assert_eq!(all.len(), 11, "{all:?}");
}
