//! Bounds on one file's evaluation, so a runaway build file (an endless
//! loop, a list doubled forty times) stops with an error naming the file
//! and line instead of taking the machine's memory or the process down.

use super::context::file_ctx;
use starlark::codemap::{FileSpan, FileSpanRef};
use starlark::environment::GlobalsBuilder;
use starlark::eval::{BeforeStmtFunc, BeforeStmtFuncDyn, Evaluator};
use starlark::starlark_module;
use starlark::syntax::AstModule;
use starlark::values::list::ListRef;
use starlark::values::tuple::TupleRef;
use starlark::values::Value;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// The global every `a * b` of a file is rewritten to call.
const CHECKED_MULTIPLY: &str = "__antares_checked_multiply";

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
#[error(
    "evaluation stopped: repeating a {kind} of {len} items {times} times would allocate \
     {} MiB, more than the {} MiB allowed", bytes >> 20, limit >> 20
)]
struct RepeatTooLarge {
    kind: &'static str,
    len: usize,
    times: i64,
    bytes: u128,
    limit: usize,
}

/// Makes every `a * b` of `ast` a call of [`checked_multiply`]. A string
/// or list repeated a billion times is one allocation inside starlark,
/// which the per-statement heap check sees only after it, and an
/// allocation the system refuses aborts the process; the check must come
/// first. (`x *= n` is a statement starlark offers no rewrite for: it
/// stays unchecked.)
pub(crate) fn check_repetitions(ast: &mut AstModule) {
    ast.replace_binary_operators(&HashMap::from([(
        "*".to_string(),
        CHECKED_MULTIPLY.to_string(),
    )]));
}

/// Bytes `seq * n` (or `n * seq`) would allocate, when one side is a
/// string, list or tuple and the other an int: what starlark reserves
/// before it copies.
fn repetition<'v>(a: Value<'v>, b: Value<'v>) -> Option<(&'static str, usize, i64, u128)> {
    let (seq, n) = match (a.unpack_i32(), b.unpack_i32()) {
        (None, Some(n)) => (a, n),
        (Some(n), None) => (b, n),
        _ => return None,
    };
    let word = std::mem::size_of::<usize>() as u128;
    let (kind, len, item) = if let Some(s) = seq.unpack_str() {
        ("string", s.len(), 1)
    } else if let Some(l) = ListRef::from_value(seq) {
        ("list", l.len(), word)
    } else if let Some(t) = TupleRef::from_value(seq) {
        ("tuple", t.len(), word)
    } else {
        return None;
    };
    let times = i64::from(n.max(0));
    Some((kind, len, times, len as u128 * times as u128 * item))
}

#[starlark_module]
pub(crate) fn limit_globals(builder: &mut GlobalsBuilder) {
    /// `a * b`, refused before it allocates more than the heap limit.
    fn __antares_checked_multiply<'v>(
        #[starlark(require = pos)] a: Value<'v>,
        #[starlark(require = pos)] b: Value<'v>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<Value<'v>> {
        if let Some((kind, len, times, bytes)) = repetition(a, b) {
            let limit = file_ctx(eval)
                .map_err(starlark::Error::new_other)?
                .max_bytes;
            if bytes > limit as u128 {
                return Err(starlark::Error::new_other(RepeatTooLarge {
                    kind,
                    len,
                    times,
                    bytes,
                    limit,
                }));
            }
        }
        a.mul(b, eval.heap())
    }
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
            assert!(
                why.contains("more than the 16 MiB allowed"),
                "{expr}: {why}"
            );
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
        // 2^21 eight-byte cells fill 16 MiB: the statement after that is
        // refused, around line 23.
        assert!(why.starts_with("p/defs.bzl:2"), "{why}");
        assert!(why.contains("more than 16 MiB"), "{why}");
    }
}
