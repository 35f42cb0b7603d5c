//! `.buckconfig` parsing through the public API: values, includes,
//! interpolation, cells and aliases, and errors that name file and line.

use antares_buck::{parse_pattern, project_cells, BuckError, PatternKind};
use antares_overlay::{DirSource, RepoPath};
use std::fs;
use std::path::Path;

fn write(root: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let p = root.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
}

fn cells_of(files: &[(&str, &str)]) -> Result<antares_buck::Cells, BuckError> {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), files);
    project_cells(&DirSource::open(tmp.path()).unwrap())
}

fn config_error(files: &[(&str, &str)]) -> (String, usize, String) {
    match cells_of(files) {
        Err(BuckError::Config {
            file,
            line,
            message,
        }) => (file, line, message),
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn values_includes_continuations_and_later_keys() {
    let cells = cells_of(&[
        (
            ".buckconfig",
            "# comment\n; another\n[cells]\n  root = .\n  lib = libs/x/\n[cell_aliases]\n  l = lib\n\
             [a]\n  list = one, two ,\\\n    three\n  quoted = \"x = \\\"y\\\"\"\n<file:inc/more.buckconfig>\n",
        ),
        ("inc/more.buckconfig", "[a]\n  from_include = yes\n"),
        (".buckconfig.d/z.buckconfig", "[b]\n  c = $(config b.d)-$(config a.from_include)\n  d = later\n"),
        (".buckconfig.local", "[a]\n  quoted = local wins\n"),
        ("libs/x/.buckconfig", "[buildfile]\n  name = BUILD\n"),
    ])
    .unwrap();
    let root = cells.root_cell().unwrap();
    assert_eq!(root.config.get("b", "c"), Some("later-yes"));
    assert_eq!(
        root.config.list("a", "list").unwrap(),
        vec!["one", "two", "three"]
    );
    assert_eq!(root.config.get("a", "quoted"), Some("local wins"));
    assert_eq!(root.buildfiles, vec!["BUCK.v2", "BUCK"]);
    let files: Vec<&str> = root.config.files.iter().map(RepoPath::as_str).collect();
    assert_eq!(
        files,
        vec![
            ".buckconfig.d/z.buckconfig",
            ".buckconfig",
            "inc/more.buckconfig",
            ".buckconfig.local"
        ]
    );
    let lib = cells.resolve("root", "l").unwrap();
    assert_eq!((lib.name.as_str(), lib.path.as_str()), ("lib", "libs/x"));
    assert_eq!(lib.buildfiles, vec!["BUILD.v2", "BUILD"]);

    let p = parse_pattern("l//a/b:c", &cells, &RepoPath::root()).unwrap();
    assert_eq!(
        (p.cell.as_str(), p.package.as_str(), p.kind),
        ("lib", "a/b", PatternKind::Target("c".into()))
    );
    let p = parse_pattern("...", &cells, &RepoPath::new("libs/x/sub").unwrap()).unwrap();
    assert_eq!(
        (p.cell.as_str(), p.package.as_str(), p.kind),
        ("lib", "sub", PatternKind::Recursive)
    );
    let p = parse_pattern("@//app:", &cells, &RepoPath::root()).unwrap();
    assert_eq!((p.cell.as_str(), p.kind), ("root", PatternKind::Package));
}

#[test]
fn malformed_config_names_file_line_and_problem() {
    let (file, line, message) = config_error(&[(".buckconfig", "[cells]\n  root = .\n[broken\n")]);
    assert_eq!((file.as_str(), line), (".buckconfig", 3));
    assert!(message.contains("closing ']'"), "{message}");

    let (file, line, message) =
        config_error(&[(".buckconfig", "[cells]\nroot = .\n<file:nope.buckconfig>\n")]);
    assert_eq!((file.as_str(), line), (".buckconfig", 3));
    assert!(
        message.contains("nope.buckconfig does not exist"),
        "{message}"
    );

    let (file, line, message) = config_error(&[(".buckconfig", "key = value\n")]);
    assert_eq!((file.as_str(), line), (".buckconfig", 1));
    assert!(message.contains("before any [section]"), "{message}");

    let (file, line, message) = config_error(&[
        (".buckconfig", "[cells]\n root = .\n"),
        (
            ".buckconfig.d/x",
            "[a]\n b = $(config a.c)\n c = $(config a.b)\n",
        ),
    ]);
    assert_eq!(file, ".buckconfig.d/x");
    assert!(line == 2 || line == 3);
    assert!(message.contains("cycle"), "{message}");

    let (_, line, message) = config_error(&[(".buckconfig", "[a]\n\n  just words\n")]);
    assert_eq!(line, 3);
    assert!(message.contains("key = value"), "{message}");

    assert!(matches!(
        cells_of(&[("BUCK", "")]),
        Err(BuckError::NotAProject(_))
    ));
}
