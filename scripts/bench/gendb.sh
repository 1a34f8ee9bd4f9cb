#!/usr/bin/env bash
# (Re)create a benchmark database and fill it: gendb.sh [DB] [SCALE]
set -euo pipefail
source "$(dirname "$0")/env.sh"
db=${1:-$BENCH_DB} scale=${2:-$BENCH_SCALE}
dropdb --if-exists "$db"
createdb "$db"
log "generating $db at scale $scale"
psql -q -d "$db" -v scale="$scale" -f "$BENCH_SCRIPTS/gen.sql" | grep -v '^Time:' || true
psql -Atc "select pg_size_pretty(sum(pg_table_size(relid))) from pg_stat_user_tables where schemaname='public'" "$db"
