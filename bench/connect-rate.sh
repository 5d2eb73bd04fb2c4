#!/usr/bin/env bash
# Connect rate of connlimit against the C yardstick (../shared/bench), in the
# same run on the same machine, and the generator's RSS per held connection.
# A single 10,000-connection ramp lasts a quarter of a second and varies by
# ±20% on a shared machine, so ROUNDS rounds alternate the C client and
# connlimit and the medians are compared. Loopback only.
# Usage: bench/connect-rate.sh [connections]   (default 10000; ROUNDS=9)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
ROUNDS=${ROUNDS:-9}
yard=${YARDSTICK:-../shared/bench}
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

gcc -O2 -o "$tmp/connserver" "$yard/connserver.c"
gcc -O2 -o "$tmp/connstorm" "$yard/connstorm.c"
go build -o "$tmp/connlimit" .
rate_of() { python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["connect_rate_per_s"]))' "$1"; }

port=$((20000 + RANDOM % 10000))
"$tmp/connserver" -p "$port" -t 600 -q & pids+=($!)
sleep 0.3
for r in $(seq "$ROUNDS"); do
  # connstorm against connserver; connlimit's generator alone against the
  # same connserver; connlimit with its built-in target (one generator
  # process, as the issue's target says).
  "$tmp/connstorm" -n "$N" -p "$port" -c 256 -L -q | sed -n 's/.*rate=\([0-9.]*\).*/\1/p' | head -1 >>"$tmp/c"
  "$tmp/connlimit" run --target "127.0.0.1:$port" --probe connect --connections "$N" --hold 0s -q --json "$tmp/g.json" >/dev/null
  rate_of "$tmp/g.json" >>"$tmp/g"
  "$tmp/connlimit" run --connections "$N" --target-nofile 19000 --hold 0s --greeting-timeout 2s -q --json "$tmp/s.json" >/dev/null
  rate_of "$tmp/s.json" >>"$tmp/s"
done
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()

# RSS of the generator while it holds N and N/10 connections.
rss_at() {
  "$tmp/connlimit" run --connections "$1" --target-nofile 19000 --hold 4s -q >/dev/null & local pid=$!
  pids+=("$pid")
  sleep 2.5
  awk '/VmRSS/ {print $2}' "/proc/$pid/status"
  wait "$pid"; pids=()
}
# One sample moves by a few hundred KiB with the runtime's timing: three
# alternating pairs, and the median of their differences.
small=$((N / 10))
for _ in 1 2 3; do
  echo "$(rss_at "$small") $(rss_at "$N")" >>"$tmp/rss"
done

python3 - "$tmp" "$small" "$N" <<'PY'
import statistics, sys
d = sys.argv[1]
ns, nb = map(float, sys.argv[2:])
pairs = [tuple(map(float, l.split())) for l in open(f"{d}/rss")]
rs, rb = statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)
per = sorted((b - s) * 1024 / (nb - ns) for s, b in pairs)
col = {k: [float(x) for x in open(f"{d}/{k}").read().split()] for k in "cgs"}
med = {k: statistics.median(v) for k, v in col.items()}
rounds = len(col["c"])
print(f"{rounds} rounds of {nb:.0f} connections, medians (min-max):")
for k, name in (("c", "connstorm (C, epoll) vs connserver"), ("g", "connlimit generator vs connserver"),
                ("s", "connlimit run vs built-in target")):
    print(f"  {name:36s} {med[k]:8.0f} conn/s  ({min(col[k]):.0f}-{max(col[k]):.0f})")
per_round = sorted(s / c for s, c in zip(col["s"], col["c"]))
print(f"ratio connlimit/connstorm: {med['s']/med['c']:.2f}x of the medians; "
      f"per round {per_round[0]:.2f}-{per_round[-1]:.2f}, median {statistics.median(per_round):.2f}x")
print(f"the generator alone: {med['g']/med['c']:.2f}x")
print(f"generator RSS: {rs:.0f} KiB holding {ns:.0f}, {rb:.0f} KiB holding {nb:.0f} (medians) "
      f"=> {statistics.median(per):.0f} bytes per held connection (median of {len(per)} pairs, {per[0]:.0f}-{per[-1]:.0f})")
PY
