def download_python_distribution(name, version):
    native.http_archive(
        name = name + "-extraction-download",
        urls = ["https://python.example.invalid/cpython-" + version + ".tar.gz"],
        sha256 = "0" * 64,
    )
    _distribution(name = name, archive = ":" + name + "-extraction-download")

_distribution = rule(impl = lambda ctx: [], attrs = {"archive": attrs.dep()})

hermetic_python_toolchain = rule(impl = lambda ctx: [], attrs = {"distribution": attrs.dep()}, is_toolchain_rule = True)
hermetic_python_bootstrap_toolchain = rule(impl = lambda ctx: [], attrs = {"distribution": attrs.dep()}, is_toolchain_rule = True)
