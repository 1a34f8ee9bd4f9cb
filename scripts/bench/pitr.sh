#!/usr/bin/env bash
# Point-in-time restore (issue 20): replay throughput and memory, on the
# wal_level = logical cluster of scripts/pg-logical-test.sh (127.0.0.1:5499).
# Needs a release build of lethe.
#
#   scripts/bench/pitr.sh
#
# 1. Database $DB: users (10,000) and events (id bigint PRIMARY KEY,
#    user_id bigint REFERENCES users ON DELETE CASCADE, v text), $BASE_ROWS
#    events. `lethe daemon` with continuous capture takes the base.
# 2. Insert-heavy window: $INSERTS events inserted in transactions of
#    10,000 rows. Waits until capture has stored them; `lethe restore --at
#    <after the inserts> --dry-run` against `lethe restore <base> --dry-run`
#    (the same base, nothing replayed), $RUNS runs each, alternating.
# 3. Update-heavy window: $UPDATES event rows updated (10 statements over
#    disjoint tenths of the table, each row once), then the same pair.
# Replay throughput = row changes replayed / (point restore − base restore)
# seconds (medians); peak RSS of each restore from /usr/bin/time -v.
# 100 users are erased first, so the filter works as it would in use.
# 4. With PGBR=1 (as root; Debian's pgbackrest): a pgBackRest full backup
#    (posix repo, zst) before the windows, their WAL received with
#    pg_receivewal and pushed with `archive-push` (the cluster runs with
#    archive_mode off), then `pgbackrest restore --type=time --target=<the
#    insert window's point>` and a postmaster on $PGBR_PORT until it has
#    recovered and promoted, against `lethe restore --at <the same point>
#    --target` into a new database on the same cluster: wall time each,
#    $RUNS runs alternating. pgBackRest restores the whole cluster. Lethe's
#    database is usable at its restore.completed event (its "seconds",
#    recorded as lethe_restore_at_ready); the command exits after the
#    evidence record is appended.
# Raw results: $OUT (key = value lines).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$HERE/../.." && pwd)
export PGHOST=127.0.0.1 PGPORT=${PGPORT:-5499} PGUSER=postgres
DB=${DB:-lethe_bench_pitr}
BASE_ROWS=${BASE_ROWS:-1000000}
INSERTS=${INSERTS:-1000000}
UPDATES=${UPDATES:-1000000}
RUNS=${RUNS:-3}
LETHE=${LETHE:-${CARGO_TARGET_DIR:-$HOME/.cache/lethe-target}/release/lethe}
OUT=${OUT:-$REPO_ROOT/scripts/bench/results/pitr-$(date -u +%F).txt}
W=$(mktemp -d /tmp/lethe-pitr-bench.XXXXXX)
DPID=""
RWPID=""
PGBR=${PGBR:-0}
PGBR_PORT=${PGBR_PORT:-5436}
PGBIN=/usr/lib/postgresql/15/bin

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
rec() { printf '%s = %s\n' "$1" "$2" | tee -a "$OUT" >&2; }
sql() { psql -XAtq -v ON_ERROR_STOP=1 -d "$DB" -c "$1"; }
utc() { sql "select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"; }

cleanup() {
  set +e
  [[ -n $DPID ]] && kill -TERM "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
  [[ -n $RWPID ]] && kill -TERM "$RWPID" 2>/dev/null && wait "$RWPID" 2>/dev/null
  [[ -d $W/pgr ]] && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$W/pgr" -m immediate stop >/dev/null 2>&1
  for d in $(psql -XAtc "select datname from pg_database where datname like '${DB}_at_%'" postgres); do dropdb --force "$d"; done
  psql -Xq -c "select pg_terminate_backend(active_pid) from pg_replication_slots where database = '$DB' and active_pid is not null" postgres >/dev/null
  sleep 0.5
  psql -Xq -c "select pg_drop_replication_slot(slot_name) from pg_replication_slots where database = '$DB'" postgres >/dev/null
  dropdb --if-exists --force "$DB"
  if [[ ${KEEP:-0} == 1 ]]; then log "kept $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT

[[ -x $LETHE ]] || { echo "no release build at $LETHE" >&2; exit 1; }
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (Debian package time)" >&2; exit 1; }
mkdir -p "$(dirname "$OUT")"
: > "$OUT"
rec started "$(date -u +%FT%TZ)"
rec machine "$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
rec lethe "$(git -C "$REPO_ROOT" rev-parse --short HEAD)"
rec settings "base $BASE_ROWS events, inserts $INSERTS, updates $UPDATES, $RUNS runs per restore"

dropdb --if-exists --force "$DB"
createdb "$DB"
sql "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL);
     CREATE TABLE events (id bigint PRIMARY KEY, user_id bigint NOT NULL REFERENCES users ON DELETE CASCADE, v text);
     INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 10000) g;
     INSERT INTO events SELECT g, 1 + g % 10000, md5(g::text) FROM generate_series(1, $BASE_ROWS) g"
sql "VACUUM ANALYZE"

cat > "$W/lethe.toml" <<CONF
[source]
url = "postgres://postgres@127.0.0.1:$PGPORT/$DB"
jobs = 2

[storage]
url = "file://$W/repo"

[encryption]
disabled = true

[erasure]
path = "$W/erasure"
subject_type = "bigint"
subjects = [ { table = "public.users", column = "id" } ]

[api]
listen = "unix:$W/api.sock"

[schedule]
every = "24h"

[continuous]
enabled = true
flush_every = "5s"
slot = "$DB"
CONF

if [[ $PGBR == 1 ]]; then
  chmod 755 "$W"
  mkdir -p "$W/pgbr"/{repo,log,lock,spool,wal}
  cat > "$W/pgbr/pgbackrest.conf" <<CONF
[global]
repo1-path=$W/pgbr/repo
compress-type=zst
process-max=2
start-fast=y
archive-check=n
log-path=$W/pgbr/log
lock-path=$W/pgbr/lock
spool-path=$W/pgbr/spool
log-level-console=warn

[pitr]
pg1-path=$(psql -XAtc 'show data_directory' postgres)
pg1-port=$PGPORT
pg1-socket-path=/var/run/postgresql
CONF
  chown -R postgres: "$W/pgbr"
  pgbr() { runuser -u postgres -- pgbackrest --config="$W/pgbr/pgbackrest.conf" --stanza=pitr "$@"; }
  # WAL from before the backup on: recovery needs the backup's own WAL.
  runuser -u postgres -- "$PGBIN/pg_receivewal" -h 127.0.0.1 -p "$PGPORT" -D "$W/pgbr/wal" --no-loop &
  RWPID=$!
  sleep 1
  pgbr stanza-create
  pgbr backup --type=full
  rec pgbackrest "$(pgbackrest version), posix repo, zst, full backup of the whole cluster ($(psql -XAtc 'select pg_size_pretty(sum(pg_database_size(datname))) from pg_database' postgres))"
fi

"$LETHE" --config "$W/lethe.toml" daemon 2> "$W/daemon.log" &
DPID=$!
until grep -q '"event":"continuous.started"' "$W/daemon.log"; do
  kill -0 "$DPID" || { cat "$W/daemon.log" >&2; exit 1; }
  sleep 0.5
done
BASE=$(grep -o '"event":"continuous.base_completed"[^}]*' "$W/daemon.log" | grep -o '"id":"[^"]*"' | head -1 | cut -d'"' -f4)
rec base "$BASE"

# Waits until the head holds every commit so far.
stored() {
  local lp h
  lp=$(psql -XAtc 'select pg_current_wal_lsn()' postgres)
  sql "INSERT INTO users VALUES (-1, 'marker') ON CONFLICT (id) DO UPDATE SET name = 'marker ' || clock_timestamp()"
  while :; do
    h=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("last_commit_lsn") or "0/0")' \
      "$(find "$W/repo/changes" -name head.json | head -1)" 2>/dev/null || echo 0/0)
    [[ $(psql -XAtc "select '$h'::pg_lsn >= '$lp'::pg_lsn" postgres) == t ]] && return
    sleep 0.5
  done
}

# restore_pair NAME POINT CHANGES: RUNS × (base, point), alternating.
restore_pair() {
  local name=$1 at=$2 changes=$3 i
  for i in $(seq 1 "$RUNS"); do
    for what in base point; do
      local args=(restore "$BASE" --dry-run)
      [[ $what == point ]] && args=(restore --at "$at" --dry-run)
      /usr/bin/time -f '%e %M' -o "$W/time" "$LETHE" --config "$W/lethe.toml" "${args[@]}" > "$W/out" 2> "$W/err" \
        || { cat "$W/err" >&2; exit 1; }
      read -r secs kb < "$W/time"
      rec "${name}_${what}_run$i" "$secs s, $kb kB peak RSS"
      echo "$secs" >> "$W/${name}_$what"
      echo "$kb" >> "$W/${name}_${what}_kb"
    done
  done
  local mb mp
  mb=$(sort -n "$W/${name}_base" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  mp=$(sort -n "$W/${name}_point" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  rec "${name}_median_base_s" "$mb"
  rec "${name}_median_point_s" "$mp"
  rec "${name}_peak_rss_point_kb" "$(sort -n "$W/${name}_point_kb" | tail -1)"
  rec "${name}_changes" "$changes"
  rec "${name}_changes_per_s" "$(echo "$changes / ($mp - $mb)" | bc)"
}

log "insert-heavy window: $INSERTS rows"
for ((s = 0; s < INSERTS; s += 10000)); do
  sql "INSERT INTO events SELECT $BASE_ROWS + $s + g, 1 + g % 10000, md5(g::text) FROM generate_series(1, 10000) g"
done
stored
sleep 1.1
P1=$(utc)
sleep 1.1
log "update-heavy window: $UPDATES rows"
for k in $(seq 0 9); do
  sql "UPDATE events SET v = v || 'u' WHERE id % 10 = $k AND id <= $UPDATES"
done
sleep 1.1
P2=$(utc)
sleep 1.1
stored
kill -TERM "$DPID"; wait "$DPID" || true; DPID=""
"$LETHE" --config "$W/lethe.toml" erase add -- $(seq 1 100) > /dev/null

restore_pair insert "$P1" "$INSERTS"

if [[ $PGBR == 1 ]]; then
  # The window's WAL into the archive: the last segment completed first.
  psql -XAtqc 'select pg_switch_wal()' postgres >/dev/null
  sleep 2
  kill -TERM "$RWPID"; wait "$RWPID" || true; RWPID=""
  for f in "$W/pgbr/wal"/*; do
    [[ $f == *.partial ]] && continue
    pgbr archive-push "$f"
  done
  for i in $(seq 1 "$RUNS"); do
    rm -rf "$W/pgr"; mkdir -m 700 "$W/pgr"; chown postgres: "$W/pgr"
    t0=$(date +%s.%N)
    pgbr restore --type=time --target="$(sed 's/T/ /; s/Z$/+00/' <<<"$P1")" --target-action=promote --pg1-path="$W/pgr" >/dev/null
    printf "port = $PGBR_PORT\nunix_socket_directories = '$W/pgbr'\nlisten_addresses = ''\n" > "$W/pgr/postgresql.conf"
    # Recovery refuses settings below the primary's.
    psql -XAtc "select name || ' = ' || setting from pg_settings where name in ('max_connections', 'max_worker_processes', 'max_wal_senders', 'max_prepared_transactions', 'max_locks_per_transaction')" postgres >> "$W/pgr/postgresql.conf"
    printf 'local all all trust\n' > "$W/pgr/pg_hba.conf"
    : > "$W/pgr/pg_ident.conf"
    chown postgres: "$W/pgr"/*.conf
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$W/pgr" -l "$W/pgbr/pgr.log" -w -t 3600 start >/dev/null
    until [[ $(psql -XAtq -h "$W/pgbr" -p "$PGBR_PORT" -c 'select pg_is_in_recovery()' postgres 2>/dev/null) == f ]]; do sleep 0.1; done
    t1=$(date +%s.%N)
    rec "pgbackrest_restore_run$i" "$(echo "$t1 - $t0" | bc) s ($(psql -XAtq -h "$W/pgbr" -p "$PGBR_PORT" -d "$DB" -c 'select count(*) from events') events)"
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$W/pgr" -m fast stop >/dev/null
    echo "$t1 - $t0" | bc >> "$W/pgbr_s"
    createdb "${DB}_at_$i"
    t0=$(date +%s.%N)
    "$LETHE" --config "$W/lethe.toml" restore --at "$P1" --target "postgres://postgres@127.0.0.1:$PGPORT/${DB}_at_$i" > /dev/null 2> "$W/err" \
      || { cat "$W/err" >&2; exit 1; }
    t1=$(date +%s.%N)
    rec "lethe_restore_at_run$i" "$(echo "$t1 - $t0" | bc) s ($(psql -XAtq -d "${DB}_at_$i" -c 'select count(*) from events') events)"
    echo "$t1 - $t0" | bc >> "$W/lethe_at_s"
    # The database is usable at restore.completed (its "seconds"); the
    # command then appends the evidence record (the lease's 300 ms settle).
    ready=$(grep -o '"event":"restore.completed".*' "$W/err" | grep -o '"seconds":[0-9.]*' | cut -d: -f2)
    rec "lethe_restore_at_ready_run$i" "$ready s"
    echo "$ready" >> "$W/lethe_ready_s"
    dropdb --force "${DB}_at_$i"
  done
  mp=$(sort -n "$W/pgbr_s" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  ml=$(sort -n "$W/lethe_at_s" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  rec pgbackrest_median_s "$mp"
  rec lethe_at_median_s "$ml"
  rec lethe_vs_pgbackrest "$(echo "scale=2; $ml / $mp" | bc)"
  mr=$(sort -n "$W/lethe_ready_s" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  rec lethe_at_ready_median_s "$mr"
  rec lethe_ready_vs_pgbackrest "$(echo "scale=2; $mr / $mp" | bc)"
fi
restore_pair update "$P2" "$((INSERTS + UPDATES))"
rec finished "$(date -u +%FT%TZ)"
