//! Evaluation of build files, PACKAGE files and `.bzl` files with the
//! `starlark` crate, Buck2's own interpreter.
//!
//! Nothing Buck2-specific is interpreted beyond what decides targets and
//! files: rules are generic recorders ([`values::Recorder`]); every name a
//! file uses without defining it (the bundled prelude's rules and macros)
//! is injected as one before evaluation, found with the `using-undefined`
//! lint; recorders stand for types too. Loads from cells outside the tree
//! (a bundled prelude) yield recorders for the requested symbols; a
//! vendored prelude runs one level deep. A `.bzl` that fails, or a load
//! that cannot be resolved, is replaced by recorders for what was asked of
//! it (carrying the labels written in it), so the failure stays with that
//! file. Each file runs within [`limits::Limits`]. Loaded `.bzl` modules
//! are frozen and cached for the whole computation; cycles are reported,
//! not followed.

mod builtins;
mod checked;
pub(crate) mod context;
mod limits;
mod rewrite;
pub(crate) mod scan;
mod values;

use crate::cells::{Cell, Cells, PRELUDE};
use crate::glob::GlobCache;
use crate::label::{label_strings, parse_raw};
use crate::tree::{relative, Tree};
use antares_overlay::RepoPath;
use context::FileCtx;
pub(crate) use context::RecordedTarget;
use starlark::analysis::AstModuleLint;
use starlark::codemap::FileSpan;
use starlark::environment::{FrozenModule, Globals, GlobalsBuilder, LibraryExtension, Module};
use starlark::eval::{Evaluator, ReturnFileLoader};
use starlark::syntax::Dialect;
use starlark::values::{FrozenHeapName, FrozenValue};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::rc::Rc;
use values::{Native, Recorder};

/// Longest error text kept in a warning.
const MAX_MESSAGE: usize = 400;

/// What evaluating one build or PACKAGE file produced.
#[derive(Debug, Default)]
pub(crate) struct FileEval {
    pub targets: Vec<RecordedTarget>,
    /// Every `.bzl` in the tree loaded directly or transitively.
    pub loads: BTreeSet<RepoPath>,
    /// Set when the file could not be evaluated.
    pub fallback: Option<Fallback>,
    /// Package values after this file (PACKAGE files pass them down).
    pub package_values: BTreeMap<String, serde_json::Value>,
    /// `.bzl` files under this one that failed, with why; what loads them
    /// got generic recorders for their symbols instead.
    pub broken: BTreeMap<RepoPath, String>,
}

/// A failed file's stand-in: why it failed, and every label written in it
/// or in the `.bzl` files it mentions.
#[derive(Debug, Clone)]
pub(crate) struct Fallback {
    pub reason: String,
    pub labels: Vec<String>,
}

/// One evaluated file: its frozen module (when asked for and it did not
/// fail), the `.bzl` files it loads transitively, its failure, and the
/// failures of `.bzl` files below it that were stood in for.
#[derive(Default)]
struct Loaded {
    module: Option<FrozenModule>,
    files: BTreeSet<RepoPath>,
    failure: Option<String>,
    broken: BTreeMap<RepoPath, String>,
}

/// Where a `load()` leads.
enum LoadTarget<'c> {
    File(RepoPath, &'c Cell),
    /// The prelude or a cell whose files are not in the tree.
    Opaque,
}

pub(crate) struct Interp<'a, 's> {
    tree: &'a Tree<'s>,
    cells: &'a Cells,
    globals: Globals,
    global_names: HashSet<String>,
    builtins: HashMap<String, FrozenValue>,
    dialect: Dialect,
    globs: GlobCache,
    modules: RefCell<HashMap<RepoPath, Rc<Loaded>>>,
    loading: RefCell<Vec<RepoPath>>,
    limits: limits::Limits,
}

impl<'a, 's> Interp<'a, 's> {
    pub fn new(tree: &'a Tree<'s>, cells: &'a Cells) -> Self {
        let globals = GlobalsBuilder::extended_by(&[
            LibraryExtension::StructType,
            LibraryExtension::RecordType,
            LibraryExtension::EnumType,
            LibraryExtension::NamespaceType,
            LibraryExtension::Map,
            LibraryExtension::Filter,
            LibraryExtension::Partial,
            LibraryExtension::Debug,
            LibraryExtension::Print,
            LibraryExtension::Pprint,
            LibraryExtension::Json,
            LibraryExtension::Typing,
            LibraryExtension::CallStack,
            LibraryExtension::SetType,
        ])
        .with(builtins::buck_globals)
        .with(checked::checked_globals)
        .build();
        let builtins: HashMap<String, FrozenValue> =
            globals.iter().map(|(n, v)| (n.to_string(), v)).collect();
        let mut global_names: HashSet<String> = builtins.keys().cloned().collect();
        global_names.insert("native".to_string());
        let mut dialect = Dialect::Extended;
        dialect.enable_f_strings = true;
        Interp {
            tree,
            cells,
            globals,
            global_names,
            builtins,
            dialect,
            globs: GlobCache::default(),
            modules: RefCell::new(HashMap::new()),
            loading: RefCell::new(Vec::new()),
            limits: limits::Limits::default(),
        }
    }

    fn ctx<'c>(
        &'c self,
        cell: &'c Cell,
        package: Option<&str>,
        files: &'c [String],
    ) -> FileCtx<'c> {
        FileCtx {
            cells: self.cells,
            cell,
            package: package.map(str::to_string),
            package_files: files,
            globs: &self.globs,
            builtins: &self.builtins,
            targets: RefCell::new(Vec::new()),
            package_values: RefCell::new(BTreeMap::new()),
            max_bytes: self.limits.heap,
        }
    }

    /// Evaluates a build file (or, with no files, a PACKAGE file) of the
    /// cell-relative `package`, starting from the package values its
    /// ancestors' PACKAGE files wrote.
    pub fn eval_package_file(
        &self,
        path: &RepoPath,
        cell: &Cell,
        package: &str,
        package_files: &[String],
        inherited: &BTreeMap<String, serde_json::Value>,
    ) -> FileEval {
        let ctx = self.ctx(cell, Some(package), package_files);
        *ctx.package_values.borrow_mut() = inherited.clone();
        let Loaded {
            files: mut loads,
            failure,
            broken,
            ..
        } = self.run(path, cell, &ctx, false);
        let fallback = failure.map(|reason| {
            let (more, labels) = self.scan_fallback(path, cell);
            loads.extend(more);
            Fallback { reason, labels }
        });
        FileEval {
            targets: ctx.targets.take(),
            loads,
            fallback,
            package_values: ctx.package_values.take(),
            broken,
        }
    }

    /// Loads a `.bzl` (cached).
    fn load_bzl(&self, path: &RepoPath, cell: &Cell) -> Rc<Loaded> {
        if let Some(l) = self.modules.borrow().get(path) {
            return l.clone();
        }
        if self.loading.borrow().contains(path) {
            let chain: Vec<String> = self
                .loading
                .borrow()
                .iter()
                .map(|p| p.to_string())
                .collect();
            return Rc::new(Loaded {
                failure: Some(format!(
                    "{path}: load cycle: {} -> {path}",
                    chain.join(" -> ")
                )),
                ..Loaded::default()
            });
        }
        self.loading.borrow_mut().push(path.clone());
        let ctx = self.ctx(cell, None, &[]);
        let loaded = Rc::new(match DataFormat::of(path) {
            Some(format) => self.data_module(path, format),
            None => self.run(path, cell, &ctx, true),
        });
        self.loading.borrow_mut().pop();
        self.modules
            .borrow_mut()
            .insert(path.clone(), loaded.clone());
        loaded
    }

    /// A loaded `.json` or `.toml` file: a module whose `value` is its
    /// content, as buck2 provides it (`load(":urls.json", urls = "value")`,
    /// `load(":Cargo.toml", cargo = "value")`).
    fn data_module(&self, path: &RepoPath, format: DataFormat) -> Loaded {
        let parsed = match self.tree.read_text(path) {
            Ok(Some(text)) => format.parse(&text).map_err(|e| format!("{path}: {e}")),
            Ok(None) => Err(format!("{path}: does not exist")),
            Err(e) => Err(format!("{path}: {e}")),
        };
        let module = parsed.and_then(|json| {
            Module::with_temp_heap(|module| {
                module.set("value", module.heap().alloc(json));
                module
                    .freeze_named(FrozenHeapName::User(Box::new(path.to_string())))
                    .map_err(|e| format!("{path}: freezing: {e:?}"))
            })
        });
        match module {
            Ok(m) => Loaded {
                module: Some(m),
                ..Loaded::default()
            },
            Err(e) => Loaded {
                failure: Some(e),
                ..Loaded::default()
            },
        }
    }

    /// Parses and evaluates one file; returns the frozen module (when
    /// asked), the `.bzl` files it loads transitively, and the failure.
    fn run(&self, path: &RepoPath, cell: &Cell, ctx: &FileCtx, freeze: bool) -> Loaded {
        let failed = |why: String| Loaded {
            failure: Some(why),
            ..Loaded::default()
        };
        let text = match self.tree.read_text(path) {
            Ok(Some(t)) => t,
            Ok(None) => return failed(format!("{path}: does not exist")),
            Err(e) => return failed(format!("{path}: {e}")),
        };
        let ast = match rewrite::parse_checked(path.as_str(), text, &self.dialect) {
            Ok(a) => a,
            Err(rewrite::RewriteError::Parse(e)) => return failed(located(&e, path, None)),
            Err(e) => return failed(e.to_string()),
        };
        let mut out = Loaded::default();
        let mut loaded: Vec<(String, FrozenModule)> = Vec::new();
        for load in ast.loads() {
            let symbols = || load.symbols.values().copied();
            let module = match self.resolve_load(load.module_id, cell, path) {
                Ok(LoadTarget::File(p, c)) => {
                    let l = self.load_bzl(&p, c);
                    out.files.insert(p.clone());
                    out.files.extend(l.files.iter().cloned());
                    out.broken
                        .extend(l.broken.iter().map(|(k, v)| (k.clone(), v.clone())));
                    match (&l.module, &l.failure) {
                        (Some(m), _) => Ok(m.clone()),
                        // The failure stays with the failed file: what loads
                        // it gets recorders for the symbols it asked for,
                        // carrying the labels written in that file, so only
                        // targets declared through it over-approximate.
                        (None, why) => {
                            out.broken
                                .insert(p.clone(), why.clone().unwrap_or_default());
                            let (_, labels) = self.scan_fallback(&p, c);
                            opaque_module(symbols(), &labels)
                        }
                    }
                }
                Ok(LoadTarget::Opaque) => opaque_module(symbols(), &[]),
                // A load buck2 itself could not resolve (a cell alias only
                // some checkouts define) fails this one statement: its
                // symbols become recorders, the rest of the file counts.
                Err(e) => {
                    let why = format!("{path}: load({:?}): {e}", load.module_id);
                    out.broken.insert(path.clone(), why);
                    opaque_module(symbols(), &[])
                }
            };
            match module {
                Ok(m) => loaded.push((load.module_id.to_string(), m)),
                Err(e) => {
                    out.failure = Some(e);
                    return out;
                }
            }
        }
        let undefined: BTreeSet<String> = ast
            .lint(Some(&self.global_names))
            .into_iter()
            .filter(|l| l.short_name == "using-undefined")
            .map(|l| l.original)
            .collect();
        let modules: HashMap<&str, &FrozenModule> =
            loaded.iter().map(|(k, m)| (k.as_str(), m)).collect();
        let loader = ReturnFileLoader { modules: &modules };
        let result = Module::with_temp_heap(|module| {
            module.frozen_heap().add_reference(self.globals.heap());
            module.set("native", module.heap().alloc(Native));
            for name in &undefined {
                module.set(name, module.heap().alloc(Recorder::new(name.as_str())));
            }
            {
                let mut eval = Evaluator::new(&module);
                eval.extra = Some(ctx);
                eval.set_loader(&loader);
                let last =
                    limits::bound(&mut eval, self.limits).map_err(|e| format!("{path}: {e}"))?;
                // The last resort for what the bounds miss (one statement
                // asking for terabytes): starlark's allocator panics.
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    eval.eval_module(ast, &self.globals)
                }));
                let ticks = eval.get_total_tick_count();
                tracing::debug!(file = %path, ticks, "evaluated");
                match outcome {
                    Ok(r) => r.map_err(|e| located(&e, path, last.borrow().as_ref()))?,
                    Err(panic) => {
                        return Err(format!(
                            "{path}: evaluation aborted: {}",
                            panic_message(&panic)
                        ))
                    }
                };
            }
            if freeze {
                limits::check_nesting(&module).map_err(|e| format!("{path}: {e}"))?;
                module
                    .freeze_named(FrozenHeapName::User(Box::new(path.to_string())))
                    .map(Some)
                    .map_err(|e| one_line(&format!("freezing: {e:?}")))
            } else {
                Ok(None)
            }
        });
        match result {
            Ok(m) => out.module = m,
            Err(e) => out.failure = Some(e),
        }
        out
    }

    /// Resolves `load("…")` written in `from` (a file of `cell`).
    fn resolve_load(
        &self,
        module_id: &str,
        cell: &'a Cell,
        from: &RepoPath,
    ) -> Result<LoadTarget<'a>, String> {
        let (target_cell, package, file) = if let Some(file) = module_id.strip_prefix(':') {
            let dir = from.parent().unwrap_or_default();
            (
                cell,
                relative(&dir, &cell.path).to_string(),
                file.to_string(),
            )
        } else if !module_id.contains(':') && !module_id.contains("//") {
            // `load("defs.bzl")`: a path relative to the loading file's
            // directory, as buck2's `parse_import` allows.
            let dir = from.parent().unwrap_or_default();
            let (sub, file) = module_id.rsplit_once('/').unwrap_or(("", module_id));
            let mut package = relative(&dir, &cell.path).to_string();
            if !sub.is_empty() {
                package = if package.is_empty() {
                    sub.to_string()
                } else {
                    format!("{package}/{sub}")
                };
            }
            (cell, package, file.to_string())
        } else {
            let (c, rest) = module_id.split_once("//").ok_or("not a label")?;
            let c = c.strip_prefix('@').unwrap_or(c);
            let target_cell = if c.is_empty() {
                cell
            } else {
                self.cells
                    .resolve(&cell.name, c)
                    .ok_or_else(|| format!("unknown cell {c:?}"))?
            };
            let (pkg, file) = match rest.split_once(':') {
                Some((p, f)) => (p.to_string(), f.to_string()),
                None => match rest.rsplit_once('/') {
                    Some((p, f)) => (p.to_string(), f.to_string()),
                    None => (String::new(), rest.to_string()),
                },
            };
            (target_cell, pkg, file)
        };
        // A vendored prelude is evaluated one level deep: the files that
        // build files and other cells load run for real (their helpers
        // return real dicts and lists), what they load in turn is opaque.
        // Evaluating the whole prelude costs ten times the rest of a
        // repository and needs buck2's analysis-time globals.
        let inside_prelude = target_cell.name == PRELUDE && cell.name == PRELUDE;
        if !target_cell.on_disk() || inside_prelude {
            return Ok(LoadTarget::Opaque);
        }
        let rel = RepoPath::new(&package)
            .and_then(|p| RepoPath::new(&file).map(|f| p.join_path(&f)))
            .map_err(|e| e.to_string())?;
        Ok(LoadTarget::File(
            target_cell.path.join_path(&rel),
            target_cell,
        ))
    }

    /// The `.bzl` files a failed file mentions (transitively, as far as
    /// they can be found) and every label-looking string in all of them.
    fn scan_fallback(&self, path: &RepoPath, cell: &'a Cell) -> (BTreeSet<RepoPath>, Vec<String>) {
        let mut files = BTreeSet::new();
        let mut labels = Vec::new();
        let mut queue = vec![(path.clone(), cell)];
        let mut seen = HashSet::new();
        while let Some((p, c)) = queue.pop() {
            if !seen.insert(p.clone()) {
                continue;
            }
            let Ok(Some(bytes)) = self.tree.read_bytes(&p) else {
                continue;
            };
            let text = String::from_utf8_lossy(&bytes);
            for s in scan::string_literals(&text) {
                if s.ends_with(".bzl") {
                    if let Ok(LoadTarget::File(bzl, bc)) = self.resolve_load(&s, c, &p) {
                        if self.tree.entry(&bzl).ok().flatten().is_some() {
                            files.insert(bzl.clone());
                            queue.push((bzl, bc));
                        }
                        continue;
                    }
                }
                labels.extend(
                    label_strings(&s)
                        .into_iter()
                        .filter(|l| parse_raw(l).is_some())
                        .map(str::to_string),
                );
            }
        }
        (files, labels)
    }
}

/// The data files buck2 loads as a module with one symbol, `value`.
#[derive(Clone, Copy)]
enum DataFormat {
    Json,
    Toml,
}

impl DataFormat {
    fn of(path: &RepoPath) -> Option<DataFormat> {
        let p = path.as_str();
        if p.ends_with(".json") {
            Some(DataFormat::Json)
        } else if p.ends_with(".toml") {
            Some(DataFormat::Toml)
        } else {
            None
        }
    }

    /// The file's content as JSON; TOML converted the way buck2 does it
    /// (dates as strings, non-finite floats as `None`).
    fn parse(self, text: &str) -> Result<serde_json::Value, String> {
        match self {
            DataFormat::Json => serde_json::from_str(text).map_err(|e| format!("not JSON: {e}")),
            DataFormat::Toml => toml::from_str::<toml::Value>(text)
                .map(toml_to_json)
                .map_err(|e| one_line(&format!("not TOML: {e}"))),
        }
    }
}

fn toml_to_json(value: toml::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        toml::Value::String(s) => J::String(s),
        toml::Value::Integer(i) => J::Number(i.into()),
        toml::Value::Float(f) => serde_json::Number::from_f64(f).map_or(J::Null, J::Number),
        toml::Value::Boolean(b) => J::Bool(b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(a) => J::Array(a.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => {
            J::Object(t.into_iter().map(|(k, v)| (k, toml_to_json(v))).collect())
        }
    }
}

/// A module exporting a recorder for each of `symbols`; targets declared
/// through them depend on `labels` too.
fn opaque_module<'x>(
    symbols: impl Iterator<Item = &'x str>,
    labels: &[String],
) -> Result<FrozenModule, String> {
    Module::with_temp_heap(|module| {
        for s in symbols {
            let recorder = Recorder::with_defaults(s, labels.to_vec());
            module.set(s, module.heap().alloc(recorder));
        }
        module
            .freeze_named(FrozenHeapName::User(Box::new("opaque".to_string())))
            .map_err(|e| format!("{e:?}"))
    })
}

/// A Starlark error as one short line: the innermost place it names
/// (starlark's span, else the innermost Starlark frame, else the file) and
/// the message without the source excerpt. The whole error, traceback and
/// excerpt included, is logged (`-v`).
fn located(e: &starlark::Error, path: &RepoPath, last: Option<&FileSpan>) -> String {
    tracing::info!("{path}: {e}");
    let place = match e.span() {
        Some(span) => short_place(span),
        None => e
            .call_stack()
            .frames
            .iter()
            .rev()
            .find_map(|f| f.location.as_ref())
            .or(last)
            .map_or_else(|| path.to_string(), short_place),
    };
    one_line(&format!("{place}: {}", e.without_diagnostic()))
}

/// `file:line:col` of where a span begins.
fn short_place(span: &FileSpan) -> String {
    let pos = span.resolve_span().begin;
    format!("{}:{}:{}", span.filename(), pos.line + 1, pos.column + 1)
}

/// The text of a caught panic.
fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic inside the Starlark interpreter".to_string())
}

/// An error message on one line, bounded in length.
fn one_line(s: &str) -> String {
    let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match joined.char_indices().nth(MAX_MESSAGE) {
        Some((i, _)) => format!("{}…", &joined[..i]),
        None => joined,
    }
}
