#!/usr/bin/env bash
# How antares' built-in evaluator does on real Buck2 repositories.
#
# usage: bench/corpus.sh [--bin ANTARES] [--pattern PATTERN] REPO…
#
# REPO is a checkout of a Buck2 project, or a corpus fixture
# (buck-integration/tests/fixtures/corpus/NAME.tar.xz: a build-file
# skeleton, unpacked into a temporary directory). For each, in a fresh
# workspace (no graph cache), `antares graph PATTERN --json` (default
# `//...`, every target of the root cell) is timed with /usr/bin/time, and
# a row is printed: build files and .bzl files evaluated, fallbacks (build
# files that could not be evaluated and were scanned for labels instead),
# targets, wall seconds, peak RSS. The target for fallbacks is 0.
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

printf '| %-22s | %-30s | %11s | %10s | %9s | %7s | %7s | %6s |\n' \
    repository pattern "build files" ".bzl files" fallbacks targets seconds "RSS MB"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..24})" "$(printf -- '-%.0s' {1..32})" \
    "-------------" "------------" "-----------" "---------" "---------" "--------"
n=0
for repo in "${REPOS[@]}"; do
    n=$((n + 1))
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
    ws="$W/ws$n"
    "$BIN" init --source "dir:$dir" "$ws" >/dev/null 2>&1
    if ! /usr/bin/time -f '%e %M' -o "$W/time$n" "$BIN" -C "$ws" graph "$PATTERN" --json \
        >"$W/graph$n.json" 2>"$W/err$n"; then
        echo "bench/corpus.sh: antares graph $PATTERN failed on $repo:" >&2
        tail -n 5 "$W/err$n" >&2
        exit 1
    fi
    read -r secs kb < <(tail -n 1 "$W/time$n")
    jq -r --arg name "$name" --arg pattern "$PATTERN" --arg secs "$secs" --arg kb "$kb" \
        '"| \($name | .[0:22] | . + " " * (22 - length)) | \($pattern | .[0:30] | . + " " * (30 - length)) | \(.stats.build_files | tostring | " " * (11 - length) + .) | \(.stats.bzl_files | tostring | " " * (10 - length) + .) | \(.stats.fallbacks | tostring | " " * (9 - length) + .) | \(.targets | length | tostring | " " * (7 - length) + .) | \($secs | " " * (7 - length) + .) | \(($kb | tonumber / 1024 | floor) | tostring | " " * (6 - length) + .) |"' \
        "$W/graph$n.json"
done
