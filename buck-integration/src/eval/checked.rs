//! Operations that could allocate gigabytes in one step (`"a" * n`,
//! `sep.join(l)`, `s.replace(a, b)`, `fmt.format(…)`, `fmt % args`,
//! f-strings, `str(x)`, `s.split()`, `list(x)`, `zip(…)`, `range(n)`
//! materialised, integer products), checked against what is
//! left of the heap limit before they run. One such step is one allocation
//! inside starlark: the per-statement heap check (`limits.rs`) sees
//! it only after it happened, and an allocation the system refuses aborts
//! the process. The source rewrite (`rewrite.rs`) routes a file's
//! operations through the globals defined here.

use super::context::file_ctx;
use starlark::environment::GlobalsBuilder;
use starlark::eval::Evaluator;
use starlark::starlark_module;
use starlark::values::dict::DictRef;
use starlark::values::list::ListRef;
use starlark::values::range::Range;
use starlark::values::structs::StructRef;
use starlark::values::tuple::{TupleRef, UnpackTuple};
use starlark::values::{Heap, Value};
use std::num::NonZeroI32;

/// `a * b`, as every `*` and `*=` of a file is rewritten.
pub(crate) const MULTIPLY: &str = "__antares_multiply";
/// `a + b`, as every `+` of a file is rewritten.
pub(crate) const ADD: &str = "__antares_add";
/// `a % b`, as every `%` and `%=` of a file is rewritten.
pub(crate) const PERCENT: &str = "__antares_percent";
/// `x.NAME` for the string methods of [`STRING_METHODS`].
pub(crate) const METHOD: &str = "__antares_method";
/// One of `K` expressions of an f-string.
pub(crate) const PART: &str = "__antares_part";
/// The argument of a function that makes a list or tuple of it.
pub(crate) const ITEMS: &str = "__antares_items";
/// The call a checked string method forwards to (through `partial`).
const STRING_CALL: &str = "__antares_string_call";

/// The string methods whose result can be far larger than their inputs.
pub(crate) const STRING_METHODS: [&str; 8] = [
    "join",
    "replace",
    "format",
    "split",
    "rsplit",
    "splitlines",
    "elems",
    "codepoints",
];

/// Bytes counted for each item a function makes of its argument's items
/// (`list`, `zip`, `enumerate`, `s.split()`, …): a slot, and a tuple or a
/// string header where one is made. Generous: no build file makes
/// millions of items.
const ITEM_BYTES: u128 = 48;

/// Integers above this many decimal digits are refused: no build file
/// needs them, and multiplying two of a million digits takes minutes.
const MAX_INT_DIGITS: usize = 4096;

/// Containers visited to estimate how long a value's text is; a value
/// larger (or containing itself) is refused as too large to render.
const MAX_RENDERED_NODES: usize = 1_000_000;

const WORD: u128 = std::mem::size_of::<usize>() as u128;

#[derive(Debug, thiserror::Error)]
#[error(
    "evaluation stopped: {what} would allocate {} MiB, more than the {} MiB left of the {} MiB allowed",
    bytes >> 20, left >> 20, limit >> 20
)]
struct TooLarge {
    what: String,
    bytes: u128,
    left: usize,
    limit: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("evaluation stopped: {what} would make an integer of about {digits} digits, more than the {MAX_INT_DIGITS} allowed")]
struct IntTooLarge {
    what: &'static str,
    digits: usize,
}

/// Refuses `bytes` more when they do not fit in what is left of the heap
/// limit; `what` says what would have allocated them.
fn fits(
    eval: &Evaluator<'_, '_, '_>,
    bytes: u128,
    what: impl FnOnce() -> String,
) -> starlark::Result<()> {
    let limit = file_ctx(eval)
        .map_err(starlark::Error::new_other)?
        .max_bytes;
    let left = limit.saturating_sub(eval.heap().allocated_bytes());
    if bytes > left as u128 {
        return Err(starlark::Error::new_other(TooLarge {
            what: what(),
            bytes,
            left,
            limit,
        }));
    }
    Ok(())
}

/// A string, list or tuple: its kind, length and bytes per item.
fn sequence(v: Value<'_>) -> Option<(&'static str, usize, u128)> {
    if let Some(s) = v.unpack_str() {
        Some(("string", s.len(), 1))
    } else if let Some(l) = ListRef::from_value(v) {
        Some(("list", l.len(), WORD))
    } else {
        TupleRef::from_value(v).map(|t| ("tuple", t.len(), WORD))
    }
}

/// Decimal digits of an integer that is not a small one (`None` for other
/// values and small integers, which cannot overflow into big ones here).
fn big_int_digits(v: Value<'_>) -> Option<usize> {
    (v.get_type() == "int" && v.unpack_i32().is_none()).then(|| v.to_repr().len())
}

/// Refuses an integer product or sum whose result would exceed
/// [`MAX_INT_DIGITS`].
fn int_fits(a: Value<'_>, b: Value<'_>, what: &'static str) -> starlark::Result<()> {
    if a.get_type() != "int" || b.get_type() != "int" {
        return Ok(());
    }
    let digits = match (big_int_digits(a), big_int_digits(b)) {
        (None, None) => return Ok(()),
        (x, y) => x.unwrap_or(10) + y.unwrap_or(10),
    };
    if digits > MAX_INT_DIGITS {
        return Err(starlark::Error::new_other(IntTooLarge { what, digits }));
    }
    Ok(())
}

/// An upper estimate of the bytes of `v`'s text (as `str()` or `repr()`
/// writes it), counted without writing it; `u128::MAX` for a value too
/// large or deep to count.
fn rendered_len(v: Value<'_>) -> u128 {
    let mut total: u128 = 0;
    let mut stack = vec![v];
    let mut nodes = 0;
    while let Some(v) = stack.pop() {
        nodes += 1;
        if nodes > MAX_RENDERED_NODES {
            return u128::MAX;
        }
        if let Some(s) = v.unpack_str() {
            // Quotes and escapes: at most `\xNN` per byte.
            total += 2 + 4 * s.len() as u128;
        } else if let Some(l) = ListRef::from_value(v) {
            total += 2 + 2 * l.len() as u128;
            stack.extend(l.iter());
        } else if let Some(t) = TupleRef::from_value(v) {
            total += 3 + 2 * t.len() as u128;
            stack.extend(t.iter());
        } else if let Some(d) = DictRef::from_value(v) {
            total += 2 + 4 * d.len() as u128;
            stack.extend(d.iter().flat_map(|(k, v)| [k, v]));
        } else if let Some(s) = StructRef::from_value(v) {
            for (k, v) in s.iter() {
                total += 4 + k.len() as u128;
                stack.push(v);
            }
            total += 8;
        } else {
            total += v.to_repr().len() as u128;
        }
    }
    total
}

/// The largest text among `values`.
fn largest_rendered<'v>(values: impl IntoIterator<Item = Value<'v>>) -> u128 {
    values.into_iter().map(rendered_len).max().unwrap_or(0)
}

/// Bytes `fmt.format(…)` or `fmt % …` writes at most: each of the
/// `fields` placeholders replaced by the largest argument.
fn formatted_len(fmt: &str, fields: usize, largest: u128) -> u128 {
    fmt.len() as u128 + (fields as u128).saturating_mul(largest)
}

/// Bytes `s.NAME(args)` allocates at most, for a method of
/// [`STRING_METHODS`]; `None` when the arguments are not what the method
/// takes (it then fails on its own).
fn string_method_len<'v>(
    s: &str,
    name: &str,
    args: &[Value<'v>],
    kwargs: &[(&str, Value<'v>)],
    heap: Heap<'v>,
) -> starlark::Result<Option<u128>> {
    Ok(match name {
        "join" => {
            let Some(items) = args.first() else {
                return Ok(None);
            };
            let mut n: u128 = 0;
            let mut bytes: u128 = 0;
            for item in items.iterate(heap)? {
                n += 1;
                bytes += item.unpack_str().map_or(0, str::len) as u128;
            }
            Some(bytes + n.saturating_sub(1) * s.len() as u128)
        }
        "replace" => {
            let (Some(old), Some(new)) = (
                args.first().and_then(|v| v.unpack_str()),
                args.get(1).and_then(|v| v.unpack_str()),
            ) else {
                return Ok(None);
            };
            let most = args
                .get(2)
                .and_then(|v| v.unpack_i32())
                .filter(|&n| n >= 0)
                .map_or(usize::MAX, |n| n as usize);
            let found = if old.is_empty() {
                s.chars().count() + 1
            } else {
                s.matches(old).take(most).count()
            };
            Some(s.len() as u128 + found.min(most) as u128 * new.len() as u128)
        }
        "split" | "rsplit" | "splitlines" | "elems" | "codepoints" => {
            // At most one piece per byte, each a new string.
            Some(s.len() as u128 + (s.len() as u128 + 1) * ITEM_BYTES)
        }
        "format" => {
            let largest =
                largest_rendered(args.iter().copied().chain(kwargs.iter().map(|(_, v)| *v)));
            Some(formatted_len(s, s.matches('{').count(), largest))
        }
        _ => None,
    })
}

/// `x.NAME` checked before it runs, for a string and a method of
/// [`STRING_METHODS`]: the method bound with `partial`, so it can be
/// passed around like the method itself. `None` for anything else.
fn checked_method<'v>(
    x: Value<'v>,
    name: &str,
    eval: &mut Evaluator<'v, '_, '_>,
) -> starlark::Result<Option<Value<'v>>> {
    if x.unpack_str().is_none() || !STRING_METHODS.contains(&name) {
        return Ok(None);
    }
    let ctx = file_ctx(eval).map_err(starlark::Error::new_other)?;
    let (Some(partial), Some(call)) = (ctx.builtins.get("partial"), ctx.builtins.get(STRING_CALL))
    else {
        return Err(starlark::Error::new_other(anyhow::anyhow!(
            "internal: `partial` or `{STRING_CALL}` is not a global"
        )));
    };
    let name = eval.heap().alloc(name);
    eval.eval_function(partial.to_value(), &[call.to_value(), x, name], &[])
        .map(Some)
}

#[starlark_module]
pub(crate) fn checked_globals(builder: &mut GlobalsBuilder) {
    /// `a * b`, refused before a repetition allocates more than is left
    /// of the heap limit, or an integer product grows past
    /// [`MAX_INT_DIGITS`].
    fn __antares_multiply<'v>(
        #[starlark(require = pos)] a: Value<'v>,
        #[starlark(require = pos)] b: Value<'v>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<Value<'v>> {
        let repetition = match (a.unpack_i32(), b.unpack_i32()) {
            (None, Some(n)) => Some((a, n)),
            (Some(n), None) => Some((b, n)),
            _ => None,
        };
        if let Some((seq, n)) = repetition {
            if let Some((kind, len, item)) = sequence(seq) {
                let times = i64::from(n.max(0));
                fits(eval, len as u128 * times as u128 * item, || {
                    format!("repeating a {kind} of {len} items {times} times")
                })?;
            }
        }
        int_fits(a, b, "multiplying")?;
        a.mul(b, eval.heap())
    }

    /// `a + b`, refused before a concatenation allocates more than is
    /// left of the heap limit (`s + s + s + …` in one expression grows
    /// without a statement in between).
    fn __antares_add<'v>(
        #[starlark(require = pos)] a: Value<'v>,
        #[starlark(require = pos)] b: Value<'v>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<Value<'v>> {
        if let (Some((kind, x, item)), Some((_, y, _))) = (sequence(a), sequence(b)) {
            fits(eval, (x + y) as u128 * item, || {
                format!("concatenating two {kind}s of {x} and {y} items")
            })?;
        }
        int_fits(a, b, "adding")?;
        a.add(b, eval.heap())
    }

    /// `a % b`: a format string's output is refused before it allocates
    /// more than is left of the heap limit.
    fn __antares_percent<'v>(
        #[starlark(require = pos)] a: Value<'v>,
        #[starlark(require = pos)] b: Value<'v>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<Value<'v>> {
        if let Some(fmt) = a.unpack_str() {
            let largest = match (TupleRef::from_value(b), DictRef::from_value(b)) {
                (Some(t), _) => largest_rendered(t.iter()),
                (None, Some(d)) => largest_rendered(d.values()),
                (None, None) => rendered_len(b),
            };
            let bytes = formatted_len(fmt, fmt.matches('%').count(), largest);
            fits(eval, bytes, || "formatting with `%`".to_string())?;
        }
        a.percent(b, eval.heap())
    }

    /// `x.NAME`: the checked method for a string and a method of
    /// [`STRING_METHODS`], otherwise the attribute.
    fn __antares_method<'v>(
        #[starlark(require = pos)] x: Value<'v>,
        #[starlark(require = pos)] name: &str,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<Value<'v>> {
        match checked_method(x, name, eval)? {
            Some(method) => Ok(method),
            None => x.get_attr_error(name, eval.heap()),
        }
    }

    /// starlark's `getattr`, giving the checked methods of
    /// [`STRING_METHODS`] too (`getattr(s, "join")`).
    fn getattr<'v>(
        #[starlark(require = pos)] x: Value<'v>,
        #[starlark(require = pos)] name: &str,
        #[starlark(require = pos)] default: Option<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<Value<'v>> {
        if let Some(method) = checked_method(x, name, eval)? {
            return Ok(method);
        }
        match (x.get_attr(name, eval.heap())?, default) {
            (Some(v), _) | (None, Some(v)) => Ok(v),
            (None, None) => x.get_attr_error(name, eval.heap()),
        }
    }

    /// The argument of `list()`, `tuple()`, `sorted()`, `zip()`,
    /// `enumerate()`, …: refused when making a list or tuple of its items
    /// could take more than is left of the heap limit.
    fn __antares_items<'v>(
        #[starlark(require = pos)] x: Value<'v>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<Value<'v>> {
        if x.unpack_str().is_none() {
            if let Ok(len) = x.length() {
                let len = len.max(0) as u128;
                fits(eval, len * ITEM_BYTES, || {
                    format!("making a list of {len} items")
                })?;
            }
        }
        Ok(x)
    }

    /// `s.NAME(*args, **kwargs)` after checking what it would allocate.
    fn __antares_string_call<'v>(
        #[starlark(require = pos)] s: &'v str,
        #[starlark(require = pos)] name: &str,
        #[starlark(args)] args: UnpackTuple<Value<'v>>,
        #[starlark(kwargs)] kwargs: DictRef<'v>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<Value<'v>> {
        let named: Vec<(&str, Value<'v>)> = kwargs
            .iter()
            .filter_map(|(k, v)| Some((k.unpack_str()?, v)))
            .collect();
        let args = args.items;
        if let Some(bytes) = string_method_len(s, name, &args, &named, eval.heap())? {
            fits(eval, bytes, || {
                format!("`.{name}()` on a string of {} bytes", s.len())
            })?;
        }
        let method = eval.heap().alloc(s).get_attr_error(name, eval.heap())?;
        eval.eval_function(method, &args, &named)
    }

    /// One of the `fields` expressions of an f-string (or the argument of
    /// `str()`, `repr()`, …: one field): refused when the text could
    /// exceed what is left of the heap limit were every expression as
    /// long as this one.
    fn __antares_part<'v>(
        #[starlark(require = pos)] fields: i32,
        #[starlark(require = pos)] x: Value<'v>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<Value<'v>> {
        let bytes = (fields.max(0) as u128).saturating_mul(rendered_len(x));
        fits(eval, bytes, || format!("writing {fields} values as text"))?;
        Ok(x)
    }

    /// starlark's `range`, refused when materialising it (`list(range(n))`,
    /// `l += range(n)`: no tick is counted then) would take more than is
    /// left of the heap limit.
    fn range<'v>(
        #[starlark(require = pos)] a1: i32,
        #[starlark(require = pos)] a2: Option<i32>,
        #[starlark(require = pos, default = 1)] step: i32,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<Range> {
        let (start, stop) = match a2 {
            None => (0, a1),
            Some(stop) => (a1, stop),
        };
        let Some(step) = NonZeroI32::new(step) else {
            return Err(starlark::Error::new_other(anyhow::anyhow!(
                "Third argument of range (step) cannot be zero"
            )));
        };
        let (span, by) = (i64::from(stop) - i64::from(start), i64::from(step.get()));
        let len = ((span + by - by.signum()) / by).max(0) as u128;
        fits(eval, len * WORD, || {
            format!("a range of {len} numbers, materialised,")
        })?;
        Ok(Range::new(start, stop, step))
    }
}
