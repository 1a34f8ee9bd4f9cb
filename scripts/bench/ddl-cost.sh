#!/usr/bin/env bash
# What one index migration costs continuous capture (issue 19, DDL
# capture): with lethe's event triggers (a superuser capture role) the
# CREATE INDEX travels in the stream and a point restore replays it; with
# a REPLICATION role only, the schema digest sees it and a new base is
# taken. Same database, same migration, one mode after the other.
#
#   PGPORT=5499 LETHE=target/release/lethe scripts/bench/ddl-cost.sh
#
# Creates $DB (`pgbench -i -s $SCALE`), and for each mode: a fresh
# repository, `lethe daemon` with continuous capture (file:// storage,
# encryption off, flush_every 5s), waits for its base, runs
# `CREATE INDEX … ON pgbench_accounts (abalance)` (dropped again after),
# waits $WAIT seconds (or for the second base), then records the bases
# taken, the bytes the repository grew by, and how long any new base took.
# Environment: PGPORT (5499), LETHE, SCALE (10), WAIT (30), OUT, KEEP;
# DATA=gen uses scripts/bench/gen.sql at GEN_SCALE (1: the ~1 GB benchmark
# database) instead of pgbench, and indexes orders (created_at).
# MIGRATION=add_column runs `ALTER TABLE … ADD COLUMN bench_ddl_col text
# DEFAULT 'x'` on the same table instead of the index.
set -euo pipefail

export PGHOST=127.0.0.1 PGPORT=${PGPORT:-5499} PGUSER=postgres
DB=${DB:-lethe_bench_ddl}
SCALE=${SCALE:-10}
WAIT=${WAIT:-30}
LETHE=${LETHE:-${CARGO_TARGET_DIR:-$HOME/.cache/lethe-target}/release/lethe}
ROLE=lethe_bench_ddl_repl
W=$(mktemp -d /tmp/lethe-ddl-bench.XXXXXX)
DPID=""

rec() { echo "$1 = $2"; if [[ -n ${OUT:-} ]]; then echo "$1 = $2" >> "$OUT"; fi; }
sql() { psql -XAtq -v ON_ERROR_STOP=1 -d "$DB" -c "$1"; }
stop_daemon() {
  if [[ -n $DPID ]] && kill -0 "$DPID" 2>/dev/null; then kill -TERM "$DPID"; wait "$DPID" || true; fi
  DPID=""
}
cleanup() {
  stop_daemon
  for m in superuser replication; do
    [[ -f $W/$m.toml ]] && "$LETHE" --config "$W/$m.toml" continuous disable >/dev/null 2>&1 || true
  done
  psql -XAtq -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "DROP ROLE IF EXISTS $ROLE" >/dev/null 2>&1 || true
  [[ ${KEEP:-0} == 1 ]] || rm -rf "$W"
}
trap cleanup EXIT

psql -XAtq -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "DROP ROLE IF EXISTS $ROLE" \
  -c "CREATE DATABASE $DB" -c "CREATE ROLE $ROLE LOGIN PASSWORD 'pw' REPLICATION"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/bench/wait-event.sh
. "$HERE/wait-event.sh"
if [[ ${DATA:-pgbench} == gen ]]; then
  # The benchmark database (gen.sql; scale 1: ~1 GB), its orders indexed.
  psql -Xq -d "$DB" -v scale="${GEN_SCALE:-1}" -f "$HERE/gen.sql" 2>&1 | grep -v '^Time:' >&2 || true
  INDEX_ON="orders (created_at)"
  TABLE=orders
else
  pgbench -q -i -s "$SCALE" "$DB" >/dev/null 2>&1
  sql "ALTER TABLE pgbench_history ADD COLUMN id bigserial PRIMARY KEY"
  INDEX_ON="pgbench_accounts (abalance)"
  TABLE=pgbench_accounts
fi
if [[ ${MIGRATION:-index} == add_column ]]; then
  DDL="ALTER TABLE $TABLE ADD COLUMN bench_ddl_col text DEFAULT 'x'"
  UNDO="ALTER TABLE $TABLE DROP COLUMN bench_ddl_col"
else
  DDL="CREATE INDEX bench_ddl_idx ON $INDEX_ON"
  UNDO="DROP INDEX bench_ddl_idx"
fi
rec migration "$DDL"
for t in $(sql "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"); do
  sql "ALTER TABLE $t OWNER TO $ROLE"
done
for s in $(sql "SELECT format('%I.%I', schemaname, sequencename) FROM pg_sequences"); do
  sql "ALTER SEQUENCE $s OWNER TO $ROLE"
done
sql "GRANT CREATE ON DATABASE $DB TO $ROLE"
rec lethe "$("$LETHE" --version 2>/dev/null | head -1)"
rec database_bytes "$(sql "SELECT pg_database_size('$DB')")"

bases() { count_event "$1" continuous.base_completed; }
for mode in superuser replication; do
  if [[ $mode == superuser ]]; then url="postgres://postgres@127.0.0.1:$PGPORT/$DB"
  else url="postgres://$ROLE:pw@127.0.0.1:$PGPORT/$DB"; fi
  repo="$W/repo-$mode"
  cat > "$W/$mode.toml" <<CONF
[source]
url = "$url"
[storage]
url = "file://$repo"
[encryption]
disabled = true
[erasure]
path = "$W/erasure-$mode"
[api]
listen = "unix:$W/api-$mode.sock"
[log]
format = "json"
level = "info"
[continuous]
enabled = true
flush_every = "5s"
slot = "${DB}_$mode"
publication = "${DB}_$mode"
CONF
  log="$W/daemon-$mode.log"
  "$LETHE" --config "$W/$mode.toml" daemon </dev/null >/dev/null 2>>"$log" &
  DPID=$!
  wait_event "$log" continuous.base_completed 1 300 "$DPID"
  sleep 8
  rec "${mode}_ddl_capture" "$(grep -o '"ddl_capture":"[a-z_]*"' "$log" | head -1)"
  before=$(du -sb "$repo" | cut -f1)
  t0=$(date +%s.%N)
  sql "$DDL"
  end=$((SECONDS + WAIT))
  while ((SECONDS < end)); do
    (( $(bases "$log") >= 2 )) && break
    sleep 0.5
  done
  if (( $(bases "$log") >= 2 )); then
    t1=$(date -d "$(grep '"event":"continuous.base_completed"' "$log" | sed -n 2p | grep -o '"timestamp":"[^"]*"' | cut -d'"' -f4)" +%s.%N)
    rec "${mode}_new_base_s_after_the_ddl" "$(echo "$t1 - $t0" | bc)"
  fi
  sleep 8
  rec "${mode}_bases_after_the_ddl" "$(( $(bases "$log") - 1 ))"
  rec "${mode}_gaps" "$(grep -c '"event":"continuous.gap"' "$log" || true)"
  rec "${mode}_repository_growth_bytes" "$(( $(du -sb "$repo" | cut -f1) - before ))"
  stop_daemon
  "$LETHE" --config "$W/$mode.toml" continuous disable >/dev/null
  sql "$UNDO"
done
