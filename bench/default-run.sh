#!/usr/bin/env bash
# The default run's wall time (`connlimit -q`, as `go run .` runs it after
# the build): the median of ROUNDS runs, with its verdict, so a faster run
# that shows something else is seen. BASE=REV builds that revision too, in
# a temporary worktree, and alternates the two: a ratio measured in one run.
# Usage: bench/default-run.sh   (ROUNDS=5; BASE= for none)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
tmp=$(mktemp -d)
cleanup() { [ -n "${BASE:-}" ] && git worktree remove --force "$tmp/base" >/dev/null 2>&1; rm -rf "$tmp"; }
trap cleanup EXIT
go build -o "$tmp/now" .
bins=(now)
if [ -n "${BASE:-}" ]; then
  git worktree add -q --detach "$tmp/base" "$BASE"
  (cd "$tmp/base" && go build -o "$tmp/base.bin" .)
  mv "$tmp/base.bin" "$tmp/base-bin"
  bins+=(base-bin)
fi
for r in $(seq "$ROUNDS"); do
  for b in "${bins[@]}"; do
    start=$(date +%s.%N)
    "$tmp/$b" -q >"$tmp/out" 2>&1
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN {print b - a}' >>"$tmp/$b.times"
    grep -E "^first limit|^  (served|queued) " "$tmp/out" | tr -s ' ' | paste -sd';' >>"$tmp/$b.verdicts"
  done
done
median() { sort -n "$1" | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
for b in "${bins[@]}"; do
  printf '%-9s median %.3f s of %d (%s)\n' "$b" "$(median "$tmp/$b.times")" "$ROUNDS" "$(paste -sd' ' "$tmp/$b.times")"
  sort "$tmp/$b.verdicts" | uniq -c | sed 's/^/          /'
done
if [ -n "${BASE:-}" ]; then
  awk -v a="$(median "$tmp/now.times")" -v b="$(median "$tmp/base-bin.times")" 'BEGIN {printf "now/base: %.2fx\n", a/b}'
fi
