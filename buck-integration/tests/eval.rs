//! The Starlark language as real Buck2 repositories write it: one test per
//! feature, each making a dependency label depend on the feature's value,
//! so a feature that evaluates wrongly (or not at all) loses the dependency
//! or leaves a warning. Plus a skeleton of systeminit/si's `prelude-si`
//! rules (`fixtures/prelude_si_skeleton/`) and the locality of a failure.

use antares_buck::{compute, FileSet, GraphRequest};
use antares_overlay::{DirSource, RepoPath};
use std::fs;
use std::path::Path;

const BUCKCONFIG: &str = "[cells]\n  root = .\n  prelude = prelude\n\
                          [external_cells]\n  prelude = bundled\n\
                          [sec]\n  dep = //dep:d\n";

/// A project of `files` plus a `.buckconfig` and a `dep` package holding
/// targets `d`, `e`, `p` and a file, the dependency every test looks for.
fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let base = [
        (".buckconfig", BUCKCONFIG),
        (
            "dep/BUCK",
            "x(name = \"d\")\nx(name = \"e\")\nx(name = \"p\")\n",
        ),
        ("dep/needed.txt", "x"),
    ];
    write(tmp.path(), base.iter().chain(files));
    tmp
}

fn write<'a>(root: &Path, files: impl IntoIterator<Item = &'a (&'a str, &'a str)>) {
    for (path, text) in files {
        let p = root.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
}

fn run(root: &Path, pattern: &str) -> FileSet {
    let request = GraphRequest {
        patterns: vec![pattern.to_string()],
        current_dir: RepoPath::root(),
    };
    compute(&DirSource::open(root).unwrap(), &request).unwrap()
}

/// `//p:t` of a project whose `p/BUCK` is `buck` (and `extra` files)
/// evaluates without a warning and depends on `dep_label`.
fn assert_dep(extra: &[(&str, &str)], buck: &str, dep_label: &str) -> FileSet {
    let mut files = vec![("p/BUCK", buck)];
    files.extend_from_slice(extra);
    let tmp = project(&files);
    let set = run(tmp.path(), "//p:t");
    assert!(set.warnings.is_empty(), "warnings: {:#?}", set.warnings);
    let t = set
        .targets
        .get("//p:t")
        .unwrap_or_else(|| panic!("no //p:t in {:#?}", set.targets.keys()));
    assert!(
        t.deps.iter().any(|d| d == dep_label),
        "{dep_label} not among {:?}",
        t.deps
    );
    assert!(set
        .files
        .contains_key(&RepoPath::new("dep/needed.txt").unwrap()));
    set
}

#[test]
fn prelude_names_are_usable_as_types_and_defs_are_typed() {
    let bzl = "load(\"@prelude//:rules.bzl\", \"DefaultInfo\")\n\
        def _impl(ctx: AnalysisContext) -> list[[DefaultInfo, RunInfo]]:\n    return []\n\
        def _attrs() -> dict[str, Attr]:\n    return {}\n\
        def mk(name: str, deps: list[str] = [], n: int | None = None) -> None:\n\
        \x20   native.genrule(name = name, deps = deps)\n\
        def typed(x: Provider, y: Artifact | None = None) -> Dependency:\n    return x\n";
    assert_dep(
        &[("p/defs.bzl", bzl)],
        "load(\":defs.bzl\", \"mk\")\nmk(name = \"t\", deps = [\"//dep:d\"])\n",
        "//dep:d",
    );
}

#[test]
fn provider_fields_and_instances() {
    let bzl = "Info = provider(fields = [\"dep\", \"other\"])\n\
        Typed = provider(fields = {\"dep\": provider_field(str)})\n\
        def f(x: Info) -> Info:\n    return x\n\
        i = f(Info(dep = \"//dep:d\"))\nj = Typed(dep = \"//dep:e\")\n\
        DEPS = [i.dep, j.dep] if i.other == None else []\n";
    assert_dep(
        &[("p/defs.bzl", bzl)],
        "load(\":defs.bzl\", \"DEPS\")\nx(name = \"t\", deps = DEPS)\n",
        "//dep:e",
    );
}

#[test]
fn rule_defaults_are_dependencies_of_its_targets() {
    let bzl = "def _impl(ctx):\n    return [DefaultInfo()]\n\
        r = rule(impl = _impl, attrs = {\"_tool\": attrs.exec_dep(default = \"//dep:d\"), \
        \"srcs\": attrs.list(attrs.source(), default = [])})\n";
    assert_dep(
        &[("p/defs.bzl", bzl)],
        "load(\":defs.bzl\", \"r\")\nr(name = \"t\")\n",
        "//dep:d",
    );
}

#[test]
fn record_enum_struct_and_set() {
    let bzl = "R = record(dep = str, n = field(int, 0))\n\
        E = enum(\"//dep:d\", \"other\")\n\
        S = struct(dep = \"//dep:e\")\n\
        DEPS = [R(dep = E(\"//dep:d\").value).dep, S.dep] + sorted(set([\"//dep:p\", \"//dep:p\"]))\n";
    let set = assert_dep(
        &[("p/defs.bzl", bzl)],
        "load(\":defs.bzl\", \"DEPS\")\nx(name = \"t\", deps = DEPS)\n",
        "//dep:d",
    );
    let deps = &set.targets["//p:t"].deps;
    assert!(deps.contains(&"//dep:e".to_string()) && deps.contains(&"//dep:p".to_string()));
}

#[test]
fn native_forwards_to_the_globals() {
    let bzl = "def mk(name):\n\
        \x20   native.cxx_library(name = name, deps = [\"//dep:\" + native.package_name()], \
        srcs = native.glob([\"*.c\"]))\n";
    let set = assert_dep(
        &[("p/defs.bzl", bzl), ("p/a.c", "")],
        "load(\":defs.bzl\", \"mk\")\nmk(name = \"t\")\n",
        "//dep:p",
    );
    assert_eq!(set.targets["//p:t"].kind, "cxx_library");
    assert_eq!(set.targets["//p:t"].inputs, vec!["a.c"]);
}

#[test]
fn read_config_and_read_root_config() {
    assert_dep(
        &[],
        "x(name = \"t\", deps = [read_config(\"sec\", \"dep\"), \
         read_root_config(\"sec\", \"missing\", \"//dep:e\")])\n",
        "//dep:d",
    );
    assert_dep(
        &[],
        "x(name = \"t\", deps = [read_root_config(\"sec\", \"missing\", \"//dep:e\")])\n",
        "//dep:e",
    );
}

#[test]
fn host_info_describes_this_machine() {
    let expected = if cfg!(target_os = "linux") {
        "//dep:d"
    } else {
        "//dep:e"
    };
    assert_dep(
        &[],
        "x(name = \"t\", deps = [\"//dep:d\" if host_info().os.is_linux and \
         not host_info().os.is_windows else \"//dep:e\"])\n",
        expected,
    );
}

#[test]
fn select_keeps_every_branch() {
    let set = assert_dep(
        &[("cfg/BUCK", "constraint_value(name = \"linux\")\n")],
        "x(name = \"t\", deps = [\"//dep:p\"] + select({\"DEFAULT\": [\"//dep:d\"], \
         \"//cfg:linux\": [\"//dep:e\"]}))\n",
        "//dep:e",
    );
    assert!(set.targets["//p:t"].deps.contains(&"//dep:d".to_string()));
}

#[test]
fn package_name_get_base_path_and_oncall() {
    assert_dep(
        &[],
        "oncall(\"team\")\nx(name = \"t\", deps = [\"//dep:\" + package_name(), \
         \"//dep:\" + get_base_path()])\n",
        "//dep:p",
    );
}

#[test]
fn load_symbols_exports_computed_names() {
    assert_dep(
        &[(
            "p/defs.bzl",
            "load_symbols({\"DEP_\" + \"ONE\": \"//dep:d\"})\n",
        )],
        "load(\":defs.bzl\", \"DEP_ONE\")\nx(name = \"t\", deps = [DEP_ONE])\n",
        "//dep:d",
    );
}

#[test]
fn glob_with_exclude_and_subdir_glob_from_the_prelude() {
    let set = assert_dep(
        &[("p/a.txt", ""), ("p/b.txt", ""), ("p/inc/h.h", "")],
        "load(\"@prelude//utils:glob_defs.bzl\", \"subdir_glob\")\n\
         x(name = \"t\", srcs = glob([\"*.txt\"], exclude = [\"b.txt\"]), \
         headers = subdir_glob([(\"inc\", \"*.h\")]), deps = [\"//dep:d\"])\n",
        "//dep:d",
    );
    assert_eq!(set.targets["//p:t"].inputs, vec!["a.txt"]);
}

#[test]
fn package_function_and_f_strings() {
    assert_dep(
        &[(
            "p/PACKAGE",
            "package(inherit = True, visibility = [\"PUBLIC\"])\n",
        )],
        "name = \"d\"\nx(name = \"t\", deps = [f\"//dep:{name}\"])\n",
        "//dep:d",
    );
}

/// A failed `.bzl` is one warning however many build files load it, and
/// only targets declared through its symbols take its labels.
#[test]
fn a_failed_bzl_stays_local() {
    let tmp = project(&[
        (
            "defs/bad.bzl",
            "def mk(name, **kwargs):\n    native.x(name = name, **kwargs)\n\
             UNRELATED = \"//unrelated:u\"\nboom = 1 + \"a\"\n",
        ),
        (
            "a/BUCK",
            "load(\"//defs:bad.bzl\", \"mk\")\nmk(name = \"via\", deps = [\"//dep:d\"])\n\
             x(name = \"plain\", deps = [\"//dep:e\"])\n",
        ),
        (
            "b/BUCK",
            "load(\"//defs:bad.bzl\", \"mk\")\nx(name = \"b\", deps = [\"//a:plain\"])\n",
        ),
        ("unrelated/BUCK", "x(name = \"u\")\n"),
        ("unrelated/big.bin", "not needed by //a:plain"),
    ]);
    let set = run(tmp.path(), "//b:b");
    let bad: Vec<String> = set
        .warnings
        .iter()
        .map(ToString::to_string)
        .filter(|w| w.contains("bad.bzl"))
        .collect();
    assert_eq!(bad.len(), 1, "{:#?}", set.warnings);
    assert!(
        bad[0].starts_with("could not evaluate defs/bad.bzl:4:"),
        "{}",
        bad[0]
    );
    assert!(set.targets.contains_key("//a:plain"));
    assert!(
        !set.packages.keys().any(|p| p.contains("unrelated")),
        "{:#?}",
        set.packages
    );

    // Targets made through the failed file's symbols keep its labels.
    let set = run(tmp.path(), "//a:via");
    assert!(set.packages.keys().any(|p| p.contains("unrelated")));
    assert!(set.targets["//a:via"].deps.contains(&"//dep:d".to_string()));
}

/// A skeleton of systeminit/si's `prelude-si` (rule definitions with
/// prelude types, providers, `dict[str, Attr]` helpers, macros wrapping
/// `native.*`) evaluates with no fallback.
#[test]
fn prelude_si_skeleton_evaluates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/prelude_si_skeleton");
    let set = run(&dir, "//lib/events:events");
    assert!(set.warnings.is_empty(), "{:#?}", set.warnings);
    let t = &set.targets["//lib/events:events"];
    assert_eq!(t.kind, "rust_library");
    assert!(
        t.deps.iter().any(|d| d == "//lib/core:core"),
        "{:?}",
        t.deps
    );
    assert!(set.targets.contains_key("//lib/core:core"));
}

/// A vendored prelude runs one level deep: its helpers return real dicts
/// (`{…} | re_test_common.test_args()`, as systeminit/si writes), what it
/// loads itself is opaque, and what opaque calls return serves as a type,
/// a dict key and an iterable.
#[test]
fn vendored_prelude_helpers_return_real_values() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        &[
            (".buckconfig", "[cells]\nroot = .\nprelude = prelude\n"),
            (
                "prelude/decls/re_test_common.bzl",
                "load(\"@prelude//decls:deep.bzl\", \"never_evaluated\")\n\
                 def _test_args():\n    return {\"re\": attrs.option(attrs.dep(default = \"//dep:d\"))}\n\
                 re_test_common = struct(test_args = _test_args)\n",
            ),
            ("prelude/decls/deep.bzl", "fail(\"loaded for real\")\n"),
            (
                "defs/rules.bzl",
                "load(\"@prelude//decls/re_test_common.bzl\", \"re_test_common\")\n\
                 TSet = transitive_set(args_projections = {})\nBY_KIND = {TSet: [k for k in dedupe([\"a\"])]}\n\
                 def _impl(ctx: AnalysisContext, s: TSet | None = None) -> list[Provider]:\n    return []\n\
                 r = rule(impl = _impl, attrs = {\"srcs\": attrs.list(attrs.source())} | re_test_common.test_args())\n",
            ),
            ("p/BUCK", "load(\"//defs:rules.bzl\", \"r\")\nr(name = \"t\")\n"),
            ("dep/BUCK", "x(name = \"d\")\n"),
        ],
    );
    let set = run(tmp.path(), "//p:t");
    assert!(set.warnings.is_empty(), "{:#?}", set.warnings);
    assert!(set.targets["//p:t"].deps.contains(&"//dep:d".to_string()));
}

#[test]
fn json_files_load_as_value() {
    assert_dep(
        &[("p/urls.json", "{\"dep\": [\"//dep:d\"], \"n\": 1}")],
        "load(\":urls.json\", urls = \"value\")\nx(name = \"t\", deps = urls[\"dep\"])\n",
        "//dep:d",
    );
}

/// `base | {…}` where `base` comes from a file antares does not run (a
/// dict of attributes in the prelude, GaloyMoney/blink's
/// `internal_tool_attrs | {…}`): the union keeps the dict's strings; as
/// a type union (`base_attrs | None`) it stays a type.
#[test]
fn a_prelude_value_merged_with_a_dict() {
    assert_dep(
        &[],
        "load(\"@prelude//:tools.bzl\", \"base_attrs\")\n\
         ATTRS = base_attrs | {\"dep\": \"//dep:d\"}\n\
         MORE = ATTRS | {\"other\": \"//dep:e\"}\n\
         MaybeBase = base_attrs | None\n\
         def pick(v: MaybeBase) -> MaybeBase:\n    return v\n\
         x(name = \"t\", deps = [v for v in pick(MORE)])\n",
        "//dep:d",
    );
}

/// A load without `:` or `//` is relative to the loading file's directory
/// (buck2's `parse_import`; buck2's examples/persistent_worker writes
/// `load("defs.bzl", …)`).
#[test]
fn a_bare_relative_load() {
    assert_dep(
        &[
            ("p/defs.bzl", "load(\"sub/more.bzl\", \"D\")\nDEP = D\n"),
            ("p/sub/more.bzl", "D = \"//dep:d\"\n"),
        ],
        "load(\"defs.bzl\", \"DEP\")\nx(name = \"t\", deps = [DEP])\n",
        "//dep:d",
    );
}

/// `glob(include = […])`: buck2's `include` is positional or named
/// (cargo-buckal writes it named; r2cn-dev/buck2-rust-third-party).
#[test]
fn glob_include_by_name() {
    assert_dep(
        &[("p/a.txt", "a"), ("p/b.md", "b")],
        "x(name = \"t\", deps = [\"//dep:d\"] if glob(include = [\"*.*\"], exclude = [\"*.md\", \"BUCK\"]) == [\"a.txt\"] else [])\n",
        "//dep:d",
    );
}

/// buck2 loads `.toml` files like `.json` ones, as a module whose `value`
/// is the table (dtolnay/cxx's BUCK reads its version from `Cargo.toml`).
#[test]
fn toml_files_load_as_value() {
    assert_dep(
        &[(
            "p/Cargo.toml",
            "[package]\nversion = \"1.0.7\"\n[deps]\nlabels = [\"//dep:d\"]\n",
        )],
        "load(\":Cargo.toml\", cargo = \"value\")\n\
         PATCH = cargo[\"package\"][\"version\"].split(\".\")[2]\n\
         x(name = \"t\" if PATCH == \"7\" else \"wrong\", deps = cargo[\"deps\"][\"labels\"])\n",
        "//dep:d",
    );
}

/// A `.toml` that is not TOML is that file's failure, named with the file.
#[test]
fn a_broken_toml_file_is_a_warning_naming_it() {
    let tmp = project(&[
        ("p/Cargo.toml", "[package\n"),
        (
            "p/BUCK",
            "load(\":Cargo.toml\", cargo = \"value\")\nx(name = \"t\", deps = [\"//dep:d\"])\n",
        ),
    ]);
    let set = run(tmp.path(), "//p:t");
    assert!(
        set.warnings
            .iter()
            .map(ToString::to_string)
            .any(|w| w.contains("p/Cargo.toml") && w.contains("not TOML")),
        "{:#?}",
        set.warnings
    );
}

/// A load of an unknown cell fails that statement only: the rest of the
/// build file still declares its targets.
#[test]
fn an_unresolvable_load_fails_only_its_symbols() {
    let tmp = project(&[(
        "p/BUCK",
        "load(\"@nowhere//defs:python.bzl\", \"python_library\")\n\
         python_library(name = \"lib\", deps = [\"//dep:e\"])\n\
         x(name = \"t\", deps = [\"//dep:d\"])\n",
    )]);
    let set = run(tmp.path(), "//p:t");
    assert_eq!(set.warnings.len(), 1, "{:#?}", set.warnings);
    assert!(
        set.warnings[0]
            .to_string()
            .starts_with("could not evaluate p/BUCK: load(\"@nowhere"),
        "{}",
        set.warnings[0]
    );
    assert_eq!(set.targets["//p:t"].deps, vec!["//dep:d"]);
    let set = run(tmp.path(), "//p:lib");
    assert_eq!(set.targets["//p:lib"].deps, vec!["//dep:e"]);
}
