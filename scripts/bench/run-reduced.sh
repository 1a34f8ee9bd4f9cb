#!/usr/bin/env bash
set -euo pipefail
# The reduced sequence that produced the 17:34–17:53 UTC rows of BENCHMARKS.md
# (after run.sh had measured the two pg_dump peers, it was stopped to fit the
# time left): lethe snapshot x3, pgBackRest zst backup + restore x1,
# pg_restore -j N x3, lethe import x1, lethe restore x3, the 100 MB memory
# check, then the filter and erasure benches. Appends to $RESULTS.
source "$(dirname "$0")/env.sh"
S=$BENCH_SCRIPTS
PGBR=$S/pgbackrest.sh
RUNS=3 "$S/lethe.sh" snapshot
"$PGBR" archive on
RUNS=1 measure --name "snapshot: pgBackRest full backup (zst, process-max $JOBS)" --note "whole cluster; via stunnel TLS" -- "$PGBR backup zst"
RUNS=1 measure --name "restore: pgBackRest restore + WAL recovery (zst backup, process-max $JOBS)" \
  --note "whole cluster into a new data dir, started on another port until promoted" \
  --setup "$PGBR stop $BENCH_DIR/pgbr-restore" -- "$PGBR restore $BENCH_DIR/pgbr-restore"
"$PGBR" stop "$BENCH_DIR/pgbr-restore"; rm -rf "$BENCH_DIR/pgbr-restore"
"$PGBR" archive off
aws --endpoint-url "$BENCH_S3_ENDPOINT" --only-show-errors s3 cp "s3://$BENCH_BUCKET/peers/dump.fc" "$BENCH_DIR/dump.fc"
fresh="dropdb --if-exists lethe_bench_restore && createdb lethe_bench_restore"
RUNS=3 measure --name "restore: pg_restore -j $JOBS (local custom dump)" --setup "$fresh" -- \
  "pg_restore -j $JOBS -d lethe_bench_restore $BENCH_DIR/dump.fc"
BENCH_RUNS=1 "$S/lethe.sh" erasure
BENCH_RUNS=3 "$S/lethe.sh" restore
BENCH_RUNS=1 "$S/lethe.sh" small
(cd "$BENCH_DIR" && LETHE_BENCH_COPY_DIR=$BENCH_DIR/copy "$BENCH_DIR/bin/filter-bench" --bench --noplot) 2>&1 | tee "$BENCH_DIR/filter-bench.txt"
(cd "$BENCH_DIR" && "$BENCH_DIR/bin/erasure-bench" --bench) 2>&1 | tee "$BENCH_DIR/erasure-bench.txt"
python3 "$S/report.py" "$RESULTS" > "$BENCH_DIR/tables.md"
echo QUICK DONE
