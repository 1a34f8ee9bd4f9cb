# Sourced by the schema benchmarks: many_tables DB N creates users and N
# tables t1…tN in DB, each with a primary key, a foreign key to users, an
# index and six columns, 500 to a transaction, and prints how many there are.
many_tables() {
  local db=$1 n=$2 s e
  psql -Xq -d "$db" -c "CREATE TABLE users (id bigint PRIMARY KEY)"
  for ((s = 0; s < n; s += 500)); do
    e=$((s + 500 < n ? s + 500 : n))
    psql -Xq -d "$db" -c "DO \$\$ BEGIN FOR i IN $((s + 1))..$e LOOP
      EXECUTE format('CREATE TABLE t%s (id bigint PRIMARY KEY, user_id bigint REFERENCES users(id), a text, b int, c timestamptz DEFAULT now(), d numeric(10,2))', i);
      EXECUTE format('CREATE INDEX ON t%s (b)', i); END LOOP; END \$\$"
  done
  echo "tables: $(psql -XAt -d "$db" -c "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace")"
}
