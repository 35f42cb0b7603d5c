//! The source rewrite that routes a file's costly operations through the
//! checks of [`super::checked`], before it is evaluated.
//!
//! starlark offers a rewrite of binary operators only (`a * b` becomes a
//! call); `x *= n`, `s.join(l)` and the expressions of an f-string it
//! evaluates natively. Those are rewritten in the text, at the places the
//! parsed tree gives, and the text parsed again (only for files that have
//! them), keeping every line where it was so errors name the right line:
//!
//! - `T *= e` → `T = __antares_multiply(T, e)` (and `%=` alike), where the
//!   target `T` has no call in it (it is evaluated twice); a target with a
//!   call is refused, there is no checked way to run it;
//! - `x.join` → `__antares_method(x, "join")` (and `replace`, `format`,
//!   `split`, …);
//! - `f"{a}{b}"` → `f"{__antares_part(2, a)}{__antares_part(2, b)}"`;
//! - `str(x)` → `str(__antares_part(1, x))` (and `repr`, `print`,
//!   `fail`, `json.encode`);
//! - `list(x)` → `list(__antares_items(x))` (and `tuple`, `sorted`, `zip`,
//!   …).

use super::checked::{ADD, ITEMS, METHOD, MULTIPLY, PART, PERCENT, STRING_METHODS};
use starlark::codemap::Span;
use starlark::syntax::ast::{ArgumentP, AssignOp, AssignTargetP, AstExpr, AstStmt, ExprP, StmtP};
use starlark::syntax::{AstModule, Dialect};
use std::collections::HashMap;

/// Brackets nested deeper than this are refused before parsing: the
/// parser, the compiler and the evaluator all recurse on nesting, and a
/// file of a hundred thousand `[` overflows the stack (no real build file
/// nests more than a few dozen).
const MAX_NESTING: usize = 200;

/// Global functions that write their arguments' text.
const RENDERING_FUNCTIONS: [&str; 4] = ["str", "repr", "print", "fail"];

/// Global functions that make a list, tuple, dict or set of their
/// arguments' items natively, without a tick per item: a billion items
/// would be made at once.
const MATERIALISING_FUNCTIONS: [&str; 8] = [
    "list",
    "tuple",
    "sorted",
    "reversed",
    "enumerate",
    "zip",
    "dict",
    "set",
];

/// Why a file cannot be evaluated under the checks.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RewriteError {
    #[error("{path}:{line}: brackets nested more than {MAX_NESTING} deep")]
    TooDeep { path: String, line: usize },
    #[error(
        "{path}:{line}: `{op}` on a target with a call in it is not supported (the target \
         would run twice): assign the call's result to a name first"
    )]
    CallInTarget {
        path: String,
        line: usize,
        op: &'static str,
    },
    #[error("{0}")]
    Parse(starlark::Error),
}

/// One text edit: replace `start..end` by `text`.
struct Edit {
    start: usize,
    end: usize,
    text: String,
}

/// Parses `text` as `path` with every costly operation checked: the
/// binary operators rewritten by starlark, the rest in the text.
pub(crate) fn parse_checked(
    path: &str,
    text: String,
    dialect: &Dialect,
) -> Result<AstModule, RewriteError> {
    if let Some(line) = too_deep(&text) {
        return Err(RewriteError::TooDeep {
            path: path.to_string(),
            line,
        });
    }
    let parse = |text: String| AstModule::parse(path, text, dialect).map_err(RewriteError::Parse);
    let ast = parse(text.clone())?;
    let mut edits = Vec::new();
    walk(ast.statement(), &text, &mut edits).map_err(|(span, op)| RewriteError::CallInTarget {
        path: path.to_string(),
        line: line_of(&text, span.begin().get() as usize),
        op,
    })?;
    ast.statement()
        .visit_expr(|e| walk_expression(e, &text, &mut edits));
    let mut ast = if edits.is_empty() {
        ast
    } else {
        parse(apply(&text, edits))?
    };
    ast.replace_binary_operators(&HashMap::from([
        ("*".to_string(), MULTIPLY.to_string()),
        ("+".to_string(), ADD.to_string()),
        ("%".to_string(), PERCENT.to_string()),
    ]));
    Ok(ast)
}

/// The 1-based line where brackets first nest deeper than
/// [`MAX_NESTING`] (counted in strings and comments too: an overestimate).
fn too_deep(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, b) in text.bytes().enumerate() {
        match b {
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some(line_of(text, i));
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn range(span: Span) -> (usize, usize) {
    (span.begin().get() as usize, span.end().get() as usize)
}

/// Collects the edits for `stmt` and every statement and expression below
/// it; fails with the span and operator of an augmented assignment it
/// cannot check.
fn walk(stmt: &AstStmt, text: &str, edits: &mut Vec<Edit>) -> Result<(), (Span, &'static str)> {
    augmented(stmt, text, edits)?;
    let mut result = Ok(());
    stmt.visit_stmt(|child| {
        if result.is_ok() {
            result = walk(child, text, edits);
        }
    });
    result
}

/// Collects the edits for `expr` and every expression below it.
fn walk_expression(expr: &AstExpr, text: &str, edits: &mut Vec<Edit>) {
    expression(expr, text, edits);
    expr.visit_expr(|child| walk_expression(child, text, edits));
}

/// `T *= e` → `T = __antares_multiply(T, e)`, `T %= e` alike.
fn augmented(
    stmt: &AstStmt,
    text: &str,
    edits: &mut Vec<Edit>,
) -> Result<(), (Span, &'static str)> {
    let StmtP::AssignModify(target, op, rhs) = &stmt.node else {
        return Ok(());
    };
    let (func, op) = match op {
        AssignOp::Multiply => (MULTIPLY, "*="),
        AssignOp::Percent => (PERCENT, "%="),
        _ => return Ok(()),
    };
    let mut has_call = false;
    if let AssignTargetP::Index(_) | AssignTargetP::Dot(..) = &target.node {
        target.visit_expr(|e| has_call |= contains_call(e));
    }
    if has_call {
        return Err((stmt.span, op));
    }
    let (t_start, t_end) = range(target.span);
    let (r_start, r_end) = range(rhs.span);
    let Some(at) = text[t_end..r_start].find(op) else {
        return Ok(());
    };
    let target_text = &text[t_start..t_end];
    edits.push(Edit {
        start: t_end + at,
        end: t_end + at + op.len(),
        text: format!("= {func}({target_text}, "),
    });
    edits.push(Edit {
        start: r_end,
        end: r_end,
        text: ")".to_string(),
    });
    Ok(())
}

/// The check each argument of a call of `callee` goes through, when it is
/// one that writes its arguments' text (`str`, `repr`, `print`, `fail`,
/// `json.encode`) or makes a list of their items (`list`, `zip`, …).
fn argument_check(callee: &AstExpr) -> Option<String> {
    let name = match &callee.node {
        ExprP::Identifier(name) => name.node.ident.as_str(),
        ExprP::Dot(_, name) if name.node == "encode" => return Some(format!("{PART}(1, ")),
        _ => return None,
    };
    if RENDERING_FUNCTIONS.contains(&name) {
        Some(format!("{PART}(1, "))
    } else if MATERIALISING_FUNCTIONS.contains(&name) {
        Some(format!("{ITEMS}("))
    } else {
        None
    }
}

fn contains_call(e: &AstExpr) -> bool {
    if let ExprP::Call(..) = e.node {
        return true;
    }
    let mut found = false;
    e.visit_expr(|c| found |= contains_call(c));
    found
}

/// `x.join` → `__antares_method(x, "join")`; each `{e}` of an f-string of
/// `k` expressions → `{__antares_part(k, e)}`.
fn expression(expr: &AstExpr, text: &str, edits: &mut Vec<Edit>) {
    match &expr.node {
        ExprP::Dot(object, name) if STRING_METHODS.contains(&name.node.as_str()) => {
            let (start, end) = range(expr.span);
            let (_, object_end) = range(object.span);
            let (name_start, _) = range(name.span);
            // The dot, after the closing parenthesis of `(a + b).join`
            // (outside the span of `a + b`).
            let Some(dot) = text[object_end..name_start].rfind('.') else {
                return;
            };
            // The span of `(a + b).join` begins at `a`: the call begins
            // before the parentheses.
            let closing = text[object_end..object_end + dot].matches(')').count();
            let Some(start) = before_parentheses(text, start, closing) else {
                return;
            };
            edits.push(Edit {
                start,
                end: start,
                text: format!("{METHOD}("),
            });
            edits.push(Edit {
                start: object_end + dot,
                end,
                text: format!(", {:?})", name.node),
            });
        }
        ExprP::Call(callee, args) => {
            let Some(check) = argument_check(callee) else {
                return;
            };
            for arg in &args.args {
                if let ArgumentP::Named(..) = arg.node {
                    continue;
                }
                let (start, end) = range(arg.span);
                let Some(value) = text[start..end].find(|c: char| !"*".contains(c)) else {
                    continue;
                };
                edits.push(Edit {
                    start: start + value,
                    end: start + value,
                    text: check.clone(),
                });
                edits.push(Edit {
                    start: end,
                    end,
                    text: ")".to_string(),
                });
            }
        }
        ExprP::FString(fstring) => {
            let k = fstring.node.expressions.len();
            for e in &fstring.node.expressions {
                let (start, end) = range(e.span);
                edits.push(Edit {
                    start,
                    end: start,
                    text: format!("{PART}({k}, "),
                });
                edits.push(Edit {
                    start: end,
                    end,
                    text: ")".to_string(),
                });
            }
        }
        _ => {}
    }
}

/// Where the `count` opening parentheses just before `at` begin (only
/// blanks between them); `None` when they are not there.
fn before_parentheses(text: &str, mut at: usize, count: usize) -> Option<usize> {
    for _ in 0..count {
        at = text[..at].trim_end().strip_suffix('(')?.len();
    }
    Some(at)
}

/// `text` with `edits` applied; edits at one place apply in the order
/// they were made (outer expressions first).
fn apply(text: &str, mut edits: Vec<Edit>) -> String {
    edits.sort_by_key(|e| e.start);
    let mut out = String::with_capacity(text.len() + edits.len() * 24);
    let mut at = 0;
    for e in edits {
        out.push_str(&text[at..e.start]);
        out.push_str(&e.text);
        at = at.max(e.end);
    }
    out.push_str(&text[at..]);
    out
}
