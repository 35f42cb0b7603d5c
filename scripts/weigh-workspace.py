#!/usr/bin/env python3
"""Weighs an antares workspace against what real buck2 read for a target.

    scripts/weigh-workspace.py WORKSPACE ORACLE.json TARGET

ORACLE.json is what scripts/record-oracle.py wrote (from a full checkout of
the same revision); `-` weighs without one (files and bytes only). Prints one JSON object: `files` and `bytes` placed (the
workspace without `.antares/`, `buck-out/`, the generated
`antares-toolchains/` and `.buckconfig.local`), `recall` (share of the files
buck2 read that are in the workspace), `missing` (up to 10 of those that
are not) and `precision` (share of placed bytes in packages buck2 loaded or
files it read; configs and `.buckroot` count as read), as the corpus test
in buck-integration/tests/corpus.rs measures.
"""

import json
import os
import sys

BUILD_FILES = ("BUCK", "BUCK.v2", "TARGETS", "TARGETS.v2")
NOT_PLACED = {".antares", "buck-out", "antares-toolchains", ".git"}


def main() -> int:
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    ws, oracle, target = sys.argv[1:]
    case = {"packages": [], "inputs": [], "buildfiles": []}
    if oracle != "-":
        with open(oracle) as f:
            cases = json.load(f)["cases"]
        if target not in cases:
            sys.exit(f"{oracle}: no case for {target} (has {', '.join(sorted(cases))})")
        case = cases[target]
    packages = set(case["packages"])
    reads = set(case["inputs"]) | set(case["buildfiles"])
    files = {}
    for dirpath, dirnames, filenames in os.walk(ws):
        rel = os.path.relpath(dirpath, ws)
        rel = "" if rel == "." else rel
        if rel == "":
            dirnames[:] = [d for d in dirnames if d not in NOT_PLACED]
        for name in filenames:
            if rel == "" and name == ".buckconfig.local":
                continue
            path = os.path.join(rel, name)
            files[path] = os.lstat(os.path.join(ws, path)).st_size
    owners = {}

    def owner(path):
        d = os.path.dirname(path)
        seen = []
        while d not in owners:
            seen.append(d)
            if any(os.path.isfile(os.path.join(ws, d, b)) for b in BUILD_FILES):
                owners[d] = d
                break
            if d == "":
                owners[d] = None
                break
            d = os.path.dirname(d)
        for s in seen:
            owners[s] = owners[d]
        return owners[d]

    total = needed = 0
    for path, size in files.items():
        name = os.path.basename(path)
        read = path in reads or name.startswith(".buckconfig") or name == ".buckroot" or ".buckconfig.d/" in path
        total += size
        if read or owner(path) in packages:
            needed += size
    missing = sorted(r for r in reads if r not in files)
    out = {"target": target, "files": len(files), "bytes": total}
    if oracle != "-":
        out["recall"] = 1 - len(missing) / max(len(reads), 1)
        out["missing"] = missing[:10]
        out["precision"] = needed / total if total else 1.0
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
