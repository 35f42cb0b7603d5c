#!/usr/bin/env bash
# Makes a corpus fixture (a Buck2 repository's build-file skeleton) from a
# checkout:
#
#   scripts/make-corpus-fixture.sh [--stub DIR]… CHECKOUT OUT.tar.xz
#
# Build files, PACKAGE files, .bzl/.bxl files, configs (.buckconfig*,
# .buckconfig.d/*, *.bcfg, *.buckconfig) and .buckroot keep their content;
# every other file becomes an empty stand-in of the same name, so globs
# and package walks see the real listings; symlinks stay symlinks. The
# tarball holds `tree/` (the skeleton) and `sizes.tsv` (`SIZE<TAB>PATH` of
# every regular file in the checkout), which the precision tests weigh
# placed files with. `.git` and `buck-out` are left out. `--stub DIR`
# (relative to CHECKOUT) empties the .bzl files below DIR too: a vendored
# prelude, which antares never evaluates, would triple the tarball.
set -euo pipefail

stub=()
while [[ ${1:-} == --stub ]]; do
  stub+=("${2:?--stub needs a directory}")
  shift 2
done
[[ $# -eq 2 ]] || { echo "usage: $0 [--stub DIR]… CHECKOUT OUT.tar.xz" >&2; exit 2; }
[[ -d $1 ]] || { echo "$0: $1 is not a directory" >&2; exit 1; }
src=$(cd "$1" && pwd)
out=$(realpath -m "$2")
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir "$stage/tree"

keep='(^|/)(BUCK|BUCK\.v2|TARGETS|TARGETS\.v2|PACKAGE|BUILD|\.buckroot|\.buckconfig[^/]*)$|\.(bzl|bxl|bcfg|buckconfig)$|(^|/)\.buckconfig\.d/'
# The largest file whose content is kept (a generated build file beyond it
# would bloat the fixture; none of the corpus has one).
max_kept=$((512 * 1024))

cd "$src"
prune=(-path ./.git -o -path ./buck-out)
for d in "${stub[@]}"; do
  [[ -d $d ]] || { echo "$0: --stub $d: no such directory in $src" >&2; exit 1; }
done
find . -mindepth 1 \( "${prune[@]}" \) -prune -o -type d -printf '%P\0' | (cd "$stage/tree" && xargs -0r mkdir -p)
find . \( "${prune[@]}" \) -prune -o -type f -printf '%s\t%P\n' | LC_ALL=C sort -t$'\t' -k2 >"$stage/sizes.tsv"
stubbed() {
  local d
  for d in "${stub[@]}"; do [[ $1 == "$d"/* ]] && return 0; done
  return 1
}
: >"$stage/kept"
: >"$stage/empty"
while IFS=$'\t' read -r size path; do
  if [[ $path =~ $keep && $size -le $max_kept ]] && { ! stubbed "$path" || [[ ! $path =~ \.(bzl|bxl)$ ]]; }; then
    printf '%s\0' "$path" >>"$stage/kept"
  else
    printf '%s\0' "$path" >>"$stage/empty"
  fi
done <"$stage/sizes.tsv"
tar --null -T "$stage/kept" -cf - | tar -C "$stage/tree" -xf -
(cd "$stage/tree" && xargs -0r touch <"$stage/empty")
find . \( "${prune[@]}" \) -prune -o -type f -perm -u+x -printf '%P\0' | (cd "$stage/tree" && xargs -0r chmod +x)
find . \( "${prune[@]}" \) -prune -o -type l -printf '%P\0' | while IFS= read -r -d '' link; do
  ln -s "$(readlink "$link")" "$stage/tree/$link"
done

mkdir -p "$(dirname "$out")"
tmp_out="$out.tmp.$$"
tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf - tree sizes.tsv | xz -9e -T1 >"$tmp_out"
mv "$tmp_out" "$out"
echo "$out: $(wc -l <"$stage/sizes.tsv") files, $(stat -c %s "$out") bytes" >&2
