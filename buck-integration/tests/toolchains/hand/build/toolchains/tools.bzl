lint_toolchain = rule(impl = lambda ctx: [], attrs = {"config": attrs.source()}, is_toolchain_rule = True)
