//! The global functions build files, PACKAGE files and `.bzl` files call.
//! Rule-defining and analysis-time functions (`rule`, `provider`, `attrs`,
//! …) only need to evaluate without error; the ones that shape targets
//! (`glob`, `read_config`, `select`, `package_name`, …) are exact.

use super::context::file_ctx;
use super::values::collect_strings;
use super::values::{Provider, Recorder, Strings};
use starlark::collections::SmallMap;
use starlark::environment::GlobalsBuilder;
use starlark::eval::Evaluator;
use starlark::starlark_module;
use starlark::values::list_or_tuple::UnpackListOrTuple;
use starlark::values::none::NoneOr;
use starlark::values::structs::AllocStruct;
use starlark::values::Value;

#[starlark_module]
pub(crate) fn buck_globals(builder: &mut GlobalsBuilder) {
    /// Files of the current package matching `include` and not `exclude`.
    fn glob<'v>(
        include: UnpackListOrTuple<String>,
        #[starlark(require = named, default = UnpackListOrTuple::default())]
        exclude: UnpackListOrTuple<String>,
        #[starlark(kwargs)] _options: SmallMap<String, Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<Vec<String>> {
        let ctx = file_ctx(eval)?;
        Ok(ctx
            .globs
            .glob(ctx.package_files, &include.items, &exclude.items)?)
    }

    fn package_name(eval: &mut Evaluator) -> anyhow::Result<String> {
        Ok(file_ctx(eval)?.package.clone().unwrap_or_default())
    }

    fn get_base_path(eval: &mut Evaluator) -> anyhow::Result<String> {
        Ok(file_ctx(eval)?.package.clone().unwrap_or_default())
    }

    fn repository_name(eval: &mut Evaluator) -> anyhow::Result<String> {
        Ok(format!("@{}", file_ctx(eval)?.cell.name))
    }

    fn get_cell_name(eval: &mut Evaluator) -> anyhow::Result<String> {
        Ok(file_ctx(eval)?.cell.name.clone())
    }

    /// `section.key` from the configuration of the build file's cell.
    fn read_config<'v>(
        #[starlark(require = pos)] section: &str,
        #[starlark(require = pos)] key: &str,
        #[starlark(require = pos, default = NoneOr::None)] default: NoneOr<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<Value<'v>> {
        let ctx = file_ctx(eval)?;
        Ok(match ctx.cell.config.get(section, key) {
            Some(v) => eval.heap().alloc(v),
            None => default.into_option().unwrap_or_else(Value::new_none),
        })
    }

    /// `section.key` from the root cell's configuration.
    fn read_root_config<'v>(
        #[starlark(require = pos)] section: &str,
        #[starlark(require = pos)] key: &str,
        #[starlark(require = pos, default = NoneOr::None)] default: NoneOr<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<Value<'v>> {
        let ctx = file_ctx(eval)?;
        let value = ctx
            .cells
            .root_cell()
            .and_then(|c| c.config.get(section, key));
        Ok(match value {
            Some(v) => eval.heap().alloc(v),
            None => default.into_option().unwrap_or_else(Value::new_none),
        })
    }

    fn select<'v>(
        #[starlark(require = pos)] branches: Value<'v>,
        #[starlark(kwargs)] _options: SmallMap<String, Value<'v>>,
    ) -> anyhow::Result<Strings> {
        let mut strings = Vec::new();
        collect_strings(branches, &mut strings);
        Ok(Strings { strings })
    }

    /// Applying a function to every branch leaves the branches' labels.
    fn select_map<'v>(
        #[starlark(require = pos)] selector: Value<'v>,
        #[starlark(require = pos)] _f: Value<'v>,
    ) -> anyhow::Result<Value<'v>> {
        Ok(selector)
    }

    fn select_test<'v>(
        #[starlark(require = pos)] _selector: Value<'v>,
        #[starlark(require = pos)] _f: Value<'v>,
    ) -> anyhow::Result<bool> {
        Ok(false)
    }

    /// The machine antares runs on, as Buck2 describes it.
    fn host_info<'v>(eval: &mut Evaluator<'v, '_, '_>) -> anyhow::Result<Value<'v>> {
        let heap = eval.heap();
        let os = std::env::consts::OS;
        let arch = std::env::consts::ARCH;
        let os_value = heap.alloc(AllocStruct([
            ("is_linux", os == "linux"),
            ("is_macos", os == "macos"),
            ("is_windows", os == "windows"),
            ("is_freebsd", os == "freebsd"),
            (
                "is_unknown",
                !["linux", "macos", "windows", "freebsd"].contains(&os),
            ),
        ]));
        let arch_value = heap.alloc(AllocStruct([
            ("is_x86_64", arch == "x86_64"),
            ("is_aarch64", arch == "aarch64"),
            ("is_arm", arch == "arm"),
            ("is_i386", arch == "x86"),
            ("is_riscv64", arch == "riscv64"),
            (
                "is_unknown",
                !["x86_64", "aarch64", "arm", "x86", "riscv64"].contains(&arch),
            ),
        ]));
        Ok(heap.alloc(AllocStruct([("os", os_value), ("arch", arch_value)])))
    }

    /// `package()` in a PACKAGE or build file: only visibility and
    /// metadata, nothing the file set depends on.
    fn package<'v>(
        #[starlark(kwargs)] _options: SmallMap<String, Value<'v>>,
    ) -> anyhow::Result<starlark::values::none::NoneType> {
        Ok(starlark::values::none::NoneType)
    }

    fn write_package_value<'v>(
        #[starlark(require = pos)] key: &str,
        #[starlark(require = pos)] value: Value<'v>,
        #[starlark(require = named, default = false)] overwrite: bool,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<starlark::values::none::NoneType> {
        let ctx = file_ctx(eval)?;
        let json: serde_json::Value = serde_json::from_str(&value.to_json()?)?;
        let mut values = ctx.package_values.borrow_mut();
        if overwrite || !values.contains_key(key) {
            values.insert(key.to_string(), json);
        }
        Ok(starlark::values::none::NoneType)
    }

    fn read_package_value<'v>(
        #[starlark(require = pos)] key: &str,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<Value<'v>> {
        let ctx = file_ctx(eval)?;
        let value = ctx.package_values.borrow().get(key).cloned();
        Ok(match value {
            Some(v) => eval.heap().alloc(v),
            None => Value::new_none(),
        })
    }

    fn implicit_package_symbol<'v>(
        #[starlark(require = pos)] _name: &str,
        #[starlark(require = pos, default = NoneOr::None)] default: NoneOr<Value<'v>>,
    ) -> anyhow::Result<Value<'v>> {
        Ok(default.into_option().unwrap_or_else(Value::new_none))
    }

    fn rule_exists(
        #[starlark(require = pos)] name: &str,
        eval: &mut Evaluator,
    ) -> anyhow::Result<bool> {
        Ok(file_ctx(eval)?
            .targets
            .borrow()
            .iter()
            .any(|t| t.name == name))
    }

    fn oncall(
        #[starlark(require = pos)] _name: &str,
    ) -> anyhow::Result<starlark::values::none::NoneType> {
        Ok(starlark::values::none::NoneType)
    }

    /// A rule defined in Starlark records like any other; its kind is taken
    /// from the implementation's name (`_foo_impl` → `foo`), and the labels
    /// in its attribute defaults are implicit dependencies of its targets.
    fn rule<'v>(
        #[starlark(require = named)] r#impl: Value<'v>,
        #[starlark(require = named, default = NoneOr::None)] attrs: NoneOr<Value<'v>>,
        #[starlark(kwargs)] _options: SmallMap<String, Value<'v>>,
    ) -> anyhow::Result<Recorder> {
        let mut defaults = Vec::new();
        if let Some(attrs) = attrs.into_option() {
            collect_strings(attrs, &mut defaults);
        }
        Ok(Recorder::with_defaults(
            rule_kind(&r#impl.to_repr()),
            defaults,
        ))
    }

    /// A provider type: calling it makes an instance whose fields read
    /// back (`Info(x = 1).x`); undeclared fields are `None`.
    fn provider<'v>(
        #[starlark(require = named, default = NoneOr::None)] fields: NoneOr<Value<'v>>,
        #[starlark(kwargs)] _options: SmallMap<String, Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<Provider> {
        let mut names = Vec::new();
        if let Some(fields) = fields.into_option() {
            // A list of names or a dict of name to type.
            for f in fields.iterate(eval.heap()).map_err(|e| e.into_anyhow())? {
                if let Some(name) = f.unpack_str() {
                    names.push(name.to_string());
                }
            }
        }
        Ok(Provider { fields: names })
    }

    /// Exports symbols whose names are computed (buck2's `load_symbols`).
    fn load_symbols<'v>(
        #[starlark(require = pos)] symbols: SmallMap<String, Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<starlark::values::none::NoneType> {
        for (name, value) in symbols {
            eval.set_module_variable_at_some_point(&name, value)
                .map_err(|e| e.into_anyhow())?;
        }
        Ok(starlark::values::none::NoneType)
    }
}

/// `<function _foo_impl>` → `foo`.
fn rule_kind(repr: &str) -> String {
    let name = repr
        .trim_end_matches('>')
        .rsplit([' ', '.'])
        .next()
        .unwrap_or(repr);
    let name = name.trim_start_matches('_');
    name.strip_suffix("_impl").unwrap_or(name).to_string()
}
