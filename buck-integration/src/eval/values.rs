//! The Starlark values antares adds: generic rule recorders, the `native`
//! namespace and `select()` results, and the strings inside any value.

use super::context::{file_ctx, RecordedTarget};
use allocative::Allocative;
use starlark::collections::StarlarkHasher;
use starlark::eval::{Arguments, Evaluator};
use starlark::starlark_simple_value;
use starlark::typing::Ty;
use starlark::values::dict::DictRef;
use starlark::values::list::ListRef;
use starlark::values::structs::{AllocStruct, StructRef};
use starlark::values::tuple::TupleRef;
use starlark::values::{
    starlark_value, Heap, NoSerialize, ProvidesStaticType, StarlarkPagable, StarlarkValue, Value,
};
use std::fmt;
use std::hash::Hash;

/// Attributes that name who may see a target, not what it needs.
const NOT_DEPENDENCIES: [&str; 3] = ["name", "visibility", "within_view"];

/// `eval_type` answering "anything". Written through a macro so that
/// `#[starlark_value]` does not see it: for a type it generates a `bit_or`
/// that is a type union only, and refuses one written by hand, but a value
/// antares stands in for (`base_attrs` of a prelude file) may as well be a
/// dict that `base_attrs | {…}` merges. The hand-written `bit_or` below
/// serves both: its result is a type too.
macro_rules! any_type {
    () => {
        fn eval_type(&self) -> Option<Ty> {
            Some(Ty::any())
        }
    };
}

/// Stands in for any rule or macro antares does not evaluate (the prelude's
/// rules, undefined names, `native.*`, results of `rule()`): calling it with
/// `name = …` records a target with every string of every attribute;
/// attribute access yields another recorder, so `attrs.string()` or
/// `paths.join(…)` evaluate without error.
#[derive(Debug, ProvidesStaticType, NoSerialize, Allocative, StarlarkPagable)]
pub(crate) struct Recorder {
    kind: String,
    /// Reached as `native.KIND`: forwards to the global function of that
    /// name when there is one.
    native: bool,
    /// Strings of a Starlark rule's attribute defaults (`rule()`): labels
    /// every target of the rule depends on implicitly.
    defaults: Vec<String>,
}
starlark_simple_value!(Recorder);

impl Recorder {
    pub fn new(kind: impl Into<String>) -> Self {
        Self::with_defaults(kind, Vec::new())
    }

    pub fn with_defaults(kind: impl Into<String>, defaults: Vec<String>) -> Self {
        Recorder {
            kind: kind.into(),
            native: false,
            defaults,
        }
    }
}

impl fmt::Display for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<rule {}>", self.kind)
    }
}

#[starlark_value(type = "rule")]
impl<'v> StarlarkValue<'v> for Recorder {
    fn invoke(
        &self,
        _me: Value<'v>,
        args: &Arguments<'v, '_>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<Value<'v>> {
        let ctx = file_ctx(eval).map_err(starlark::Error::new_other)?;
        if self.native {
            if let Some(f) = ctx.builtins.get(&self.kind) {
                let pos: Vec<Value<'v>> = args.positions(eval.heap())?.collect();
                let named_map = args.names_map()?;
                let named: Vec<(&str, Value<'v>)> =
                    named_map.iter().map(|(k, v)| (k.as_str(), *v)).collect();
                return eval.eval_function(f.to_value(), &pos, &named);
            }
        }
        let named = args.names_map()?;
        let name = named
            .iter()
            .find(|(k, _)| k.as_str() == "name")
            .and_then(|(_, v)| v.unpack_str());
        let mut attrs = Vec::new();
        let mut positional = Vec::new();
        for v in args.positions(eval.heap())? {
            collect_strings(v, &mut positional);
        }
        if !positional.is_empty() {
            attrs.push(("<positional>".to_string(), positional));
        }
        for (k, v) in named.iter() {
            if NOT_DEPENDENCIES.contains(&k.as_str()) {
                continue;
            }
            let mut strings = Vec::new();
            collect_strings(*v, &mut strings);
            attrs.push((k.as_str().to_string(), strings));
        }
        let (Some(name), Some(_)) = (name, &ctx.package) else {
            // Not a target: an attribute spec (`attrs.dep(default = "//x:y")`)
            // or a helper. Its strings go back so `rule(attrs = …)` keeps
            // the default labels.
            let strings = attrs.into_iter().flat_map(|(_, s)| s).collect();
            return Ok(eval.heap().alloc(Opaque {
                kind: self.kind.clone(),
                strings,
            }));
        };
        if !self.defaults.is_empty() {
            attrs.push(("rule defaults".to_string(), self.defaults.clone()));
        }
        ctx.targets.borrow_mut().push(RecordedTarget {
            name: name.to_string(),
            kind: self.kind.clone(),
            attrs,
        });
        Ok(Value::new_none())
    }

    fn get_attr(&self, attribute: &str, heap: Heap<'v>) -> Option<Value<'v>> {
        Some(heap.alloc(Recorder::new(format!("{}.{attribute}", self.kind))))
    }

    // Prelude names stand for types too (`ctx: AnalysisContext`,
    // `-> list[DefaultInfo]`); no value's type matters for the file set,
    // so each stands for "anything".
    any_type!();

    fn has_attr(&self, _attribute: &str, _heap: Heap<'v>) -> bool {
        true
    }

    /// `prelude_attrs | {…}` (a dict merge in the real prelude, or a type
    /// union): a value carrying the other side's strings.
    fn bit_or(&self, rhs: Value<'v>, heap: Heap<'v>) -> starlark::Result<Value<'v>> {
        let empty = Opaque {
            kind: self.kind.clone(),
            strings: Vec::new(),
        };
        Ok(heap.alloc(empty.with(rhs, false)))
    }
}

/// The `native` namespace of `.bzl` files: every attribute is the global
/// function of that name, or a recorder for a rule.
#[derive(Debug, ProvidesStaticType, NoSerialize, Allocative, StarlarkPagable)]
pub(crate) struct Native;
starlark_simple_value!(Native);

impl fmt::Display for Native {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("native")
    }
}

#[starlark_value(type = "native")]
impl<'v> StarlarkValue<'v> for Native {
    fn get_attr(&self, attribute: &str, heap: Heap<'v>) -> Option<Value<'v>> {
        Some(heap.alloc(Recorder {
            kind: attribute.to_string(),
            native: true,
            defaults: Vec::new(),
        }))
    }

    fn has_attr(&self, _attribute: &str, _heap: Heap<'v>) -> bool {
        true
    }
}

/// A value that matters only for the strings inside it: a `select()` (every
/// branch counts, oracle fact 3: a superset is safe) or an attribute spec.
/// Concatenation with lists and other selects keeps theirs too.
#[derive(Debug, ProvidesStaticType, NoSerialize, Allocative, StarlarkPagable)]
pub(crate) struct Strings {
    pub strings: Vec<String>,
}
starlark_simple_value!(Strings);

impl fmt::Display for Strings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "select({:?})", self.strings)
    }
}

impl Strings {
    fn concat<'v>(
        &self,
        other: Value<'v>,
        other_first: bool,
        heap: Heap<'v>,
    ) -> Option<starlark::Result<Value<'v>>> {
        let mut theirs = Vec::new();
        collect_strings(other, &mut theirs);
        let strings = if other_first {
            theirs
                .into_iter()
                .chain(self.strings.iter().cloned())
                .collect()
        } else {
            self.strings.iter().cloned().chain(theirs).collect()
        };
        Some(Ok(heap.alloc(Strings { strings })))
    }
}

#[starlark_value(type = "selector")]
impl<'v> StarlarkValue<'v> for Strings {
    fn add(&self, rhs: Value<'v>, heap: Heap<'v>) -> Option<starlark::Result<Value<'v>>> {
        self.concat(rhs, false, heap)
    }

    fn radd(&self, lhs: Value<'v>, heap: Heap<'v>) -> Option<starlark::Result<Value<'v>>> {
        self.concat(lhs, true, heap)
    }

    fn bit_or(&self, rhs: Value<'v>, heap: Heap<'v>) -> starlark::Result<Value<'v>> {
        self.concat(rhs, false, heap)
            .unwrap_or_else(|| Ok(Value::new_none()))
    }
}

/// A type made by `provider(fields = …)`: calling it gives a struct of the
/// fields, so module-level code that builds and reads instances evaluates.
#[derive(Debug, ProvidesStaticType, NoSerialize, Allocative, StarlarkPagable)]
pub(crate) struct Provider {
    pub fields: Vec<String>,
}
starlark_simple_value!(Provider);

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "provider(fields = {:?})", self.fields)
    }
}

#[starlark_value(type = "provider")]
impl<'v> StarlarkValue<'v> for Provider {
    fn invoke(
        &self,
        _me: Value<'v>,
        args: &Arguments<'v, '_>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<Value<'v>> {
        let named = args.names_map()?;
        let mut fields: Vec<(String, Value<'v>)> = named
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), *v))
            .collect();
        for f in &self.fields {
            if !fields.iter().any(|(k, _)| k == f) {
                fields.push((f.clone(), Value::new_none()));
            }
        }
        Ok(eval.heap().alloc(AllocStruct(fields)))
    }

    fn eval_type(&self) -> Option<Ty> {
        Some(Ty::any())
    }
}

/// What calling a recorder without `name` returns: an attribute spec, a
/// transitive set type, a helper's result. It carries the strings it was
/// made from (label defaults of `attrs.dep(default = …)`), and stands in
/// for whatever the code does next: a type (`x: ArtifactTSet`), an
/// iterable (its strings), an object with attributes and methods (more
/// recorders), a dict key.
#[derive(Debug, ProvidesStaticType, NoSerialize, Allocative, StarlarkPagable)]
pub(crate) struct Opaque {
    kind: String,
    pub strings: Vec<String>,
}
starlark_simple_value!(Opaque);

impl fmt::Display for Opaque {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} result>", self.kind)
    }
}

#[starlark_value(type = "opaque")]
impl<'v> StarlarkValue<'v> for Opaque {
    fn get_attr(&self, attribute: &str, heap: Heap<'v>) -> Option<Value<'v>> {
        Some(heap.alloc(Recorder::new(format!("{}.{attribute}", self.kind))))
    }

    fn has_attr(&self, _attribute: &str, _heap: Heap<'v>) -> bool {
        true
    }

    fn iterate_collect(&self, heap: Heap<'v>) -> starlark::Result<Vec<Value<'v>>> {
        Ok(self
            .strings
            .iter()
            .map(|s| heap.alloc(s.as_str()))
            .collect())
    }

    fn length(&self) -> starlark::Result<i32> {
        Ok(i32::try_from(self.strings.len()).unwrap_or(i32::MAX))
    }

    fn write_hash(&self, hasher: &mut StarlarkHasher) -> starlark::Result<()> {
        self.kind.hash(hasher);
        self.strings.hash(hasher);
        Ok(())
    }

    fn add(&self, rhs: Value<'v>, heap: Heap<'v>) -> Option<starlark::Result<Value<'v>>> {
        Some(Ok(heap.alloc(self.with(rhs, false))))
    }

    fn radd(&self, lhs: Value<'v>, heap: Heap<'v>) -> Option<starlark::Result<Value<'v>>> {
        Some(Ok(heap.alloc(self.with(lhs, true))))
    }

    /// A dict merge (or type union) with a value antares does not know:
    /// the strings of both.
    fn bit_or(&self, rhs: Value<'v>, heap: Heap<'v>) -> starlark::Result<Value<'v>> {
        Ok(heap.alloc(self.with(rhs, false)))
    }

    any_type!();
}

impl Opaque {
    /// This value combined with another (`+`, `|`): the strings of both.
    fn with(&self, other: Value, other_first: bool) -> Opaque {
        let mut theirs = Vec::new();
        collect_strings(other, &mut theirs);
        let strings = if other_first {
            theirs
                .into_iter()
                .chain(self.strings.iter().cloned())
                .collect()
        } else {
            self.strings.iter().cloned().chain(theirs).collect()
        };
        Opaque {
            kind: self.kind.clone(),
            strings,
        }
    }
}

/// How deep attribute values are searched (values can be cyclic).
const MAX_DEPTH: usize = 64;

/// Every string inside `value`: list and tuple items, dict keys and values,
/// struct fields and every branch of a `select()`.
pub(crate) fn collect_strings(value: Value, out: &mut Vec<String>) {
    collect(value, out, 0)
}

fn collect(value: Value, out: &mut Vec<String>, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    if let Some(s) = value.unpack_str() {
        out.push(s.to_string());
    } else if let Some(l) = ListRef::from_value(value) {
        l.iter().for_each(|v| collect(v, out, depth + 1));
    } else if let Some(t) = TupleRef::from_value(value) {
        t.iter().for_each(|v| collect(v, out, depth + 1));
    } else if let Some(d) = DictRef::from_value(value) {
        for (k, v) in d.iter() {
            collect(k, out, depth + 1);
            collect(v, out, depth + 1);
        }
    } else if let Some(s) = Strings::from_value(value) {
        out.extend(s.strings.iter().cloned());
    } else if let Some(s) = Opaque::from_value(value) {
        out.extend(s.strings.iter().cloned());
    } else if let Some(s) = StructRef::from_value(value) {
        s.iter().for_each(|(_, v)| collect(v, out, depth + 1));
    }
}
