#!/usr/bin/env bash
# Restore, interleaved: pg_restore -j N and lethe restore --jobs N alternately
# (A B A B ...), so both see the same machine load. Appends to $RESULTS.
#   restore-ab.sh [PAIRS]   (default 2)
set -euo pipefail
source "$(dirname "$0")/env.sh"
L=$BENCH_DIR/lethe
fresh="dropdb --if-exists lethe_bench_restore && createdb lethe_bench_restore"
"$BENCH_SCRIPTS/pgbackrest.sh" archive off
for i in $(seq "${1:-2}"); do
  RUNS=1 measure --name "restore-ab: pg_restore -j $JOBS (local custom dump), pair $i" --setup "$fresh" -- \
    "pg_restore -j $JOBS -d lethe_bench_restore $BENCH_DIR/dump.fc"
  RUNS=1 measure --name "restore-ab: lethe restore --jobs $JOBS (1M-id list, 1% hit), pair $i" --setup "$fresh" -- \
    "$LETHE --config $L/lethe.toml restore latest --target postgres://$PGUSER@$PGHOST:$PGPORT/lethe_bench_restore --jobs $JOBS"
done
dropdb --if-exists lethe_bench_restore
