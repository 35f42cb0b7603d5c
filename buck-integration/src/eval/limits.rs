//! Bounds on one file's evaluation, so a runaway build file (an endless
//! loop, a list doubled forty times) stops with an error naming the file
//! and line instead of taking the machine's memory or the process down.
//!
//! Straight-line growth is caught here, before each statement; what one
//! operation could allocate at once is checked before it runs by the
//! checked operations (`checked.rs`), which read the heap limit from the
//! file context.

use starlark::codemap::{FileSpan, FileSpanRef};
use starlark::environment::Module;
use starlark::eval::{BeforeStmtFunc, BeforeStmtFuncDyn, Evaluator};
use starlark::values::dict::DictRef;
use starlark::values::list::ListRef;
use starlark::values::structs::StructRef;
use starlark::values::tuple::TupleRef;
use starlark::values::{Value, ValueIdentity};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

/// Lists, tuples, dicts and structs nested deeper than this in a module's
/// globals are refused before the module is frozen: freezing recurses once
/// per level, and a list wrapped a million times (`l = [l]` in a loop)
/// overflows the stack. Real data nests a few levels.
const MAX_VALUE_NESTING: usize = 1000;

/// How far one file's evaluation may go.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Function calls plus loop iterations (starlark's "ticks").
    pub ticks: u64,
    /// Bytes of Starlark heap.
    pub heap: usize,
}

impl Default for Limits {
    /// Far above what real files need (the costliest file of systeminit/si,
    /// `third-party/rust/BUCK`, takes 6,434 ticks; `-vv` logs each file's),
    /// low enough that a runaway loop stops within seconds (a release build
    /// runs millions of ticks a second) and a doubled list peaks below 1 GB.
    fn default() -> Self {
        Limits {
            ticks: 2_000_000,
            heap: 512 << 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("evaluation stopped: it allocated more than {} MiB of Starlark values", limit >> 20)]
struct HeapExceeded {
    limit: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("evaluation stopped: the value of `{name}` nests lists, tuples, dicts or structs more than {MAX_VALUE_NESTING} deep")]
pub(crate) struct NestedTooDeep {
    name: String,
}

/// The lists, tuples, dicts and structs directly inside `v`.
fn containers_in(v: Value<'_>) -> Vec<Value<'_>> {
    let items: Vec<Value> = if let Some(l) = ListRef::from_value(v) {
        l.iter().collect()
    } else if let Some(t) = TupleRef::from_value(v) {
        t.iter().collect()
    } else if let Some(d) = DictRef::from_value(v) {
        d.iter().flat_map(|(k, v)| [k, v]).collect()
    } else if let Some(s) = StructRef::from_value(v) {
        s.iter().map(|(_, v)| v).collect()
    } else {
        Vec::new()
    };
    items
        .into_iter()
        .filter(|c| {
            ListRef::from_value(*c).is_some()
                || TupleRef::from_value(*c).is_some()
                || DictRef::from_value(*c).is_some()
                || StructRef::from_value(*c).is_some()
        })
        .collect()
}

/// Refuses a module whose globals nest containers deeper than
/// [`MAX_VALUE_NESTING`], measured without recursion (each container once;
/// a container inside itself is not followed back).
pub(crate) fn check_nesting(module: &Module) -> Result<(), NestedTooDeep> {
    let mut height: HashMap<ValueIdentity, usize> = HashMap::new();
    let mut open: HashSet<ValueIdentity> = HashSet::new();
    for name in module.names() {
        let Some(value) = module.get(name.as_str()) else {
            continue;
        };
        let mut stack = vec![(value, false)];
        while let Some((v, expanded)) = stack.pop() {
            let id = v.identity();
            if height.contains_key(&id) {
                continue;
            }
            let inner = containers_in(v);
            if !expanded {
                if !open.insert(id) {
                    continue;
                }
                stack.push((v, true));
                stack.extend(inner.into_iter().map(|c| (c, false)));
                continue;
            }
            let h = 1 + inner
                .iter()
                .filter_map(|c| height.get(&c.identity()))
                .max()
                .copied()
                .unwrap_or(0);
            if h > MAX_VALUE_NESTING {
                return Err(NestedTooDeep {
                    name: name.as_str().to_string(),
                });
            }
            open.remove(&id);
            height.insert(id, h);
        }
    }
    Ok(())
}

/// The statement evaluation last reached: where a runaway loop was when
/// the tick limit stopped it (that error carries no place of its own).
pub(crate) type LastStatement = Rc<RefCell<Option<FileSpan>>>;

/// Runs before every statement: notes where evaluation is, and checks the
/// heap (the evaluator's own heap check runs only every thousand calls or
/// loop iterations, which straight-line code, `l = l + l` forty times,
/// never reaches).
struct Guard {
    limit: usize,
    last: LastStatement,
}

impl<'e> BeforeStmtFuncDyn<'e> for Guard {
    fn call<'v>(
        &mut self,
        span: FileSpanRef,
        _continued: bool,
        eval: &mut Evaluator<'v, '_, 'e>,
    ) -> starlark::Result<()> {
        *self.last.borrow_mut() = Some(span.to_file_span());
        if eval.heap().allocated_bytes() > self.limit {
            // starlark adds the statement's span to the error.
            return Err(starlark::Error::new_other(HeapExceeded {
                limit: self.limit,
            }));
        }
        Ok(())
    }
}

/// Puts the bounds on `eval`; returns where the last statement was.
pub(crate) fn bound(
    eval: &mut Evaluator<'_, '_, '_>,
    limits: Limits,
) -> anyhow::Result<LastStatement> {
    eval.set_max_tick_count(limits.ticks)?;
    let last = LastStatement::default();
    eval.before_stmt_for_dap(BeforeStmtFunc::from_dyn(Box::new(Guard {
        limit: limits.heap,
        last: last.clone(),
    })));
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::Limits;
    use crate::cells::Cells;
    use crate::eval::Interp;
    use crate::tree::Tree;
    use antares_overlay::{DirSource, RepoPath};
    use std::collections::BTreeMap;

    /// Why `p/defs.bzl`, loaded by `p/BUCK`, failed under small limits.
    fn failure_of(defs: &str) -> String {
        let tmp = tempfile::tempdir().unwrap();
        for (path, text) in [
            (".buckconfig", "[cells]\nroot = .\n"),
            (
                "p/BUCK",
                "load(\":defs.bzl\", \"x\")\ngenrule(name = \"t\")\n",
            ),
            ("p/defs.bzl", defs),
        ] {
            let p = tmp.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let source = DirSource::open(tmp.path()).unwrap();
        let tree = Tree::new(&source);
        let cells = Cells::load(&tree, "test").unwrap();
        let mut interp = Interp::new(&tree, &cells);
        interp.limits = Limits {
            ticks: 100_000,
            heap: 16 << 20,
        };
        let buck = RepoPath::new("p/BUCK").unwrap();
        let cell = cells.root_cell().unwrap();
        let eval = interp.eval_package_file(&buck, cell, "p", &[], &BTreeMap::new());
        assert!(eval.fallback.is_none(), "{:?}", eval.fallback);
        eval.broken
            .get(&RepoPath::new("p/defs.bzl").unwrap())
            .cloned()
            .unwrap_or_else(|| panic!("defs.bzl did not fail: {:?}", eval.broken))
    }

    #[test]
    fn an_endless_loop_stops_naming_file_and_line() {
        let why = failure_of(
            "def f():\n    n = 0\n    for i in range(100000):\n        \
             for j in range(100000):\n            n += 1\n    return n\nx = f()\n",
        );
        // The innermost loop's statement, where the time went.
        assert!(why.starts_with("p/defs.bzl:5:"), "{why}");
        assert!(why.contains("100000 ticks"), "{why}");
    }

    /// Each of these would be one allocation of gigabytes inside
    /// starlark (the process aborts when the system refuses it): refused
    /// before it happens, naming the line.
    #[test]
    fn a_huge_repetition_stops_before_it_allocates() {
        for (expr, what) in [
            ("[1] * 2000000000", "a list of 1 items 2000000000 times"),
            ("2000000000 * [1, 2]", "a list of 2 items 2000000000 times"),
            (
                "\"ab\" * 2000000000",
                "a string of 2 items 2000000000 times",
            ),
            ("(1,) * 100000000", "a tuple of 1 items 100000000 times"),
        ] {
            let why = failure_of(&format!("a = 1\nif True:\n    x = {expr}\n"));
            assert!(why.starts_with("p/defs.bzl:3:"), "{expr}: {why}");
            assert!(why.contains(what), "{expr}: {why}");
            assert!(why.contains("of the 16 MiB allowed"), "{expr}: {why}");
        }
    }

    /// Repetitions within the limit, and every other `*`, are unchanged.
    #[test]
    fn small_repetitions_and_products_evaluate() {
        let tmp = tempfile::tempdir().unwrap();
        for (path, text) in [
            (".buckconfig", "[cells]\nroot = .\n"),
            (
                "p/BUCK",
                "N = 3 * 4\nS = \"ab\" * 2\nL = 2 * [\"//p:a\"]\nF = 1.5 * 2\n\
                 genrule(name = \"t\" if (N, S, len(L), F) == (12, \"abab\", 2, 3.0) else \"wrong\")\n",
            ),
        ] {
            let p = tmp.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let source = DirSource::open(tmp.path()).unwrap();
        let tree = Tree::new(&source);
        let cells = Cells::load(&tree, "test").unwrap();
        let interp = Interp::new(&tree, &cells);
        let buck = RepoPath::new("p/BUCK").unwrap();
        let cell = cells.root_cell().unwrap();
        let eval = interp.eval_package_file(&buck, cell, "p", &[], &BTreeMap::new());
        assert!(eval.fallback.is_none(), "{:?}", eval.fallback);
        let names: Vec<&str> = eval.targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["t"]);
    }

    #[test]
    fn a_list_doubled_forty_times_stops_naming_file_and_line() {
        let doublings = "l = l + l\n".repeat(40);
        let why = failure_of(&format!("l = [1]\n{doublings}x = 1\n"));
        // 2^21 eight-byte cells fill 16 MiB: the doubling past that is
        // refused, around line 23.
        assert!(why.starts_with("p/defs.bzl:2"), "{why}");
        assert!(why.contains("16 MiB"), "{why}");
    }
}
