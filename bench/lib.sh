# Shared helpers for the benchmark scripts: their common flags, timing with
# peak RSS, medians, table rows.
# Source it; it defines: parse_bench_args, measure, median_of, run_n, row, header.

# parse_bench_args "$@": the flags every benchmark takes. Sets FILES, DIRS,
# RUNS, WORKDIR (defaults 50,000 files, 2,000 dirs, 3 runs, a temp dir);
# -h/--help prints the calling script's header comment.
parse_bench_args() {
    FILES=50000 DIRS=2000 RUNS=3 WORKDIR=""
    while [ $# -gt 0 ]; do
        case "$1" in
            --files) FILES=$2; shift 2 ;;
            --dirs) DIRS=$2; shift 2 ;;
            --runs) RUNS=$2; shift 2 ;;
            --workdir) WORKDIR=$2; shift 2 ;;
            -h|--help) sed -n '2,/^[^#]/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
            *) echo "bench/$(basename "$0"): unknown argument $1 (see --help)" >&2; exit 1 ;;
        esac
    done
}

# measure cmd…: runs cmd under /usr/bin/time, appends "secs rss_kb" to $TIMES_FILE.
# A failing command aborts the benchmark: a fast failure is not a result.
measure() {
    local tf
    tf=$(mktemp)
    if ! /usr/bin/time -f '%e %M' -o "$tf" "$@" >/dev/null 2>"$tf.err"; then
        echo "benchmark command failed: $*" >&2
        cat "$tf.err" >&2
        rm -f "$tf" "$tf.err"
        exit 1
    fi
    tail -n 1 "$tf" >> "$TIMES_FILE"
    rm -f "$tf" "$tf.err"
}

# median_of FILE COLUMN: the median of a column of numbers.
median_of() {
    sort -n -k"$2" "$1" | awk -v c="$2" '{v[NR]=$c} END {if (NR==0) {print "nan"; exit} if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'
}

# run_n LABEL N setup_fn cmd_fn: runs setup then the timed command N times;
# sets RESULT_SECS and RESULT_MB (medians).
run_n() {
    local label=$1 n=$2 setup=$3 cmd=$4 i
    TIMES_FILE=$(mktemp)
    for ((i = 0; i < n; i++)); do
        $setup "$i"
        measure bash -c "$cmd"
    done
    RESULT_SECS=$(median_of "$TIMES_FILE" 1)
    RESULT_MB=$(median_of "$TIMES_FILE" 2 | awk '{printf "%.0f", $1/1024}')
    rm -f "$TIMES_FILE"
    printf '  %-44s %8.3f s %6s MB\n' "$label" "$RESULT_SECS" "$RESULT_MB" >&2
}

header() {
    printf '\n| %-36s | %9s | %7s | %-30s | %9s | %7s | %6s |\n' "operation" "antares s" "RSS MB" "baseline" "base s" "RSS MB" "ratio"
    printf '|%s|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..38})" "-----------" "---------" "$(printf -- '-%.0s' {1..32})" "-----------" "---------" "--------"
}

# row OP A_SECS A_MB BASE_LABEL B_SECS B_MB
row() {
    local ratio
    ratio=$(awk -v a="$2" -v b="$5" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }')
    printf '| %-36s | %9.3f | %7s | %-30s | %9.3f | %7s | %6s |\n' "$1" "$2" "$3" "$4" "$5" "$6" "$ratio"
}
