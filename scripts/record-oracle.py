#!/usr/bin/env python3
"""Records what real buck2 answers about targets of a repository.

    scripts/record-oracle.py [--buck2 PATH] CHECKOUT OUT.json TARGET...

For each target, on the default target platform (`buck2 cquery`):
`deps` (labels, configuration stripped), `inputs` (`inputs(deps(T))`),
`buildfiles` (`allbuildfiles(deps(T))`: build files and every `.bzl` they
load) and `packages` (the project-relative directory of every package in
`deps(T)`, "" for the root); paths relative to the project root, paths
outside it (a bundled prelude) left out. Run on a full checkout (the
fixtures in buck-integration/tests/fixtures/corpus are skeletons of one).
buck2 runs with a throw-away HOME and is killed at the end.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--buck2", default=os.path.join(os.path.dirname(__file__), "../../shared/tools/buck2"))
    ap.add_argument("checkout")
    ap.add_argument("out")
    ap.add_argument("targets", nargs="+")
    args = ap.parse_args()
    root = os.path.realpath(args.checkout)
    buck2 = os.path.realpath(args.buck2)
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, HOME=home)

        def run(*argv: str) -> str:
            p = subprocess.run([buck2, *argv], cwd=root, env=env, capture_output=True, text=True)
            if p.returncode != 0:
                sys.exit(f"buck2 {' '.join(argv)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
            return p.stdout

        try:
            version = run("--version").split()[1]
            cells = {}
            for line in run("audit", "cell").splitlines():
                name, _, path = line.partition(": ")
                cells[name.strip()] = os.path.normpath(path.strip())
            cases = {}
            for t in args.targets:
                cases[t] = record(run, root, cells, t)
        finally:
            subprocess.run([buck2, "kill"], cwd=root, env=env, capture_output=True)
    doc = {
        "buck2": version,
        "query": "cquery, default target platform",
        "cases": cases,
    }
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, args.out)
    return 0


def inside(root: str, path: str):
    """`path` (absolute or relative to root) relative to root, or None when
    it lies outside or does not exist there (a bundled prelude's cell path
    is inside the project but its files are not)."""
    full = os.path.normpath(os.path.join(root, path))
    if full != root and not full.startswith(root + os.sep):
        return None
    if not os.path.lexists(full):
        return None
    return "" if full == root else os.path.relpath(full, root)


def record(run, root, cells, target):
    deps = sorted({re.sub(r" \(.*$", "", l) for l in run("cquery", f"deps({target})").splitlines() if l})
    packages = set()
    for label in deps:
        cell, _, rest = label.partition("//")
        pkg = rest.split(":", 1)[0]
        if cell in cells:
            p = inside(root, os.path.join(cells[cell], pkg))
            if p is not None:
                packages.add(p)

    def paths(query):
        out = set()
        for l in run("cquery", query).splitlines():
            p = inside(root, l.strip()) if l.strip() else None
            if p:
                out.add(p)
        return sorted(out)

    return {
        "deps": deps,
        "packages": sorted(packages),
        "inputs": paths(f"inputs(deps({target}))"),
        "buildfiles": paths(f"allbuildfiles(deps({target}))"),
    }


if __name__ == "__main__":
    sys.exit(main())
