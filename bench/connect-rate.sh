#!/usr/bin/env bash
# Connect rate of connlimit against the C yardstick (../shared/bench), in the
# same run on the same machine, and the generator's RSS per held connection.
# Loopback only. Usage: bench/connect-rate.sh [connections]   (default 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
yard=${YARDSTICK:-../shared/bench}
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

gcc -O2 -o "$tmp/connserver" "$yard/connserver.c"
gcc -O2 -o "$tmp/connstorm" "$yard/connstorm.c"
go build -o "$tmp/connlimit" .

port=$((20000 + RANDOM % 10000))
"$tmp/connserver" -p "$port" -t 60 -q & pids+=($!)
sleep 0.3
storm=$("$tmp/connstorm" -n "$N" -p "$port" -c 256 -L -q)
c_rate=$(sed -n 's/.*rate=\([0-9.]*\).*/\1/p' <<<"$storm" | head -1)
# The same C server for connlimit's generator: the generator alone, apples to apples.
"$tmp/connlimit" run --target "127.0.0.1:$port" --probe connect --connections "$N" --hold 0s -q --json "$tmp/c.json" >/dev/null
gc_rate=$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["connect_rate_per_s"]))' "$tmp/c.json")
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()

"$tmp/connlimit" run --connections "$N" --target-nofile 19000 --hold 0s --greeting-timeout 2s -q --json "$tmp/s.json" >/dev/null
go_rate=$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["connect_rate_per_s"]))' "$tmp/s.json")

# RSS of the generator while it holds N and N/10 connections.
rss_at() {
  "$tmp/connlimit" run --connections "$1" --target-nofile 19000 --hold 4s -q >/dev/null & local pid=$!
  pids+=("$pid")
  sleep 2.5
  awk '/VmRSS/ {print $2}' "/proc/$pid/status"
  wait "$pid"; pids=()
}
small=$((N / 10))
rss_small=$(rss_at "$small")
rss_big=$(rss_at "$N")

echo "connstorm (C, epoll) vs connserver: ${c_rate} conn/s   ($storm)"
echo "connlimit run vs connserver:       ${gc_rate} conn/s   (the generator alone: ratio $(python3 -c "print(f'{$gc_rate/$c_rate:.2f}')")x)"
echo "connlimit run vs built-in target:  ${go_rate} conn/s"
python3 - "$c_rate" "$go_rate" "$rss_small" "$rss_big" "$small" "$N" <<'PY'
import sys
c, g, rs, rb, ns, nb = map(float, sys.argv[1:])
print(f"ratio connlimit/connstorm: {g/c:.2f}x")
print(f"generator RSS: {rs:.0f} KiB holding {ns:.0f}, {rb:.0f} KiB holding {nb:.0f} "
      f"=> {(rb-rs)*1024/(nb-ns):.0f} bytes per held connection")
PY
