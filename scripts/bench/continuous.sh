#!/usr/bin/env bash
# Continuous capture (issue 19) against hourly snapshots and pgBackRest, in
# one run, on the wal_level = logical cluster of scripts/pg-logical-test.sh
# (127.0.0.1:5499). Needs a release build of lethe, pgbench (postgresql-15)
# and, for the pgBackRest column, Debian's pgbackrest (skipped if absent).
#
#   scripts/bench/continuous.sh            (as root: pgBackRest runs as postgres)
#
# What it does, in order (design: docs/design/continuous.md §6):
#  1. Creates database $DB (dropped first if left over): `pgbench -i -s 20`,
#     pgbench_history gets `id bigserial PRIMARY KEY` (no replica identity
#     otherwise), and a table `big (id int PRIMARY KEY, v text)` for step 5.
#  2. Starts `lethe daemon` with `[continuous] enabled = true`,
#     `flush_every = "5s"`, file:// storage in a temp dir, encryption off.
#     It takes its base from the slot's exported snapshot (the schedule
#     runs retention only while capture is on).
#     pgBackRest (posix repo in the temp dir, compress-type=zst): a full
#     backup before the window; the window's WAL is received with
#     pg_receivewal (the cluster runs with archive_mode = off, which this
#     script does not change) and pushed with `pgbackrest archive-push`;
#     a diff backup after the window.
#  3. Window: `pgbench -n -c 4 -j 2 -R 200 -T $WINDOW` (default 300 s).
#     Measures the base, `changes/` after the window, one full
#     `lethe snapshot` of the same database into a second repository (what
#     hourly mode stores each hour), the daemon's CPU over the window, and
#     the RPO: for every segment manifest whose first commit is in the
#     window, mtime(manifest) - first_commit_at (the longest wait of any
#     transaction in it).
#  4. Source cost: `pgbench -n -c 8 -j 2 -M prepared -T $TPS_SECONDS`,
#     capture on / off alternating, $ROUNDS rounds (on = daemon running and
#     caught up before the run; off = daemon stopped and `lethe continuous
#     disable`: no slot, no publication; the next "on" takes a new base).
#     Daemon CPU (utime+stime, /proc/<pid>/stat) from the start of an "on"
#     run until head.json holds a marker row committed after it (catch-up
#     included), per second of the run; peak RSS (VmHWM) per daemon life.
#  5. One 1 GB transaction (`INSERT INTO big SELECT g, repeat('x', 1000)
#     FROM generate_series(1, 1000000) g`) on a freshly started daemon: its
#     VmHWM, and the time until head.json's last_commit_lsn reaches the
#     transaction's commit (timeout $BIG_TIMEOUT s).
# At the end the daemon is stopped and the database and its slot dropped;
# the temp dir is removed unless KEEP=1. Raw results: $OUT (key = value
# lines, the pgbench outputs and the daemon's warnings and errors).
#
# DATA=gen replaces step 1's pgbench data with scripts/bench/gen.sql at
# GEN_SCALE (1: ~1 GB, the benchmark database) and the window's workload with
# scripts/bench/app-write.sql (an order with two items and an event, a login,
# a session revoked) at WINDOW_RATE transactions/s (200); use it with
# ROUNDS=0 BIG=0 (the source-cost rounds and the big table are pgbench's).
#
# Environment: WINDOW (300), TPS_SECONDS (60), ROUNDS (2), ORDER (on-off, or
# off-on: which run of a round comes first), STORAGE (1; 0 skips pgBackRest,
# step 3 and the hourly snapshot), BIG (1; 0 skips step 5), BIG_ROWS
# (1000000: about 1.1 GB of WAL), BIG_TIMEOUT (900), LETHE (default $CARGO_TARGET_DIR/release/lethe),
# OUT, KEEP (1 keeps the temp dir), PGPORT (5499).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$HERE/../.." && pwd)
export PGHOST=127.0.0.1 PGPORT=${PGPORT:-5499} PGUSER=postgres
DB=${DB:-lethe_bench_cont}
SLOT=$DB
WINDOW=${WINDOW:-300}
TPS_SECONDS=${TPS_SECONDS:-60}
ROUNDS=${ROUNDS:-2}
BIG_TIMEOUT=${BIG_TIMEOUT:-900}
BIG_ROWS=${BIG_ROWS:-1000000}
STORAGE=${STORAGE:-1}
DATA=${DATA:-pgbench}
GEN_SCALE=${GEN_SCALE:-1}
WINDOW_RATE=${WINDOW_RATE:-200}
ORDER=${ORDER:-on-off}
FLUSH_S=5
LETHE=${LETHE:-${CARGO_TARGET_DIR:-$HOME/.cache/lethe-target}/release/lethe}
PGBIN=/usr/lib/postgresql/15/bin
OUT=${OUT:-$REPO_ROOT/scripts/bench/results/continuous-$(date -u +%F).txt}
W=$(mktemp -d /tmp/lethe-cont-bench.XXXXXX)
chmod 755 "$W"
PGDATA_DIR=$(psql -XAtc 'show data_directory' postgres)
DPID=""
RWPID=""

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
rec() { printf '%s = %s\n' "$1" "$2" | tee -a "$OUT" >&2; }
sql() { psql -XAtq -v ON_ERROR_STOP=1 -d "$DB" -c "$1"; }
now() { date +%s.%N; }
bytes() { find "$@" -type f -printf '%s\n' 2>/dev/null | awk '{s += $1} END {print s + 0}'; }
cpu_s() { awk -v clk="$(getconf CLK_TCK)" '{sub(/.*\) /, ""); print ($12 + $13) / clk}' "/proc/$1/stat"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
lsn() { psql -XAtc 'select pg_current_wal_lsn()' postgres; }
confirmed() { psql -XAtc "select coalesce(confirmed_flush_lsn::text, '0/0') from pg_replication_slots where slot_name = '$SLOT'" postgres; }
lsn_ge() { [[ $(psql -XAtc "select '$1'::pg_lsn >= '$2'::pg_lsn" postgres) == t ]]; }
events() { grep -c "\"event\":\"$1\"" "$W/daemon.log" || true; }

cleanup() {
  set +e
  [[ -n $DPID ]] && kill -TERM "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
  [[ -n $RWPID ]] && kill -TERM "$RWPID" 2>/dev/null && wait "$RWPID" 2>/dev/null
  psql -Xq -c "select pg_terminate_backend(active_pid) from pg_replication_slots where database = '$DB' and active_pid is not null" postgres >/dev/null
  sleep 0.5
  psql -Xq -c "select pg_drop_replication_slot(slot_name) from pg_replication_slots where database = '$DB'" postgres >/dev/null
  dropdb --if-exists --force "$DB"
  if [[ ${KEEP:-0} == 1 ]]; then log "kept $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT

[[ -x $LETHE ]] || { echo "no release build at $LETHE" >&2; exit 1; }
pg_isready -q || "$REPO_ROOT/scripts/pg-logical-test.sh" >/dev/null
[[ $(psql -XAtc 'show wal_level' postgres) == logical ]] || { echo "port $PGPORT: wal_level is not logical" >&2; exit 1; }
mkdir -p "$(dirname "$OUT")"
: > "$OUT"
rec started "$(date -u +%FT%TZ)"
rec machine "$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
rec lethe "$("$LETHE" --version 2>/dev/null | head -1) ($(git -C "$REPO_ROOT" rev-parse --short HEAD))"
rec postgres "$(psql -XAtc 'show server_version' postgres), max_slot_wal_keep_size $(psql -XAtc 'show max_slot_wal_keep_size' postgres)"
rec tps_seconds "$TPS_SECONDS"
rec settings "data $DATA (gen scale $GEN_SCALE), storage phase $STORAGE, window ${WINDOW}s at ${WINDOW_RATE}/s, tps runs ${TPS_SECONDS}s x $ROUNDS rounds ($ORDER), big transaction ${BIG:-1} ($BIG_ROWS rows), flush_every ${FLUSH_S}s"

# ---- 1. database ------------------------------------------------------------
psql -Xq -c "select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = '$SLOT' and not active" postgres >/dev/null
dropdb --if-exists --force "$DB"
createdb "$DB"
if [[ $DATA == gen ]]; then
  log "gen.sql scale $GEN_SCALE"
  psql -Xq -d "$DB" -v scale="$GEN_SCALE" -f "$HERE/gen.sql" 2>&1 | grep -v '^Time:' >&2 || true
  WORKLOAD=(-f "$HERE/app-write.sql" -D scale="$GEN_SCALE")
  sql "CREATE TABLE bench_marker (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())"
else
  log "pgbench -i -s 20"
  "$PGBIN/pgbench" -i -q -s 20 "$DB" 2>&1 | tail -1 >&2
  WORKLOAD=()
  sql "ALTER TABLE pgbench_history ADD COLUMN id bigserial PRIMARY KEY; CREATE TABLE big (id int PRIMARY KEY, v text); CREATE TABLE bench_marker (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())"
fi
sql "VACUUM ANALYZE"
rec db_bytes "$(sql "select pg_database_size('$DB')")"

# ---- 2. lethe and pgBackRest -----------------------------------------------
cfg() {  # cfg FILE REPO CONTINUOUS(true|false)
  cat > "$1" <<CONF
[source]
url = "postgres://postgres@127.0.0.1:$PGPORT/$DB"
jobs = 2

[storage]
url = "file://$W/$2"

[encryption]
disabled = true

[erasure]
path = "$W/erasure-$2"

[api]
listen = "unix:$W/api-$2.sock"

[schedule]
every = "24h"

[log]
format = "json"
level = "info"

[continuous]
enabled = $3
flush_every = "${FLUSH_S}s"
slot = "$SLOT"
CONF
}
cfg "$W/cont.toml" repo true
cfg "$W/hourly.toml" hourly false

start_daemon() {
  local started
  started=$(events continuous.started)
  "$LETHE" --config "$W/cont.toml" daemon </dev/null >/dev/null 2>>"$W/daemon.log" &
  DPID=$!
  local end=$((SECONDS + 300))
  until (($(events continuous.started) > started)); do
    kill -0 "$DPID" 2>/dev/null || { tail -20 "$W/daemon.log" >&2; echo "the daemon exited" >&2; exit 1; }
    ((SECONDS < end)) || { tail -20 "$W/daemon.log" >&2; echo "no continuous.started in 300 s" >&2; exit 1; }
    sleep 0.2
  done
}
stop_daemon() {  # records the life's VmHWM as $1
  rec "$1" "$(hwm_kb "$DPID") kB"
  kill -TERM "$DPID"
  wait "$DPID" || rec "daemon_exit_$1" "$?"
  DPID=""
}
head_commit() {  # the newest head.json's last_commit_lsn
  local h
  h=$(find "$W/repo/changes" -name head.json -printf '%T@ %p\n' 2>/dev/null | sort -n | tail -1 | cut -d' ' -f2)
  [[ -n $h ]] || { echo 0/0; return; }
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("last_commit_lsn") or "0/0")' "$h" 2>/dev/null || echo 0/0
}
# Commits a marker row and waits until head.json holds it (everything
# committed before is stored then); at most $1 s. Prints the seconds waited.
wait_stored() {
  local lp t0 end
  lp=$(lsn); t0=$(now); end=$((SECONDS + $1))
  sql "INSERT INTO bench_marker DEFAULT VALUES"
  until lsn_ge "$(head_commit)" "$lp"; do
    ((SECONDS < end)) || { echo "timeout"; return 0; }
    sleep 0.1
  done
  echo "$(now) - $t0" | bc
}

PGBR=""
if [[ $STORAGE == 1 ]] && command -v pgbackrest >/dev/null; then
  PGBR=$W/pgbr
  mkdir -p "$PGBR"/{repo,log,lock,spool,wal}
  cat > "$PGBR/pgbackrest.conf" <<CONF
[global]
repo1-path=$PGBR/repo
repo1-retention-full=2
compress-type=zst
process-max=2
start-fast=y
archive-check=n
log-path=$PGBR/log
lock-path=$PGBR/lock
spool-path=$PGBR/spool
log-level-console=warn

[cont]
pg1-path=$PGDATA_DIR
pg1-port=$PGPORT
pg1-socket-path=/var/run/postgresql
CONF
  chown -R postgres: "$PGBR"
  pgbr() { runuser -u postgres -- pgbackrest --config="$PGBR/pgbackrest.conf" --stanza=cont "$@"; }
  if pgbr stanza-create && pgbr backup --type=full; then
    rec pgbackrest "$(pgbackrest version), posix repo, compress-type=zst, archive_mode off: WAL via pg_receivewal + archive-push"
    rec pgbr_full_bytes "$(bytes "$PGBR/repo/backup")"
    rec cluster_bytes "$(psql -XAtc 'select sum(pg_database_size(datname)) from pg_database' postgres)"
  else
    rec pgbackrest "setup failed: column skipped"
    PGBR=""
  fi
fi

log "daemon: base"
: > "$W/daemon.log"
start_daemon
BASE_ID=$(grep '"event":"continuous.base_completed"' "$W/daemon.log" | tail -1 | grep -oE '"id":"[^"]+"' | cut -d'"' -f4)
rec base_id "$BASE_ID"
# With capture on the schedule runs retention only (builds since bb036cd):
# no scheduled snapshot to wait for.
rec base_bytes "$(bytes "$W/repo/snapshots/$BASE_ID")"
rec base_rows "$(grep '"event":"continuous.base_completed"' "$W/daemon.log" | tail -1 | grep -oE '"rows":[0-9]+' | cut -d: -f2)"
rec snapshots_dir_bytes_all "$(bytes "$W/repo/snapshots")"
wait_stored 60 >/dev/null

# ---- 3. window --------------------------------------------------------------
if [[ $STORAGE == 1 ]]; then
if [[ -n $PGBR ]]; then
  runuser -u postgres -- "$PGBIN/pg_receivewal" -h 127.0.0.1 -p "$PGPORT" -D "$PGBR/wal" --no-loop &
  RWPID=$!
  sleep 1
fi
changes0=$(bytes "$W/repo/changes")
lsn0=$(lsn); cpu0=$(cpu_s "$DPID"); t0=$(now)
rec window_start "$(date -u +%FT%T.%NZ)"
log "window: pgbench ${WORKLOAD[*]} -R $WINDOW_RATE -T $WINDOW"
"$PGBIN/pgbench" -n -c 4 -j 2 "${WORKLOAD[@]}" -R "$WINDOW_RATE" -T "$WINDOW" "$DB" > "$W/window.txt" 2>&1
t1=$(now); lsn1=$(lsn)
rec window_end "$(date -u +%FT%T.%NZ)"
rec window_stored_wait_s "$(wait_stored 120)"
cpu1=$(cpu_s "$DPID")
rec window_xacts "$(awk '/number of transactions actually processed/ {print $NF}' "$W/window.txt" | cut -d/ -f1)"
rec window_tps "$(awk '/^tps/ {print $3; exit}' "$W/window.txt")"
rec window_seconds "$(echo "$t1 - $t0" | bc)"
rec window_wal_bytes "$(psql -XAtc "select '$lsn1'::pg_lsn - '$lsn0'::pg_lsn" postgres)"
rec window_daemon_cpu_s "$(echo "$cpu1 - $cpu0" | bc)"
rec changes_bytes_before "$changes0"
rec changes_bytes "$(( $(bytes "$W/repo/changes") - changes0 ))"
rec window_vmhwm_kb "$(hwm_kb "$DPID")"
sed 's/^/  window pgbench: /' "$W/window.txt" >> "$OUT"
python3 - "$W/repo" "$t0" "$t1" >> "$OUT" <<'PY'
import json, os, re, sys, datetime as dt
repo, t0, t1 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
pat = re.compile(r"^[0-9A-F]{16}-[0-9A-F]{16}\.json$")
lat, xacts, segs, sizes = [], 0, 0, []
for root, _, files in os.walk(os.path.join(repo, "changes")):
    for f in files:
        if not pat.match(f):
            continue
        p = os.path.join(root, f)
        m = json.load(open(p))
        first = dt.datetime.fromisoformat(m["first_commit_at"].replace("Z", "+00:00")).timestamp()
        if not (t0 <= first <= t1 + 5):
            continue
        segs += 1
        xacts += m["xacts"]
        lat.append(os.stat(p).st_mtime - first)
        sizes.append(sum(e["size"] for e in m["parts"]))
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(round(p * (len(lat) - 1))))] if lat else float("nan")
print(f"rpo_segments = {segs}")
print(f"rpo_xacts_in_segments = {xacts}")
print(f"rpo_p50_s = {q(0.5):.3f}")
print(f"rpo_p99_s = {q(0.99):.3f}")
print(f"rpo_max_s = {lat[-1] if lat else float('nan'):.3f}")
print(f"rpo_min_s = {lat[0] if lat else float('nan'):.3f}")
if sizes:
    print(f"segment_payload_bytes_median = {sorted(sizes)[len(sizes)//2]}")
PY
tail -7 "$OUT" >&2

if [[ -n $PGBR ]]; then
  kill -TERM "$RWPID"; wait "$RWPID" || true; RWPID=""
  # The last, partial segment: pushed zero-padded, as a full one would be.
  for f in "$PGBR"/wal/*.partial; do [[ -e $f ]] && mv "$f" "${f%.partial}"; done
  for f in "$PGBR"/wal/[0-9A-F]*; do pgbr archive-push "$f"; done
  rec pgbr_wal_segments "$(ls "$PGBR"/wal | wc -l)"
  rec pgbr_wal_bytes "$(bytes "$PGBR/repo/archive")"
  pgbr backup --type=diff
  rec pgbr_diff_bytes "$(( $(bytes "$PGBR/repo/backup") - $(grep '^pgbr_full_bytes' "$OUT" | cut -d' ' -f3) ))"
fi

log "hourly: one lethe snapshot"
t=$(now)
/usr/bin/time -f '%M' -o "$W/snap.rss" "$LETHE" --config "$W/hourly.toml" snapshot > /dev/null 2>"$W/snapshot.log"
rec hourly_snapshot_seconds "$(echo "$(now) - $t" | bc)"
rec hourly_snapshot_rss_kb "$(cat "$W/snap.rss")"
rec hourly_snapshot_bytes "$(bytes "$W/hourly/snapshots")"
fi

# ---- 4. source cost ---------------------------------------------------------
tps_run() {  # tps_run LABEL
  "$PGBIN/pgbench" -n -c 8 -j 2 -M prepared -T "$TPS_SECONDS" "$DB" > "$W/$1.txt" 2>&1
  sed "s/^/  $1 pgbench: /" "$W/$1.txt" >> "$OUT"
  awk '/^tps/ {print $3; exit}' "$W/$1.txt"
}
off_run() {  # off_run ROUND
  if [[ -n $DPID ]]; then
    stop_daemon "before_off_${1}_vmhwm"
  fi
  # Off as the configuration turns it off: no slot, no publication (a kept
  # slot would hold this run's WAL, more than max_slot_wal_keep_size). The
  # next "on" starts a new epoch with a new base.
  "$LETHE" --config "$W/cont.toml" continuous disable 2>>"$W/disable.log" | sed 's/^/  /' >> "$OUT"
  log "round $1: capture off"
  rec "tps_off_$1" "$(tps_run "off_$1")"
}
for r in $(seq 1 "$ROUNDS"); do
  [[ $ORDER == off-on ]] && off_run "$r"
  log "round $r: capture on"
  [[ -n $DPID ]] || start_daemon
  wait_stored 300 >/dev/null
  c0=$(cpu_s "$DPID"); t0=$(now)
  rec "tps_on_$r" "$(tps_run "on_$r")"
  rec "on_${r}_stored_wait_s" "$(wait_stored 120)"
  rec "on_${r}_daemon_cpu_s" "$(echo "$(cpu_s "$DPID") - $c0" | bc)"
  rec "on_${r}_seconds" "$(echo "$(now) - $t0" | bc)"
  [[ $ORDER == off-on ]] || off_run "$r"
done

if [[ -n $DPID ]]; then stop_daemon "before_big_vmhwm"; fi

# ---- 5. one 1 GB transaction ------------------------------------------------
if [[ ${BIG:-1} == 1 ]]; then
log "one transaction of $BIG_ROWS rows"
start_daemon
wait_stored 300 >/dev/null
rec big_vmhwm_before_kb "$(hwm_kb "$DPID")"
gaps=$(events continuous.gap)
lpre=$(lsn)
t0=$(now)
sql "INSERT INTO big SELECT g, repeat('x', 1000) FROM generate_series(1, $BIG_ROWS) g"
t1=$(now)
lbig=$(lsn)
rec big_insert_seconds "$(echo "$t1 - $t0" | bc)"
rec big_commit_lsn_at_most "$lbig"
stored=""
end=$((SECONDS + BIG_TIMEOUT))
while ((SECONDS < end)); do
  kill -0 "$DPID" 2>/dev/null || { rec big_daemon "exited"; break; }
  hl=$(head_commit)
  # Only this transaction commits in $DB after $lpre.
  if [[ $hl != 0/0 ]] && lsn_ge "$hl" "$lpre"; then stored=$(now); break; fi
  if (($(events continuous.gap) > gaps)); then rec big_gap "$(grep '"event":"continuous.gap"' "$W/daemon.log" | tail -1 | grep -oE '"reason":"[a-z_]+"')"; break; fi
  sleep 0.5
done
if [[ -n $stored ]]; then
  rec big_stored_after_commit_s "$(echo "$stored - $t1" | bc)"
  rec big_stored_after_start_s "$(echo "$stored - $t0" | bc)"
else
  rec big_stored_after_commit_s "not stored (see log)"
fi
rec big_slot "$(psql -XAtc "select wal_status || ' ' || coalesce(confirmed_flush_lsn::text, '-') from pg_replication_slots where slot_name = '$SLOT'" postgres)"
[[ -n $DPID ]] && kill -0 "$DPID" 2>/dev/null && stop_daemon big_vmhwm
fi

# ---- summary ----------------------------------------------------------------
python3 - "$OUT" >> "$OUT" <<'PY'
import re, statistics, sys
v = {}
for line in open(sys.argv[1]):
    m = re.match(r"^(\w+) = (.*)$", line.strip())
    if m:
        v[m.group(1)] = m.group(2)
f = lambda k: float(v[k].split()[0])
print("# summary")
if "window_seconds" in v:
  W = f("window_seconds")
  base, ch, snap = f("base_bytes"), f("changes_bytes"), f("hourly_snapshot_bytes")
  ch_h = ch * 3600 / W
  cont = 35 * base + ch_h * 24 * 35
  hourly = 840 * snap
  print(f"changes_bytes_per_hour = {ch_h:.0f}")
  print(f"continuous_35d_bytes = {cont:.0f}")
  print(f"hourly_35d_bytes = {hourly:.0f}")
  print(f"ratio_continuous_hourly = {cont / hourly:.4f}")
  if "pgbr_full_bytes" in v and "pgbr_diff_bytes" in v:
      full, diff, wal = f("pgbr_full_bytes"), f("pgbr_diff_bytes"), f("pgbr_wal_bytes")
      wal_h = wal * 3600 / W
      flat = 5 * full + 30 * diff + 840 * wal_h
      lin = 5 * full + 30 * min(full, diff * 24 * 3600 / W) + 840 * wal_h
      print(f"pgbr_wal_bytes_per_hour = {wal_h:.0f}")
      print(f"pgbr_35d_bytes_flat = {flat:.0f}")
      print(f"pgbr_35d_bytes_linear = {lin:.0f}")
      print(f"ratio_continuous_pgbr_flat = {cont / flat:.3f}")
      print(f"ratio_continuous_pgbr_linear = {cont / lin:.3f}")
if any(k.startswith("tps_on_") for k in v):
  on = [f(k) for k in v if re.fullmatch(r"tps_on_\d+", k)]
  off = [f(k) for k in v if re.fullmatch(r"tps_off_\d+", k)]
  print(f"tps_on_median = {statistics.median(on):.1f}")
  print(f"tps_off_median = {statistics.median(off):.1f}")
  print(f"tps_ratio = {statistics.median(on) / statistics.median(off):.4f}")
  per = []
  for k in v:
      m = re.fullmatch(r"on_(\d+)_daemon_cpu_s", k)
      if m:
          r = m.group(1)
          frac = f(k) / f("tps_seconds")
          per.append(frac / (f(f"tps_on_{r}") / 1000))
  print(f"cpu_core_fraction_per_1000_tps_c8 = {statistics.median(per):.4f}")
if "window_seconds" in v:
  wcpu = f("window_daemon_cpu_s") / W
  print(f"cpu_core_fraction_window = {wcpu:.4f}")
  print(f"cpu_core_fraction_per_1000_tps_window = {wcpu / (f('window_tps') / 1000):.4f}")
PY
grep -E '"level":"(WARN|ERROR)"' "$W/daemon.log" | sed 's/^/  daemon: /' >> "$OUT" || true
rec finished "$(date -u +%FT%TZ)"
sed -n '/^# summary/,$p' "$OUT" >&2
