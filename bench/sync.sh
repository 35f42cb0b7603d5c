#!/usr/bin/env bash
# Benchmark of `antares sync` against the tools people use instead, in one run.
#
# usage: bench/sync.sh [--files N] [--dirs D] [--runs R] [--workdir DIR]
#
# Builds a synthetic monorepo as a git repository (default 50,000 files in
# 2,000 directories, 100 B..64 KiB), then prints medians of R runs (default 3)
# with peak RSS and the ratio to each baseline:
#   cold sync from git (empty store)   vs git worktree add, cp -a, rsync -a
#   warm sync (store filled)           vs cp -a (default fs); on XFS (root) vs cp -a --reflink=always
#   no-op re-sync                      vs git status
#   re-sync after 1% changed (new commit, --rev) vs git checkout of that commit
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"
parse_bench_args "$@"
[ -x /usr/bin/time ] || { echo "bench/sync.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

echo "building antares (release)…" >&2
(cd "$ROOT" && cargo build --release --quiet --bin antares)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/antares

W=${WORKDIR:-$(mktemp -d /var/tmp/antares-bench.XXXXXX)}
XFS_MNT="$W/xfs" XFS_IMG="$W/xfs.img"
cleanup() {
    if mountpoint -q "$XFS_MNT" 2>/dev/null; then umount "$XFS_MNT" || umount -l "$XFS_MNT"; fi
    rm -rf "$W"
}
trap cleanup EXIT
export GIT_CONFIG_GLOBAL=/dev/null

python3 "$ROOT/bench/gen_repo.py" "$W/repo" --files "$FILES" --dirs "$DIRS"
REPO="$W/repo"
BASE=$(git -C "$REPO" rev-parse HEAD)
# A second commit changing 1% of the files.
python3 - "$REPO" "$FILES" <<'PY'
import os, sys
repo, n = sys.argv[1], int(sys.argv[2])
paths = []
for d, _, fs in os.walk(repo):
    if "/.git" in d or d.endswith(".git"):
        continue
    paths += [os.path.join(d, f) for f in fs if f.endswith(".rs") and not os.path.islink(os.path.join(d, f))]
paths.sort()
for p in paths[:: max(1, len(paths) // max(1, n // 100))][: n // 100]:
    with open(p, "ab") as f:
        f.write(b"// changed\n")
PY
git -C "$REPO" -c user.name=b -c user.email=b@x commit -qam "change 1%"
NEXT=$(git -C "$REPO" rev-parse HEAD)
git -C "$REPO" checkout -q "$BASE"
git -C "$REPO" worktree add -q --detach "$W/plain" "$BASE"
NFILES=$(git -C "$REPO" ls-files | wc -l)
echo "repo: $NFILES files, $(du -sh --exclude=.git "$W/plain" | cut -f1)" >&2

A="$BIN --cache $W/cache"
echo "timing (median of $RUNS):" >&2

# 1. cold sync from git vs worktree add / cp -a / rsync -a
# Every setup ends with `sync`: each timed run starts with no dirty pages
# left by the previous one. antares flushes its writes before it commits its
# manifest (crash safety), the baselines do not; rows marked "+ sync" time a
# baseline until its data is on disk too.
cold_setup() { rm -rf "$W/ws" "$W/cache"; sync; }
run_n "antares cold sync (git)" "$RUNS" cold_setup "$A init --source git:$REPO@$BASE $W/ws && $A -C $W/ws sync ."
COLD=$RESULT_SECS COLD_MB=$RESULT_MB
wt_setup() { rm -rf "$W/wt"; git -C "$REPO" worktree prune; sync; }
run_n "git worktree add" "$RUNS" wt_setup "git -C $REPO worktree add -q --detach $W/wt $BASE"
WT=$RESULT_SECS WT_MB=$RESULT_MB
run_n "git worktree add + sync" "$RUNS" wt_setup "git -C $REPO worktree add -q --detach $W/wt $BASE && sync"
WTS=$RESULT_SECS WTS_MB=$RESULT_MB
cp_setup() { rm -rf "$W/cp"; sync; }
run_n "cp -a" "$RUNS" cp_setup "cp -a $W/plain $W/cp"
CP=$RESULT_SECS CP_MB=$RESULT_MB
run_n "cp -a + sync" "$RUNS" cp_setup "cp -a $W/plain $W/cp && sync"
CPS=$RESULT_SECS CPS_MB=$RESULT_MB
rs_setup() { rm -rf "$W/rs"; sync; }
run_n "rsync -a" "$RUNS" rs_setup "rsync -a $W/plain/ $W/rs/"
RS=$RESULT_SECS RS_MB=$RESULT_MB

# 2. warm sync into a second workspace (store filled by the cold runs)
warm_setup() { rm -rf "$W/ws2"; sync; }
run_n "antares warm sync" "$RUNS" warm_setup "$A init --source git:$REPO@$BASE $W/ws2 && $A -C $W/ws2 sync ."
WARM=$RESULT_SECS WARM_MB=$RESULT_MB

# 3. no-op re-sync vs git status
git -C "$W/wt" status --porcelain >/dev/null
noop_setup() { sync; }
run_n "antares no-op re-sync" "$RUNS" noop_setup "$A -C $W/ws sync"
NOOP=$RESULT_SECS NOOP_MB=$RESULT_MB
run_n "git status" "$RUNS" noop_setup "git -C $W/wt status --porcelain"
GS=$RESULT_SECS GS_MB=$RESULT_MB

# 4. 1% changed in a new commit
one_setup() { $A -C "$W/ws" sync --rev "$BASE" >/dev/null 2>&1; sync; }
run_n "antares re-sync, 1% changed" "$RUNS" one_setup "$A -C $W/ws sync --rev $NEXT"
ONE=$RESULT_SECS ONE_MB=$RESULT_MB
co_setup() { git -C "$W/wt" checkout -q --detach "$BASE"; sync; }
run_n "git checkout, 1% changed" "$RUNS" co_setup "git -C $W/wt checkout -q --detach $NEXT"
CO=$RESULT_SECS CO_MB=$RESULT_MB

# 5. XFS with reflinks (root only)
XFS=""
if [ "$(id -u)" = 0 ] && command -v mkfs.xfs >/dev/null; then
    # Room for the tree, the store, a cp -a without reflinks and two
    # workspaces: antares copies files under 32 KiB instead of cloning them
    # (cloning is slower there), so a workspace holds about half the bytes.
    # (With 4x the script stopped at 50,000 files on a full image.)
    size_mb=$(( $(du -sm "$W/plain" | cut -f1) * 8 + 512 ))
    truncate -s "${size_mb}M" "$XFS_IMG"
    if mkfs.xfs -q -m reflink=1 "$XFS_IMG" && mkdir -p "$XFS_MNT" && mount -o loop "$XFS_IMG" "$XFS_MNT"; then
        cp -a "$W/plain" "$XFS_MNT/plain"
        AX="$BIN --cache $XFS_MNT/cache"
        $AX init --source "git:$REPO@$BASE" "$XFS_MNT/ws0" >/dev/null 2>&1 && $AX -C "$XFS_MNT/ws0" sync . >/dev/null 2>&1
        xw_setup() { rm -rf "$XFS_MNT/ws"; sync; }
        run_n "antares warm sync (XFS)" "$RUNS" xw_setup "$AX init --source git:$REPO@$BASE $XFS_MNT/ws && $AX -C $XFS_MNT/ws sync ."
        XW=$RESULT_SECS XW_MB=$RESULT_MB
        xr_setup() { rm -rf "$XFS_MNT/cp"; sync; }
        run_n "cp -a --reflink=always (XFS)" "$RUNS" xr_setup "cp -a --reflink=always $XFS_MNT/plain $XFS_MNT/cp"
        XR=$RESULT_SECS XR_MB=$RESULT_MB
        run_n "cp -a (XFS)" "$RUNS" xr_setup "cp -a --reflink=never $XFS_MNT/plain $XFS_MNT/cp"
        XC=$RESULT_SECS XC_MB=$RESULT_MB
        XFS=1
    else
        echo "  (XFS loop image unavailable: skipping the reflink rows)" >&2
    fi
else
    echo "  (not root or no mkfs.xfs: skipping the reflink rows)" >&2
fi

echo
echo "antares sync benchmark: $NFILES files, $DIRS dirs, median of $RUNS runs, $(nproc) cores, $(uname -r)"
header
row "cold sync from git (empty store)" "$COLD" "$COLD_MB" "git worktree add" "$WT" "$WT_MB"
row "cold sync from git (empty store)" "$COLD" "$COLD_MB" "git worktree add + sync" "$WTS" "$WTS_MB"
row "cold sync from git (empty store)" "$COLD" "$COLD_MB" "cp -a (checked-out tree)" "$CP" "$CP_MB"
row "cold sync from git (empty store)" "$COLD" "$COLD_MB" "rsync -a (checked-out tree)" "$RS" "$RS_MB"
row "warm sync (store filled)" "$WARM" "$WARM_MB" "cp -a" "$CP" "$CP_MB"
row "warm sync (store filled)" "$WARM" "$WARM_MB" "cp -a + sync" "$CPS" "$CPS_MB"
[ -n "$XFS" ] && row "warm sync, XFS reflink" "$XW" "$XW_MB" "cp -a --reflink=always (XFS)" "$XR" "$XR_MB"
[ -n "$XFS" ] && row "warm sync, XFS reflink" "$XW" "$XW_MB" "cp -a (XFS)" "$XC" "$XC_MB"
row "no-op re-sync" "$NOOP" "$NOOP_MB" "git status" "$GS" "$GS_MB"
row "re-sync, 1% changed (new commit)" "$ONE" "$ONE_MB" "git checkout (1% changed)" "$CO" "$CO_MB"
echo
echo "targets: warm ≤ 0.5x cp -a; no-op ≤ 1x git status; cold ≤ 1.5x git worktree add; RSS ≤ 150 MB"
