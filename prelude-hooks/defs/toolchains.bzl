"""Toolchains that fall back to the system when hermetic downloads are dead.

Copy this file into your repository (e.g. as //build/antares/toolchains.bzl)
and define toolchains through `antares_toolchain` in toolchains/BUCK:

    load("//build/antares:toolchains.bzl", "antares_toolchain", "system_toolchains")

    antares_toolchain(
        name = "rust",
        hermetic = my_downloaded_rust_toolchain,   # your rule or macro
        system = system_rust_toolchain,            # from @prelude//toolchains:rust.bzl
        hermetic_attrs = {"version": "1.80.0"},
        system_attrs = {"default_edition": "2021"},
    )

Then `[antares] toolchains = system` builds with the tools on the machine
instead of downloading them; the default is `hermetic`. `read_config` reads
the config of the cell the BUCK file is in: set it in the toolchains cell's
own `.buckconfig` (a cell without one does not see the root cell's
sections), or for one build on the command line with
`buck2 build -c antares.toolchains=system …`, which applies to every cell.
`system_toolchains()` defines the usual set (cxx, python_bootstrap, rust,
genrule) from the prelude's system_* rules in one call.
"""

load("@prelude//toolchains:cxx.bzl", "system_cxx_toolchain")
load("@prelude//toolchains:genrule.bzl", "system_genrule_toolchain")
load("@prelude//toolchains:python.bzl", "system_python_bootstrap_toolchain")
load("@prelude//toolchains:rust.bzl", "system_rust_toolchain")

def toolchain_mode():
    """`"system"` or `"hermetic"`, from `[antares] toolchains`."""
    mode = read_config("antares", "toolchains", "hermetic")
    if mode not in ("system", "hermetic"):
        fail("[antares] toolchains must be 'system' or 'hermetic', not '{}'".format(mode))
    return mode

def antares_toolchain(name, hermetic, system, hermetic_attrs = {}, system_attrs = {}, visibility = ["PUBLIC"]):
    """Defines toolchain `name` with `hermetic` or, in system mode, with `system`."""
    if toolchain_mode() == "system":
        system(name = name, visibility = visibility, **system_attrs)
    else:
        hermetic(name = name, visibility = visibility, **hermetic_attrs)

def system_toolchains(visibility = ["PUBLIC"]):
    """The prelude's system toolchains under their usual names."""
    system_cxx_toolchain(name = "cxx", visibility = visibility)
    system_python_bootstrap_toolchain(name = "python_bootstrap", visibility = visibility)
    system_rust_toolchain(name = "rust", default_edition = "2021", visibility = visibility)
    system_genrule_toolchain(name = "genrule", visibility = visibility)
