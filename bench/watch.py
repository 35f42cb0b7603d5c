#!/usr/bin/env python3
"""Edit-to-visible latency of `antares sync --watch`.

usage: bench/watch.py ANTARES_BIN [--files N] [--edits E] [--rounds R]
                      [--reconcile-only] [--workdir DIR]

Builds a tree of N files (default 100,000) as a dir: source, syncs it, starts
`antares sync --watch`, then makes E edits (default 200) on each side it can
and measures the time until each edit is visible on the other side:
  source -> workspace   (an edit in the dir: source shows up in the workspace)
  workspace -> upper    (an edit in the workspace is written back to the
                         mount's upper dir; only when the workspace has one)
It also times a full reconcile after 1% of the files changed, on the source
side and on both sides, against `rsync -a` of the same change (medians of R
rounds, default 3). Prints p50/p95/max in ms.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def make_tree(root, n):
    for i in range(n):
        d = os.path.join(root, f"d{i % 1000:03d}")
        if i < 1000:
            os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i:06d}.txt"), "w") as f:
            f.write(f"file {i}\n" * 8)


def wait_for(path, content, timeout=10.0):
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        try:
            with open(path) as f:
                if f.read() == content:
                    return time.perf_counter() - start
        except FileNotFoundError:
            pass
        time.sleep(0.0005)
    return None


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def report(label, lat, misses):
    ms = [x * 1000 for x in lat]
    print(f"| {label:<28} | {len(ms):5d} | {statistics.median(ms):8.1f} | {pct(ms, 95):8.1f} | {max(ms):8.1f} | {misses:6d} |")


def timed(cmd, **kw):
    """Seconds taken by cmd. Each timed run starts with no dirty pages left by
    the edits or the previous run: antares flushes before it commits its
    manifest (crash safety) and would otherwise pay for the benchmark's own
    writes. rsync does not flush; the "+ sync" rows time it until its data is
    on disk too."""
    os.sync()
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, **kw)
    return time.perf_counter() - t0


def touch_files(root, n_files, start, stride, count, text):
    for k in range(count):
        i = (start + k * stride) % n_files
        with open(os.path.join(root, f"d{i % 1000:03d}", f"f{i:06d}.txt"), "a") as f:
            f.write(text)


def reconcile(a, w, env, src, ws):
    """Full reconcile after 1% changed, medians of --rounds rounds, against
    rsync -a of the same change: (1) the source side only; (2) both sides
    (1% in the source, another 1% in the workspace), where the baseline is
    the two rsyncs that carry each side's change across."""
    n = a.files // 100
    mirror_src, mirror_ws = os.path.join(w, "mirror-src"), os.path.join(w, "mirror-ws")
    subprocess.run(["cp", "-a", src, mirror_src], check=True)
    subprocess.run(["rsync", "-a", "--exclude", "/.antares", ws + "/", mirror_ws + "/"], check=True)
    sync_cmd = [a.bin, "-C", ws, "sync"]
    rsync_src = ["rsync", "-a", src + "/", mirror_src + "/"]
    rsync_ws = ["rsync", "-a", "--exclude", "/.antares", ws + "/", mirror_ws + "/"]
    rows = {}
    for both in (False, True):
        ant, rs, rs_sync = [], [], []
        for r in range(a.rounds):
            tag = f"round {r} {'both' if both else 'source'}\n"
            touch_files(src, a.files, 31 * r + (0 if both else 7), 97, n, tag)
            if both:
                touch_files(ws, a.files, 31 * r + 13, 89, n, tag)
            t = timed(rsync_src)
            if both:
                t += timed(rsync_ws)
            rs.append(t)
            # The same copy again, flushed: from the pre-change state (a
            # second mirror rsynced untimed to it) would double the setup,
            # so "+ sync" adds the flush of what rsync just wrote.
            t0 = time.perf_counter()
            os.sync()
            rs_sync.append(t + time.perf_counter() - t0)
            ant.append(timed(sync_cmd, env=env, capture_output=True))
            # Bring the workspace mirror up to date with what the sync placed.
            subprocess.run(rsync_ws, check=True)
        rows[both] = (statistics.median(ant), statistics.median(rs), statistics.median(rs_sync))
    print(f"\nfull reconcile after 1% changed ({n} files per side), medians of {a.rounds}:")
    print("| changed            | antares sync | rsync -a | ratio | rsync -a + sync | ratio |")
    print("|--------------------|--------------|----------|-------|-----------------|-------|")
    for both, label in ((False, "source side"), (True, "both sides")):
        t_a, t_r, t_rs = rows[both]
        print(f"| {label:<18} | {t_a:10.3f} s | {t_r:6.3f} s | {t_a / t_r:4.2f}x | {t_rs:13.3f} s | {t_a / t_rs:4.2f}x |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bin")
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--edits", type=int, default=200)
    ap.add_argument("--workdir")
    ap.add_argument("--rounds", type=int, default=3, help="reconcile rounds (median)")
    ap.add_argument("--reconcile-only", action="store_true", help="skip the latency part")
    a = ap.parse_args()
    w = a.workdir or tempfile.mkdtemp(prefix="antares-watch.", dir="/var/tmp")
    env = dict(os.environ, XDG_CACHE_HOME=os.path.join(w, "cache"))
    src, ws = os.path.join(w, "src"), os.path.join(w, "ws")
    watcher = None
    try:
        print(f"building {a.files} files…", file=sys.stderr)
        make_tree(src, a.files)
        subprocess.run([a.bin, "init", "--source", f"dir:{src}", ws], check=True, env=env, capture_output=True)
        upper = os.path.join(ws, ".antares", "upper")
        # The upper layer a mount would have made: syncs become two-way.
        os.makedirs(upper, exist_ok=True)
        subprocess.run([a.bin, "-C", ws, "sync", "."], check=True, env=env, capture_output=True)
        if a.reconcile_only:
            reconcile(a, w, env, src, ws)
            return
        watcher = subprocess.Popen([a.bin, "-C", ws, "sync", "--watch"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)
        print(f"\nwatch latency: {a.files} files, {a.edits} edits each way, {os.cpu_count()} cores")
        print("| direction                    | edits |  p50 ms  |  p95 ms  |  max ms  | missed |")
        print("|------------------------------|-------|----------|----------|----------|--------|")
        lat, miss = [], 0
        for k in range(a.edits):
            i = (k * 7919) % a.files
            rel = os.path.join(f"d{i % 1000:03d}", f"f{i:06d}.txt")
            content = f"edit {k} on the source side\n"
            with open(os.path.join(src, rel) + ".tmp", "w") as f:
                f.write(content)
            os.rename(os.path.join(src, rel) + ".tmp", os.path.join(src, rel))
            t = wait_for(os.path.join(ws, rel), content)
            if t is None:
                miss += 1
            else:
                lat.append(t)
            time.sleep(0.02)
        report("source -> workspace", lat, miss)
        if os.path.isdir(upper):
            lat, miss = [], 0
            for k in range(a.edits):
                i = (k * 104729 + 11) % a.files
                rel = os.path.join(f"d{i % 1000:03d}", f"f{i:06d}.txt")
                content = f"edit {k} in the workspace\n"
                with open(os.path.join(ws, rel), "w") as f:
                    f.write(content)
                t = wait_for(os.path.join(upper, rel), content)
                if t is None:
                    miss += 1
                else:
                    lat.append(t)
                time.sleep(0.02)
            report("workspace -> upper", lat, miss)
        else:
            print("| workspace -> upper           | (no upper dir: the workspace has no mount) |")
        watcher.terminate()
        watcher.wait()
        watcher = None
        reconcile(a, w, env, src, ws)
    finally:
        if watcher is not None:
            watcher.kill()
        if not a.workdir:
            shutil.rmtree(w, ignore_errors=True)


if __name__ == "__main__":
    main()
