#!/usr/bin/env bash
# Create and start the dedicated PostgreSQL cluster the benchmarks run on
# (Debian's pg_createcluster; port 5433), so pgBackRest can archive WAL and
# restore a whole cluster without touching the shared one on 5432.
# Idempotent. Run as root.
set -euo pipefail
source "$(dirname "$0")/env.sh"
v=$BENCH_PG_VERSION c=$BENCH_CLUSTER
if ! pg_lsclusters -h | awk '{print $1"/"$2}' | grep -qx "$v/$c"; then
  pg_createcluster "$v" "$c" -p "$PGPORT" -- -A trust
  cat >> "/etc/postgresql/$v/$c/postgresql.conf" <<CONF
# lethe benchmarks (scripts/bench/cluster.sh)
listen_addresses = '127.0.0.1'
max_wal_size = 4GB
archive_mode = on
archive_command = '/bin/true'  # pgbackrest.sh setup switches this to archive-push
CONF
fi
pg_ctlcluster "$v" "$c" start 2>/dev/null || true
pg_isready -q -t 30
log "cluster $v/$c up on port $PGPORT"
