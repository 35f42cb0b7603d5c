#!/usr/bin/env python3
"""Builds a synthetic monorepo as a git repository, for the benchmarks.

usage: gen_repo.py DIR [--files N] [--dirs D] [--seed S]

Files are spread over D directories (each a Buck2 package with a BUCK file),
sizes mixed log-uniformly between 100 B and 64 KiB, a few executables and
relative symlinks. Deterministic for a given seed.
"""
import argparse
import os
import random
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--files", type=int, default=50_000)
    ap.add_argument("--dirs", type=int, default=2_000)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    if os.path.exists(a.dir) and os.listdir(a.dir):
        sys.exit(f"gen_repo.py: {a.dir} exists and is not empty")
    rnd = random.Random(a.seed)
    os.makedirs(a.dir, exist_ok=True)
    blob = rnd.randbytes(1 << 17)
    with open(os.path.join(a.dir, ".buckconfig"), "w") as f:
        f.write("[cells]\n  root = .\n  prelude = prelude\n\n[external_cells]\n  prelude = bundled\n")
    open(os.path.join(a.dir, ".buckroot"), "w").close()
    per_dir = max(1, a.files // a.dirs)
    n = 2
    for d in range(a.dirs):
        top, mid = d % 20, d // 20
        pkg = os.path.join(a.dir, f"area{top:02d}", f"pkg{mid:04d}")
        os.makedirs(os.path.join(pkg, "src"), exist_ok=True)
        with open(os.path.join(pkg, "BUCK"), "w") as f:
            dep = f'"//area{(top + 1) % 20:02d}/pkg{mid:04d}:lib"' if mid % 3 else ""
            f.write(f'filegroup(name = "lib", srcs = glob(["src/**"]), visibility = ["PUBLIC"])\n# deps: [{dep}]\n')
        n += 1
        for i in range(per_dir - 1):
            if n >= a.files:
                break
            size = int(100 * (655.36 ** rnd.random()))  # 100 B .. 64 KiB, log-uniform
            off = rnd.randrange(0, len(blob) - size)
            path = os.path.join(pkg, "src", f"f{i:03d}.rs")
            with open(path, "wb") as f:
                f.write(f"// {d}/{i}\n".encode() + blob[off:off + size])
            if i % 97 == 5:
                os.chmod(path, 0o755)
            n += 1
        if d % 101 == 3 and per_dir > 2:
            os.symlink("f000.rs", os.path.join(pkg, "src", "alias.rs"))
            n += 1
    git = ["git", "-C", a.dir, "-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    subprocess.run(git[:3] + ["init", "-q", "-b", "main"], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "synthetic monorepo"], check=True)
    print(f"{a.dir}: {n} files in {a.dirs} packages", file=sys.stderr)


if __name__ == "__main__":
    main()
