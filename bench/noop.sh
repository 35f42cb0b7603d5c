#!/usr/bin/env bash
# No-op re-sync of a real repository, without and with a mount, against
# `git status` on the same checkout.
#
# usage: bench/noop.sh [--repo DIR] [--runs R] [--workdir DIR] [--bin PATH] [SELECTION…]
#
# DIR is a non-bare git repository with a clean checkout (default: a
# synthetic one from bench/gen_repo.py, 50,000 files). SELECTION is what
# `antares sync` is given (default: `.`): paths or target patterns, e.g.
# for systeminit/si:
#   git clone --shared /work/.mirror/systeminit+si/repo /tmp/si-git
#   bench/noop.sh --repo /tmp/si-git lib bin
#   bench/noop.sh --repo /tmp/si-git //lib/si-events-rs:si-events //bin/sdf:sdf
# The workspace is a `git:DIR` source; after one unmeasured sync, R runs
# (default 5) of the same sync (nothing changed) are timed, each followed by
# a `git status` in DIR (alternating, so that both see the same load), then
# the same with `antares mount` running (after one unmeasured sync that
# fills the untracked-file cache). Times are wall clock at 0.1 ms
# (`/usr/bin/time` gives 10 ms, as coarse as what is measured), peak RSS
# from `/usr/bin/time`. --bin times a given antares binary (e.g. an older
# build) instead of building the release one.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"
REPO="" RUNS=5 WORKDIR="" BIN="" SEL=()
while [ $# -gt 0 ]; do
    case "$1" in
        --repo) REPO=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --workdir) WORKDIR=$2; shift 2 ;;
        --bin) BIN=$2; shift 2 ;;
        -h|--help) sed -n '2,/^[^#]/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "bench/noop.sh: unknown argument $1 (see --help)" >&2; exit 1 ;;
        *) SEL+=("$1"); shift ;;
    esac
done
[ ${#SEL[@]} -gt 0 ] || SEL=(.)
[ -x /usr/bin/time ] || { echo "bench/noop.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
if [ -z "$BIN" ]; then
    echo "building antares (release)…" >&2
    (cd "$ROOT" && cargo build --release --quiet --bin antares)
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/antares
fi

W=${WORKDIR:-$(mktemp -d /var/tmp/antares-noop.XXXXXX)}
WS="$W/ws"
A="$BIN --cache $W/cache"
cleanup() {
    set +e
    [ -d "$WS" ] && $A -C "$WS" umount >/dev/null 2>&1
    [ -z "$WORKDIR" ] && rm -rf "$W"
}
trap cleanup EXIT
export GIT_CONFIG_GLOBAL=/dev/null

if [ -z "$REPO" ]; then
    python3 "$ROOT/bench/gen_repo.py" "$W/repo" --files 50000 --dirs 2000 >&2
    REPO="$W/repo"
fi
[ -z "$(git -C "$REPO" status --porcelain)" ] || {
    echo "bench/noop.sh: $REPO has uncommitted changes; git status would not be a no-op" >&2
    exit 1
}
echo "repo: $(git -C "$REPO" ls-files | wc -l) files; selection: ${SEL[*]}" >&2

$A init --source "git:$REPO" "$WS" >/dev/null
$A -C "$WS" sync "${SEL[@]}" >/dev/null
echo "workspace: $(find "$WS" -path "$WS/.antares" -prune -o -type f -print | wc -l) files" >&2
SYNC=("$BIN" --cache "$W/cache" -C "$WS" sync "${SEL[@]}")
GIT=(git -C "$REPO" status --porcelain)

# timed FILE CMD…: runs CMD, appends "seconds rss_kb" to FILE; a failing
# command aborts the benchmark (a fast failure is not a result).
timed() {
    local file=$1 tf t0 t1
    shift
    tf=$(mktemp)
    t0=$EPOCHREALTIME
    if ! /usr/bin/time -f '%M' -o "$tf" "$@" >/dev/null 2>"$tf.err"; then
        echo "benchmark command failed: $*" >&2
        cat "$tf.err" >&2
        rm -f "$tf" "$tf.err"
        exit 1
    fi
    t1=$EPOCHREALTIME
    echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }') $(tail -n 1 "$tf")" >>"$file"
    rm -f "$tf" "$tf.err"
}

# pair LABEL: RUNS times the sync then git status; sets SYNC_S SYNC_MB
# GIT_S GIT_MB (medians).
pair() {
    local a g i
    a=$(mktemp) g=$(mktemp)
    for ((i = 0; i < RUNS; i++)); do
        timed "$a" "${SYNC[@]}"
        timed "$g" "${GIT[@]}"
    done
    SYNC_S=$(median_of "$a" 1) GIT_S=$(median_of "$g" 1)
    SYNC_MB=$(median_of "$a" 2 | awk '{printf "%.0f", $1/1024}')
    GIT_MB=$(median_of "$g" 2 | awk '{printf "%.0f", $1/1024}')
    rm -f "$a" "$g"
    printf '  %-44s %8.4f s %6s MB   git status %8.4f s\n' "$1" "$SYNC_S" "$SYNC_MB" "$GIT_S" >&2
}

export LC_ALL=C # EPOCHREALTIME and awk agree on the decimal point
echo "timing (median of $RUNS):" >&2
pair "no-op sync"
ROW1=("$SYNC_S" "$SYNC_MB" "git status" "$GIT_S" "$GIT_MB")
$A -C "$WS" mount >/dev/null
# With the mount's upper layer the sync is two-way and scans for new files.
# A directory changed within a second of a scan is not cached by it (git's
# racy rule), so the scan that the first sync after the mount makes is
# done more than a second after the workspace was placed, unmeasured: a
# re-sync finds the cache a previous one left.
sleep 1.1
"${SYNC[@]}" >/dev/null 2>&1
pair "no-op sync, mount running"
ROW2=("$SYNC_S" "$SYNC_MB" "git status" "$GIT_S" "$GIT_MB")
$A -C "$WS" umount >/dev/null

header
row "no-op sync" "${ROW1[@]}"
row "no-op sync, mount running" "${ROW2[@]}"
