#!/usr/bin/env bash
# A single-node Garage for the benchmarks only, on its own ports (S3 3990,
# RPC 3991, admin 3993) and data dir, so it never touches the test Garage.
# Writes $BENCH_DIR/s3.env (endpoint, key, bucket) that env.sh sources.
#
#   garage.sh start | stop
set -euo pipefail
source "$(dirname "$0")/env.sh"
GARAGE=${GARAGE_BIN:-/root/.cache/lethe-tools/bin/garage}
G=$BENCH_DIR/garage
CONF=$G/garage.toml
g() { "$GARAGE" -c "$CONF" "$@"; }

start() {
  [[ -x $GARAGE ]] || { echo "garage binary not found at $GARAGE (set GARAGE_BIN)" >&2; exit 1; }
  mkdir -p "$G/meta" "$G/data"
  if [[ ! -f $CONF ]]; then
    cat > "$CONF" <<CONF
metadata_dir = "$G/meta"
data_dir = "$G/data"
db_engine = "sqlite"
metadata_fsync = false
data_fsync = false
replication_factor = 1
rpc_bind_addr = "127.0.0.1:3991"
rpc_public_addr = "127.0.0.1:3991"
rpc_secret = "$(openssl rand -hex 32)"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:3990"
root_domain = ".s3.garage.localhost"
[admin]
api_bind_addr = "127.0.0.1:3993"
CONF
  fi
  if ! { [[ -f $G/pid ]] && kill -0 "$(cat "$G/pid")" 2>/dev/null; }; then
    RUST_LOG=warn nohup "$GARAGE" -c "$CONF" server > "$G/server.log" 2>&1 &
    echo $! > "$G/pid"
  fi
  for _ in $(seq 50); do g status >/dev/null 2>&1 && break; sleep 0.2; done
  if g status 2>/dev/null | grep -q 'NO ROLE ASSIGNED'; then
    local node
    node=$(g node id -q | cut -d@ -f1)
    g layout assign -z dc1 -c 20G "$node" >/dev/null
    g layout apply --version 1 >/dev/null
  fi
  if [[ ! -f $BENCH_DIR/s3.env ]]; then
    local out id secret
    out=$(g key create lethe-bench-key)
    id=$(grep -oE 'GK[0-9a-f]+' <<<"$out" | head -1)
    secret=$(awk -F': *' '/Secret key/ {print $2}' <<<"$out")
    g bucket create "$BENCH_BUCKET" >/dev/null
    g bucket allow --read --write --owner "$BENCH_BUCKET" --key lethe-bench-key >/dev/null
    cat > "$BENCH_DIR/s3.env" <<ENV
export AWS_ACCESS_KEY_ID=$id
export AWS_SECRET_ACCESS_KEY=$secret
export AWS_DEFAULT_REGION=garage
export BENCH_S3_ENDPOINT=http://127.0.0.1:3990
ENV
    chmod 600 "$BENCH_DIR/s3.env"
  fi
  log "garage up: http://127.0.0.1:3990 bucket $BENCH_BUCKET"
}

stop() {
  if [[ -f $G/pid ]]; then
    kill "$(cat "$G/pid")" 2>/dev/null || true
    rm -f "$G/pid"
  fi
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start | stop" >&2; exit 2 ;;
esac
