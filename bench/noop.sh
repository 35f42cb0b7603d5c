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
# (default 5) of the same sync (nothing changed) are timed, then the same
# with `antares mount` running, and `git status` in DIR. --bin times a given
# antares binary (e.g. an older build) instead of building the release one.
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
SYNC="$A -C $WS sync ${SEL[*]}"
nothing() { :; }

echo "timing (median of $RUNS):" >&2
run_n "no-op sync" "$RUNS" nothing "$SYNC"
NOOP_S=$RESULT_SECS NOOP_MB=$RESULT_MB
$A -C "$WS" mount >/dev/null
run_n "no-op sync, mounted" "$RUNS" nothing "$SYNC"
MOUNTED_S=$RESULT_SECS MOUNTED_MB=$RESULT_MB
$A -C "$WS" umount >/dev/null
run_n "git status" "$RUNS" nothing "git -C $REPO status --porcelain"
GIT_S=$RESULT_SECS GIT_MB=$RESULT_MB

header
row "no-op sync" "$NOOP_S" "$NOOP_MB" "git status" "$GIT_S" "$GIT_MB"
row "no-op sync, mount running" "$MOUNTED_S" "$MOUNTED_MB" "git status" "$GIT_S" "$GIT_MB"
