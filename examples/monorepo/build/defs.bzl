"""Repo-wide macros: every Rust library gets the same edition and a test target."""

def antares_rust_library(name, srcs = None, deps = [], **kwargs):
    native.rust_library(
        name = name,
        srcs = srcs or native.glob(["src/**/*.rs"]),
        crate_root = "src/lib.rs",
        edition = "2021",
        deps = deps,
        visibility = ["PUBLIC"],
        **kwargs
    )
