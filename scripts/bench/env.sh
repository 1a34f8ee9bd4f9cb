# shellcheck shell=bash
# Settings shared by the benchmark scripts (sourced, not run). Override any of
# them from the environment.

export BENCH_DIR=${BENCH_DIR:-/tmp/lethe-bench}          # scratch: dumps, logs, results
export BENCH_PG_VERSION=${BENCH_PG_VERSION:-15}
export BENCH_CLUSTER=${BENCH_CLUSTER:-bench}              # dedicated cluster (cluster.sh)
export PGHOST=${PGHOST:-127.0.0.1}
export PGPORT=${BENCH_PGPORT:-5433}
export PGUSER=${PGUSER:-postgres}
export BENCH_DB=${BENCH_DB:-lethe_bench}
export BENCH_SCALE=${BENCH_SCALE:-1}                      # 1 ~ 1 GB of table data
export JOBS=${BENCH_JOBS:-2}                              # N for pg_dump/pg_restore -j and lethe --jobs
export RUNS=${BENCH_RUNS:-3}
export RESULTS=${BENCH_RESULTS:-$BENCH_DIR/results.jsonl}
export PG_DATA=/var/lib/postgresql/$BENCH_PG_VERSION/$BENCH_CLUSTER
export PG_PID_FILE=$PG_DATA/postmaster.pid

# S3 (Garage, plain http on localhost). garage.sh writes $BENCH_DIR/s3.env.
export BENCH_BUCKET=${BENCH_BUCKET:-lethe-bench}
if [[ -f $BENCH_DIR/s3.env ]]; then
  # shellcheck disable=SC1091
  source "$BENCH_DIR/s3.env"
fi
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-garage}
export BENCH_S3_ENDPOINT=${BENCH_S3_ENDPOINT:-http://127.0.0.1:3900}

BENCH_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export BENCH_SCRIPTS
export REPO_ROOT=${REPO_ROOT:-$(cd "$BENCH_SCRIPTS/../.." && pwd)}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/root/.cache/lethe-target}
export LETHE=${LETHE:-$BENCH_DIR/bin/lethe}                # copied by build.sh

measure() { python3 "$BENCH_SCRIPTS/measure.py" --out "$RESULTS" --runs "$RUNS" --pg-pid-file "$PG_PID_FILE" "$@"; }
s3() { aws --endpoint-url "$BENCH_S3_ENDPOINT" s3 "$@"; }
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
