#!/usr/bin/env bash
# One million concurrent connections: the C yardstick (100 connserver +
# 100 connstorm, 10,000 each, every pair on its own port and source
# address) and then `connlimit run --connections 1000000` with its
# defaults (probe accept at this scale, 16 generator processes connecting
# at once), with every generator at once, with --probe greeting and with
# --probe connect, in the same run. A million ramp varies by a few seconds
# from one run to the next here, so ROUNDS (default 3) alternates them and
# the medians are compared. Loopback only; needs ~10 GiB of free memory and
# a hard RLIMIT_NOFILE of at least 10,016.
# MODES: C, default, all (--ramp-procs all: every generator process
# connects at once), greeting, connect, accept (--probe ...).
# Usage: [ROUNDS=3] [MODES="C default all greeting connect"] [GAP=60] bench/million.sh
set -euo pipefail
cd "$(dirname "$0")/.."
yard=${YARDSTICK:-../shared/bench}
rounds=${ROUNDS:-3}
modes=${MODES:-C default all greeting connect}
gap=${GAP:-60}
tmp=$(mktemp -d)
servers=()
observer=
cleanup() { for p in "${servers[@]}" $observer; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

gcc -O2 -o "$tmp/connserver" "$yard/connserver.c"
gcc -O2 -o "$tmp/connstorm" "$yard/connstorm.c"
go build -o "$tmp/connlimit" .

# The C pairs hold for 20 s after their own ramp: longer than the slowest
# pair's ramp, so that all million are held at once, as connlimit's are.
yardstick() {
  local base=$((30000 + RANDOM % 20000)) storms=()
  for i in $(seq 1 100); do "$tmp/connserver" -p $((base + i)) -t 120 -q >/dev/null 2>&1 & servers+=($!); done
  sleep 1
  for i in $(seq 1 100); do
    "$tmp/connstorm" -n 10000 -p $((base + i)) -s "127.0.1.$i" -c 256 -H 20 -L -q >"$tmp/storm.$i" & storms+=($!)
  done
  wait "${storms[@]}" || true
  python3 - "$tmp" "$round" <<'PY'
import glob, re, sys
est, el = 0, []
for f in glob.glob(sys.argv[1] + "/storm.*"):
    m = re.search(r"established=(\d+).*elapsed=([\d.]+)s", open(f).read())
    if m:
        est += int(m.group(1)); el.append(float(m.group(2)))
print(f"C, 100 connserver + 100 connstorm: {est} established, ramp {max(el):.1f} s (slowest connstorm)")
with open(sys.argv[1] + "/ramps", "a") as out:
    out.write(f"C {max(el)} {sys.argv[2]}\n")
PY
  for p in "${servers[@]}"; do kill "$p" 2>/dev/null || true; done
  wait "${servers[@]}" 2>/dev/null || true
  servers=()
  rm -f "$tmp"/storm.*
}

# The default run (probe accept: silent targets, and the kernel says which
# connections they accepted), the same with --probe greeting (every
# connection reads the target's answer: a data segment, its ACK and a read
# more) and with --probe connect (served once connected).
connlimit() {
  local mode=$1 flags=()
  case $mode in
  default) ;;
  all) flags=(--ramp-procs all) ;;
  *) flags=(--probe "$mode") ;;
  esac
  # The default run writes every report (CSV, timeline, JSON), so that its
  # whole wall time is what goal 2 of #23 measures: start-up, ramp, hold,
  # teardown and reports.
  [ "$mode" = default ] && flags+=(--csv "$tmp/m.csv" --timeline "$tmp/m.timeline")
  /usr/bin/time -o "$tmp/wall" -f "%e" \
    "$tmp/connlimit" run --connections 1000000 "${flags[@]}" --hold 2s -q --json "$tmp/m.json" >/dev/null
  rm -f "$tmp/m.csv" "$tmp/m.timeline"
  python3 - "$tmp" "$mode" "$round" <<'PY'
import json, sys
d = json.load(open(sys.argv[1] + "/m.json"))
wall = float(open(sys.argv[1] + "/wall").read().split()[-1])
acc = sum(t["accepted"] for t in d["targets"])
ramp = d["generator"]["connect_span_s"]
at_once = d["generator"].get("ramp_procs", 0)
print(f"connlimit run --connections 1000000 ({sys.argv[2]}, probe {d['probe']}): {d['outcomes']['served']} served, {d['outcomes']['queued']} queued, "
      f"{acc} accepted by the targets, first limit {d['first_limit']}, "
      f"{len(d['generators'])} generator ({at_once or 'all'} connecting at once) and {len(d['targets'])} target processes, "
      f"ramp {ramp:.1f} s, run {d['duration_s']:.1f} s; whole command {wall:.1f} s = ramp + {wall - ramp:.1f} s")
with open(sys.argv[1] + "/ramps", "a") as out:
    out.write(f"{sys.argv[2]} {ramp} {sys.argv[3]}\n")
with open(sys.argv[1] + "/walls", "a") as out:
    out.write(f"{sys.argv[2]} {wall - ramp}\n")
PY
}

# A run goes faster right after another million-connection run than after
# a quiet minute (here: connlimit 21.5-22.8 s after itself, 24.8-26.8 s
# after C or after a minute's rest; C 17.1-17.7 s after connlimit, 20.4-21.2
# s after a rest): on this VM memory freed a few seconds earlier is still
# cheap to use again. So every run starts after GAP seconds of rest (default
# 60), and every other round runs the modes in reverse order.
# The machine's busy CPU time over a whole run (start-up, ramp, hold and
# teardown; /proc/stat, so both ends and the kernel's share are counted
# alike for C and connlimit): for a million connections, CPU seconds are
# microseconds per connection.
busy() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
hz=$(getconf CLK_TCK)

# One outside observer for both: the machine's count of TCP sockets
# (/proc/net/sockstat, both ends of every connection), every 50 ms; the
# observed ramp is from 5,000 connections to the millionth. It checks that
# C's "slowest connstorm" and connlimit's connect span measure the same.
observe() {
  python3 - "$tmp/obs" <<'PY' &
import sys, time
with open(sys.argv[1], "w") as out:
    while True:
        for line in open("/proc/net/sockstat"):
            if line.startswith("TCP:"):
                out.write(f"{time.monotonic():.3f} {line.split()[2]}\n")
        out.flush()
        time.sleep(0.05)
PY
  observer=$!
}
observed() {
  kill "$observer"
  wait "$observer" 2>/dev/null || true
  observer=
  python3 - "$tmp" "$1" "$round" <<'PY'
import sys
rows = [tuple(map(float, l.split())) for l in open(sys.argv[1] + "/obs") if len(l.split()) == 2]
base = rows[0][1]
try:
    a = next(t for t, n in rows if n >= base + 2 * 5000)
    b = next(t for t, n in rows if n >= base + 2 * 1000000)
except StopIteration:
    sys.exit(0)  # never got there: the run's own line says why
print(f"  observed: 5,000 to 1,000,000 connections in {b - a:.1f} s (/proc/net/sockstat)")
with open(sys.argv[1] + "/observed", "a") as out:
    out.write(f"{sys.argv[2]} {b - a} {sys.argv[3]}\n")
PY
}

for round in $(seq 1 "$rounds"); do
  echo "round $round"
  order=$modes
  [ $((round % 2)) = 0 ] && order=$(echo $modes | tr ' ' '\n' | tac | tr '\n' ' ')
  for m in $order; do
    sleep "$gap"
    c0=$(busy)
    observe
    if [ "$m" = C ]; then yardstick; else connlimit "$m"; fi
    observed "$m"
    echo "$m $(( ($(busy) - c0) * 100 / hz ))" >>"$tmp/cpu" # centiseconds
  done
done
python3 - "$tmp" "$rounds" <<'PY'
import statistics, sys
ramps, byround, cpu = {}, {}, {}
for line in open(sys.argv[1] + "/ramps"):
    k, v, r = line.split()
    ramps.setdefault(k, []).append(float(v))
    byround.setdefault(r, {})[k] = float(v)
for line in open(sys.argv[1] + "/cpu"):
    k, v = line.split()
    cpu.setdefault(k, []).append(int(v) / 100)
seen = {}
try:
    for line in open(sys.argv[1] + "/observed"):
        k, v, _ = line.split()
        seen.setdefault(k, []).append(float(v))
except FileNotFoundError:
    pass
c = statistics.median(ramps["C"]) if "C" in ramps else float("nan")
print(f"{sys.argv[2]} rounds, median ramp (min-max), and the machine's busy CPU over the whole run:")
for k, name in (("C", "C yardstick"), ("default", "connlimit run (default)"), ("all", "connlimit run --ramp-procs all"), ("greeting", "connlimit run --probe greeting"),
                ("connect", "connlimit run --probe connect"), ("accept", "connlimit run --probe accept")):
    if k not in ramps:
        continue
    v = ramps[k]
    m = statistics.median(v)
    ratio = f"  {m / c:.2f}x C" if c == c else ""  # no C in MODES: no ratio
    # Each round's own ratio: the machine's state drifts between rounds
    # (C alone ranged 22-30 s in one run of this script), less within one.
    pairs = sorted(r[k] / r["C"] for r in byround.values() if k != "C" and k in r and "C" in r)
    paired = f", per round {pairs[0]:.2f}-{pairs[-1]:.2f}, median {statistics.median(pairs):.2f}x" if pairs else ""
    obs = f"; observed {statistics.median(seen[k]):.1f} s" if k in seen else ""
    print(f"  {name:32s} {m:5.1f} s  ({min(v):.1f}-{max(v):.1f}){ratio}{paired}; CPU {statistics.median(cpu[k]):.1f} s{obs}")
over = {}
try:
    for line in open(sys.argv[1] + "/walls"):
        k, v = line.split()
        over.setdefault(k, []).append(float(v))
except FileNotFoundError:
    pass
for k, v in over.items():
    what = " (with --csv --json --timeline)" if k == "default" else ""
    print(f"  whole command, {k}{what}: ramp + {statistics.median(v):.1f} s (median; {min(v):.1f}-{max(v):.1f}); goal ramp + 10 s")
PY
