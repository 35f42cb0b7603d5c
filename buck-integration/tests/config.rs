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

/// The root cell's configuration of a project made of `files`.
fn root_config(files: &[(&str, &str)]) -> antares_buck::BuckConfig {
    let cells = cells_of(files).unwrap();
    cells.root_cell().unwrap().config.clone()
}

#[test]
fn section_header_may_end_in_a_comment() {
    // prelude/.buckconfig of buck2 and systeminit/si hides sections this way.
    let c = root_config(&[(
        ".buckconfig",
        "[repository_aliases]\n[not_repository_aliases] # @oss-enable\nconfig = x\n\
         [s2#name]\nk = v\n[ spaced ]\nk = w\n",
    )]);
    assert_eq!(c.get("not_repository_aliases", "config"), Some("x"));
    assert!(c.has_section("repository_aliases"));
    assert_eq!(c.section("repository_aliases").count(), 0);
    // Only ` #` starts a comment; the name is kept as written.
    assert_eq!(c.get("s2#name", "k"), Some("v"));
    assert_eq!(c.get(" spaced ", "k"), Some("w"));
}

#[test]
fn continuations_join_trimmed_lines_without_a_separator() {
    let c = root_config(&[(
        ".buckconfig",
        "[a]\n  multi = hello \\\n        world\\\n   !\n\
         # a comment continued \\\n  hidden = yes\n\
         spec = \\\n  x->y \\\n  z->w \\\n\n  after = 1\n",
    )]);
    assert_eq!(c.get("a", "multi"), Some("hello world!"));
    assert_eq!(
        c.get("a", "hidden"),
        None,
        "a continued comment swallows the next line"
    );
    assert_eq!(c.get("a", "spec"), Some("x->y z->w"));
    assert_eq!(c.get("a", "after"), Some("1"));
}

#[test]
fn comment_lines_and_verbatim_values() {
    let c = root_config(&[(
        ".buckconfig",
        "; semicolon comment\n# hash comment\nbefore = any section\n[a]\n\
         k = v # not a comment\n  q = \"quoted\"\n eq = a=b\n",
    )]);
    assert_eq!(c.get("__unspecified__", "before"), Some("any section"));
    assert_eq!(c.get("a", "k"), Some("v # not a comment"));
    assert_eq!(c.get("a", "q"), Some("\"quoted\""));
    assert_eq!(c.get("a", "eq"), Some("a=b"));
}

#[test]
fn includes_are_relative_to_the_including_file_and_share_the_section() {
    let c = root_config(&[
        (
            ".buckconfig",
            "[opened]\n<?file:conf/base>\n<file:conf/switch>\nkey = wild\n\
             <?file:conf/missing>\n<?file:/etc/antares-absent-config>\n",
        ),
        ("conf/base", "base = okay\n"),
        ("conf/switch", "[switched]\n<file:deep/dir/up>\n"),
        ("conf/deep/dir/up", "<file:../../base>\n"),
    ]);
    assert_eq!(c.get("opened", "base"), Some("okay"));
    assert_eq!(c.get("switched", "base"), Some("okay"));
    assert_eq!(
        c.get("switched", "key"),
        Some("wild"),
        "the include switched the section"
    );
    let files: Vec<&str> = c.files.iter().map(RepoPath::as_str).collect();
    assert_eq!(
        files,
        vec![
            ".buckconfig",
            "conf/base",
            "conf/switch",
            "conf/deep/dir/up",
            "conf/base"
        ]
    );

    let (file, line, message) = config_error(&[(".buckconfig", "[a]\n<file:/etc/passwd>\n")]);
    assert_eq!((file.as_str(), line), (".buckconfig", 2));
    assert!(message.contains("absolute path"), "{message}");
    let (file, line, message) = config_error(&[
        ("sub/x", "<file:../../out>\n"),
        (".buckconfig", "<file:sub/x>\n"),
    ]);
    assert_eq!((file.as_str(), line), ("sub/x", 1));
    assert!(message.contains("leaves the project"), "{message}");
}

#[test]
fn interpolation_as_buck2_resolves_it() {
    let c = root_config(&[
        (
            ".buckconfig",
            "[s1]\nr1 = r1<$(config s3.r2)>\n[s2]\nr1 = r2_1<$(config s3.r1)>\n\
             [s3]\nr1 = r3_1<$(config s1.r1), $(config s3.r2)>\nr2 = r3_2\n\
             [simple]\ns1 = $(config simple.s2)$(config simple.s2)\ns2 = x\n\
             [dots]\nk = $(config a.b.c)|$(config none.here)|$(config open\n\
             [a]\nb.c = dotted\n[l]\nv = $(config l.w)\nw = file\n",
        ),
        (".buckconfig.local", "[l]\nw = local\n"),
    ]);
    assert_eq!(c.get("s2", "r1"), Some("r2_1<r3_1<r1<r3_2>, r3_2>>"));
    assert_eq!(c.get("simple", "s1"), Some("xx"));
    // Split at the first dot; undefined is empty; unterminated is literal.
    assert_eq!(c.get("dots", "k"), Some("dotted||$(config open"));
    // Resolved after every file: the local override is what is referenced.
    assert_eq!(c.get("l", "v"), Some("local"));

    let (_, _, message) = config_error(&[(
        ".buckconfig",
        "[x]\na = $(config x.b)\nb = $(config x.c)\nc = $(config x.d)\nd = $(config x.b)\n",
    )]);
    assert!(
        message.contains("`x.b` -> `x.c` -> `x.d` -> `x.b`"),
        "{message}"
    );
}

#[test]
fn repositories_stand_for_cells_and_one_alias_section_counts() {
    let cells = cells_of(&[
        (
            ".buckconfig",
            "[repositories]\nroot = .\nother = ./a/../other/\n\
             [repository_aliases]\nignored = other\n[cell_aliases]\no = other\n",
        ),
        ("other/.buckconfig", "[repository_aliases]\nr = root\n"),
    ])
    .unwrap();
    assert_eq!(cells.get("other").unwrap().path.as_str(), "other");
    assert_eq!(cells.resolve("root", "o").unwrap().name, "other");
    assert!(cells.resolve("root", "ignored").is_none());
    assert_eq!(cells.resolve("other", "r").unwrap().name, "root");

    // `[cells]` wins over `[repositories]`.
    let cells = cells_of(&[(
        ".buckconfig",
        "[cells]\nroot = .\nnew = n\n[repositories]\nold = o\n",
    )])
    .unwrap();
    assert!(cells.get("new").is_some() && cells.get("old").is_none());

    let (_, _, message) = config_error(&[(".buckconfig", "[cells]\nroot = .\nx = ../up\n")]);
    assert!(message.contains("leaves the project"), "{message}");
}

#[test]
fn buildfile_names_follow_name_v2_then_name() {
    let cells = cells_of(&[
        (
            ".buckconfig",
            "[cells]\nroot = .\nv2 = v2\nv1 = v1\n[buildfile]\nname_v2 = TARGETS,BUCK\nname = IGNORED\n",
        ),
        ("v1/.buckconfig", "[buildfile]\nname = BUILD, BUCK\n"),
        ("v2/.buckconfig", "[other]\nk = v\n"),
    ])
    .unwrap();
    assert_eq!(
        cells.root_cell().unwrap().buildfiles,
        vec!["TARGETS", "BUCK"]
    );
    assert_eq!(
        cells.get("v1").unwrap().buildfiles,
        vec!["BUILD.v2", "BUILD", "BUCK.v2", "BUCK"]
    );
    // A cell does not inherit the root's `[buildfile]`.
    assert_eq!(cells.get("v2").unwrap().buildfiles, vec!["BUCK.v2", "BUCK"]);
}

#[test]
fn project_ignore_of_each_cell_is_relative_to_it() {
    let cells = cells_of(&[
        (
            ".buckconfig",
            "[cells]\nroot = .\nsub = lib/sub\n[project]\nignore = .git, app/**/node_modules, tmp/\n",
        ),
        ("lib/sub/.buckconfig", "[project]\nignore = generated\n"),
    ])
    .unwrap();
    let covers = |p: &str| cells.ignore.covers(&RepoPath::new(p).unwrap());
    assert!(covers(".git/config"));
    assert!(covers("app/x/y/node_modules/m/index.js"));
    assert!(covers("tmp/a"));
    assert!(covers("buck-out/v2/x"));
    assert!(covers("lib/sub/generated/f"));
    assert!(!covers("generated/f"));
    assert!(!covers("app/node_modules_not/x"));
    assert!(!covers("src/tmp.rs"));
}

#[test]
fn buckconfig_d_is_read_recursively_in_name_order_before_the_rest() {
    let c = root_config(&[
        (".buckconfig.d/b/inner", "[k]\nv = b-inner\nb = 1\n"),
        (".buckconfig.d/a", "[k]\nv = a\na = 1\n"),
        (".buckconfig.d/c", "[k]\nv = c\n"),
        (".buckconfig", "[cells]\nroot = .\n[k]\nmain = 1\n"),
        (".buckconfig.local", "[k]\nv = local\n"),
    ]);
    let files: Vec<&str> = c.files.iter().map(RepoPath::as_str).collect();
    assert_eq!(
        files,
        vec![
            ".buckconfig.d/a",
            ".buckconfig.d/b/inner",
            ".buckconfig.d/c",
            ".buckconfig",
            ".buckconfig.local"
        ]
    );
    assert_eq!(c.get("k", "v"), Some("local"));
    assert_eq!(
        (c.get("k", "a"), c.get("k", "b"), c.get("k", "main")),
        (Some("1"), Some("1"), Some("1"))
    );
}

#[test]
fn external_cells_are_checked_like_buck2() {
    let git = "[external_cell_ext]\ngit_origin = https://example.com/x.git\n\
               commit_hash = 0123456789abcdef0123456789abcdef01234567\n";
    let cells = cells_of(&[(
        ".buckconfig",
        &format!(
            "[cells]\nroot = .\nprelude = prelude\next = third/ext\nlocal = local\n\
             [cell_aliases]\np = prelude\n\
             [external_cells]\np = bundled\next = git\nlocal = disabled\n{git}"
        ),
    )])
    .unwrap();
    assert_eq!(
        cells.get("prelude").unwrap().external.as_deref(),
        Some("bundled")
    );
    assert_eq!(cells.get("ext").unwrap().external.as_deref(), Some("git"));
    assert_eq!(cells.get("local").unwrap().external, None);
    assert!(!cells.get("ext").unwrap().on_disk());

    let base = "[cells]\nroot = .\next = ext\n[external_cells]\next = ";
    for (rest, expected) in [
        ("svn\n", "unknown origin"),
        ("git\n", "needs [external_cell_ext] git_origin"),
        (
            "git\n[external_cell_ext]\ngit_origin = u\ncommit_hash = abc\n",
            "40-digit hex",
        ),
    ] {
        let (_, _, message) = config_error(&[(".buckconfig", &format!("{base}{rest}"))]);
        assert!(message.contains(expected), "{rest:?}: {message}");
    }
    let (_, _, message) = config_error(&[(
        ".buckconfig",
        "[cells]\nroot = .\n[external_cells]\nnope = bundled\n",
    )]);
    assert!(message.contains("no cell of that name"), "{message}");
}
