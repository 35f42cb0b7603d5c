//! No import cycles between the modules of a crate: each module's
//! `crate::…` and `super::…` paths (imports, paths in code, doc links) are
//! its edges, and the crates listed in [`ACYCLIC`] must form a DAG (issue
//! 16: a leaf never reaches back into the module that holds it, so a
//! newcomer can read each crate bottom-up).
//!
//! A path counts as a dependency on the longest module it names; a path
//! into the module's own ancestors (e.g. `super::Type` in `a/b.rs` naming
//! something of `a`) does not count, as the ancestor declares the child.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The source roots checked: every crate of the workspace.
const ACYCLIC: &[&str] = &[
    "src",
    "overlay/src",
    "buck-integration/src",
    "materializer/src",
    "test-server/src",
];

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for e in entries {
        let p = e.expect("directory entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of `file` under `root`: `a/b.rs` and `a/b/mod.rs` are
/// `a::b`; `lib.rs` and `main.rs` are the crate root, "".
fn module_name(root: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(root).expect("file under its root");
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|l| l == "mod") || parts == ["lib"] || parts == ["main"] {
        parts.pop();
    }
    parts.join("::")
}

fn parent_of(module: &str) -> Vec<String> {
    let mut parts: Vec<String> = module.split("::").map(str::to_string).collect();
    parts.pop();
    parts.retain(|p| !p.is_empty());
    parts
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths after each `crate::` / `super::` in `text`, as segment lists
/// relative to the crate root (`base` is what `super` stands for); a brace
/// group (`crate::{a, b::{c, d}}`) yields one path per item.
fn paths(text: &str, base: &[String], out: &mut Vec<Vec<String>>) {
    let chars: Vec<char> = text.chars().collect();
    let at = |i: usize, s: &str| {
        s.chars()
            .enumerate()
            .all(|(k, c)| chars.get(i + k) == Some(&c))
    };
    let mut i = 0;
    while i < chars.len() {
        let fresh = i == 0 || !is_ident(chars[i - 1]);
        if fresh && at(i, "crate::") {
            i += 7;
            use_tree(&chars, &mut i, Vec::new(), out);
        } else if fresh && at(i, "super::") {
            i += 7;
            use_tree(&chars, &mut i, base.to_vec(), out);
        } else {
            i += 1;
        }
    }
}

/// Reads `seg::seg::…` (ending in a name or a `{…}` group of such trees)
/// from `chars[*i..]`, each path found appended to `path` into `out`.
fn use_tree(chars: &[char], i: &mut usize, mut path: Vec<String>, out: &mut Vec<Vec<String>>) {
    loop {
        while chars.get(*i).is_some_and(|c| c.is_whitespace()) {
            *i += 1;
        }
        if chars.get(*i) == Some(&'{') {
            *i += 1;
            loop {
                use_tree(chars, i, path.clone(), out);
                // Anything after the item's path (`as name`, `*`) is skipped.
                while chars.get(*i).is_some_and(|c| !matches!(c, ',' | '}')) {
                    *i += 1;
                }
                match chars.get(*i) {
                    Some(',') => *i += 1,
                    Some(_) => {
                        *i += 1;
                        return;
                    }
                    None => return,
                }
            }
        }
        let seg: String = chars[*i..].iter().take_while(|c| is_ident(**c)).collect();
        if seg.is_empty() {
            out.push(path);
            return;
        }
        *i += seg.len();
        if seg == "super" {
            path.pop();
        } else {
            path.push(seg);
        }
        if chars.get(*i) == Some(&':') && chars.get(*i + 1) == Some(&':') {
            *i += 2;
        } else {
            out.push(path);
            return;
        }
    }
}

/// The module graph of the crate whose sources are the `files` under `root`.
fn graph(root: &Path, files: &[(PathBuf, String)]) -> Graph {
    let names: BTreeSet<String> = files.iter().map(|(f, _)| module_name(root, f)).collect();
    let mut g = Graph::new();
    for (file, text) in files {
        let name = module_name(root, file);
        let own: Vec<String> = name
            .split("::")
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect();
        // In a file's inline test module, `super` is the file's own module.
        let (code, tests) = match text.find("\nmod tests {") {
            Some(at) => text.split_at(at),
            None => (text.as_str(), ""),
        };
        let mut found = Vec::new();
        paths(code, &parent_of(&name), &mut found);
        paths(tests, &own, &mut found);
        let deps = g.entry(name.clone()).or_default();
        for full in found {
            for k in (1..=full.len()).rev() {
                let candidate = full[..k].join("::");
                if names.contains(&candidate) {
                    if candidate != name && !name.starts_with(&format!("{candidate}::")) {
                        deps.insert(candidate);
                    }
                    break;
                }
            }
        }
    }
    g
}

/// The strongly connected components of `g` with more than one module
/// (Tarjan's algorithm), each sorted.
fn cycles(g: &Graph) -> Vec<Vec<String>> {
    struct State<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

#[test]
fn crates_have_no_import_cycles() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for dir in ACYCLIC {
        let root = repo.join(dir);
        let mut files = Vec::new();
        rust_files(&root, &mut files);
        let files: Vec<(PathBuf, String)> = files
            .into_iter()
            .map(|f| {
                let text =
                    std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
                (f, text)
            })
            .collect();
        assert!(files.len() > 1, "{dir}: no modules found");
        for c in cycles(&graph(&root, &files)) {
            found.push(format!("{dir}: {}", c.join(", ")));
        }
    }
    assert!(
        found.is_empty(),
        "import cycles between modules:\n{}",
        found.join("\n")
    );
}

/// The detector itself: a cycle through a `super::` brace import and a
/// `crate::` path is found; the same modules without the back edge are not.
#[test]
fn detector_finds_a_cycle() {
    let root = Path::new("/x");
    let file = |p: &str, t: &str| (root.join(p), t.to_string());
    let acyclic = [
        file("lib.rs", "mod a; mod b;"),
        file("a/mod.rs", "use super::b::Thing;\nmod leaf;"),
        file("a/leaf.rs", "use super::super::b;\n"),
        file(
            "b.rs",
            "pub struct Thing;\nmod tests {\n use super::Thing;\n}",
        ),
    ];
    assert!(cycles(&graph(root, &acyclic)).is_empty());
    let mut cyclic = acyclic.to_vec();
    cyclic[3] = file("b.rs", "use crate::{x, a::leaf::{One, Two}};");
    assert_eq!(
        cycles(&graph(root, &cyclic)),
        vec![vec!["a::leaf".to_string(), "b".to_string()]]
    );
}
