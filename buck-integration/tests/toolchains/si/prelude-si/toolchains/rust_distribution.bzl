def download_rust_distribution(name, version):
    native.http_archive(
        name = name + "-download",
        urls = ["https://rust.example.invalid/rust-" + version + ".tar.xz"],
        sha256 = "0" * 64,
    )
    native.alias(name = name, actual = ":" + name + "-download")

hermetic_rust_toolchain = rule(impl = lambda ctx: [], attrs = {}, is_toolchain_rule = True)
