//! The repository's toolchains cell as antares' own evaluation sees it, and
//! a stand-in for it made of the prelude's `system_*` toolchain rules.
//!
//! Hermetic toolchains download their compilers (CPython, clang, rustc
//! distributions); where those downloads are dead or the network is closed
//! every build fails before compiling anything. A cell whose BUCK declares
//! the same toolchain names with the prelude's system rules (which use the
//! machine's `cc`, `python3`, `rustc`, …) provides the same providers, so a
//! workspace can point `[cells] toolchains` at it and build offline without
//! a change to the repository.
//!
//! [`discover`] finds the toolchain targets: the top-level calls of the
//! cell's root build file that declare a `name` (and the targets of the
//! prelude's `system_demo_toolchains()` macro, which antares does not
//! evaluate: the prelude is opaque to it), each with the download URLs its
//! declaration reaches in the evaluated package. [`render`] writes the
//! stand-in build file: the original text with each replaced declaration
//! swapped for the system rule, every other statement kept as written.

use crate::cells::Cells;
use crate::closure::Graph;
use crate::error::BuckError;
use crate::eval::RecordedTarget;
use crate::tree::Tree;
use antares_overlay::{RepoPath, Source};
use serde::Serialize;
use starlark::syntax::ast::{ArgumentP, AstExpr, AstLiteral, AstStmt, ExprP, StmtP};
use starlark::syntax::{AstModule, Dialect};
use std::collections::{BTreeMap, BTreeSet};

/// The cell name Buck2 resolves toolchain dependencies in.
pub const TOOLCHAINS_CELL: &str = "toolchains";

/// What a toolchain provides, as far as a system rule can stand in for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// C and C++.
    Cxx,
    /// The Python used to run the prelude's own tools.
    PythonBootstrap,
    /// Python.
    Python,
    /// Rust.
    Rust,
    /// `genrule`'s shell.
    Genrule,
    /// Go.
    Go,
    /// The Go used to build the Go toolchain's tools.
    GoBootstrap,
}

impl Role {
    /// The role of a toolchain declared by `rule` (the loaded symbol's own
    /// name): a language's toolchain rule, plain or with a `system_`,
    /// `hermetic_` or `remote_` prefix. Project-specific toolchains
    /// (`si_rust_toolchain`, `deno_toolchain`) have none and are kept.
    pub fn of_rule(rule: &str) -> Option<Role> {
        let bare = ["system_", "hermetic_", "remote_"]
            .iter()
            .find_map(|p| rule.strip_prefix(p))
            .unwrap_or(rule);
        Some(match bare {
            "cxx_toolchain" | "clang_toolchain" | "gcc_toolchain" | "llvm_toolchain" => Role::Cxx,
            "python_bootstrap_toolchain" => Role::PythonBootstrap,
            "python_toolchain" => Role::Python,
            "rust_toolchain" => Role::Rust,
            "genrule_toolchain" => Role::Genrule,
            "go_toolchain" => Role::Go,
            "go_bootstrap_toolchain" => Role::GoBootstrap,
            _ => return None,
        })
    }

    /// The prelude's system rule for the role: (`.bzl` to load, symbol).
    pub fn system_rule(self) -> (&'static str, &'static str) {
        match self {
            Role::Cxx => ("@prelude//toolchains:cxx.bzl", "system_cxx_toolchain"),
            Role::PythonBootstrap => (
                "@prelude//toolchains:python.bzl",
                "system_python_bootstrap_toolchain",
            ),
            Role::Python => ("@prelude//toolchains:python.bzl", "system_python_toolchain"),
            Role::Rust => ("@prelude//toolchains:rust.bzl", "system_rust_toolchain"),
            Role::Genrule => (
                "@prelude//toolchains:genrule.bzl",
                "system_genrule_toolchain",
            ),
            Role::Go => (
                "@prelude//toolchains/go:system_go_toolchain.bzl",
                "system_go_toolchain",
            ),
            Role::GoBootstrap => (
                "@prelude//toolchains/go:system_go_bootstrap_toolchain.bzl",
                "system_go_bootstrap_toolchain",
            ),
        }
    }

    /// Attributes of the original declaration the system rule also has and
    /// that do not name a downloaded tool: carried over as written (an
    /// edition or lint policy is the project's, not the distribution's).
    fn kept_attrs(self) -> &'static [&'static str] {
        match self {
            Role::Rust => &[
                "default_edition",
                "clippy_toml",
                "allow_lints",
                "deny_lints",
                "warn_lints",
                "doctests",
                "report_unused_deps",
            ],
            _ => &[],
        }
    }
}

/// One toolchain target of the cell.
#[derive(Debug, Clone, Serialize)]
pub struct Toolchain {
    /// The toolchain target's name.
    pub name: String,
    /// The rule or macro that declares it, as loaded (`hermetic_rust_toolchain`).
    pub rule: String,
    /// Set when it comes from a prelude macro (`system_demo_toolchains`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_macro: Option<String>,
    /// What a system rule can stand in for; `None`: nothing can.
    pub role: Option<Role>,
    /// Download URLs its declaration reaches (its own attributes and the
    /// targets of the cell it names, transitively).
    pub urls: Vec<String>,
    /// Keyword arguments as written: (name, source text).
    #[serde(skip)]
    attrs: Vec<(String, String)>,
    /// Byte range of the declaring statement in the build file.
    #[serde(skip)]
    span: (usize, usize),
}

impl Toolchain {
    /// The value of attribute `key` as written, when it is a plain string
    /// (`compiler = "clang"` → `clang`).
    pub fn string_attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.strip_prefix('"')?.strip_suffix('"'))
            .filter(|v| !v.contains(['"', '\\']))
    }
}

/// The repository's toolchains cell, read.
#[derive(Debug, Clone, Serialize)]
pub struct ToolchainsCell {
    /// The cell's name (`toolchains`, or what that name is an alias of).
    pub name: String,
    /// The cell's directory in the repository.
    pub dir: RepoPath,
    /// Its root build file.
    pub buildfile: RepoPath,
    /// The toolchain targets it declares.
    pub toolchains: Vec<Toolchain>,
    /// Declarations antares could not account for, and evaluation problems.
    pub warnings: Vec<String>,
    #[serde(skip)]
    text: String,
}

/// A decision to replace one toolchain: the tool attributes to set
/// (`compiler = "gcc"`), as Starlark source text.
#[derive(Debug, Clone, Default)]
pub struct Replacement {
    /// `(attribute, Starlark expression)` pairs to set on the toolchain.
    pub attrs: Vec<(String, String)>,
}

/// A target of the prelude's `system_demo_toolchains()` macro that antares
/// can declare on its own. The macro's Java, Kotlin and Android targets take
/// paths and other targets of the macro; they are not generated (see
/// [`discover`]).
struct MacroTarget {
    name: &'static str,
    rule: &'static str,
    bzl: &'static str,
    attrs: &'static [(&'static str, &'static str)],
    /// Declared by another target's rule when that one is kept as it is
    /// (`remote_python_toolchain` also declares `python_bootstrap`).
    declared_by: Option<&'static str>,
}

const fn target(name: &'static str, rule: &'static str, bzl: &'static str) -> MacroTarget {
    MacroTarget {
        name,
        rule,
        bzl,
        attrs: &[],
        declared_by: None,
    }
}

/// The self-contained targets of `system_demo_toolchains()` (the prelude's
/// `toolchains/demo.bzl`, buck2 a71429e81433). Its `python` is a
/// `remote_python_toolchain`, which downloads CPython.
const DEMO_TARGETS: &[MacroTarget] = &[
    target(
        "cxx",
        "system_cxx_toolchain",
        "@prelude//toolchains:cxx.bzl",
    ),
    target(
        "genrule",
        "system_genrule_toolchain",
        "@prelude//toolchains:genrule.bzl",
    ),
    target(
        "go",
        "system_go_toolchain",
        "@prelude//toolchains/go:system_go_toolchain.bzl",
    ),
    target(
        "go_bootstrap",
        "system_go_bootstrap_toolchain",
        "@prelude//toolchains/go:system_go_bootstrap_toolchain.bzl",
    ),
    target(
        "haskell",
        "system_haskell_toolchain",
        "@prelude//toolchains:haskell.bzl",
    ),
    target(
        "ocaml",
        "system_ocaml_toolchain",
        "@prelude//toolchains:ocaml.bzl",
    ),
    target(
        "erlang-default",
        "system_erlang_toolchain",
        "@prelude//toolchains:erlang.bzl",
    ),
    target(
        "python",
        "remote_python_toolchain",
        "@prelude//toolchains:python.bzl",
    ),
    MacroTarget {
        declared_by: Some("python"),
        ..target(
            "python_bootstrap",
            "python_bootstrap_toolchain",
            "@prelude//toolchains:python.bzl",
        )
    },
    target(
        "python_wheel",
        "system_python_wheel_toolchain",
        "@prelude//toolchains:python.bzl",
    ),
    MacroTarget {
        attrs: &[("default_edition", "\"2021\"")],
        ..target(
            "rust",
            "system_rust_toolchain",
            "@prelude//toolchains:rust.bzl",
        )
    },
    target(
        "remote_test_execution",
        "remote_test_execution_toolchain",
        "@prelude//toolchains:remote_test_execution.bzl",
    ),
    target(
        "test",
        "noop_test_toolchain",
        "@prelude//tests:test_toolchain.bzl",
    ),
    target(
        "zip_file",
        "zip_file_toolchain",
        "@prelude//toolchains:zip_file.bzl",
    ),
];

/// Where `remote_python_toolchain` downloads CPython from.
const DEMO_PYTHON_URL: &str = "https://github.com/astral-sh/python-build-standalone/releases";

/// The macros whose targets antares knows, and the targets it leaves out.
const KNOWN_MACROS: &[(&str, &[MacroTarget], &str)] = &[(
    "system_demo_toolchains",
    DEMO_TARGETS,
    "android, java, kotlin and dex toolchains",
)];

/// Reads the toolchains cell of the project in `source`: `None` when the
/// project has no such cell, or it is not in the tree, or it has no root
/// build file.
pub fn discover(source: &dyn Source) -> Result<Option<ToolchainsCell>, BuckError> {
    let tree = Tree::new(source);
    let cells = Cells::load(&tree, &source.describe())?;
    let Some(cell) = cells.resolve(&cells.root, TOOLCHAINS_CELL) else {
        return Ok(None);
    };
    if !cell.on_disk() {
        return Ok(None);
    }
    let cell_name = cell.name.clone();
    let dir = cell.path.clone();
    let mut graph = Graph::new(&tree, &cells);
    let Some(package) = graph.package(&cell_name, "")? else {
        return Ok(None);
    };
    let buildfile = package.buildfile.clone();
    let text = tree.read_text(&buildfile)?.unwrap_or_default();
    let mut warnings = Vec::new();
    if let Some(fb) = &package.eval.fallback {
        warnings.push(format!(
            "{buildfile}: antares could not evaluate it ({}); download URLs are unknown",
            fb.reason
        ));
    }
    let evaluated: BTreeMap<&str, &RecordedTarget> = package
        .eval
        .targets
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let ast = AstModule::parse(buildfile.as_str(), text.clone(), &dialect()).map_err(|e| {
        BuckError::Config {
            file: buildfile.to_string(),
            line: 0,
            message: e.to_string(),
        }
    })?;
    let symbols: BTreeMap<String, String> = ast
        .loads()
        .iter()
        .flat_map(|l| {
            l.symbols
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    let mut toolchains = Vec::new();
    for stmt in top_level(ast.statement()) {
        let Some((callee, args)) = call_of(stmt) else {
            continue;
        };
        let rule = symbols.get(&callee).cloned().unwrap_or(callee);
        let span = (
            stmt.span.begin().get() as usize,
            stmt.span.end().get() as usize,
        );
        let attrs: Vec<(String, String)> = args
            .iter()
            .filter_map(|a| match &a.node {
                ArgumentP::Named(n, v) => Some((n.node.clone(), source_text(&text, v))),
                _ => None,
            })
            .collect();
        let name = args.iter().find_map(|a| match &a.node {
            ArgumentP::Named(n, v) if n.node == "name" => string_literal(v),
            _ => None,
        });
        match name {
            Some(name) => {
                let urls = reachable_urls(&name, &evaluated);
                toolchains.push(Toolchain {
                    role: Role::of_rule(&rule),
                    name,
                    rule,
                    from_macro: None,
                    urls,
                    attrs,
                    span,
                })
            }
            None => {
                if let Some((mac, targets, left_out)) =
                    KNOWN_MACROS.iter().find(|(m, _, _)| *m == rule)
                {
                    warnings.push(format!(
                        "{buildfile}: {mac}() also declares {left_out}, which antares does not generate"
                    ));
                    for m in targets.iter() {
                        toolchains.push(Toolchain {
                            name: m.name.to_string(),
                            rule: m.rule.to_string(),
                            from_macro: Some(mac.to_string()),
                            role: Role::of_rule(m.rule),
                            urls: if m.rule == "remote_python_toolchain"
                                || m.declared_by == Some("python")
                            {
                                vec![DEMO_PYTHON_URL.to_string()]
                            } else {
                                Vec::new()
                            },
                            attrs: m
                                .attrs
                                .iter()
                                .map(|(k, v)| (k.to_string(), v.to_string()))
                                .collect(),
                            span,
                        });
                    }
                } else if rule.contains("toolchain") {
                    warnings.push(format!(
                        "{buildfile}: {rule}() at byte {} declares targets antares cannot name; kept as written",
                        span.0
                    ));
                }
            }
        }
    }
    Ok(Some(ToolchainsCell {
        name: cell_name,
        dir,
        buildfile,
        toolchains,
        warnings,
        text,
    }))
}

/// The stand-in build file: `replace` maps toolchain names to their
/// replacement; every other statement stays as written. The system rules
/// are loaded under `__antares_`-prefixed names, so they cannot clash with
/// the file's own.
pub fn render(cell: &ToolchainsCell, replace: &BTreeMap<String, Replacement>) -> String {
    // Statements to rewrite, by span: a macro's span covers all its targets.
    let mut by_span: BTreeMap<(usize, usize), Vec<&Toolchain>> = BTreeMap::new();
    for t in &cell.toolchains {
        if replace.contains_key(&t.name) || t.from_macro.is_some() {
            by_span.entry(t.span).or_default().push(t);
        }
    }
    let mut loads: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut body = String::new();
    let mut at = 0;
    for ((begin, end), targets) in &by_span {
        body.push_str(&cell.text[at..*begin]);
        let calls: Vec<String> = targets
            .iter()
            .filter(|t| {
                // A kept target another kept one's rule declares.
                replace.contains_key(&t.name)
                    || macro_target(t)
                        .and_then(|m| m.declared_by)
                        .is_none_or(|by| replace.contains_key(by))
            })
            .map(|t| {
                let (bzl, rule, attrs) = match (replace.get(&t.name), t.role) {
                    (Some(r), Some(role)) => {
                        let (bzl, rule) = role.system_rule();
                        let mut attrs: Vec<(String, String)> = t
                            .attrs
                            .iter()
                            .filter(|(k, _)| {
                                k == "visibility" || role.kept_attrs().contains(&k.as_str())
                            })
                            .cloned()
                            .collect();
                        attrs.extend(r.attrs.iter().cloned());
                        (bzl, rule, attrs)
                    }
                    _ => {
                        // A macro target kept: declared as the macro does.
                        let (bzl, rule) = macro_target(t)
                            .map(|m| (m.bzl, m.rule))
                            .unwrap_or(("@prelude//toolchains:demo.bzl", "system_demo_toolchains"));
                        (bzl, rule, t.attrs.clone())
                    }
                };
                loads.entry(bzl).or_default().insert(rule);
                call(rule, &t.name, &attrs)
            })
            .collect();
        body.push_str(&calls.join("\n\n"));
        at = *end;
    }
    body.push_str(&cell.text[at..]);
    let mut out = format!(
        "# Generated by antares from {} (`antares sync --toolchains`): the\n\
         # toolchains listed by `antares graph --toolchains` use the machine's tools.\n\
         # Rewritten on each sync; edit the repository's file instead.\n",
        cell.buildfile
    );
    for (bzl, rules) in &loads {
        let names: Vec<String> = rules
            .iter()
            .map(|r| format!("__antares_{r} = \"{r}\""))
            .collect();
        out.push_str(&format!("load(\"{bzl}\", {})\n", names.join(", ")));
    }
    out.push('\n');
    out.push_str(&body);
    out
}

/// The known macro target `t` comes from.
fn macro_target(t: &Toolchain) -> Option<&'static MacroTarget> {
    let mac = t.from_macro.as_deref()?;
    KNOWN_MACROS
        .iter()
        .filter(|(m, _, _)| *m == mac)
        .flat_map(|(_, targets, _)| targets.iter())
        .find(|m| m.name == t.name)
}

/// `__antares_RULE(name = "NAME", k = v, …)`, with `visibility` public
/// unless the declaration set one.
fn call(rule: &str, name: &str, attrs: &[(String, String)]) -> String {
    let mut out = format!("__antares_{rule}(\n    name = {},\n", quote(name));
    for (k, v) in attrs.iter().filter(|(k, _)| k != "name") {
        out.push_str(&format!("    {k} = {v},\n"));
    }
    if !attrs.iter().any(|(k, _)| k == "visibility") {
        out.push_str("    visibility = [\"PUBLIC\"],\n");
    }
    out.push(')');
    out
}

/// A Starlark string literal (JSON's escapes are valid Starlark ones).
pub fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn dialect() -> Dialect {
    let mut d = Dialect::Extended;
    d.enable_f_strings = true;
    d
}

/// The top-level statements, with nested statement lists flattened.
fn top_level(stmt: &AstStmt) -> Vec<&AstStmt> {
    match &stmt.node {
        StmtP::Statements(list) => list.iter().flat_map(top_level).collect(),
        _ => vec![stmt],
    }
}

/// `f(…)` as a statement: the called identifier and the arguments.
fn call_of(
    stmt: &AstStmt,
) -> Option<(
    String,
    &[starlark::syntax::ast::AstArgumentP<starlark::syntax::ast::AstNoPayload>],
)> {
    let StmtP::Expression(e) = &stmt.node else {
        return None;
    };
    let ExprP::Call(f, args) = &e.node else {
        return None;
    };
    let ExprP::Identifier(id) = &f.node else {
        return None;
    };
    Some((id.node.ident.clone(), &args.args))
}

fn string_literal(e: &AstExpr) -> Option<String> {
    match &e.node {
        ExprP::Literal(AstLiteral::String(s)) => Some(s.node.clone()),
        _ => None,
    }
}

fn source_text(text: &str, e: &AstExpr) -> String {
    let (b, end) = (e.span.begin().get() as usize, e.span.end().get() as usize);
    text.get(b..end).unwrap_or_default().to_string()
}

/// URLs in the attributes of `name` and of every target of the package it
/// names (`:dep`), transitively; a name also reaches the targets a macro
/// declared under it (`python_dist-extraction-download` for `:python_dist`).
fn reachable_urls(name: &str, evaluated: &BTreeMap<&str, &RecordedTarget>) -> Vec<String> {
    let mut urls = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let mut queue = vec![name.to_string()];
    while let Some(n) = queue.pop() {
        if !seen.insert(n.clone()) {
            continue;
        }
        let prefix = format!("{n}-");
        for (tname, t) in evaluated
            .iter()
            .filter(|(t, _)| **t == n || t.starts_with(&prefix))
        {
            seen.insert(tname.to_string());
            for s in t.attrs.iter().flat_map(|(_, v)| v) {
                if s.starts_with("https://") || s.starts_with("http://") {
                    urls.insert(s.clone());
                } else if let Some(dep) = s.strip_prefix(':') {
                    let dep = dep.split('[').next().unwrap_or(dep);
                    queue.push(dep.to_string());
                }
            }
        }
    }
    urls.into_iter().collect()
}
