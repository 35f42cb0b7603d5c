#!/usr/bin/env bash
# Benchmark of the `mono:` source: cold sync over HTTP from the Mono test
# server on loopback vs the same commit from the `git:` source, and a re-sync
# after a change in one directory, with the HTTP requests each one made.
#
# usage: bench/mono.sh [--files N] [--dirs D] [--runs R] [--workdir DIR]
#
# Builds the synthetic repo of bench/sync.sh (default 50,000 files in 2,000
# directories), serves it with `mono-test-server` (release build, same
# machine) and prints medians of R runs (default 3) with peak RSS:
#   cold sync, mono: (empty store and tree cache)  vs cold sync, git:
#   re-sync after one directory changed (mono:)    vs the same from git:
# and the request counts the server logged for the mono: rows.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"
parse_bench_args "$@"
[ -x /usr/bin/time ] || { echo "bench/mono.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

echo "building antares and mono-test-server (release)…" >&2
(cd "$ROOT" && cargo build --release --quiet --bin antares && cargo build --release --quiet -p antares-mono-test-server --bin mono-test-server)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/antares
SRV=${CARGO_TARGET_DIR:-$ROOT/target}/release/mono-test-server

W=${WORKDIR:-$(mktemp -d /var/tmp/antares-bench-mono.XXXXXX)}
SRV_PID=""
cleanup() {
    [ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null && wait "$SRV_PID" 2>/dev/null
    rm -rf "$W"
}
trap cleanup EXIT
export GIT_CONFIG_GLOBAL=/dev/null

python3 "$ROOT/bench/gen_repo.py" "$W/repo" --files "$FILES" --dirs "$DIRS"
REPO="$W/repo"
NFILES=$(git -C "$REPO" ls-files | wc -l)
# The directory the re-sync rows change: the one holding the first tracked file.
CHANGED=$(dirname "$(git -C "$REPO" ls-files | grep -v '^\.' | head -n 1)")
echo "repo: $NFILES files; re-sync rows change $CHANGED/" >&2

"$SRV" --repo "$REPO" --bind 127.0.0.1:0 >"$W/srv.out" 2>"$W/srv.err" &
SRV_PID=$!
for _ in $(seq 100); do grep -q listening "$W/srv.out" 2>/dev/null && break; sleep 0.1; done
URL=$(sed -n 's/^listening on //p' "$W/srv.out")
[ -n "$URL" ] || { echo "bench/mono.sh: the test server did not start:" >&2; cat "$W/srv.err" >&2; exit 1; }

# The server's request log (/_test): cleared in each run's setup, so after
# run_n it holds the last run's requests (every run makes the same ones).
reset_requests() { python3 -c 'import sys,urllib.request as u; u.urlopen(u.Request(sys.argv[1]+"/_test/reset", method="POST"))' "$URL"; }
request_count() { python3 -c 'import sys,json,urllib.request as u; print(json.load(u.urlopen(sys.argv[1]+"/_test/requests"))["count"])' "$URL"; }

A="$BIN --cache $W/cache"
echo "timing (median of $RUNS):" >&2

# 1. cold sync: empty store (which also holds the mono tree cache).
cold_setup() { rm -rf "$W/ws" "$W/cache"; reset_requests; sync; }
run_n "antares cold sync (mono: loopback)" "$RUNS" cold_setup "$A init --source mono:$URL $W/ws && $A -C $W/ws sync ."
COLD_MONO=$RESULT_SECS COLD_MONO_MB=$RESULT_MB
COLD_REQ=$(request_count)
run_n "antares cold sync (git:)" "$RUNS" cold_setup "$A init --source git:$REPO $W/ws && $A -C $W/ws sync ."
COLD_GIT=$RESULT_SECS COLD_GIT_MB=$RESULT_MB

# 2. re-sync after a change in one directory: each run's setup commits a new
# change there, so every timed run sees exactly one changed subtree.
rm -rf "$W/ws" "$W/ws-git" "$W/cache"
$A init --source "mono:$URL" "$W/ws" >/dev/null 2>&1 && $A -C "$W/ws" sync . >/dev/null 2>&1
$A init --source "git:$REPO" "$W/ws-git" >/dev/null 2>&1 && $A -C "$W/ws-git" sync . >/dev/null 2>&1
change_one_dir() {
    for f in $(git -C "$REPO" ls-files "$CHANGED" | grep -v BUCK | head -n 5); do
        [ -L "$REPO/$f" ] || echo "// change $1 $RANDOM" >>"$REPO/$f"
    done
    git -C "$REPO" -c user.name=b -c user.email=b@x commit -qam "change $CHANGED ($1)"
}
mono_setup() { change_one_dir "$1"; reset_requests; sync; }
run_n "antares re-sync, 1 dir changed (mono:)" "$RUNS" mono_setup "$A -C $W/ws sync"
ONE_MONO=$RESULT_SECS ONE_MONO_MB=$RESULT_MB
ONE_REQ=$(request_count)
python3 -c 'import sys,json,urllib.request as u; [print("    ", r) for r in json.load(u.urlopen(sys.argv[1]+"/_test/requests"))["requests"]]' "$URL" >&2
git_setup() { change_one_dir "git-$1"; sync; }
run_n "antares re-sync, 1 dir changed (git:)" "$RUNS" git_setup "$A -C $W/ws-git sync"
ONE_GIT=$RESULT_SECS ONE_GIT_MB=$RESULT_MB
# Both workspaces must hold the same bytes: a fast wrong answer is no result.
$A -C "$W/ws" sync >/dev/null 2>&1
if ! diff -r --exclude=.antares "$W/ws" "$W/ws-git" >/dev/null; then
    echo "bench/mono.sh: the mono: and git: workspaces differ" >&2
    exit 1
fi

echo
echo "antares mono: source benchmark: $NFILES files, $DIRS dirs, median of $RUNS runs, $(nproc) cores, $(uname -r)"
header
row "cold sync, mono: (loopback)" "$COLD_MONO" "$COLD_MONO_MB" "cold sync, git:" "$COLD_GIT" "$COLD_GIT_MB"
row "re-sync, 1 dir changed, mono:" "$ONE_MONO" "$ONE_MONO_MB" "re-sync, 1 dir changed, git:" "$ONE_GIT" "$ONE_GIT_MB"
echo
echo "HTTP requests: cold sync $COLD_REQ ($NFILES files); re-sync after a change in $CHANGED/: $ONE_REQ"
