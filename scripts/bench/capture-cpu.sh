#!/usr/bin/env bash
# The capture daemon's own CPU at a low write rate and idle (issue 19:
# "capture CPU <= 10 % of one core per 1,000 transactions/s"), on the
# wal_level = logical cluster of scripts/pg-logical-test.sh. At 50
# transactions/s the target allows 0.5 % of a core, so the daemon's fixed
# costs (heartbeats, schema reads, lag polls, timers) decide it.
#
#   scripts/bench/capture-cpu.sh
#
# What it does: creates database $DB (`pgbench -i -s 1`, pgbench_history
# given a key), starts `lethe daemon` with continuous capture
# (`flush_every = "5s"`, file:// storage, encryption off as in
# continuous.sh), waits for its base, then measures the daemon's CPU
# (utime+stime from /proc/<pid>/stat) over IDLE seconds with no writes and
# over each rate in RATES (`pgbench -n -c 2 -j 1 -R <rate> -T $SECONDS_PER`),
# and the RPO of that run's segments (manifest mtime - first commit time).
# Prints key = value lines (and appends them to $OUT when set).
#
# Environment: PGPORT (5499), LETHE (release build), IDLE (60),
# RATES ("50 200"), SECONDS_PER (60), OUT, KEEP (1 keeps the
# temp dir), PERF (1: `perf record -g` the daemon during the first rate,
# report in the temp dir).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/bench/wait-event.sh
. "$HERE/wait-event.sh"
REPO_ROOT=$(cd "$HERE/../.." && pwd)
export PGHOST=127.0.0.1 PGPORT=${PGPORT:-5499} PGUSER=postgres
DB=${DB:-lethe_bench_cpu}
IDLE=${IDLE:-60}
RATES=${RATES:-"50 200"}
SECONDS_PER=${SECONDS_PER:-60}
LETHE=${LETHE:-${CARGO_TARGET_DIR:-$HOME/.cache/lethe-target}/release/lethe}
PGBIN=/usr/lib/postgresql/15/bin
W=$(mktemp -d /tmp/lethe-cpu-bench.XXXXXX)
DPID=""

rec() { echo "$1 = $2"; if [[ -n ${OUT:-} ]]; then echo "$1 = $2" >> "$OUT"; fi; }
sql() { psql -XAtq -v ON_ERROR_STOP=1 -d "$DB" -c "$1"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$DPID/stat"; }
# For each segment whose first commit is in [t0, t1]: its manifest's mtime
# minus that commit's time (the longest any of its transactions waited
# to be in storage), as "p50 p99 max" in seconds.
rpo() {
  python3 - "$W/repo" "$1" "$2" <<'PY'
import json, os, re, sys, datetime as dt
repo, t0, t1 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
pat = re.compile(r"^[0-9A-F]{16}-[0-9A-F]{16}\.json$")
lat = []
for root, _, files in os.walk(os.path.join(repo, "changes")):
    for f in files:
        if pat.match(f):
            p = os.path.join(root, f)
            m = json.load(open(p))
            first = dt.datetime.fromisoformat(m["first_commit_at"].replace("Z", "+00:00")).timestamp()
            if t0 <= first <= t1:
                lat.append(os.stat(p).st_mtime - first)
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(round(p * (len(lat) - 1))))]
print(f"{q(0.5):.3f} {q(0.99):.3f} {lat[-1]:.3f} ({len(lat)} segments)" if lat else "no segments")
PY
}
cleanup() {
  if [[ -n $DPID ]] && kill -0 "$DPID" 2>/dev/null; then
    kill -TERM "$DPID"; wait "$DPID" || true
  fi
  "$LETHE" --config "$W/cont.toml" continuous disable >/dev/null 2>&1 || true
  psql -XAtq -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
  [[ ${KEEP:-0} == 1 ]] || rm -rf "$W"
}
trap cleanup EXIT

psql -XAtq -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
"$PGBIN/pgbench" -q -i -s 1 "$DB" >/dev/null 2>&1
sql "ALTER TABLE pgbench_history ADD COLUMN id bigserial PRIMARY KEY"

cat > "$W/cont.toml" <<CONF
[source]
url = "postgres://postgres@127.0.0.1:$PGPORT/$DB"

[storage]
url = "file://$W/repo"

[encryption]
disabled = true

[erasure]
path = "$W/erasure"

[api]
listen = "unix:$W/api.sock"

[log]
format = "json"
level = "info"

[continuous]
enabled = true
flush_every = "5s"
slot = "$DB"
CONF

"$LETHE" --config "$W/cont.toml" daemon </dev/null >/dev/null 2>>"$W/daemon.log" &
DPID=$!
wait_event "$W/daemon.log" continuous.base_completed 1 120 "$DPID"
sleep 10
HZ=$(getconf CLK_TCK)
rec lethe "$("$LETHE" --version 2>/dev/null | head -1)"
rec started "$(date -u +%FT%TZ)"

c0=$(cpu_ticks); t0=$(date +%s.%N)
sleep "$IDLE"
c1=$(cpu_ticks); t1=$(date +%s.%N)
rec idle_cpu_pct_of_core "$(echo "scale=3; 100 * ($c1 - $c0) / $HZ / ($t1 - $t0)" | bc)"

first=1
for rate in $RATES; do
  if [[ ${PERF:-0} == 1 && $first == 1 ]]; then
    perf record -g -o "$W/perf.data" -p "$DPID" -- sleep "$SECONDS_PER" >/dev/null 2>&1 &
    PERFPID=$!
  fi
  c0=$(cpu_ticks); t0=$(date +%s.%N)
  "$PGBIN/pgbench" -n -c 2 -j 1 -R "$rate" -T "$SECONDS_PER" "$DB" > "$W/pgbench-$rate.txt" 2>&1
  c1=$(cpu_ticks); t1=$(date +%s.%N)
  tps=$(grep -oE 'tps = [0-9.]+' "$W/pgbench-$rate.txt" | head -1 | cut -d' ' -f3)
  pct=$(echo "scale=3; 100 * ($c1 - $c0) / $HZ / ($t1 - $t0)" | bc)
  rec "rate_${rate}_tps" "$tps"
  rec "rate_${rate}_cpu_pct_of_core" "$pct"
  rec "rate_${rate}_cpu_pct_per_1000_tps" "$(echo "scale=2; $pct * 1000 / $tps" | bc)"
  sleep 7  # the last segment of the run is stored
  rec "rate_${rate}_rpo_s_p50_p99_max" "$(rpo "$t0" "$t1")"
  if [[ ${PERF:-0} == 1 && $first == 1 ]]; then
    wait "$PERFPID" || true
    perf report -i "$W/perf.data" --no-children --stdio 2>/dev/null | head -80 > "$W/perf.txt" || true
    rec perf_report "$W/perf.txt"
  fi
  first=0
done
rec vmhwm_kb "$(awk '/VmHWM/ {print $2}' "/proc/$DPID/status")"
