si_rust_toolchain = rule(impl = lambda ctx: [], attrs = {}, is_toolchain_rule = True)
