#!/usr/bin/env bash
# pgBackRest as a peer, against the same Garage bucket.
#
# pgBackRest (2.45) speaks S3 only over TLS: there is no option for plain
# http, and repo1-storage-verify-tls=n only skips certificate checks. Garage
# here listens on plain http, so `setup` puts stunnel (Debian stunnel4) with a
# self-signed certificate in front of it: TLS on 127.0.0.1:$TLS_PORT -> Garage.
# That adds one TLS hop that lethe and the aws CLI do not pay (they talk http).
#
#   pgbackrest.sh setup                 cert, stunnel, config, stanza, archive_command
#   pgbackrest.sh backup [zst|gz]       one full backup (gz is pgBackRest's default)
#   pgbackrest.sh restore DIR           restore the latest backup into DIR, start a
#                                       postmaster on $RESTORE_PORT, wait until it has
#                                       recovered and promoted (left running)
#   pgbackrest.sh stop DIR              stop that postmaster
#   pgbackrest.sh archive on|off        WAL archiving of the bench cluster
set -euo pipefail
source "$(dirname "$0")/env.sh"
TLS_PORT=${BENCH_TLS_PORT:-3943}
RESTORE_PORT=${BENCH_RESTORE_PORT:-5434}
PGBR_DIR=$BENCH_DIR/pgbackrest
CONF=$PGBR_DIR/pgbackrest.conf
BIN=/usr/lib/postgresql/$BENCH_PG_VERSION/bin
pgbr() { runuser -u postgres -- pgbackrest --config="$CONF" --stanza=bench "$@"; }

setup() {
  mkdir -p "$PGBR_DIR"/{log,lock,spool}
  chown -R postgres: "$PGBR_DIR"
  chmod 755 "$BENCH_DIR"
  if [[ ! -f $PGBR_DIR/tls.pem ]]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=127.0.0.1 \
      -addext subjectAltName=IP:127.0.0.1 -keyout "$PGBR_DIR/tls.key" -out "$PGBR_DIR/tls.crt" 2>/dev/null
    cat "$PGBR_DIR/tls.crt" "$PGBR_DIR/tls.key" > "$PGBR_DIR/tls.pem"
    chmod 600 "$PGBR_DIR/tls.pem" "$PGBR_DIR/tls.key"
  fi
  local hostport=${BENCH_S3_ENDPOINT#http://}
  cat > "$PGBR_DIR/stunnel.conf" <<CONF
foreground = no
pid = $PGBR_DIR/stunnel.pid
output = $PGBR_DIR/stunnel.log
[s3]
accept = 127.0.0.1:$TLS_PORT
connect = $hostport
cert = $PGBR_DIR/tls.pem
CONF
  if ! { [[ -f $PGBR_DIR/stunnel.pid ]] && kill -0 "$(cat "$PGBR_DIR/stunnel.pid")" 2>/dev/null; }; then
    stunnel4 "$PGBR_DIR/stunnel.conf"
  fi
  cat > "$CONF" <<CONF
[global]
repo1-type=s3
repo1-s3-endpoint=127.0.0.1
repo1-storage-port=$TLS_PORT
repo1-storage-verify-tls=n
repo1-s3-uri-style=path
repo1-s3-bucket=$BENCH_BUCKET
repo1-s3-region=$AWS_DEFAULT_REGION
repo1-s3-key=$AWS_ACCESS_KEY_ID
repo1-s3-key-secret=$AWS_SECRET_ACCESS_KEY
repo1-path=/pgbackrest
repo1-retention-full=1
process-max=$JOBS
start-fast=y
log-path=$PGBR_DIR/log
lock-path=$PGBR_DIR/lock
spool-path=$PGBR_DIR/spool
log-level-console=warn
log-level-file=info

[bench]
pg1-path=$PG_DATA
pg1-port=$PGPORT
pg1-socket-path=/var/run/postgresql
CONF
  chown postgres: "$CONF"
  chmod 600 "$CONF"
  local conf=/etc/postgresql/$BENCH_PG_VERSION/$BENCH_CLUSTER/postgresql.conf
  archive on
  pgbr stanza-create
  pgbr check
  log "pgBackRest ready (stanza bench, repo s3 via TLS :$TLS_PORT)"
}

# WAL archiving on the bench cluster: on for pgBackRest's backups; off while
# pg_restore and lethe restore load it, so the archiver's work (compressing and
# uploading every WAL segment the load writes) does not slow both down.
archive() {
  local conf=/etc/postgresql/$BENCH_PG_VERSION/$BENCH_CLUSTER/postgresql.conf cmd
  case $1 in
    on) cmd="pgbackrest --config=$CONF --stanza=bench archive-push %p" ;;
    off) cmd=/bin/true ;;
  esac
  sed -i "s|^archive_command = .*|archive_command = '$cmd'|" "$conf"
  pg_ctlcluster "$BENCH_PG_VERSION" "$BENCH_CLUSTER" reload
  sleep 0.5
}

backup() {
  local ct=${1:-gz}
  pgbr backup --type=full --compress-type="$ct"
}

restore() {
  local dir=$1
  rm -rf "$dir"
  mkdir -p "$dir"
  chown postgres: "$dir"
  chmod 700 "$dir"
  pgbr restore --pg1-path="$dir" --type=immediate --target-action=promote --process-max="$JOBS"
  # Debian keeps postgresql.conf/pg_hba.conf in /etc: the restored data dir has none.
  cat > "$dir/postgresql.conf" <<CONF
port = $RESTORE_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
archive_mode = off
max_wal_size = 4GB
CONF
  echo "local all all trust" > "$dir/pg_hba.conf"
  echo "host all all 127.0.0.1/32 trust" >> "$dir/pg_hba.conf"
  chown postgres: "$dir/postgresql.conf" "$dir/pg_hba.conf"
  runuser -u postgres -- "$BIN/pg_ctl" -D "$dir" -l "$dir/startup.log" -w -t 600 start >/dev/null
  until [[ $(psql -h 127.0.0.1 -p "$RESTORE_PORT" -Atc 'select pg_is_in_recovery()' postgres 2>/dev/null) == f ]]; do
    sleep 0.2
  done
}

stop() {
  local dir=$1
  if [[ -f $dir/postmaster.pid ]]; then
    runuser -u postgres -- "$BIN/pg_ctl" -D "$dir" -m immediate -w stop >/dev/null || true
  fi
}

case ${1:-} in
  setup) setup ;;
  backup) backup "${2:-gz}" ;;
  restore) stop "${2:?restore DIR}"; restore "$2" ;;
  stop) stop "${2:?stop DIR}" ;;
  archive) archive "${2:?archive on|off}" ;;
  *) echo "usage: $0 setup | backup [gz|zst] | restore DIR | stop DIR | archive on|off" >&2; exit 2 ;;
esac
