#!/usr/bin/env bash
# The whole benchmark, side by side in one run: lethe and the peers on the same
# database, the same Garage bucket, the same machine. Run as root from the repo:
#
#   scripts/bench/run.sh                # everything; results in $BENCH_DIR
#   BENCH_SKIP_GEN=1 scripts/bench/run.sh    # reuse the generated database
#   BENCH_SKIP_BUILD=1 ...              # reuse the binaries in $BENCH_DIR/bin
#
# Settings (env.sh): BENCH_SCALE (1 ~ 1 GB), BENCH_JOBS (N, default 2),
# BENCH_RUNS (default 3), BENCH_DIR (default /tmp/lethe-bench).
# Needs: PostgreSQL 15 (Debian packages), pgbackrest, stunnel4, awscli,
# python3, zstd, the Garage binary, and `cargo build --release` of lethe.
set -euo pipefail
source "$(dirname "$0")/env.sh"
mkdir -p "$BENCH_DIR"
: > "$RESULTS"

[[ ${BENCH_SKIP_BUILD:-0} == 1 ]] || "$BENCH_SCRIPTS/build.sh"
"$BENCH_SCRIPTS/cluster.sh"
if [[ ${BENCH_SKIP_GEN:-0} != 1 ]]; then
  "$BENCH_SCRIPTS/gendb.sh" "$BENCH_DB" "$BENCH_SCALE"
fi
"$BENCH_SCRIPTS/garage.sh" start
source "$BENCH_DIR/s3.env"
[[ ${BENCH_SKIP_PGBACKREST:-0} == 1 ]] || "$BENCH_SCRIPTS/pgbackrest.sh" setup
"$BENCH_SCRIPTS/lethe.sh" setup

{
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $(tr '\n' ' ' < "$BENCH_DIR/bin/commit")"
  echo "cpu: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "memory: $(free -g | awk '/Mem:/ {print $2}') GiB"
  echo "kernel: $(uname -r)"
  echo "postgres: $(psql -Atc 'show server_version' postgres)"
  echo "pg_dump: $(pg_dump --version)"
  echo "pgbackrest: $(pgbackrest version)"
  echo "aws: $(aws --version 2>&1)"
  echo "garage: $(/root/.cache/lethe-tools/bin/garage --version 2>&1 | head -1)"
  echo "table data: $(psql -Atc "select pg_size_pretty(sum(pg_table_size(relid))) from pg_stat_user_tables where schemaname='public'" "$BENCH_DB")"
  echo "with indexes: $(psql -Atc "select pg_size_pretty(sum(pg_total_relation_size(relid))) from pg_stat_user_tables where schemaname='public'" "$BENCH_DB")"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$BENCH_DIR/machine.txt"

# COPY text of every table: its size and zstd -3 ratio, and the filter bench's input.
rm -rf "$BENCH_DIR/copy"
mkdir -p "$BENCH_DIR/copy"
for t in users sessions orders order_items events comments payments; do
  psql -c "copy $t to stdout" "$BENCH_DB" > "$BENCH_DIR/copy/$t.copy"
done
raw=$(cat "$BENCH_DIR"/copy/*.copy | wc -c)
z=$(cat "$BENCH_DIR"/copy/*.copy | zstd -3 -T1 -c | wc -c)
echo "copy text: $raw bytes, zstd -3: $z bytes, ratio $(python3 -c "print(round($raw/$z, 2))")" >> "$BENCH_DIR/machine.txt"

# Snapshots: peers, then lethe, against the same database.
"$BENCH_SCRIPTS/peers.sh" snapshot
"$BENCH_SCRIPTS/lethe.sh" snapshot
# Restores: peers (pgBackRest's turns WAL archiving off after it), then lethe.
"$BENCH_SCRIPTS/peers.sh" restore
"$BENCH_SCRIPTS/lethe.sh" erasure
"$BENCH_SCRIPTS/lethe.sh" restore
# Constant memory: the same on a database 10x smaller.
"$BENCH_SCRIPTS/lethe.sh" small
# Filter alone and the erasure list, in-process.
(cd "$BENCH_DIR" && LETHE_BENCH_COPY_DIR=$BENCH_DIR/copy "$BENCH_DIR/bin/filter-bench" --bench --noplot) \
  2>&1 | tee "$BENCH_DIR/filter-bench.txt"
(cd "$BENCH_DIR" && "$BENCH_DIR/bin/erasure-bench" --bench) 2>&1 | tee "$BENCH_DIR/erasure-bench.txt"

python3 "$BENCH_SCRIPTS/report.py" "$RESULTS" > "$BENCH_DIR/tables.md"
cat "$BENCH_DIR/machine.txt" "$BENCH_DIR/tables.md"
