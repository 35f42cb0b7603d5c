//! What a build-file evaluation knows and records, reachable from builtins
//! through `Evaluator::extra`.

use crate::cells::{Cell, Cells};
use crate::glob::GlobCache;
use starlark::any::ProvidesStaticType;
use starlark::eval::Evaluator;
use starlark::values::FrozenValue;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

/// One target declared by a build file, reduced to what the file set needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordedTarget {
    pub name: String,
    pub kind: String,
    /// Every string found in each attribute (lists, dicts, select branches).
    pub attrs: Vec<(String, Vec<String>)>,
}

/// The file being evaluated.
#[derive(ProvidesStaticType)]
pub(crate) struct FileCtx<'a> {
    pub cells: &'a Cells,
    /// The cell whose configuration `read_config` answers from: the build
    /// file's cell (or the `.bzl`'s own while it is being loaded).
    pub cell: &'a Cell,
    /// The cell-relative package of a build or PACKAGE file; `None` while a
    /// `.bzl` is loaded (no targets can be declared then).
    pub package: Option<String>,
    /// The package's files, package-relative, for `glob()`.
    pub package_files: &'a [String],
    pub globs: &'a GlobCache,
    /// Buck2's global functions by name, so `native.NAME` can reach them.
    pub builtins: &'a HashMap<String, FrozenValue>,
    pub targets: RefCell<Vec<RecordedTarget>>,
    /// `write_package_value` from PACKAGE files, seen by `read_package_value`.
    pub package_values: RefCell<BTreeMap<String, serde_json::Value>>,
    /// Bytes of Starlark heap the evaluation may use: what the checked
    /// operations (`"a" * n`, `sep.join(l)`, …) measure against before
    /// they allocate.
    pub max_bytes: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("internal: evaluation without a file context")]
struct NoContext;

/// The context of the evaluation `eval` runs.
pub(crate) fn file_ctx<'a, 'e>(eval: &Evaluator<'_, 'a, 'e>) -> anyhow::Result<&'a FileCtx<'e>> {
    eval.extra
        .and_then(|e| e.downcast_ref::<FileCtx<'e>>())
        .ok_or_else(|| NoContext.into())
}
