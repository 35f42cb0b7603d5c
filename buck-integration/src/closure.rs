//! The closure: from root labels through every dependency, across packages
//! and cells, to the file set with a reason for each path.

use crate::cells::{Cell, Cells, PRELUDE};
use crate::error::BuckError;
use crate::eval::{FileEval, Interp};
use crate::fileset::{FileSet, GraphStats, Reason, TargetInfo};
use crate::label::{label_strings, parse_raw, resolve, Label};
use crate::package::Layout;
use crate::pattern::{PatternKind, TargetPattern};
use crate::prelude::{languages_of, prelude_files, NONE as PRELUDE_NONE};
use crate::tree::{relative, Tree};
use crate::warning::Warning;
use antares_overlay::{EntryKind, RepoPath, TreeEntry};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::rc::Rc;

/// The cell holding the toolchains the prelude's rules name by default.
const TOOLCHAINS: &str = "toolchains";

/// Toolchains of the prelude that builds of every language run through:
/// its C++ and Python tools start with `python_bootstrap`, `genrule`s and
/// tests with their own.
const SHARED_TOOLCHAINS: &[&str] = &[
    "python_bootstrap",
    "genrule",
    "test",
    "remote_test_execution",
];

/// An evaluated package.
pub(crate) struct Package {
    pub cell: String,
    pub name: String,
    pub dir: RepoPath,
    pub buildfile: RepoPath,
    pub entries: Vec<TreeEntry>,
    /// The entries' paths relative to the package, sorted (what `glob()`
    /// sees and what a target's inputs can be).
    pub files: Vec<String>,
    pub eval: FileEval,
    /// `PACKAGE` files from the cell root down to the package, each with
    /// the `.bzl` files it loads.
    pub package_files: Vec<(RepoPath, BTreeSet<RepoPath>)>,
}

impl Package {
    fn key(&self) -> String {
        format!("{}//{}", self.cell, self.name)
    }
}

/// PACKAGE files and values in effect at a directory.
#[derive(Clone, Default)]
struct PackageChain {
    values: BTreeMap<String, serde_json::Value>,
    files: Vec<(RepoPath, BTreeSet<RepoPath>)>,
}

/// One target reached, and from where.
struct Node {
    /// An empty name stands for the whole package (`//pkg:`).
    label: Label,
    parent: Option<(usize, String)>,
    origin: Option<String>,
    kind: Option<String>,
    deps: BTreeSet<Label>,
    inputs: BTreeSet<String>,
}

impl Node {
    fn new(label: Label, parent: Option<(usize, String)>, origin: Option<String>) -> Self {
        Node {
            label,
            parent,
            origin,
            kind: None,
            deps: BTreeSet::new(),
            inputs: BTreeSet::new(),
        }
    }
}

/// The result of a walk: targets reached and the packages they live in.
pub(crate) struct Walk {
    nodes: Vec<Node>,
    packages: Vec<(Rc<Package>, usize)>,
    /// Packages of a vendored prelude reached (cell-relative), with the
    /// first node that reached each and whether a target other than the
    /// prelude's `none` marker was; they are not evaluated.
    prelude_packages: BTreeMap<String, (usize, bool)>,
    /// Rule kinds of the targets reached (all of a package's for a whole
    /// package): which languages, so which toolchains and prelude tools,
    /// the build uses.
    kinds: BTreeSet<String>,
}

impl Walk {
    /// Did every package reached evaluate (else its kinds are unknown)?
    fn complete(&self) -> bool {
        self.packages.iter().all(|(p, _)| p.eval.fallback.is_none())
    }
}

/// A root of the walk: a label and why it is a root (`None`: requested).
pub(crate) type Root = (Label, Option<String>);

pub(crate) struct Graph<'a, 's> {
    layout: Layout<'a, 's>,
    interp: Interp<'a, 's>,
    packages: HashMap<(String, String), Option<Rc<Package>>>,
    chains: HashMap<RepoPath, Rc<PackageChain>>,
    /// Keyed by their text: one of each, in the order of their text.
    warnings: BTreeMap<String, Warning>,
}

impl<'a, 's> Graph<'a, 's> {
    pub fn new(tree: &'a Tree<'s>, cells: &'a Cells) -> Self {
        Graph {
            layout: Layout { tree, cells },
            interp: Interp::new(tree, cells),
            packages: HashMap::new(),
            chains: HashMap::new(),
            warnings: BTreeMap::new(),
        }
    }

    fn cells(&self) -> &'a Cells {
        self.layout.cells
    }

    fn root_name(&self) -> &'a str {
        &self.layout.cells.root
    }

    pub fn warn(&mut self, w: Warning) {
        self.warnings.entry(w.to_string()).or_insert(w);
    }

    /// One warning per failed `.bzl`, however many files load it.
    fn warn_broken(&mut self, broken: &BTreeMap<RepoPath, String>) {
        for (file, why) in broken {
            self.warn(Warning::BzlFailed {
                file: file.to_string(),
                reason: why.clone(),
            });
        }
    }

    /// The package `pkg` of `cell`, evaluated once; `None` if there is no
    /// build file there.
    pub fn package(&mut self, cell: &str, pkg: &str) -> Result<Option<Rc<Package>>, BuckError> {
        let key = (cell.to_string(), pkg.to_string());
        if let Some(p) = self.packages.get(&key) {
            return Ok(p.clone());
        }
        let loaded = self.load_package(cell, pkg)?.map(Rc::new);
        self.packages.insert(key, loaded.clone());
        Ok(loaded)
    }

    fn load_package(&mut self, cell_name: &str, pkg: &str) -> Result<Option<Package>, BuckError> {
        let cells = self.cells();
        let Some(cell) = cells.get(cell_name) else {
            return Ok(None);
        };
        let Ok(rel) = RepoPath::new(pkg) else {
            return Ok(None);
        };
        let dir = cell.path.join_path(&rel);
        let Some(buildfile) = self.layout.buildfile(cell, &dir)? else {
            return Ok(None);
        };
        let entries = self.layout.package_entries(cell, &dir)?;
        let mut files: Vec<String> = entries
            .iter()
            .map(|e| relative(&e.path, &dir).to_string())
            .collect();
        files.sort();
        let chain = self.chain(cell, &dir)?;
        let eval = self
            .interp
            .eval_package_file(&buildfile, cell, pkg, &files, &chain.values);
        if let Some(fb) = &eval.fallback {
            self.warn(Warning::BuildFileFailed {
                buildfile: buildfile.to_string(),
                reason: fb.reason.clone(),
            });
        }
        self.warn_broken(&eval.broken);
        Ok(Some(Package {
            cell: cell.name.clone(),
            name: pkg.to_string(),
            dir,
            buildfile,
            entries,
            files,
            eval,
            package_files: chain.files.clone(),
        }))
    }

    /// PACKAGE files from the cell root down to `dir`, evaluated in order.
    fn chain(&mut self, cell: &Cell, dir: &RepoPath) -> Result<Rc<PackageChain>, BuckError> {
        if let Some(c) = self.chains.get(dir) {
            return Ok(c.clone());
        }
        let mut chain = match dir.parent() {
            Some(parent) if dir != &cell.path => (*self.chain(cell, &parent)?).clone(),
            _ => PackageChain::default(),
        };
        let file = dir.join("PACKAGE").map_err(|e| BuckError::Pattern {
            text: dir.to_string(),
            message: e.to_string(),
        })?;
        let tree = self.layout.tree;
        if matches!(tree.entry(&file)?, Some(e) if e.kind != EntryKind::Dir)
            && !self.cells().ignore.covers(&file)
        {
            let ev = self.interp.eval_package_file(
                &file,
                cell,
                relative(dir, &cell.path),
                &[],
                &chain.values,
            );
            if let Some(fb) = &ev.fallback {
                self.warn(Warning::PackageFileFailed {
                    file: file.to_string(),
                    reason: fb.reason.clone(),
                });
            }
            self.warn_broken(&ev.broken);
            chain.values = ev.package_values;
            chain.files.push((file, ev.loads));
        }
        let rc = Rc::new(chain);
        self.chains.insert(dir.clone(), rc.clone());
        Ok(rc)
    }

    /// The package directory holding `dir`: `dir` itself or its nearest
    /// ancestor with a build file (within its cell); `dir` when none has.
    pub fn enclosing_package(&self, dir: &RepoPath) -> Result<RepoPath, BuckError> {
        let Some(cell) = self.cells().cell_of(dir) else {
            return Ok(dir.clone());
        };
        let mut cur = Some(dir.clone());
        while let Some(d) = cur.filter(|d| d.starts_with(&cell.path)) {
            if self.layout.buildfile(cell, &d)?.is_some() {
                return Ok(d);
            }
            cur = d.parent();
        }
        Ok(dir.clone())
    }

    /// The labels a pattern stands for.
    pub fn pattern_roots(
        &mut self,
        pattern: &TargetPattern,
        origin: Option<String>,
    ) -> Result<Vec<Root>, BuckError> {
        let cells = self.cells();
        let Some(cell) = cells.get(&pattern.cell) else {
            return Ok(Vec::new());
        };
        if let PatternKind::Target(name) = &pattern.kind {
            return Ok(vec![(
                Label {
                    cell: pattern.cell.clone(),
                    package: pattern.package.clone(),
                    name: name.clone(),
                },
                origin,
            )]);
        }
        let packages = match pattern.kind {
            PatternKind::Recursive => {
                let dir = cell
                    .path
                    .join_path(&RepoPath::new(&pattern.package).map_err(|e| {
                        BuckError::Pattern {
                            text: pattern.to_string(),
                            message: e.to_string(),
                        }
                    })?);
                let dirs = self.layout.packages_under(cell, &dir)?;
                dirs.iter()
                    .map(|d| relative(d, &cell.path).to_string())
                    .collect()
            }
            _ => vec![pattern.package.clone()],
        };
        let origin = origin.or_else(|| Some(format!("matched by {pattern}")));
        let mut roots = Vec::new();
        for pkg in packages {
            let Some(p) = self.package(&cell.name, &pkg)? else {
                self.warn(Warning::NoPackage {
                    pattern: pattern.to_string(),
                    package: format!("{}//{pkg}", cell.name),
                });
                continue;
            };
            let label = |name: &str| Label {
                cell: p.cell.clone(),
                package: p.name.clone(),
                name: name.to_string(),
            };
            if p.eval.fallback.is_some() || p.eval.targets.is_empty() {
                roots.push((label(""), origin.clone()));
            }
            roots.extend(
                p.eval
                    .targets
                    .iter()
                    .map(|t| (label(&t.name), origin.clone())),
            );
        }
        Ok(roots)
    }

    /// Every target of the toolchains cell: what a build may need when the
    /// rule kinds of the closure are not known (some build file fell back),
    /// and what `--graph buck2` keeps beside buck2's own answer.
    pub fn toolchain_cell_roots(&mut self) -> Result<Vec<Root>, BuckError> {
        let Some(tc) = self.cells().get(TOOLCHAINS).filter(|c| c.on_disk()) else {
            return Ok(Vec::new());
        };
        let pattern = TargetPattern {
            cell: tc.name.clone(),
            package: String::new(),
            kind: PatternKind::Recursive,
        };
        self.pattern_roots(&pattern, Some("toolchains cell".into()))
    }

    /// The toolchains a walk's rules use. The prelude's rules (recorded
    /// generically, never evaluated) name theirs by default as
    /// `toolchains//:LANG` (`decls/toolchains_common.bzl`), plus the few
    /// every build runs through ([`SHARED_TOOLCHAINS`]); rules a repository
    /// writes with `rule()` carry their toolchain defaults as dependencies,
    /// already in the walk. Real buck2 loads the toolchains package but
    /// configures only these, so the packages the others depend on (SI's
    /// deno, pnpm, docker… toolchains) are not needed. While some build file
    /// of the walk fell back the kinds are unknown: the whole cell then.
    pub fn toolchain_roots(&mut self, walk: &Walk) -> Result<Vec<Root>, BuckError> {
        if !walk.complete() {
            return self.toolchain_cell_roots();
        }
        let Some(tc) = self.cells().get(TOOLCHAINS).filter(|c| c.on_disk()) else {
            return Ok(Vec::new());
        };
        let Some(pkg) = self.package(&tc.name, "")? else {
            return Ok(Vec::new());
        };
        let languages = languages_of(walk.kinds.iter().map(String::as_str));
        let wanted: BTreeSet<String> = languages
            .iter()
            .flat_map(|l| [l.to_string(), format!("{l}_bootstrap")])
            .chain(SHARED_TOOLCHAINS.iter().map(|s| s.to_string()))
            .collect();
        let origin = |name: &str| {
            if SHARED_TOOLCHAINS.contains(&name) {
                "toolchain every build uses".to_string()
            } else {
                format!(
                    "default toolchain of the closure's {} rules",
                    name.trim_end_matches("_bootstrap")
                )
            }
        };
        let label = |name: &str| Label {
            cell: pkg.cell.clone(),
            package: pkg.name.clone(),
            name: name.to_string(),
        };
        let roots: Vec<Root> = pkg
            .eval
            .targets
            .iter()
            .filter(|t| wanted.contains(&t.name))
            .map(|t| (label(&t.name), Some(origin(&t.name))))
            .collect();
        if roots.is_empty() {
            // Declared by a macro the evaluator records without names
            // (buck2's `system_demo_toolchains()`): buck2 still reads the
            // package, and which of its targets are used is unknown.
            return Ok(vec![(
                label(""),
                Some("toolchains package (no toolchain named for the closure's rules)".into()),
            )]);
        }
        Ok(roots)
    }

    /// The platforms the config names: every build needs them.
    pub fn platform_roots(&mut self) -> Result<Vec<Root>, BuckError> {
        let cells = self.cells();
        let mut roots = Vec::new();
        let Some(root) = cells.root_cell() else {
            return Ok(roots);
        };
        let mut platform_labels = Vec::new();
        if let Some(spec) = root.config.get("parser", "target_platform_detector_spec") {
            for item in spec.split_whitespace() {
                if let Some((_, label)) = item.split_once("->") {
                    platform_labels
                        .push((label.to_string(), "[parser] target_platform_detector_spec"));
                }
            }
        }
        if let Some(v) = root.config.get("build", "execution_platforms") {
            for l in v.split([',', ' ']).filter(|s| !s.is_empty()) {
                platform_labels.push((l.to_string(), "[build] execution_platforms"));
            }
        }
        for (text, origin) in platform_labels {
            match parse_raw(&text).map(|raw| resolve(&raw, cells, &root.name, "")) {
                Some(Ok(label)) => roots.push((label, Some(origin.to_string()))),
                _ => self.warn(Warning::NotALabel {
                    origin: origin.to_string(),
                    text,
                }),
            }
        }
        Ok(roots)
    }

    /// Visits `roots` and, with `follow`, everything they depend on.
    pub fn walk(&mut self, roots: Vec<Root>, follow: bool) -> Result<Walk, BuckError> {
        let cells = self.cells();
        let mut nodes: Vec<Node> = Vec::new();
        let mut index: HashMap<Label, usize> = HashMap::new();
        let mut queue = VecDeque::new();
        for (label, origin) in roots {
            if !index.contains_key(&label) {
                index.insert(label.clone(), nodes.len());
                queue.push_back(nodes.len());
                nodes.push(Node::new(label, None, origin));
            }
        }
        let mut packages = Vec::new();
        let mut seen_packages = HashSet::new();
        let mut prelude_packages = BTreeMap::new();
        let mut kinds = BTreeSet::new();
        while let Some(i) = queue.pop_front() {
            let label = nodes[i].label.clone();
            let Some(cell) = cells.get(&label.cell) else {
                continue;
            };
            if cell.name == PRELUDE && cell.on_disk() {
                let entry = prelude_packages
                    .entry(label.package.clone())
                    .or_insert((i, false));
                entry.1 |= label.name != PRELUDE_NONE;
                continue;
            }
            if cell.name == PRELUDE || cell.external.is_some() {
                continue;
            }
            if !cell.present {
                let why = reason_of(&nodes, i, self.root_name());
                self.warn(Warning::CellAbsent {
                    cell: cell.name.clone(),
                    label: label.to_string(),
                    why: why.to_string(),
                });
                continue;
            }
            let Some(pkg) = self.package(&label.cell, &label.package)? else {
                let why = reason_of(&nodes, i, self.root_name());
                self.warn(Warning::NoBuildFile {
                    package: format!("{}//{}", label.cell, label.package),
                    why: why.to_string(),
                });
                continue;
            };
            if seen_packages.insert(pkg.key()) {
                packages.push((pkg.clone(), i));
            }
            let mut deps: Vec<(&str, &str)> = Vec::new();
            if label.name.is_empty() {
                for t in &pkg.eval.targets {
                    kinds.insert(t.kind.clone());
                    for (attr, strings) in &t.attrs {
                        deps.extend(strings.iter().map(|s| (attr.as_str(), s.as_str())));
                    }
                }
            } else if let Some(t) = pkg.eval.targets.iter().find(|t| t.name == label.name) {
                nodes[i].kind = Some(t.kind.clone());
                kinds.insert(t.kind.clone());
                for (attr, strings) in &t.attrs {
                    deps.extend(strings.iter().map(|s| (attr.as_str(), s.as_str())));
                }
            } else if pkg.eval.fallback.is_none() {
                let why = reason_of(&nodes, i, self.root_name());
                self.warn(Warning::NoTarget {
                    buildfile: pkg.buildfile.to_string(),
                    name: label.name.clone(),
                    why: why.to_string(),
                });
            }
            if let Some(fb) = &pkg.eval.fallback {
                deps.extend(
                    fb.labels
                        .iter()
                        .map(|l| ("labels in a failed build file", l.as_str())),
                );
            }
            for (attr, s) in deps {
                let texts = label_strings(s);
                if texts.is_empty() && pkg.files.binary_search_by(|f| f.as_str().cmp(s)).is_ok() {
                    nodes[i].inputs.insert(s.to_string());
                }
                for text in texts {
                    let Some(raw) = parse_raw(text) else { continue };
                    let dep = match resolve(&raw, cells, &label.cell, &label.package) {
                        Ok(d) => d,
                        Err(e) => {
                            self.warn(Warning::BadLabel {
                                buildfile: pkg.buildfile.to_string(),
                                text: text.to_string(),
                                error: e.to_string(),
                            });
                            continue;
                        }
                    };
                    if dep == label || !nodes[i].deps.insert(dep.clone()) {
                        continue;
                    }
                    if !follow || index.contains_key(&dep) {
                        continue;
                    }
                    index.insert(dep.clone(), nodes.len());
                    queue.push_back(nodes.len());
                    nodes.push(Node::new(dep, Some((i, attr.to_string())), None));
                }
            }
        }
        Ok(Walk {
            nodes,
            packages,
            prelude_packages,
            kinds,
        })
    }

    /// The file set of a walk, plus `extra` paths known to be needed (what
    /// real buck2 reported).
    pub fn assemble(
        mut self,
        walk: Walk,
        extra: Vec<(RepoPath, Reason)>,
    ) -> Result<FileSet, BuckError> {
        let cells = self.cells();
        let tree = self.layout.tree;
        let root = self.root_name();
        let mut fs = FileSet::default();
        let mut involved: BTreeMap<String, Reason> = BTreeMap::new();
        if let Some(rc) = cells.root_cell() {
            involved.insert(rc.name.clone(), Reason::new("project root"));
        }
        for (pkg, i) in &walk.packages {
            let shown = if pkg.dir.is_root() {
                "//".to_string()
            } else {
                format!("{}/", pkg.dir)
            };
            let pr = reason_of(&walk.nodes, *i, root).then(format!("package {shown}"));
            fs.packages.insert(pkg.key(), pr.clone());
            fs.add(pkg.buildfile.clone(), || pr.then("build file"));
            let package_files = pkg
                .package_files
                .iter()
                .map(|(f, loads)| (f, Some(f), loads));
            for (loader, package_file, loads) in
                std::iter::once((&pkg.buildfile, None, &pkg.eval.loads)).chain(package_files)
            {
                if let Some(f) = package_file {
                    fs.add(f.clone(), || pr.then("PACKAGE file"));
                }
                for f in loads {
                    fs.add(f.clone(), || pr.then(format!("loaded by {loader}")));
                    if let Some(c) = cells.cell_of(f) {
                        involved
                            .entry(c.name.clone())
                            .or_insert_with(|| pr.then(format!("loads {f}")));
                    }
                }
            }
            for e in &pkg.entries {
                fs.add(e.path.clone(), || pr.then("whole package"));
            }
            involved.entry(pkg.cell.clone()).or_insert(pr);
        }
        for (path, reason) in extra {
            if let Some(c) = cells.cell_of(&path) {
                involved
                    .entry(c.name.clone())
                    .or_insert_with(|| reason.clone());
            }
            fs.add(path, || reason);
        }
        if let Some(prelude) = cells.get(PRELUDE).filter(|c| c.on_disk()) {
            let reached = walk
                .prelude_packages
                .iter()
                .map(|(pkg, (i, whole))| (pkg.clone(), *whole, reason_of(&walk.nodes, *i, root)))
                .collect();
            // Unknown while some build file fell back.
            let languages = walk
                .complete()
                .then(|| languages_of(walk.kinds.iter().map(String::as_str)));
            for (path, reason) in prelude_files(&self.layout, prelude, reached, languages.as_ref())?
            {
                fs.add(path, || reason);
            }
            involved
                .entry(prelude.name.clone())
                .or_insert_with(|| Reason::new("vendored prelude (every build file loads it)"));
        }
        for (name, r) in &involved {
            let Some(cell) = cells.get(name) else {
                continue;
            };
            for f in &cell.config.files {
                fs.add(f.clone(), || {
                    r.then(format!("configuration of cell {name}"))
                });
            }
            if let Ok(marker) = cell.path.join(".buckroot") {
                if tree.entry(&marker)?.is_some() {
                    fs.add(marker, || r.then("project root marker"));
                }
            }
        }
        self.follow_symlinks(&mut fs)?;
        for (i, node) in walk.nodes.iter().enumerate() {
            if let Some(kind) = &node.kind {
                fs.targets.insert(
                    node.label.short(root),
                    TargetInfo {
                        kind: kind.clone(),
                        deps: node.deps.iter().map(|d| d.short(root)).collect(),
                        inputs: node.inputs.iter().cloned().collect(),
                        reason: reason_of(&walk.nodes, i, root),
                    },
                );
            }
        }
        fs.warnings = std::mem::take(&mut self.warnings).into_values().collect();
        fs.stats = self.stats();
        Ok(fs)
    }

    /// What was evaluated: every build file and PACKAGE file once, every
    /// `.bzl` once (modules are cached for the computation).
    fn stats(&self) -> GraphStats {
        let packages: Vec<&Package> = self.packages.values().flatten().map(Rc::as_ref).collect();
        let package_files: BTreeMap<&RepoPath, &BTreeSet<RepoPath>> = self
            .chains
            .values()
            .flat_map(|c| c.files.iter().map(|(f, loads)| (f, loads)))
            .collect();
        let bzl: BTreeSet<&RepoPath> = packages
            .iter()
            .flat_map(|p| p.eval.loads.iter())
            .chain(package_files.values().flat_map(|l| l.iter()))
            .collect();
        GraphStats {
            build_files: packages.len(),
            package_files: package_files.len(),
            bzl_files: bzl.len(),
            fallbacks: packages
                .iter()
                .filter(|p| p.eval.fallback.is_some())
                .count(),
            evaluations: packages.len() + package_files.len() + bzl.len(),
            cached: false,
        }
    }

    /// Adds the targets of relative symlinks in the set, transitively
    /// (oracle fact 1: buck2 needs them and `inputs()` omits them).
    fn follow_symlinks(&mut self, fs: &mut FileSet) -> Result<(), BuckError> {
        let tree = self.layout.tree;
        let cells = self.cells();
        let mut pending: Vec<RepoPath> = Vec::new();
        for p in fs.files.keys() {
            if matches!(tree.entry(p)?, Some(e) if e.kind == EntryKind::Symlink) {
                pending.push(p.clone());
            }
        }
        let mut done = HashSet::new();
        while let Some(link) = pending.pop() {
            if !done.insert(link.clone()) {
                continue;
            }
            let Some(r) = fs.files.get(&link).cloned() else {
                continue;
            };
            let resolved = tree.resolve(&link)?;
            for through in resolved.links.iter().filter(|l| **l != link) {
                fs.add(through.clone(), || {
                    r.then(format!("symlink {link} passes through it"))
                });
            }
            if let Some(problem) = resolved.problem {
                self.warn(Warning::SymlinkUnresolvable {
                    link: link.to_string(),
                    problem: problem.to_string(),
                });
                continue;
            }
            let Some(target) = resolved.entry else {
                self.warn(Warning::SymlinkDangles {
                    link: link.to_string(),
                });
                continue;
            };
            let step = format!("target of symlink {link}");
            match target.kind {
                EntryKind::Dir => {
                    let Some(cell) = cells.cell_of(&target.path) else {
                        continue;
                    };
                    for e in self.layout.all_entries(cell, &target.path)? {
                        if e.kind == EntryKind::Symlink {
                            pending.push(e.path.clone());
                        }
                        fs.add(e.path, || r.then(step.clone()));
                    }
                }
                _ => {
                    fs.add(target.path, || r.then(step));
                }
            }
        }
        Ok(())
    }
}

/// The chain from a root to node `i`.
fn reason_of(nodes: &[Node], i: usize, root: &str) -> Reason {
    let mut steps = Vec::new();
    let mut cur = i;
    loop {
        let n = &nodes[cur];
        let shown = n.label.short(root);
        match &n.parent {
            Some((p, attr)) => {
                steps.push(format!("{shown} ({attr})"));
                cur = *p;
            }
            None => {
                steps.push(match &n.origin {
                    Some(o) => format!("{shown} ({o})"),
                    None => shown,
                });
                break;
            }
        }
    }
    steps.reverse();
    Reason { chain: steps }
}
