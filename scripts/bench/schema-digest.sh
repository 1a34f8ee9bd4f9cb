#!/usr/bin/env bash
# How long the capture's schema digest read (src/pg/schema_digest.sql) takes
# on a schema of N tables, each with a primary key, a foreign key to users,
# an index and six columns: schema-digest.sh [N (2000)] [ROUNDS (5)].
# Uses database lethe_digest_bench on $PGHOST:$PGPORT (127.0.0.1:5432),
# dropped at the end. Prints each read's time (psql \timing).
set -euo pipefail
N=${1:-2000} ROUNDS=${2:-5}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
DB=lethe_digest_bench
trap 'dropdb --if-exists "$DB"' EXIT
dropdb --if-exists "$DB"
createdb "$DB"
# shellcheck source=scripts/bench/many-tables.sh
. "$HERE/many-tables.sh"
many_tables "$DB" "$N"
for ((r = 1; r <= ROUNDS; r++)); do
  psql -XAt -d "$DB" -c "SET search_path = pg_catalog" -c '\timing on' -f "$HERE/../../src/pg/schema_digest.sql" | grep '^Time'
done
