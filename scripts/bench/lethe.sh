#!/usr/bin/env bash
# lethe's side of the benchmarks, on the same database and Garage bucket as
# the peers (peers.sh). Needs a release build: cargo build --release.
#
#   lethe.sh setup                   config, age key, repository marker
#   lethe.sh snapshot                lethe snapshot (jobs N)
#   lethe.sh erasure                 import the 1M-id list (1% hit) and time it
#   lethe.sh restore                 lethe restore --jobs N through that list
#   lethe.sh small                   snapshot + restore of a 10x smaller database
#                                    (peak RSS must not grow with size)
set -euo pipefail
source "$(dirname "$0")/env.sh"
L=$BENCH_DIR/lethe
CFG=$L/lethe.toml
USERS=$(( 500000 * ${BENCH_SCALE%%.*} ))
lethe() { "$LETHE" --config "$CFG" "$@"; }

config() {  # config FILE DB PREFIX
  cat > "$1" <<CONF
[source]
url = "postgres://$PGUSER@$PGHOST:$PGPORT/$2"
jobs = $JOBS

[storage]
url = "s3://$BENCH_BUCKET/$3"
endpoint = "$BENCH_S3_ENDPOINT"
region = "$AWS_DEFAULT_REGION"
allowed_regions = ["$AWS_DEFAULT_REGION"]
path_style = true

[encryption]
recipients = ["$(cat "$L/recipient.txt")"]
identity_file = "$L/restore.key"

[erasure]
path = "$L/erasure-$3"
subject_type = "bigint"
subjects = [ { table = "public.users", column = "id" } ]

[api]
listen = "unix:$L/api-$3.sock"

[log]
format = "json"
level = "info"
CONF
}

setup() {
  [[ -x $LETHE ]] || { echo "no release build at $LETHE: cargo build --release" >&2; exit 1; }
  mkdir -p "$L"
  if [[ ! -f $L/restore.key ]]; then
    "$LETHE" keygen --output "$L/restore.key" | grep -oE 'age1[0-9a-z]+' > "$L/recipient.txt"
  fi
  config "$CFG" "$BENCH_DB" lethe
  config "$L/small.toml" lethe_bench_small lethe-small
  # `lethe init` writes the repository marker (and the lifecycle rule).
  lethe init || log "lethe init failed or is missing: continuing (snapshot may write the marker)"
  "$LETHE" --config "$L/small.toml" init || true
  [[ -f $L/ids_1m.txt ]] || python3 "$BENCH_SCRIPTS/ids.py" "$L/ids_1m.txt" 1000000 10000 "$USERS"
}

snapshot() {
  log "lethe snapshot"
  measure --name "snapshot: lethe snapshot (jobs $JOBS, zstd 3, age)" -- "$LETHE --config $CFG snapshot"
}

erasure() {
  log "lethe erase import (1M ids)"
  measure --name "erasure: lethe erase import, 1,000,000 ids" --setup "rm -rf $L/erasure-lethe" -- \
    "$LETHE --config $CFG erase import $L/ids_1m.txt"
}

restore() {
  log "lethe restore"
  # The journal in storage also holds earlier runs' imports: merge it so the
  # list is provably current (a restore refuses a stale list).
  lethe erase sync
  local fresh="dropdb --if-exists lethe_bench_restore && createdb lethe_bench_restore"
  measure --name "restore: lethe restore --jobs $JOBS (1M-id list, 1% hit)" --setup "$fresh" -- \
    "$LETHE --config $CFG restore latest --target postgres://$PGUSER@$PGHOST:$PGPORT/lethe_bench_restore --jobs $JOBS --report $L/restore-report.json"
  psql -Atc "select 'users', count(*) from users union all select 'sessions', count(*) from sessions union all select 'orders', count(*) from orders" lethe_bench_restore > "$L/restore-counts.txt"
  dropdb --if-exists lethe_bench_restore
}

small() {
  local small_scale=0.1
  psql -lqt | cut -d'|' -f1 | grep -qw lethe_bench_small || "$BENCH_SCRIPTS/gendb.sh" lethe_bench_small $small_scale
  python3 "$BENCH_SCRIPTS/ids.py" "$L/ids_small.txt" 1000000 1000 50000
  "$LETHE" --config "$L/small.toml" erase import "$L/ids_small.txt" >/dev/null
  "$LETHE" --config "$L/small.toml" erase sync >/dev/null
  measure --name "memory: lethe snapshot, scale $small_scale (~100 MB)" -- "$LETHE --config $L/small.toml snapshot"
  local fresh="dropdb --if-exists lethe_bench_restore && createdb lethe_bench_restore"
  measure --name "memory: lethe restore, scale $small_scale (~100 MB)" --setup "$fresh" -- \
    "$LETHE --config $L/small.toml restore latest --target postgres://$PGUSER@$PGHOST:$PGPORT/lethe_bench_restore --jobs $JOBS"
  dropdb --if-exists lethe_bench_restore
  dropdb --if-exists lethe_bench_small
}

case ${1:-} in
  setup | snapshot | erasure | restore | small) "$1" ;;
  *) echo "usage: $0 setup | snapshot | erasure | restore | small" >&2; exit 2 ;;
esac
