#!/usr/bin/env bash
# Real buck2 builds in antares workspaces: for each target, a fresh
# workspace, `antares sync TARGET --toolchains MODE`, then `buck2 build
# TARGET` in it (offline but for package registries: SI's third-party crates
# come from static.crates.io). Prints a table: files and MB placed, sync
# seconds, recall and precision against real buck2's answers (when given),
# the build's result and seconds. The long check of issue 15: systeminit/si's
# //lib/si-events-rs:si-events builds from `--toolchains system` (the default
# run, about 7 minutes on 2 cores with a cold buck-out).
#
# usage: bench/buck2-build.sh [--bin ANTARES] [--buck2 PATH] [--source SPEC]
#            [--toolchains system|auto|repo] [--oracle ORACLE.json]
#            [--record CHECKOUT] [--workdir DIR] [--one-workspace] [TARGET…]
#
# SPEC defaults to git:/work/.mirror/systeminit+si/repo, TARGET to
# //lib/si-events-rs:si-events, --buck2 to ../shared/tools/buck2 beside the
# repository. --oracle weighs each workspace against what
# scripts/record-oracle.py recorded (e.g. the SI corpus oracle,
# buck-integration/tests/fixtures/corpus/oracle/si.json.xz, unpacked);
# --record CHECKOUT records it first from a full checkout of the same
# revision. --one-workspace syncs every target in turn into one workspace
# (each sync replaces the selection; buck-out stays, so later builds reuse
# the third-party crates built before). Prints SKIPPED and exits 0 without buck2 or without the source.
# buck2 runs with a throw-away HOME (RUSTUP_HOME and CARGO_HOME keep
# pointing at the real ones, so rustup's `rustc` finds its toolchains) and
# is killed after each target; workspaces are deleted unless --workdir.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="" BUCK2="$ROOT/../shared/tools/buck2" SOURCE="git:/work/.mirror/systeminit+si/repo"
MODE=system ORACLE="" RECORD="" WORKDIR="" ONE="" TARGETS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) BIN=$2; shift 2 ;;
        --buck2) BUCK2=$2; shift 2 ;;
        --source) SOURCE=$2; shift 2 ;;
        --toolchains) MODE=$2; shift 2 ;;
        --oracle) ORACLE=$2; shift 2 ;;
        --record) RECORD=$2; shift 2 ;;
        --workdir) WORKDIR=$2; shift 2 ;;
        --one-workspace) ONE=1; shift ;;
        -h|--help) sed -n '2,/^[^#]/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "bench/buck2-build.sh: unknown argument $1 (see --help)" >&2; exit 1 ;;
        *) TARGETS+=("$1"); shift ;;
    esac
done
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(//lib/si-events-rs:si-events)
if [ ! -x "$BUCK2" ]; then
    echo "SKIPPED: no buck2 at $BUCK2 (--buck2)"
    exit 0
fi
case "$SOURCE" in
    git:*|dir:*) [ -e "${SOURCE#*:}" ] || { echo "SKIPPED: no ${SOURCE#*:} (--source)"; exit 0; } ;;
esac
if [ -z "$BIN" ]; then
    (cd "$ROOT" && cargo build --quiet --bin antares)
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/antares
fi

W=${WORKDIR:-$(mktemp -d /var/tmp/antares-buck2-build.XXXXXX)}
mkdir -p "$W/home"
export RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup} CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}
B() { HOME="$W/home" "$BUCK2" "$@"; }
WS=""
cleanup() {
    set +e
    [ -n "$WS" ] && [ -d "$WS" ] && (cd "$WS" && B kill >/dev/null 2>&1)
    [ -z "$WORKDIR" ] && rm -rf "$W"
}
trap cleanup EXIT

if [ -n "$RECORD" ]; then
    ORACLE="$W/oracle.json"
    python3 "$ROOT/scripts/record-oracle.py" --buck2 "$BUCK2" "$RECORD" "$ORACLE" "${TARGETS[@]}" >&2
fi

printf '| %-36s | %6s | %7s | %6s | %7s | %9s | %-8s | %8s |\n' target files "MB" "sync s" recall precision build "build s"
printf '|%s|--------|---------|--------|---------|-----------|----------|----------|\n' "$(printf -- '-%.0s' {1..38})"
i=0
for t in "${TARGETS[@]}"; do
    i=$((i + 1))
    if [ -z "$ONE" ] || [ "$i" = 1 ]; then
        WS="$W/ws$i"
        "$BIN" --cache "$W/cache" init --source "$SOURCE" "$WS" >/dev/null
    fi
    start=$(date +%s.%N)
    "$BIN" --cache "$W/cache" -C "$WS" sync "$t" --toolchains "$MODE" --json >"$W/sync$i.json" 2>"$W/sync$i.err" \
        || { echo "antares sync $t failed:" >&2; cat "$W/sync$i.err" >&2; exit 1; }
    sync_s=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
    weighed=$(python3 "$ROOT/scripts/weigh-workspace.py" "$WS" "${ORACLE:--}" "$t")
    read -r files bytes recall precision < <(python3 -c '
import json, sys
w = json.loads(sys.argv[1])
pct = lambda k: "%.1f%%" % (100 * w[k]) if k in w else "-"
print(w["files"], w["bytes"], pct("recall"), pct("precision"))' "$weighed")
    start=$(date +%s.%N)
    if (cd "$WS" && B build "$t" >"$W/build$i.log" 2>&1); then
        result=ok
    else
        result=FAILED
        echo "$t: buck2 build failed; first errors ($W/build$i.log):" >&2
        grep -m 5 -iE '^(error|Error|Action failed|Caused by)|error:' "$W/build$i.log" >&2 || tail -n 20 "$W/build$i.log" >&2
    fi
    build_s=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.0f", e - s }')
    (cd "$WS" && B kill >/dev/null 2>&1) || true
    printf '| %-36s | %6s | %7.1f | %6s | %7s | %9s | %-8s | %8s |\n' "$t" "$files" "$(awk -v b="$bytes" 'BEGIN { print b / 1048576 }')" "$sync_s" "$recall" "$precision" "$result" "$build_s"
    [ -n "$WORKDIR" ] || [ -n "$ONE" ] || rm -rf "$WS"
done
