#!/usr/bin/env bash
# Benchmark of the antares FUSE mount against native ext4, fuse-overlayfs and
# bindfs over the same tree, in one run.
#
# usage: bench/mount.sh [--files N] [--dirs D] [--runs R] [--workdir DIR]
#
# Builds a synthetic repo (default 50,000 files in 2,000 directories), mounts
# it four ways (native = the directory itself; antares = View of the git HEAD
# as lower, empty upper; fuse-overlayfs with the repo as lowerdir; bindfs) and
# prints medians of R runs (default 3) of:
#   stat of all files (find -printf %s), readdir of all directories (find),
#   sequential read of all files with cold page cache and warm,
#   create+write 10,000 small files, git status of the checkout seen through it.
# Every row is measured after one unmeasured first pass (antares' first pass
# also fetches each blob into its cache; that time is printed separately).
# Peak RSS of each daemon is printed at the end. Needs root (mounts, drop_caches).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"
parse_bench_args "$@"
[ "$(id -u)" = 0 ] || { echo "bench/mount.sh: needs root" >&2; exit 1; }
for t in fuse-overlayfs bindfs /usr/bin/time python3 git; do
    command -v "$t" >/dev/null || { echo "bench/mount.sh: needs $t" >&2; exit 1; }
done

# The mount is run through the library's test helper (the same code path as
# `antares mount --foreground`): a release build of the fuse_mount test binary.
echo "building the mount helper (release)…" >&2
HELPER=$(cd "$ROOT" && cargo test --release -p antares-overlay --test fuse_mount --no-run 2>&1 \
    | sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -1)
[ -x "$HELPER" ] || { echo "bench/mount.sh: could not build the helper" >&2; exit 1; }

W=${WORKDIR:-$(mktemp -d /var/tmp/antares-mount-bench.XXXXXX)}
AM="$W/antares" FO="$W/fo" BF="$W/bf"
PIDS=()
cleanup() {
    set +e
    for m in "$AM/mnt/buck-out" "$AM/mnt" "$FO/mnt" "$BF/mnt"; do
        mountpoint -q "$m" 2>/dev/null && { umount "$m" 2>/dev/null || umount -l "$m"; }
    done
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    [ -z "$WORKDIR" ] && rm -rf "$W"
}
trap cleanup EXIT
export GIT_CONFIG_GLOBAL=/dev/null

python3 "$ROOT/bench/gen_repo.py" "$W/repo" --files "$FILES" --dirs "$DIRS" >&2
REPO="$W/repo"

mkdir -p "$AM"/{upper,cache,mnt} "$FO"/{upper,work,mnt} "$BF/mnt"
ln -s "$REPO" "$AM/lower"
ANTARES_TEST_CHILD_LOWER=git ANTARES_TEST_CHILD_MOUNT="$AM" setsid "$HELPER" --exact child_mount_process --ignored >"$W/antares.log" 2>&1 &
PIDS+=($!)
AM_PID=$!
for _ in $(seq 100); do [ -e "$AM/ready" ] && break; sleep 0.1; done
[ -e "$AM/ready" ] || { echo "antares mount did not come up" >&2; cat "$W/antares.log" >&2; exit 1; }
fuse-overlayfs -o "lowerdir=$REPO,upperdir=$FO/upper,workdir=$FO/work" "$FO/mnt"
FO_PID=$(pgrep -n -x fuse-overlayfs || true)
bindfs "$REPO" "$BF/mnt"
BF_PID=$(pgrep -n -x bindfs || true)

declare -A MNT=([native]="$REPO" [antares]="$AM/mnt" [fuse-overlayfs]="$FO/mnt" [bindfs]="$BF/mnt")
KINDS=(native antares fuse-overlayfs bindfs)
PRUNE="-path */.git -prune -o"

# secs CMD…: seconds taken by CMD (which must succeed).
secs() {
    local tf
    tf=$(mktemp)
    /usr/bin/time -f '%e' -o "$tf" bash -c "$1" >/dev/null 2>"$tf.err" || {
        echo "benchmark command failed: $1" >&2; cat "$tf.err" >&2; exit 1; }
    tail -n 1 "$tf"
    rm -f "$tf" "$tf.err"
}
median() { sort -n | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }

declare -A RES
# bench NAME COLD(0|1) TEMPLATE: TEMPLATE uses $M for the mount point, $I for
# the run, $K for the kind (native and bindfs share one directory).
bench() {
    local name=$1 cold=$2 tmpl=$3 k i cmd vals v
    for k in "${KINDS[@]}"; do
        vals=()
        for ((i = 0; i < RUNS; i++)); do
            cmd=${tmpl//\$M/${MNT[$k]}}
            cmd=${cmd//\$I/$i}
            cmd=${cmd//\$K/$k}
            [ "$cold" = 1 ] && drop
            v=$(secs "$cmd")   # a failing command stops the benchmark (set -e)
            vals+=("$v")
        done
        RES[$name,$k]=$(printf '%s\n' "${vals[@]}" | median)
        printf '  %-28s %-15s %8.3f s\n' "$name" "$k" "${RES[$name,$k]}" >&2
    done
}

STAT="find \$M $PRUNE -printf '%s\n'"
READDIR="find \$M $PRUNE -print"
READ="find \$M $PRUNE -type f -print0 | xargs -0 -r cat"
# First passes (not in the table): antares fetches every blob here.
for k in "${KINDS[@]}"; do
    t=$(secs "${READ//\$M/${MNT[$k]}}")
    printf '  first read-all pass %-15s %8.3f s\n' "$k" "$t" >&2
    [ "$k" = antares ] && FIRST=$t
done

bench "stat all files" 0 "$STAT"
bench "readdir all dirs" 0 "$READDIR"
bench "read all files (cold)" 1 "$READ"
bench "read all files (warm)" 0 "$READ"
CREATE="python3 -c 'import os,sys; d=sys.argv[1]; os.mkdir(d)
for i in range(10000):
    with open(os.path.join(d, \"f%d\" % i), \"w\") as f: f.write(\"x\" * 200)' \$M/new_\$K_\$I"
bench "create+write 10,000 files" 0 "$CREATE"
for k in "${KINDS[@]}"; do rm -rf "${MNT[$k]}"/new_*; done
bench "git status" 0 "git --git-dir=$REPO/.git --work-tree=\$M status --porcelain | wc -l"

hwm() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$1/status" 2>/dev/null || echo "?"; }
echo
echo "tree: $FILES files in $DIRS directories; medians of $RUNS runs; antares first read pass (fetch into cache): ${FIRST} s"
printf '| %-26s | %8s | %8s | %14s | %8s | %9s | %9s |\n' operation native antares fuse-overlayfs bindfs "vs native" "vs f-o"
printf '|%s|%s|%s|%s|%s|%s|%s|\n' "----------------------------" "----------" "----------" "----------------" "----------" "-----------" "-----------"
for op in "stat all files" "readdir all dirs" "read all files (cold)" "read all files (warm)" "create+write 10,000 files" "git status"; do
    printf '| %-26s | %8.3f | %8.3f | %14.3f | %8.3f | %8sx | %8sx |\n' "$op" \
        "${RES[$op,native]}" "${RES[$op,antares]}" "${RES[$op,fuse-overlayfs]}" "${RES[$op,bindfs]}" \
        "$(awk -v a="${RES[$op,antares]}" -v b="${RES[$op,native]}" 'BEGIN{printf "%.2f", (b>0)?a/b:0}')" \
        "$(awk -v a="${RES[$op,antares]}" -v b="${RES[$op,fuse-overlayfs]}" 'BEGIN{printf "%.2f", (b>0)?a/b:0}')"
done
echo
echo "peak RSS of the daemons: antares $(hwm "$AM_PID") MB, fuse-overlayfs $(hwm "$FO_PID") MB, bindfs $(hwm "$BF_PID") MB"
