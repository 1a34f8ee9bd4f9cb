#!/usr/bin/env bash
# Snapshot, interleaved: pg_dump -Fd -j N + upload and lethe snapshot
# alternately (A B A B ...), so both see the same machine load. Appends to
# $RESULTS. Run after run.sh (it needs the Garage and lethe setup).
#   snapshot-ab.sh [PAIRS]   (default 3)
set -euo pipefail
source "$(dirname "$0")/env.sh"
L=$BENCH_DIR/lethe
AWS="aws --endpoint-url $BENCH_S3_ENDPOINT --only-show-errors"
S3=s3://$BENCH_BUCKET/peers
for i in $(seq "${1:-3}"); do
  RUNS=1 measure --name "snapshot-ab: pg_dump -Fd -j $JOBS + aws s3 cp --recursive, pair $i" \
    --setup "rm -rf $BENCH_DIR/dump.d; $AWS s3 rm --recursive $S3/dump.d/ || true" -- \
    "pg_dump -Fd -j $JOBS -f $BENCH_DIR/dump.d $BENCH_DB && $AWS s3 cp --recursive $BENCH_DIR/dump.d $S3/dump.d/"
  RUNS=1 measure --name "snapshot-ab: lethe snapshot (jobs $JOBS, zstd 3, age), pair $i" -- \
    "$LETHE --config $L/lethe.toml snapshot"
done
rm -rf "$BENCH_DIR/dump.d"
