//! Bounds on one file's evaluation, so a runaway build file (an endless
//! loop, a list doubled forty times) stops with an error naming the file
//! and line instead of taking the machine's memory or the process down.

use starlark::codemap::{FileSpan, FileSpanRef};
use starlark::eval::{BeforeStmtFunc, BeforeStmtFuncDyn, Evaluator};
use std::cell::RefCell;
use std::rc::Rc;

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
            "def f():\n    n = 0\n    for i in range(2000000000):\n        \
             for j in range(2000000000):\n            n += 1\n    return n\nx = f()\n",
        );
        // The innermost loop's statement, where the time went.
        assert!(why.starts_with("p/defs.bzl:5:"), "{why}");
        assert!(why.contains("100000 ticks"), "{why}");
    }

    #[test]
    fn a_list_doubled_forty_times_stops_naming_file_and_line() {
        let doublings = "l = l + l\n".repeat(40);
        let why = failure_of(&format!("l = [1]\n{doublings}x = 1\n"));
        // 2^21 eight-byte cells fill 16 MiB: the statement after that is
        // refused, around line 23.
        assert!(why.starts_with("p/defs.bzl:2"), "{why}");
        assert!(why.contains("more than 16 MiB"), "{why}");
    }
}
