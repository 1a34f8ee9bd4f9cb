#!/usr/bin/env bash
# The tools an ops engineer would otherwise run, measured on the same database
# and the same Garage bucket as lethe (see run.sh for the order).
#
#   peers.sh snapshot     pg_dump -Fc | aws s3 cp;  pg_dump -Fd -j N + aws s3 cp --recursive;
#                         pgBackRest full backup (gz default, and zst)
#   peers.sh restore      pg_restore -j N of the custom dump (local file, and after
#                         downloading it from S3); pgBackRest restore + recovery
set -euo pipefail
source "$(dirname "$0")/env.sh"
mkdir -p "$BENCH_DIR"
AWS="aws --endpoint-url $BENCH_S3_ENDPOINT --only-show-errors"
S3=s3://$BENCH_BUCKET/peers
PGBR=$BENCH_SCRIPTS/pgbackrest.sh

snapshot() {
  log "peer snapshot: pg_dump -Fc | aws s3 cp -"
  measure --name "snapshot: pg_dump -Fc | aws s3 cp" -- \
    "pg_dump -Fc -d $BENCH_DB | $AWS s3 cp - $S3/dump.fc"
  log "peer snapshot: pg_dump -Fd -j $JOBS + aws s3 cp --recursive"
  measure --name "snapshot: pg_dump -Fd -j $JOBS + aws s3 cp --recursive" \
    --setup "rm -rf $BENCH_DIR/dump.d; $AWS s3 rm --recursive $S3/dump.d/ || true" -- \
    "pg_dump -Fd -j $JOBS -f $BENCH_DIR/dump.d $BENCH_DB && $AWS s3 cp --recursive $BENCH_DIR/dump.d $S3/dump.d/"
  if [[ ${BENCH_SKIP_PGBACKREST:-0} != 1 ]]; then
    "$PGBR" archive on
    for ct in gz zst; do
      log "peer snapshot: pgBackRest full backup ($ct)"
      measure --name "snapshot: pgBackRest full backup ($ct, process-max $JOBS)" \
        --note "whole cluster: $(psql -Atc "select pg_size_pretty(sum(pg_database_size(datname))) from pg_database" postgres); via stunnel TLS" -- \
        "$PGBR backup $ct"
    done
  fi
  # Sizes stored, for the report.
  {
    echo "pg_dump -Fc: $(aws --endpoint-url "$BENCH_S3_ENDPOINT" s3 ls $S3/dump.fc | awk '{print $3}')"
    echo "pg_dump -Fd: $(du -sb "$BENCH_DIR/dump.d" | cut -f1)"
  } > "$BENCH_DIR/peer-sizes.txt"
}

restore() {
  $AWS s3 cp "$S3/dump.fc" "$BENCH_DIR/dump.fc"
  if [[ ${BENCH_SKIP_PGBACKREST:-0} != 1 ]]; then
    log "peer restore: pgBackRest restore + recovery"
    measure --name "restore: pgBackRest restore + WAL recovery (latest, process-max $JOBS)" \
      --note "whole cluster into a new data dir, started on another port until promoted" \
      --setup "$PGBR stop $BENCH_DIR/pgbr-restore" -- \
      "$PGBR restore $BENCH_DIR/pgbr-restore"
    "$PGBR" stop "$BENCH_DIR/pgbr-restore"
    rm -rf "$BENCH_DIR/pgbr-restore"
  fi
  # Loads below run with WAL archiving off (see pgbackrest.sh archive).
  "$PGBR" archive off
  local fresh="dropdb --if-exists lethe_bench_restore && createdb lethe_bench_restore"
  log "peer restore: pg_restore -j $JOBS (local file)"
  measure --name "restore: pg_restore -j $JOBS (local custom dump)" --setup "$fresh" -- \
    "pg_restore -j $JOBS -d lethe_bench_restore $BENCH_DIR/dump.fc"
  log "peer restore: aws s3 cp + pg_restore -j $JOBS"
  measure --name "restore: aws s3 cp + pg_restore -j $JOBS" --setup "$fresh; rm -f $BENCH_DIR/dl.fc" -- \
    "$AWS s3 cp $S3/dump.fc $BENCH_DIR/dl.fc && pg_restore -j $JOBS -d lethe_bench_restore $BENCH_DIR/dl.fc"
  dropdb --if-exists lethe_bench_restore
}

case ${1:-} in
  snapshot) snapshot ;;
  restore) restore ;;
  *) echo "usage: $0 snapshot | restore" >&2; exit 2 ;;
esac
