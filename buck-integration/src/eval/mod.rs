//! Evaluation of build files, PACKAGE files and `.bzl` files with the
//! `starlark` crate, Buck2's own interpreter.
//!
//! Nothing Buck2-specific is interpreted beyond what decides targets and
//! files: rules are generic recorders ([`values::Recorder`]); every name a
//! file uses without defining it (the bundled prelude's rules and macros)
//! is injected as one before evaluation, found with the `using-undefined`
//! lint; loads from the prelude or from cells outside the tree yield
//! recorders for the requested symbols. Loaded `.bzl` modules are frozen
//! and cached for the whole computation; cycles are reported, not followed.

mod builtins;
pub(crate) mod context;
pub(crate) mod scan;
mod values;

use crate::cells::{Cell, Cells};
use crate::glob::GlobCache;
use crate::label::{label_strings, parse_raw};
use crate::tree::{relative, Tree};
use antares_overlay::RepoPath;
use context::FileCtx;
pub(crate) use context::RecordedTarget;
use starlark::analysis::AstModuleLint;
use starlark::environment::{FrozenModule, Globals, GlobalsBuilder, LibraryExtension, Module};
use starlark::eval::{Evaluator, ReturnFileLoader};
use starlark::syntax::{AstModule, Dialect};
use starlark::values::{FrozenHeapName, FrozenValue};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::rc::Rc;
use values::{Native, Recorder};

/// Name of the cell whose rules are always recorded generically.
const PRELUDE: &str = "prelude";

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
}

/// A failed file's stand-in: why it failed, and every label written in it
/// or in the `.bzl` files it mentions.
#[derive(Debug, Clone)]
pub(crate) struct Fallback {
    pub reason: String,
    pub labels: Vec<String>,
}

/// A loaded `.bzl`: its frozen module unless it failed, and the `.bzl`
/// files it loads in turn.
struct Loaded {
    module: Option<FrozenModule>,
    files: BTreeSet<RepoPath>,
    failure: Option<String>,
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
        let (_, mut loads, failure) = self.run(path, cell, &ctx, false);
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
                module: None,
                files: BTreeSet::new(),
                failure: Some(format!("load cycle: {} -> {path}", chain.join(" -> "))),
            });
        }
        self.loading.borrow_mut().push(path.clone());
        let ctx = self.ctx(cell, None, &[]);
        let (module, files, failure) = self.run(path, cell, &ctx, true);
        self.loading.borrow_mut().pop();
        let loaded = Rc::new(Loaded {
            module,
            files,
            failure,
        });
        self.modules
            .borrow_mut()
            .insert(path.clone(), loaded.clone());
        loaded
    }

    /// Parses and evaluates one file; returns the frozen module (when
    /// asked), the `.bzl` files it loads transitively, and the failure.
    fn run(
        &self,
        path: &RepoPath,
        cell: &Cell,
        ctx: &FileCtx,
        freeze: bool,
    ) -> (Option<FrozenModule>, BTreeSet<RepoPath>, Option<String>) {
        let mut files = BTreeSet::new();
        let text = match self.tree.read_text(path) {
            Ok(Some(t)) => t,
            Ok(None) => return (None, files, Some(format!("{path} does not exist"))),
            Err(e) => return (None, files, Some(e.to_string())),
        };
        let ast = match AstModule::parse(path.as_str(), text, &self.dialect) {
            Ok(a) => a,
            Err(e) => return (None, files, Some(one_line(&e.to_string()))),
        };
        let mut loaded: Vec<(String, FrozenModule)> = Vec::new();
        let mut failure = None;
        for load in ast.loads() {
            match self.resolve_load(load.module_id, cell, path) {
                Ok(LoadTarget::File(p, c)) => {
                    let l = self.load_bzl(&p, c);
                    files.insert(p.clone());
                    files.extend(l.files.iter().cloned());
                    match (&l.module, &l.failure) {
                        (Some(m), _) => loaded.push((load.module_id.to_string(), m.clone())),
                        (None, why) => {
                            failure.get_or_insert(format!(
                                "load of {p} failed: {}",
                                why.as_deref().unwrap_or("?")
                            ));
                        }
                    }
                }
                Ok(LoadTarget::Opaque) => match opaque_module(load.symbols.values().copied()) {
                    Ok(m) => loaded.push((load.module_id.to_string(), m)),
                    Err(e) => {
                        failure.get_or_insert(e);
                    }
                },
                Err(e) => {
                    failure.get_or_insert(format!("load({:?}): {e}", load.module_id));
                }
            }
        }
        if failure.is_some() {
            return (None, files, failure);
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
                eval.eval_module(ast, &self.globals)
                    .map_err(|e| one_line(&e.to_string()))?;
            }
            if freeze {
                module
                    .freeze_named(FrozenHeapName::User(Box::new(path.to_string())))
                    .map(Some)
                    .map_err(|e| one_line(&format!("freezing: {e:?}")))
            } else {
                Ok(None)
            }
        });
        match result {
            Ok(m) => (m, files, None),
            Err(e) => (None, files, Some(e)),
        }
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
        if target_cell.name == PRELUDE || !target_cell.on_disk() {
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

/// A module exporting a recorder for each of `symbols`.
fn opaque_module<'x>(symbols: impl Iterator<Item = &'x str>) -> Result<FrozenModule, String> {
    Module::with_temp_heap(|module| {
        for s in symbols {
            module.set(s, module.heap().alloc(Recorder::new(s)));
        }
        module
            .freeze_named(FrozenHeapName::User(Box::new("opaque".to_string())))
            .map_err(|e| format!("{e:?}"))
    })
}

/// An error message on one line, bounded in length.
fn one_line(s: &str) -> String {
    let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match joined.char_indices().nth(MAX_MESSAGE) {
        Some((i, _)) => format!("{}…", &joined[..i]),
        None => joined,
    }
}
