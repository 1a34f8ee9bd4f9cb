#!/usr/bin/env bash
# The zero-setup demo: local PostgreSQL, a local directory as storage.
# Creates a small shop database, snapshots it (encrypted), erases two users,
# restores the snapshot into a new database through the erasure filter, and
# shows that the erased users and everything that referenced them are gone.
#
# Where a PostgreSQL with wal_level = logical answers (by default the test
# cluster of scripts/pg-logical-test.sh on 127.0.0.1:5499), it then shows
# continuous capture and a point-in-time restore: a delete that went wrong
# is undone by restoring the second before it, minus the erased users.
#
# Usage: scripts/demo.sh            (re-runnable; state lives in ./.lethe-demo)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lethe-target}"
PG="${LETHE_DEMO_PG:-postgres://postgres@127.0.0.1:5432}"
DEMO="$PWD/.lethe-demo"
SRC=lethe_demo
DST=lethe_demo_restored

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

command -v psql >/dev/null || { echo "psql not found: apt-get install postgresql-client"; exit 2; }
psql -X -q -d "$PG/postgres" -c 'select 1' >/dev/null || { echo "PostgreSQL is not answering at $PG"; exit 2; }

say "building lethe"
cargo build --quiet
LETHE="$CARGO_TARGET_DIR/debug/lethe"

say "creating the demo database $SRC"
rm -rf "$DEMO"; mkdir -p "$DEMO"
psql -X -q -d "$PG/postgres" -c "DROP DATABASE IF EXISTS $SRC WITH (FORCE)" -c "DROP DATABASE IF EXISTS $DST WITH (FORCE)" -c "CREATE DATABASE $SRC"
psql -X -q -v ON_ERROR_STOP=1 -d "$PG/$SRC" <<'SQL'
CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL, name text, invited_by bigint REFERENCES users(id) ON DELETE SET NULL);
CREATE TABLE orders (id bigserial PRIMARY KEY, user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE, total numeric(10,2), placed_at timestamptz DEFAULT now());
CREATE TABLE order_items (order_id bigint REFERENCES orders(id) ON DELETE CASCADE, line int, sku text, qty int, PRIMARY KEY (order_id, line));
CREATE TABLE comments (id bigserial PRIMARY KEY, author_id bigint REFERENCES users(id) ON DELETE SET NULL, body text);
INSERT INTO users SELECT i, 'user' || i || '@example.eu', 'User ' || i, CASE WHEN i > 1 THEN (i - 1) END FROM generate_series(1, 1000) i;
INSERT INTO orders (user_id, total) SELECT 1 + (i % 1000), (i % 97) + 0.99 FROM generate_series(1, 5000) i;
INSERT INTO order_items SELECT o.id, l, 'SKU-' || (o.id * l % 313), 1 + l FROM orders o, generate_series(1, 3) l;
INSERT INTO comments (author_id, body) SELECT 1 + (i % 1000), E'a comment\twith a tab and a newline\n#' || i FROM generate_series(1, 3000) i;
SQL

say "writing an age key pair and the config"
PUB=$("$LETHE" keygen --output "$DEMO/restore.key")
cat > "$DEMO/lethe.toml" <<TOML
[source]
url = "$PG/$SRC"
jobs = 2
[storage]
url = "file://$DEMO/repo"
[encryption]
recipients = ["$PUB"]
identity_file = "$DEMO/restore.key"
[erasure]
path = "$DEMO/erasure"
subject_type = "bigint"
subjects = [ { table = "public.users", column = "id" } ]
[api]
listen = "unix:$DEMO/api.sock"
[log]
format = "text"
TOML
export LETHE_CONFIG="$DEMO/lethe.toml"
"$LETHE" config check
"$LETHE" init

say "taking a snapshot"
"$LETHE" snapshot
"$LETHE" list
"$LETHE" verify latest --deep

say "erasing users 3 and 7 (GDPR Art. 17 requests)"
"$LETHE" erase add 3 7 --reference DEMO-TICKET-1
"$LETHE" erase list

say "restoring the snapshot into $DST through the erasure filter"
psql -X -q -d "$PG/postgres" -c "CREATE DATABASE $DST"
"$LETHE" restore latest --target "$PG/$DST" --report "$DEMO/report.json"

say "what came back"
q() { psql -X -q -A -t -d "$PG/$1" -c "$2"; }
for t in users orders order_items comments; do
  printf '%-12s source %6s   restored %6s\n' "$t" "$(q $SRC "select count(*) from $t")" "$(q $DST "select count(*) from $t")"
done
printf 'erased users present in the restore: %s (expected 0)\n' "$(q $DST 'select count(*) from users where id in (3,7)')"
printf 'orders of erased users in the restore: %s (expected 0)\n' "$(q $DST 'select count(*) from orders where user_id in (3,7)')"
printf 'comments kept with author set to NULL: %s\n' "$(q $DST 'select count(*) from comments where author_id is null')"
echo "report: $DEMO/report.json"

# ---- point-in-time restore (needs wal_level = logical) ----------------------
LPG="${LETHE_DEMO_LOGICAL_PG:-postgres://postgres@127.0.0.1:5499}"
if [[ $(psql -X -q -A -t -d "$LPG/postgres" -c 'show wal_level' 2>/dev/null) != logical ]]; then
  say "point-in-time restore: skipped"
  echo "no PostgreSQL with wal_level = logical at $LPG; run scripts/pg-logical-test.sh (a second cluster on port 5499) and the demo again to see it"
  exit 0
fi
PSRC=lethe_demo_pitr
PDST=lethe_demo_pitr_restored
say "continuous capture of $PSRC on $LPG"
psql -X -q -d "$LPG/postgres" -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'lethe_demo' AND NOT active" >/dev/null
psql -X -q -d "$LPG/postgres" -c "DROP DATABASE IF EXISTS $PSRC WITH (FORCE)" -c "DROP DATABASE IF EXISTS $PDST WITH (FORCE)" -c "CREATE DATABASE $PSRC"
pg_dump --no-owner -d "$PG/$SRC" | psql -X -q -v ON_ERROR_STOP=1 -d "$LPG/$PSRC" >/dev/null
sed -e "s|$PG/$SRC|$LPG/$PSRC|" -e "s|$DEMO/repo|$DEMO/repo-pitr|" -e "s|$DEMO/api.sock|$DEMO/api-pitr.sock|" \
    -e 's|format = "text"|format = "json"|' "$DEMO/lethe.toml" > "$DEMO/pitr.toml"
printf '[continuous]\nenabled = true\nflush_every = "1s"\nslot = "lethe_demo"\npublication = "lethe_demo"\n[schedule]\nevery = "24h"\n' >> "$DEMO/pitr.toml"
export LETHE_CONFIG="$DEMO/pitr.toml"
"$LETHE" daemon 2> "$DEMO/daemon.log" &
DAEMON=$!
trap 'kill $DAEMON 2>/dev/null || true' EXIT
until grep -q '"event":"continuous.started"' "$DEMO/daemon.log"; do
  kill -0 $DAEMON 2>/dev/null || { cat "$DEMO/daemon.log"; exit 1; }
  sleep 0.5
done
echo "base taken; every commit is in storage within flush_every (1 s)"
psql -X -q -d "$LPG/$PSRC" -c "INSERT INTO users VALUES (1001, 'new@example.eu', 'New', 7); INSERT INTO orders (user_id, total) VALUES (1001, 12.50), (42, 99.00)"
sleep 1.2
ql() { psql -X -q -A -t -d "$LPG/$1" -c "$2"; }
AT=$(ql $PSRC "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
BEFORE=$(ql $PSRC 'select count(*) from orders')
sleep 1.2
say "at $AT all is well ($BEFORE orders); then a bad delete"
psql -X -q -d "$LPG/$PSRC" -c "DELETE FROM orders WHERE total < 50"
sleep 2.5
kill $DAEMON; wait $DAEMON 2>/dev/null || true; trap - EXIT
"$LETHE" list
say "erasing user 1001 (created after the base; 3 and 7 are still erased); restoring to $AT"
"$LETHE" erase add 1001 --reference DEMO-TICKET-2
psql -X -q -d "$LPG/postgres" -c "CREATE DATABASE $PDST"
"$LETHE" restore --at "$AT" --target "$LPG/$PDST"
printf 'orders now %s, at %s %s, restored %s (the point minus the erased users'"'"' orders)\n' \
  "$(ql $PSRC 'select count(*) from orders')" "$AT" "$BEFORE" "$(ql $PDST 'select count(*) from orders')"
printf 'erased users present in the restore: %s (expected 0)\n' "$(ql $PDST 'select count(*) from users where id in (3, 7, 1001)')"
"$LETHE" continuous disable
