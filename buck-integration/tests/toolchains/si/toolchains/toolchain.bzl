def _toolchain_alias_impl(ctx):
    return ctx.attrs.actual.providers

toolchain_alias = rule(
    impl = _toolchain_alias_impl,
    attrs = {"actual": attrs.toolchain_dep()},
    is_toolchain_rule = True,
)
