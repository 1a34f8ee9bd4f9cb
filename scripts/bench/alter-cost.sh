#!/usr/bin/env bash
# What lethe's DDL capture adds to one ALTER TABLE … ADD COLUMN on the
# source: on a schema of N tables (each with a primary key, a foreign key to
# users, an index and six columns), the ALTER's time without the capture's
# event triggers and with them, ROUNDS each, in a transaction rolled back
# (so each round adds the same column). alter-cost.sh [N (2000)] [ROUNDS (5)].
# Needs a cluster with wal_level = logical (the triggers do nothing
# elsewhere): $PGHOST:$PGPORT, database lethe_alter_bench, dropped at the
# end. The install is src/pg/ddl_capture.sql plus lethe.schema_digest(), as
# pg::ddl_capture::install runs them.
set -euo pipefail
N=${1:-2000} ROUNDS=${2:-5}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$HERE/../../src/pg
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5499} PGUSER=${PGUSER:-postgres}
DB=lethe_alter_bench
trap '[ -n "${KEEP:-}" ] || dropdb --if-exists "$DB"' EXIT
dropdb --if-exists "$DB"
createdb "$DB"
# shellcheck source=scripts/bench/many-tables.sh
. "$HERE/many-tables.sh"
many_tables "$DB" "$N"
alter() {
  for ((r = 1; r <= ROUNDS; r++)); do
    psql -XAt -d "$DB" -c '\timing on' -c "BEGIN" -c "ALTER TABLE t1 ADD COLUMN x int DEFAULT 5" -c "ROLLBACK" | grep '^Time' | sed -n 2p
  done
}
echo "without the capture's triggers:"
alter
digest=$(sed -e 's/;[[:space:]]*$//' "$SRC/schema_digest.sql")
{
  echo "BEGIN; CREATE SCHEMA IF NOT EXISTS lethe;"
  echo "CREATE OR REPLACE FUNCTION lethe.schema_digest() RETURNS text LANGUAGE sql STABLE SET search_path = pg_catalog SET extra_float_digits = 3 SET DateStyle = ISO SET IntervalStyle = postgres AS \$lethe_digest\$ SELECT d FROM ($digest) AS q(d, t, x) \$lethe_digest\$;"
  cat "$SRC/ddl_capture.sql"
  echo "; COMMIT;"
} | psql -Xq -v ON_ERROR_STOP=1 -d "$DB" >/dev/null
echo "with them:"
alter
