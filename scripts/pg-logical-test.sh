#!/usr/bin/env bash
# Creates (once) and starts a PostgreSQL cluster with wal_level = logical for
# the tests of continuous capture, beside the machine's main cluster (which
# runs with wal_level = replica and is not touched), with Debian's
# pg_createcluster/pg_ctlcluster, and prints the URL the tests use:
#
#   eval "$(scripts/pg-logical-test.sh)"      # create/start (or reuse) and export
#   scripts/pg-logical-test.sh stop           # stop the cluster (kept on disk)
#   scripts/pg-logical-test.sh status         # exit 0 if it answers
#
# Only the export line goes to stdout (pg_ctlcluster's own messages, such as
# "Removed stale pid file." on a fresh machine, are sent to stderr).
#
# max_slot_wal_keep_size is 4GB: above the WAL of the benchmark's 1 GB
# transaction (PostgreSQL keeps all of a transaction's WAL for a slot until
# it commits), and still a limit, so a slot left behind cannot fill the disk.
#
# Idempotent: when the cluster is up with these settings, a run changes
# nothing. Settings live in conf.d/lethe.conf; a changed file restarts it.
# Local TCP connections (127.0.0.1) by `root` and `postgres` are trusted,
# for both ordinary and replication connections; other roles need a password.
#
# Environment:
#   LETHE_PG_LOGICAL_VERSION  major version (default: the newest installed)
#   LETHE_PG_LOGICAL_PORT     port (default 5499)
#   LETHE_PG_LOGICAL_NAME     cluster name (default lethe_logical)
#   LETHE_PG_LOGICAL_KEEP     max_slot_wal_keep_size (default 4GB)
#   LETHE_PG_LOGICAL_VAR      the variable the export line sets
#                             (default LETHE_TEST_PG_LOGICAL)
#
# The slot-invalidation test runs a second, small cluster with it:
#   LETHE_PG_LOGICAL_NAME=lethe_tiny_keep LETHE_PG_LOGICAL_PORT=5498 \
#   LETHE_PG_LOGICAL_KEEP=48MB LETHE_PG_LOGICAL_VAR=LETHE_TEST_PG_TINY_KEEP \
#   scripts/pg-logical-test.sh
set -euo pipefail

NAME="${LETHE_PG_LOGICAL_NAME:-lethe_logical}"
PORT="${LETHE_PG_LOGICAL_PORT:-5499}"
KEEP="${LETHE_PG_LOGICAL_KEEP:-4GB}"
VAR="${LETHE_PG_LOGICAL_VAR:-LETHE_TEST_PG_LOGICAL}"
VERSION="${LETHE_PG_LOGICAL_VERSION:-$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n1)}"
URL="postgres://postgres@127.0.0.1:$PORT/postgres"

die() { echo "pg-logical-test.sh: $*" >&2; exit 1; }
say() { echo "pg-logical-test.sh: $*" >&2; }
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
answers() { pg_isready -q -h 127.0.0.1 -p "$PORT"; }
exists() { [[ -f "/etc/postgresql/$VERSION/$NAME/postgresql.conf" ]]; }
online() { pg_lsclusters -h "$VERSION" "$NAME" 2>/dev/null | awk '{print $4}' | grep -q '^online'; }

[[ "$NAME" =~ ^[a-z_][a-z0-9_]*$ ]] || die "LETHE_PG_LOGICAL_NAME=$NAME: use lower-case letters, digits and _"
[[ "$PORT" =~ ^[0-9]+$ ]] || die "LETHE_PG_LOGICAL_PORT=$PORT: not a port number"
[[ "$KEEP" =~ ^[0-9]+(kB|MB|GB|TB)$ ]] || die "LETHE_PG_LOGICAL_KEEP=$KEEP: a size such as 48MB or 4GB"
[[ "$VAR" =~ ^[A-Z_][A-Z0-9_]*$ ]] || die "LETHE_PG_LOGICAL_VAR=$VAR: an upper-case variable name"

[[ -n "$VERSION" ]] || die "no PostgreSQL server installed (/usr/lib/postgresql is empty); apt-get install postgresql"
command -v pg_createcluster >/dev/null || die "pg_createcluster not found; apt-get install postgresql-common"

case "${1:-start}" in
status)
    online && answers
    exit
    ;;
stop)
    if exists && online; then
        as_root pg_ctlcluster --skip-systemctl-redirect "$VERSION" "$NAME" stop >&2
        say "stopped $VERSION/$NAME"
    fi
    exit 0
    ;;
start) ;;
*) die "unknown argument ${1}; use start (default), stop or status" ;;
esac

CONF_DIR="/etc/postgresql/$VERSION/$NAME"

if ! exists; then
    say "creating cluster $VERSION/$NAME on port $PORT"
    as_root pg_createcluster "$VERSION" "$NAME" -p "$PORT" --start-conf=manual -- \
        --auth-local=peer --auth-host=scram-sha-256 >/dev/null
fi

# Settings: written to conf.d (included by Debian's postgresql.conf); only a
# change restarts the server.
settings="# Written by scripts/pg-logical-test.sh: a cluster for continuous-capture tests.
port = $PORT
listen_addresses = '127.0.0.1'
wal_level = logical
max_replication_slots = 16
max_wal_senders = 16
max_slot_wal_keep_size = $KEEP
"
changed=0
if [[ "$(as_root cat "$CONF_DIR/conf.d/lethe.conf" 2>/dev/null)" != "${settings%$'\n'}" ]]; then
    printf '%s' "$settings" | as_root tee "$CONF_DIR/conf.d/lethe.conf" >/dev/null
    changed=1
fi

# Trust for root and postgres over local TCP (first lines win in pg_hba.conf).
hba="$CONF_DIR/pg_hba.conf"
for line in "host replication postgres 127.0.0.1/32 trust" \
    "host replication root 127.0.0.1/32 trust" \
    "host all postgres 127.0.0.1/32 trust" \
    "host all root 127.0.0.1/32 trust"; do
    if ! as_root grep -qxF "$line" "$hba"; then
        as_root sed -i "1i $line" "$hba"
        changed=1
    fi
done

if online; then
    if ((changed)); then
        say "settings changed: restarting $VERSION/$NAME"
        as_root pg_ctlcluster --skip-systemctl-redirect "$VERSION" "$NAME" restart >&2
    fi
else
    say "starting $VERSION/$NAME on port $PORT"
    as_root pg_ctlcluster --skip-systemctl-redirect "$VERSION" "$NAME" start >&2
fi

for _ in $(seq 1 100); do answers && break; sleep 0.2; done
answers || die "cluster $VERSION/$NAME does not answer on 127.0.0.1:$PORT; see /var/log/postgresql/postgresql-$VERSION-$NAME.log"

level="$(psql -X -A -t -d "$URL" -c 'SHOW wal_level' 2>&1)" || die "cannot connect as postgres to $URL: $level"
[[ "$level" == logical ]] || die "wal_level is $level on $URL, expected logical"

echo "export $VAR=$URL"
