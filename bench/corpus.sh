#!/usr/bin/env bash
# How antares' built-in evaluator does on real Buck2 repositories.
#
# usage: bench/corpus.sh [--bin ANTARES] [--pattern PATTERN] REPO…
#
# REPO is a checkout of a Buck2 project, or a corpus fixture
# (buck-integration/tests/fixtures/corpus/NAME.tar.xz: a build-file
# skeleton, unpacked into a temporary directory). A REPO without a root
# `.buckconfig` (buck2's `examples/`) is a collection: each outermost
# directory in it with a `.buckconfig` is evaluated as its own project.
# For each project, in a fresh workspace (no graph cache), `antares graph
# PATTERN --json` (default `//...`, every target of the root cell) is timed
# with /usr/bin/time, and a row is printed: build files and .bzl files
# evaluated, fallbacks (build files that could not be evaluated and were
# scanned for labels instead), failed (every file that could not be
# evaluated: those build files and the .bzl files stood in for), targets,
# wall seconds, peak RSS, and a note where real buck2 fails on the same
# file too (so the failure is buck2's behaviour, not antares'). The target
# for fallbacks and failed is 0.
#
#   bench/corpus.sh buck-integration/tests/fixtures/corpus/*.tar.xz
#   bench/corpus.sh --pattern //lib/si-events-rs:si-events /path/to/si
#
# Without --bin, antares is built with `cargo build --release`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="" PATTERN="//..." REPOS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) BIN=$2; shift 2 ;;
        --pattern) PATTERN=$2; shift 2 ;;
        -h|--help) sed -n '2,/^[^#]/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "bench/corpus.sh: unknown flag $1 (see --help)" >&2; exit 1 ;;
        *) REPOS+=("$1"); shift ;;
    esac
done
[ ${#REPOS[@]} -gt 0 ] || { echo "bench/corpus.sh: no repository given (see --help)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench/corpus.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
command -v jq >/dev/null || { echo "bench/corpus.sh: needs jq" >&2; exit 1; }
if [ -z "$BIN" ]; then
    echo "building antares (release)…" >&2
    (cd "$ROOT" && cargo build --release --quiet --bin antares)
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/antares
fi

W=$(mktemp -d /var/tmp/antares-corpus.XXXXXX)
trap 'rm -rf "$W"' EXIT

# Where real buck2 (../shared/tools/buck2, `buck2 targets`) fails on the
# same file as antares (the same list as buck2_fails_too in
# buck-integration/tests/corpus.rs): PROJECT PATTERN -> note.
buck2_fails() {
    case "$1 $2" in
        "buck2-examples/persistent_worker //...")
            echo "buck2 fails too: BUCK loads @fbcode_macros, a cell .buckconfig does not define" ;;
        "blink prelude//...")
            echo "buck2 fails too: prelude/apple/tools/BUCK.v2:6:5 parse error (a missing comma)" ;;
    esac
}

printf '| %-44s | %-30s | %11s | %10s | %9s | %6s | %7s | %7s | %6s | %s\n' \
    project pattern "build files" ".bzl files" fallbacks failed targets seconds "RSS MB" "note |"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..46})" "$(printf -- '-%.0s' {1..32})" \
    "-------------" "------------" "-----------" "--------" "---------" "---------" "--------" "------"
n=0
row() { # NAME DIR
    local name=$1 dir=$2 ws secs kb failed
    n=$((n + 1))
    ws="$W/ws$n"
    "$BIN" init --source "dir:$dir" "$ws" >/dev/null 2>&1
    if ! /usr/bin/time -f '%e %M' -o "$W/time$n" "$BIN" -C "$ws" graph "$PATTERN" --json \
        >"$W/graph$n.json" 2>"$W/err$n"; then
        echo "bench/corpus.sh: antares graph $PATTERN failed on $name:" >&2
        tail -n 5 "$W/err$n" >&2
        exit 1
    fi
    read -r secs kb < <(tail -n 1 "$W/time$n")
    failed=$(sed -n 's/^warning: \([0-9]*\) file(s) could not be evaluated.*/\1/p' "$W/err$n" | tail -n 1)
    jq -r --arg name "$name" --arg pattern "$PATTERN" --arg secs "$secs" --arg kb "$kb" \
        --arg failed "${failed:-0}" --arg note "$(buck2_fails "$name" "$PATTERN")" \
        '"| \($name | .[0:44] | . + " " * (44 - length)) | \($pattern | .[0:30] | . + " " * (30 - length)) | \(.stats.build_files | tostring | " " * (11 - length) + .) | \(.stats.bzl_files | tostring | " " * (10 - length) + .) | \(.stats.fallbacks | tostring | " " * (9 - length) + .) | \($failed | " " * (6 - length) + .) | \(.targets | length | tostring | " " * (7 - length) + .) | \($secs | " " * (7 - length) + .) | \(($kb | tonumber / 1024 | floor) | tostring | " " * (6 - length) + .) | \($note) |"' \
        "$W/graph$n.json"
}
for repo in "${REPOS[@]}"; do
    name=$(basename "$repo")
    name=${name%.tar.xz}
    if [ -f "$repo" ]; then
        mkdir "$W/unpacked$n"
        tar -xJf "$repo" -C "$W/unpacked$n"
        dir="$W/unpacked$n/tree"
    elif [ -d "$repo" ]; then
        dir=$(cd "$repo" && pwd)
    else
        echo "bench/corpus.sh: $repo is neither a directory nor a fixture tarball" >&2
        exit 1
    fi
    if [ -f "$dir/.buckconfig" ]; then
        row "$name" "$dir"
        continue
    fi
    # A collection: the outermost directories holding a .buckconfig.
    projects=$(cd "$dir" && find . -name .buckconfig -printf '%h\n' | sed 's#^\./##' | LC_ALL=C sort)
    [ -n "$projects" ] || { echo "bench/corpus.sh: $repo has no .buckconfig" >&2; exit 1; }
    outer=""
    while IFS= read -r p; do
        nested=0
        for o in $outer; do [[ $p == "$o"/* ]] && nested=1; done
        [ $nested = 1 ] && continue
        outer="$outer $p"
        row "$name/$p" "$dir/$p"
    done <<<"$projects"
done
