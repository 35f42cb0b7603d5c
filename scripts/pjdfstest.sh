#!/usr/bin/env bash
# POSIX conformance (pjdfstest) of the antares mount, side by side with a
# plain local directory and fuse-overlayfs, on the same machine.
#
# usage: scripts/pjdfstest.sh [--keep] [--only antares|antares-git|native|fuse-overlayfs]
#
# `antares` mounts a plain directory as the lower (opens go to the daemon);
# `antares-git` a git commit (immutable: opens are skipped, see
# overlay/src/fuse/fs.rs).
# Needs root. Installs pjdfstest with `cargo install pjdfstest` if it is not
# on PATH, and creates the user `tests` and the group `tests` if missing
# (pjdfstest switches to tests/nobody and tests/nogroup). Each run's full
# output goes to $WORK/<target>.log; the summary lines and the failed tests
# are printed at the end.
set -euo pipefail
KEEP=0 ONLY=""
while [ $# -gt 0 ]; do
    case "$1" in
        --keep) KEEP=1; shift ;;
        --only) ONLY=$2; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "scripts/pjdfstest.sh: unknown argument $1" >&2; exit 1 ;;
    esac
done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "scripts/pjdfstest.sh: needs root" >&2; exit 1; }
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v pjdfstest >/dev/null; then
    echo "installing pjdfstest…" >&2
    cargo install --locked pjdfstest >&2 || cargo install pjdfstest >&2
fi
getent group tests >/dev/null || groupadd tests
getent passwd tests >/dev/null || useradd -M -N -g tests -s /usr/sbin/nologin tests
getent passwd nobody >/dev/null || { echo "user nobody is missing" >&2; exit 1; }
getent group nogroup >/dev/null || groupadd nogroup

echo "building the mount helper…" >&2
HELPER=$(cd "$ROOT" && cargo test --release -p antares-overlay --test fuse_mount --no-run 2>&1 \
    | sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -1)
[ -x "$HELPER" ] || { echo "could not build the mount helper" >&2; exit 1; }

WORK=$(mktemp -d /var/tmp/antares-pjdfstest.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
    set +e
    for m in "$WORK"/{antares,ag}/mnt/buck-out "$WORK"/{antares,ag}/mnt "$WORK/fo/mnt"; do
        mountpoint -q "$m" 2>/dev/null && { umount "$m" 2>/dev/null || umount -l "$m"; }
    done
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    [ "$KEEP" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT

# run NAME DIR: pjdfstest in a fresh directory DIR (on the file system under test).
run() {
    local name=$1 dir=$2
    mkdir -p "$dir"
    chmod 777 "$dir"
    echo "pjdfstest on $name ($dir)…" >&2
    (cd "$dir" && pjdfstest -p "$dir") >"$WORK/$name.log" 2>&1 || true
}

want() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]; }

if want native; then
    run native "$WORK/native/t"
fi
# mount_antares DIR LOWER_KIND: the helper's mount at $WORK/DIR/mnt. (DIR
# is short: unix socket paths must fit in 108 bytes.)
mount_antares() {
    local dir=$WORK/$1 kind=$2
    mkdir -p "$dir"/{lower,upper,cache}
    if [ "$kind" = git ]; then
        echo "an immutable lower" >"$dir/lower/README"
        git -C "$dir/lower" init -q
        git -C "$dir/lower" add -A
        git -C "$dir/lower" -c user.name=t -c user.email=t@t commit -qm lower
    fi
    ANTARES_TEST_CHILD_LOWER=$kind ANTARES_TEST_CHILD_MOUNT="$dir" "$HELPER" \
        --exact child_mount_process --ignored >"$dir-daemon.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do [ -e "$dir/ready" ] && break; sleep 0.1; done
}
if want antares; then
    mount_antares antares dir
    run antares "$WORK/antares/mnt/t"
fi
if want antares-git; then
    mount_antares ag git
    run antares-git "$WORK/ag/mnt/t"
fi
if want fuse-overlayfs && ! command -v fuse-overlayfs >/dev/null; then
    echo "fuse-overlayfs: SKIPPED (not installed; apt-get install fuse-overlayfs)" >&2
elif want fuse-overlayfs; then
    mkdir -p "$WORK/fo"/{lower,upper,work,mnt}
    fuse-overlayfs -o "lowerdir=$WORK/fo/lower,upperdir=$WORK/fo/upper,workdir=$WORK/fo/work,allow_other" "$WORK/fo/mnt"
    run fuse-overlayfs "$WORK/fo/mnt/t"
fi

# ran NAME: whether NAME was run (a skipped one has no log).
ran() { want "$1" && [ -e "$WORK/$1.log" ]; }
echo
for name in native antares antares-git fuse-overlayfs; do
    ran "$name" || continue
    log="$WORK/$name.log"
    printf '%-15s %s\n' "$name" "$(grep -E '^Summary:' "$log" || echo 'no summary (see log)')"
done
for name in native antares antares-git fuse-overlayfs; do
    ran "$name" || continue
    failed=$(grep -E '[[:space:]]FAILED$' "$WORK/$name.log" | awk '{print $1}' || true)
    [ -n "$failed" ] && { echo; echo "failed on $name:"; echo "$failed" | sed 's/^/  /'; }
done
if [ "$KEEP" = 1 ]; then echo "logs kept in $WORK"; fi
