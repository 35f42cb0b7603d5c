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
# placed files with. `.git` and `buck-out` are left out. `.json` and
# `.toml` files that a kept file `load()`s (buck2 reads them as a module,
# `value`) keep their content too. `--stub DIR` (relative to CHECKOUT)
# empties the .bzl files below DIR too: a vendored prelude, whose own
# loads antares never follows, would triple the tarball. The .bzl files
# below DIR that files outside it load keep their content: antares runs
# those one level deep.
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
# Build files named by a `[buildfile] name`/`name_v2` of any .buckconfig
# (buck2's own examples/bxl_tutorial uses `TARGETS.fixture`).
while IFS= read -r name; do
  [[ -n $name ]] && keep="$keep|(^|/)$(printf '%s' "$name" | sed 's/[][\\.*^$+?(){}|]/\\&/g')\$"
done < <(find . \( "${prune[@]}" \) -prune -o -type f -name '.buckconfig*' -print0 | xargs -0r awk '
  /^[ \t]*\[/ { s = ($0 ~ /^[ \t]*\[buildfile\]/) }
  s && /^[ \t]*name(_v2)?[ \t]*=/ { sub(/^[^=]*=/, ""); n = split($0, a, ","); for (i = 1; i <= n; i++) { gsub(/[ \t]/, "", a[i]); print a[i] } }' | sort -u)
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
# The files `load()`ed by the kept files: `:f`, `//pkg:f`, `//pkg/f`,
# `cell//pkg:f` and `@cell//pkg:f`, with cells from the root .buckconfig's
# `[cells]`/`[repositories]` (a cell it does not name is skipped).
declare -A cells=([@]=.) # `@`: no cell named (`//pkg:f`)
if [[ -f .buckconfig ]]; then
  while IFS='=' read -r name path; do
    cells[$name]=$path
  done < <(awk '/^\[/ { s = ($0 ~ /^\[(cells|repositories)\]/) } s && /=/ { gsub(/[ \t]/, ""); print }' .buckconfig)
fi
loaded_by() {
  local file=$1 id cell rest pkg name
  { grep -ozE 'load\(\s*"[^"]+"' "$file" || true; } | tr -d '\n' | tr '\0' '\n' | sed -E 's/^load\(\s*"//; s/"$//' | while IFS= read -r id; do
    if [[ $id == :* ]]; then
      printf '%s\n' "$(dirname "$file")/${id#:}"
      continue
    fi
    [[ $id == *//* ]] || continue
    cell=${id%%//*}
    cell=${cell#@}
    cell=${cell:-@}
    rest=${id#*//}
    [[ -n ${cells[$cell]+x} ]] || continue
    if [[ $rest == *:* ]]; then pkg=${rest%%:*} name=${rest#*:}; else pkg=$(dirname "$rest") name=$(basename "$rest"); fi
    printf '%s\n' "${cells[$cell]}/$pkg/$name"
  done | sed -E 's#(^|/)\./#\1#g; s#//+#/#g; s#^\./##'
}
: >"$stage/loaded"
while IFS= read -r -d '' path; do
  if [[ $path =~ \.(bzl|bxl)$ || $path =~ (^|/)(BUCK|BUCK\.v2|TARGETS|TARGETS\.v2|PACKAGE|BUILD)$ ]] && ! stubbed "$path"; then
    loaded_by "$path" >>"$stage/loaded"
  fi
done <"$stage/kept"
mv "$stage/empty" "$stage/empty.all"
: >"$stage/empty"
while IFS= read -r -d '' path; do
  if grep -qxF -- "$path" "$stage/loaded" && [[ $path =~ \.(bzl|json|toml)$ ]] \
    && (($(stat -c %s -- "$path") <= max_kept)); then
    printf '%s\0' "$path" >>"$stage/kept"
  else
    printf '%s\0' "$path" >>"$stage/empty"
  fi
done <"$stage/empty.all"
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
