#!/usr/bin/env bash
# The 10 GB pass (scale 10), one run of each: what it answers is whether peak
# RSS stays flat as the database grows 10x, and how the ratios hold at size.
# Run after run.sh has set up $BENCH_DIR (Garage, the age key, the binaries):
#
#   scripts/bench/gendb.sh lethe_bench10 10     # ~10 GB of table data, once
#   scripts/bench/run-10g.sh                    # appends to $BENCH_DIR/results-10g.jsonl
#
# Order: lethe snapshot, pg_dump -Fc | aws s3 cp, pg_dump -Fd -j N + upload,
# lethe erase import (1M ids, 1% hit), lethe restore --jobs N, pg_restore -j N.
set -euo pipefail
export BENCH_DB=${BENCH_DB10:-lethe_bench10} BENCH_SCALE=10
export BENCH_RESULTS=${BENCH_RESULTS:-/tmp/lethe-bench/results-10g.jsonl}
source "$(dirname "$0")/env.sh"
source "$BENCH_DIR/s3.env"
export RUNS=1
L=$BENCH_DIR/lethe
CFG=$L/lethe10.toml
AWS="aws --endpoint-url $BENCH_S3_ENDPOINT --only-show-errors"
S3=s3://$BENCH_BUCKET/peers10
RESTORE_DB=lethe_bench10_restore
fresh="dropdb --if-exists $RESTORE_DB && createdb $RESTORE_DB"

# Same config shape as lethe.sh, pointed at the 10 GB database and its own prefix.
sed -e "s#:$PGPORT/[a-z_0-9]*\"#:$PGPORT/$BENCH_DB\"#" \
    -e "s#s3://$BENCH_BUCKET/lethe\"#s3://$BENCH_BUCKET/lethe10\"#" \
    -e "s#erasure-lethe\"#erasure-lethe10\"#" -e "s#api-lethe.sock#api-lethe10.sock#" \
    "$L/lethe.toml" > "$CFG"
grep -q lethe_bench10 "$CFG" && grep -q 'lethe10"' "$CFG" || { echo "could not derive $CFG" >&2; exit 1; }
lethe() { "$LETHE" --config "$CFG" "$@"; }
lethe init || true
[[ -f $L/ids_1m_10g.txt ]] || python3 "$BENCH_SCRIPTS/ids.py" "$L/ids_1m_10g.txt" 1000000 10000 5000000

echo "10g start: $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$BENCH_DIR/machine-10g.txt"
psql -Atc "select 'table data', pg_size_pretty(sum(pg_table_size(relid))) from pg_stat_user_tables where schemaname='public'" "$BENCH_DB" >> "$BENCH_DIR/machine-10g.txt"

log "10g: lethe snapshot"
measure --name "10g snapshot: lethe snapshot (jobs $JOBS, zstd 3, age)" -- "$LETHE --config $CFG snapshot"
log "10g: pg_dump -Fc | aws s3 cp"
measure --name "10g snapshot: pg_dump -Fc | aws s3 cp" -- "pg_dump -Fc -d $BENCH_DB | $AWS s3 cp - $S3/dump.fc"
log "10g: pg_dump -Fd -j $JOBS + upload"
measure --name "10g snapshot: pg_dump -Fd -j $JOBS + aws s3 cp --recursive" \
  --setup "rm -rf $BENCH_DIR/dump10.d" -- \
  "pg_dump -Fd -j $JOBS -f $BENCH_DIR/dump10.d $BENCH_DB && $AWS s3 cp --recursive $BENCH_DIR/dump10.d $S3/dump.d/"
rm -rf "$BENCH_DIR/dump10.d"
log "10g: lethe erase import"
measure --name "10g erasure: lethe erase import, 1,000,000 ids" --setup "rm -rf $L/erasure-lethe10" -- \
  "$LETHE --config $CFG erase import $L/ids_1m_10g.txt"
lethe erase sync >/dev/null
log "10g: lethe restore"
measure --name "10g restore: lethe restore --jobs $JOBS (1M-id list, 1% hit)" --setup "$fresh" -- \
  "$LETHE --config $CFG restore latest --target postgres://$PGUSER@$PGHOST:$PGPORT/$RESTORE_DB --jobs $JOBS --report $L/restore10-report.json"
psql -Atc "select count(*) from users" "$RESTORE_DB" > "$L/restore10-users.txt"
log "10g: pg_restore -j $JOBS"
$AWS s3 cp "$S3/dump.fc" "$BENCH_DIR/dump10.fc"
measure --name "10g restore: pg_restore -j $JOBS (local custom dump)" --setup "$fresh" -- \
  "pg_restore -j $JOBS -d $RESTORE_DB $BENCH_DIR/dump10.fc"
rm -f "$BENCH_DIR/dump10.fc"
dropdb --if-exists "$RESTORE_DB"
echo "10g end: $(date -u +%FT%TZ)" >> "$BENCH_DIR/machine-10g.txt"
log "10g done"
