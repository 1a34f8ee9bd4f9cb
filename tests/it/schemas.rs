//! The erasure filter on real-world schema shapes, with PostgreSQL itself as
//! ground truth. Each case builds a source database, takes a snapshot,
//! erases a few subjects and restores twice (into an empty database, and as
//! a SQL file loaded with psql). The truth is a copy of the source in which
//! every RESTRICT / NO ACTION foreign key is turned into CASCADE (lethe drops
//! such children too) and the erased subjects are deleted from each
//! configured root by SQL, compared with the column's own type (citext,
//! char, numeric and domains compare as PostgreSQL compares them). Every
//! table (and populated materialized view) must then hold the same rows in
//! both restores as in the truth, and no erased id may appear in a restored
//! database more often than in the truth.
//!
//! The shapes: monthly partitions with a key between two partitioned
//! tables, a root that is itself partitioned (and sub-partitioned), an
//! inheritance child of the root, citext, char(n) referenced by varchar,
//! numeric keys of any scale, a domain over bigint, a schema with a dot in
//! its name, a multi-tenant composite key with `SET NULL (column)`. Then
//! what must be refused before anything is written (a subject type that
//! cannot compare with the root column, a foreign key over floats), and a
//! restore that fails after its data is in, which must leave no rows.

use crate::common::{TestDb, lethe, pg_base, write_config};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// One schema shape: its SQL, the erasure roots (`erasure.subjects`, a TOML
/// array), the subject type and the ids erased after the snapshot.
struct Case {
    tag: &'static str,
    source_sql: &'static str,
    subjects_toml: &'static str,
    subject_type: &'static str,
    erased: Vec<String>,
}

/// A prepared case: the source, its config (file repository, age key,
/// erasure list in the tempdir), one snapshot and the erased ids listed.
struct Env {
    dir: tempfile::TempDir,
    src: TestDb,
    cfg: PathBuf,
    /// The snapshot's id.
    id: String,
}

/// What `Case::check` leaves for further assertions.
struct Checked {
    env: Env,
    /// Restored with `--target`.
    target: TestDb,
    /// The `--to-file` output loaded with psql.
    from_file: TestDb,
    /// The source with the erased subjects deleted by SQL.
    truth: TestDb,
    /// The target restore's `--report`.
    report: Value,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

impl Case {
    /// Creates the source, writes the config, runs the source SQL (so every
    /// table and partition is created after the config was written), takes
    /// a snapshot and lists the erased ids (`erase add -- …`).
    fn prepare(&self) -> Env {
        let src = TestDb::create(self.tag);
        let dir = tempfile::tempdir().expect("tempdir");
        let public = lethe::crypto::keygen(&dir.path().join("restore.key")).expect("keygen");
        let config = format!(
            "[source]\nurl = \"{src}\"\njobs = 2\n\n[storage]\nurl = \"file://{repo}\"\n\n\
             [encryption]\nrecipients = [\"{public}\"]\nidentity_file = \"{key}\"\n\n\
             [erasure]\npath = \"{erasure}\"\nsubject_type = \"{st}\"\nsubjects = {subjects}\n\n\
             [api]\nlisten = \"unix:{sock}\"\n\n[log]\nformat = \"json\"\n",
            src = src.url,
            repo = dir.path().join("repo").display(),
            key = dir.path().join("restore.key").display(),
            erasure = dir.path().join("erasure").display(),
            st = self.subject_type,
            subjects = self.subjects_toml,
            sock = dir.path().join("api.sock").display(),
        );
        let cfg = write_config(dir.path(), &config);
        src.sql(self.source_sql);
        let mut env = Env {
            dir,
            src,
            cfg,
            id: String::new(),
        };
        env.id = env.ok(&["snapshot"]).trim().to_string();
        let mut args = vec!["erase", "add", "--"];
        args.extend(self.erased.iter().map(String::as_str));
        env.ok(&args);
        env
    }

    /// Prepares the case, restores into a new database and into a SQL file
    /// (loaded into another), builds the truth, and asserts that both
    /// restores hold exactly the truth's rows, table by table, and leak no
    /// erased id.
    fn check(&self) -> Checked {
        let env = self.prepare();
        let target = TestDb::create(&format!("{}_dst", self.tag));
        let report = env.path("report.json");
        env.ok(&[
            "restore",
            &env.id,
            "--target",
            &target.url,
            "--jobs",
            "3",
            "--report",
            &report,
        ]);
        let report: Value =
            serde_json::from_str(&std::fs::read_to_string(&report).expect("report written"))
                .expect("report json");

        let file = env.path("restore.sql");
        env.ok(&["restore", &env.id, "--to-file", &file]);
        let from_file = TestDb::create(&format!("{}_file", self.tag));
        load_file(&from_file, &file);

        let truth = self.truth(&env);
        let want = fingerprints(&truth);
        assert!(!want.is_empty(), "{}: the truth has no tables", self.tag);
        for (what, db) in [("--target", &target), ("--to-file", &from_file)] {
            compare(&truth, &want, db, what);
            leak_check(&truth, db, &self.erased, what);
        }
        Checked {
            env,
            target,
            from_file,
            truth,
            report,
        }
    }

    /// `CREATE DATABASE truth TEMPLATE source`; RESTRICT / NO ACTION keys
    /// become CASCADE; each root loses the erased ids (compared as the
    /// root column's type); materialized views are refreshed.
    fn truth(&self, env: &Env) -> TestDb {
        let name = format!("lethe_{}_truth_{:08x}", self.tag, rand::random::<u32>());
        create_from_template(&name, &env.src.name);
        let truth = TestDb {
            url: format!("{}/{name}", pg_base()),
            name,
        };
        truth.sql(
            r#"CREATE TEMP TABLE lethe_fks AS
                 SELECT conrelid::regclass::text AS tbl, quote_ident(conname) AS name,
                        regexp_replace(
                          regexp_replace(pg_get_constraintdef(oid), ' ON DELETE (RESTRICT|NO ACTION)', ''),
                          '(REFERENCES [^)]*\)( MATCH (FULL|PARTIAL|SIMPLE))?)', '\1 ON DELETE CASCADE') AS def
                 FROM pg_constraint
                 WHERE contype = 'f' AND confdeltype IN ('r', 'a') AND conparentid = 0;
               DO $$
               DECLARE r record;
               BEGIN
                 FOR r IN SELECT * FROM lethe_fks LOOP
                   EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %s', r.tbl, r.name);
                 END LOOP;
                 FOR r IN SELECT * FROM lethe_fks LOOP
                   EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %s %s', r.tbl, r.name, r.def);
                 END LOOP;
               END $$;"#,
        );
        let left = truth.sql(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND confdeltype IN ('r', 'a')",
        );
        assert_eq!(left.trim(), "0", "truth: RESTRICT / NO ACTION keys remain");

        let list = format!(
            "ARRAY[{}]::text[]",
            self.erased
                .iter()
                .map(|s| quote_literal(s))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for (table, column) in roots(self.subjects_toml) {
            let ty = truth.sql(&format!(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
                 WHERE attrelid = {}::regclass AND attname = {} AND NOT attisdropped",
                quote_literal(&table),
                quote_literal(&column)
            ));
            let ty = ty.trim();
            assert!(!ty.is_empty(), "truth: no column {column} in {table}");
            truth.sql(&format!(
                "DELETE FROM {table} WHERE {col} IN (SELECT x::{ty} FROM unnest({list}) x)",
                col = quote_ident(&column)
            ));
        }
        truth.sql(
            "DO $$ DECLARE r record; BEGIN \
               FOR r IN SELECT format('%I.%I', schemaname, matviewname) AS m FROM pg_matviews LOOP \
                 EXECUTE 'REFRESH MATERIALIZED VIEW ' || r.m; \
               END LOOP; END $$;",
        );
        truth
    }

    /// Prepares the case and expects `restore` (to a target and to a file)
    /// to be refused with exit code 1 before anything is written; returns
    /// the target restore's stderr.
    fn refused(&self) -> String {
        let env = self.prepare();
        let target = TestDb::create(&format!("{}_dst", self.tag));
        let out = env.run(&["restore", &env.id, "--target", &target.url]);
        let err = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "the restore was not refused:\nstdout {}\nstderr {err}",
            text(&out.stdout)
        );
        let empty = TestDb::create(&format!("{}_empty", self.tag));
        assert!(
            dump(&target, &["--schema-only"]) == dump(&empty, &["--schema-only"]),
            "a refused restore wrote to the target: {:?}",
            dump(&target, &["--schema-only"])
        );
        let file = env.path("restore.sql");
        let out = env.run(&["restore", &env.id, "--to-file", &file]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "the restore to a file was not refused: {}",
            text(&out.stderr)
        );
        assert!(
            !Path::new(&file).exists(),
            "a refused restore left {file} behind"
        );
        err
    }
}

impl Env {
    fn run(&self, args: &[&str]) -> Output {
        lethe(&self.cfg, args)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "lethe {args:?} failed:\n{}",
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// `(table, column)` of every root in a TOML array of subjects.
fn roots(subjects_toml: &str) -> Vec<(String, String)> {
    let v: toml::Table = toml::from_str(&format!("subjects = {subjects_toml}")).expect("toml");
    v["subjects"]
        .as_array()
        .expect("array")
        .iter()
        .map(|r| {
            (
                r["table"].as_str().expect("table").to_string(),
                r["column"].as_str().expect("column").to_string(),
            )
        })
        .collect()
}

/// `CREATE DATABASE name TEMPLATE template`, retried while the template's
/// last session (lethe's, just ended) is still going away.
fn create_from_template(name: &str, template: &str) {
    for _ in 0..100 {
        let out = Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(format!("{}/postgres", pg_base()))
            .arg("-c")
            .arg(format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .output()
            .expect("psql runs");
        if out.status.success() {
            return;
        }
        let err = text(&out.stderr);
        assert!(
            err.contains("is being accessed by other users"),
            "CREATE DATABASE {name} TEMPLATE {template}: {err}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{template} stayed in use: cannot copy it");
}

/// Loads a `--to-file` output as the docs say: `psql -v ON_ERROR_STOP=1 -f`.
fn load_file(db: &TestDb, file: &str) {
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            &db.url,
            "-f",
            file,
        ])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql -f {file}: {}",
        text(&out.stderr)
    );
}

/// Ordinary tables and populated materialized views outside the system
/// schemas and extensions, as `schema.name` quoted for SQL.
fn relations(db: &TestDb) -> Vec<String> {
    db.sql(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE (c.relkind = 'r' OR (c.relkind = 'm' AND c.relispopulated)) \
           AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_' \
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                           AND d.objid = c.oid AND d.deptype = 'e') \
         ORDER BY 1",
    )
    .lines()
    .map(str::to_string)
    .collect()
}

/// Per relation: its row count and the md5 of its rows as text, sorted.
fn fingerprints(db: &TestDb) -> BTreeMap<String, (u64, String)> {
    let rels = relations(db);
    if rels.is_empty() {
        return BTreeMap::new();
    }
    let sql = rels
        .iter()
        .map(|t| {
            format!(
                "SELECT count(*), md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')), {} \
                 FROM ONLY {t} x",
                quote_literal(t)
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    db.sql(&sql)
        .lines()
        .map(|l| {
            let mut f = l.splitn(3, '|');
            let n = f.next().unwrap().parse().expect("count");
            let md5 = f.next().unwrap().to_string();
            (f.next().expect("name").to_string(), (n, md5))
        })
        .collect()
}

/// A relation's rows as text, sorted.
fn rows(db: &TestDb, t: &str) -> Vec<String> {
    db.sql(&format!("SELECT x::text FROM ONLY {t} x ORDER BY 1"))
        .lines()
        .map(str::to_string)
        .collect()
}

/// Asserts `db` holds the truth's relations with the truth's rows; a
/// mismatch names the relation, both counts and a few differing rows.
fn compare(truth: &TestDb, want: &BTreeMap<String, (u64, String)>, db: &TestDb, what: &str) {
    let got = fingerprints(db);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{what}: the restored database's tables differ from the truth's"
    );
    for (t, (n, md5)) in want {
        let (m, got_md5) = &got[t];
        if md5 == got_md5 {
            continue;
        }
        let (mine, theirs) = (rows(db, t), rows(truth, t));
        let extra: Vec<&String> = mine
            .iter()
            .filter(|r| !theirs.contains(r))
            .take(5)
            .collect();
        let missing: Vec<&String> = theirs
            .iter()
            .filter(|r| !mine.contains(r))
            .take(5)
            .collect();
        panic!(
            "{what}: table {t} differs from the truth: {m} rows restored, {n} in the truth\n\
             restored but not in the truth (first 5): {extra:#?}\n\
             in the truth but not restored (first 5): {missing:#?}"
        );
    }
}

/// `pg_dump` of a database, without the random `\restrict` keys.
fn dump(db: &TestDb, args: &[&str]) -> String {
    let out = Command::new("pg_dump")
        .args(args)
        .args(["-d", &db.url])
        .output()
        .expect("pg_dump runs");
    assert!(out.status.success(), "pg_dump: {}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Lines of `dump` holding `id` as a whole token: case-insensitive, with no
/// ASCII letter or digit right before or after it.
fn token_lines<'a>(dump: &'a str, id: &str) -> Vec<&'a str> {
    let id = id.to_ascii_lowercase();
    dump.lines()
        .filter(|line| {
            let l = line.to_ascii_lowercase();
            let b = l.as_bytes();
            l.match_indices(&id).any(|(at, m)| {
                let before = at.checked_sub(1).map(|i| b[i]);
                let after = b.get(at + m.len()).copied();
                !before.is_some_and(|c| c.is_ascii_alphanumeric())
                    && !after.is_some_and(|c| c.is_ascii_alphanumeric())
            })
        })
        .collect()
}

/// No erased id appears in `db`'s data more often than in the truth's
/// (which holds one only where a table that is not a root keeps it).
fn leak_check(truth: &TestDb, db: &TestDb, erased: &[String], what: &str) {
    let (got, want) = (dump(db, &["--data-only"]), dump(truth, &["--data-only"]));
    for id in erased {
        let (g, w) = (token_lines(&got, id), token_lines(&want, id));
        assert!(
            g.len() <= w.len(),
            "{what}: erased id {id:?} is on {} line(s) of the restored data, {} in the truth; e.g.:\n{}",
            g.len(),
            w.len(),
            g.iter()
                .filter(|l| !w.contains(l))
                .take(5)
                .copied()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// The report's entry for `schema.table`.
fn table_report<'a>(r: &'a Value, table: &str) -> &'a Value {
    r["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["table"] == table)
        .unwrap_or_else(|| panic!("no {table} in the report: {r}"))
}

/// One value from the source, for checks that a case means what it says.
fn scalar(db: &TestDb, sql: &str) -> String {
    db.sql(sql).trim().to_string()
}

const USERS_ROOT: &str = "[ { table = \"public.users\", column = \"id\" } ]";

#[test]
fn monthly_partitioned_orders_and_items_lose_an_erased_users_rows_in_every_partition() {
    let case = Case {
        tag: "s_months",
        source_sql: r#"
CREATE TABLE users (id bigint PRIMARY KEY, name text);
CREATE TABLE orders (id bigint NOT NULL, created_at date NOT NULL,
  user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE, total numeric(10,2),
  PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at);
CREATE TABLE orders_2024_01 PARTITION OF orders FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
CREATE TABLE orders_2024_02 PARTITION OF orders FOR VALUES FROM ('2024-02-01') TO ('2024-03-01');
CREATE TABLE orders_2024_03 PARTITION OF orders FOR VALUES FROM ('2024-03-01') TO ('2024-04-01');
CREATE TABLE orders_default PARTITION OF orders DEFAULT;
CREATE TABLE order_items (order_id bigint NOT NULL, order_created_at date NOT NULL, line int NOT NULL, sku text,
  PRIMARY KEY (order_id, order_created_at, line),
  FOREIGN KEY (order_id, order_created_at) REFERENCES orders (id, created_at) ON DELETE CASCADE)
  PARTITION BY RANGE (order_created_at);
CREATE TABLE order_items_2024_01 PARTITION OF order_items FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
CREATE TABLE order_items_2024_02 PARTITION OF order_items FOR VALUES FROM ('2024-02-01') TO ('2024-03-01');
CREATE TABLE order_items_2024_03 PARTITION OF order_items FOR VALUES FROM ('2024-03-01') TO ('2024-04-01');
CREATE TABLE order_items_default PARTITION OF order_items DEFAULT;
CREATE TABLE refunds (id bigint PRIMARY KEY, order_id bigint NOT NULL, order_created_at date NOT NULL,
  line int NOT NULL, amount numeric(10,2),
  FOREIGN KEY (order_id, order_created_at, line) REFERENCES order_items ON DELETE RESTRICT);
CREATE MATERIALIZED VIEW order_counts AS SELECT user_id, count(*) AS n FROM orders GROUP BY user_id;

INSERT INTO users SELECT i, 'user ' || i FROM generate_series(1, 40) i;
INSERT INTO users VALUES (990001, 'erased one'), (990002, 'erased two'), (990003, 'erased three');
-- Four orders per user, one per month: January to March and April (default).
INSERT INTO orders SELECT row_number() OVER (ORDER BY u.id, k), date '2024-01-10' + k * 31 + (u.id % 7)::int,
  u.id, (u.id % 50) + k + 0.25
  FROM users u, generate_series(0, 3) k;
INSERT INTO order_items SELECT o.id, o.created_at, l, 'SKU-' || (o.id * l % 97)
  FROM orders o, generate_series(1, 1 + (o.id % 2)::int) l;
INSERT INTO refunds SELECT row_number() OVER (ORDER BY order_id), order_id, order_created_at, line, 1.50
  FROM order_items WHERE line = 1 AND order_id % 2 = 0;
REFRESH MATERIALIZED VIEW order_counts;
"#,
        subjects_toml: USERS_ROOT,
        subject_type: "bigint",
        erased: ids(&["990001", "990002", "990003"]),
    };
    let c = case.check();
    // The erased users' rows were in every partition, and in refunds.
    assert_eq!(
        scalar(
            &c.env.src,
            "SELECT count(DISTINCT i.tableoid) FROM order_items i JOIN orders o \
             ON o.id = i.order_id WHERE o.user_id = 990001"
        ),
        "4"
    );
    assert_ne!(
        scalar(
            &c.env.src,
            "SELECT count(*) FROM refunds r JOIN orders o ON o.id = r.order_id WHERE o.user_id = 990002"
        ),
        "0"
    );
    for t in [
        "orders_2024_01",
        "orders_2024_02",
        "orders_2024_03",
        "orders_default",
        "order_items_2024_01",
        "order_items_default",
        "refunds",
    ] {
        assert!(
            table_report(&c.report, &format!("public.{t}"))["rows_dropped"]
                .as_u64()
                .unwrap()
                > 0,
            "{t} dropped nothing: {}",
            c.report
        );
    }
}

#[test]
fn a_root_naming_a_partitioned_table_covers_partitions_added_after_the_config_was_written() {
    let case = Case {
        tag: "s_proot",
        source_sql: r#"
CREATE TABLE users (id bigint NOT NULL, region text NOT NULL, name text, PRIMARY KEY (id, region))
  PARTITION BY LIST (region);
CREATE TABLE users_eu PARTITION OF users FOR VALUES IN ('eu');
CREATE TABLE users_us PARTITION OF users FOR VALUES IN ('us');
CREATE TABLE users_apac PARTITION OF users FOR VALUES IN ('apac', 'oc') PARTITION BY HASH (id);
CREATE TABLE users_apac_0 PARTITION OF users_apac FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE users_apac_1 PARTITION OF users_apac FOR VALUES WITH (MODULUS 2, REMAINDER 1);
-- Attached rather than created as a partition.
CREATE TABLE users_latam (id bigint NOT NULL, region text NOT NULL, name text);
ALTER TABLE users ATTACH PARTITION users_latam FOR VALUES IN ('latam');
CREATE TABLE sessions (id bigint PRIMARY KEY, user_id bigint NOT NULL, region text NOT NULL, started date,
  FOREIGN KEY (user_id, region) REFERENCES users (id, region) ON DELETE CASCADE);
CREATE TABLE audit (id bigint PRIMARY KEY, user_id bigint, region text, what text,
  FOREIGN KEY (user_id, region) REFERENCES users (id, region));

INSERT INTO users SELECT i, (ARRAY['eu', 'us', 'apac', 'oc', 'latam'])[1 + i % 5], 'user ' || i
  FROM generate_series(1, 60) i;
-- Every erased id in every region (the key is (id, region)).
INSERT INTO users SELECT i, r, 'erased ' || i
  FROM generate_series(990001, 990004) i, unnest(ARRAY['eu', 'us', 'apac', 'oc', 'latam']) r;
INSERT INTO sessions SELECT row_number() OVER (ORDER BY u.id, u.region, g), u.id, u.region, date '2024-05-01' + g
  FROM users u, generate_series(1, 3) g;
INSERT INTO audit SELECT row_number() OVER (ORDER BY u.id, u.region), u.id, u.region, 'login'
  FROM users u WHERE u.id % 2 = 1;
"#,
        subjects_toml: USERS_ROOT,
        subject_type: "bigint",
        erased: ids(&["990001", "990002", "990003", "990004"]),
    };
    let c = case.check();
    assert_eq!(
        scalar(
            &c.env.src,
            "SELECT count(DISTINCT tableoid) FROM users WHERE id >= 990001"
        ),
        "5",
        "the erased users are not in every leaf partition"
    );
    for (what, db) in [("--target", &c.target), ("--to-file", &c.from_file)] {
        for t in [
            "users_eu",
            "users_us",
            "users_apac_0",
            "users_apac_1",
            "users_latam",
        ] {
            let sql = format!("SELECT count(*) FROM {t} WHERE id >= 990001");
            assert_eq!(scalar(db, &sql), "0", "{what}: {t}");
        }
    }
}

#[test]
fn an_inheritance_child_of_the_root_loses_its_erased_rows() {
    let case = Case {
        tag: "s_inherit",
        source_sql: r#"
CREATE TABLE users (id bigint PRIMARY KEY, name text);
CREATE TABLE admins (level int NOT NULL DEFAULT 1) INHERITS (users);
ALTER TABLE admins ADD PRIMARY KEY (id);
CREATE TABLE posts (id bigint PRIMARY KEY, author_id bigint REFERENCES users (id) ON DELETE CASCADE, body text);
CREATE TABLE admin_notes (id bigint PRIMARY KEY,
  admin_id bigint NOT NULL REFERENCES admins (id) ON DELETE CASCADE, note text);

INSERT INTO users SELECT i, 'user ' || i FROM generate_series(1, 50) i;
INSERT INTO users VALUES (990001, 'erased user'), (990002, 'erased user two'), (990003, 'erased, also an admin');
INSERT INTO admins SELECT i, 'admin ' || i, i % 3 FROM generate_series(101, 110) i;
INSERT INTO admins VALUES (990011, 'erased admin', 2), (990012, 'erased admin two', 3), (990003, 'erased admin three', 1);
INSERT INTO posts SELECT row_number() OVER (ORDER BY u.id, g), u.id, 'post ' || g FROM ONLY users u, generate_series(1, 3) g;
INSERT INTO posts VALUES (1000, NULL, 'anonymous');
INSERT INTO admin_notes SELECT row_number() OVER (ORDER BY a.id, g), a.id, 'note ' || g FROM admins a, generate_series(1, 2) g;
"#,
        subjects_toml: USERS_ROOT,
        subject_type: "bigint",
        erased: ids(&["990001", "990002", "990003", "990011", "990012"]),
    };
    let c = case.check();
    // In PostgreSQL a DELETE on the parent reaches its inheritance children:
    // the truth lost the erased admins too.
    assert_eq!(scalar(&c.truth, "SELECT count(*) FROM admins"), "10");
    assert_eq!(
        scalar(&c.target, "SELECT count(*) FROM admins WHERE id >= 990001"),
        "0"
    );
    assert_eq!(scalar(&c.target, "SELECT count(*) FROM admins"), "10");
}

#[test]
fn citext_email_keys_match_case_insensitively() {
    let case = Case {
        tag: "s_citext",
        source_sql: r#"
CREATE EXTENSION IF NOT EXISTS citext;
CREATE TABLE accounts (email citext PRIMARY KEY, name text);
CREATE TABLE logins (id bigint PRIMARY KEY,
  account_email citext NOT NULL REFERENCES accounts ON DELETE CASCADE, at date);
CREATE TABLE newsletters (id bigint PRIMARY KEY,
  subscriber citext REFERENCES accounts ON DELETE SET NULL, topic text);

INSERT INTO accounts SELECT 'user' || i || '@example.com', 'User ' || i FROM generate_series(1, 40) i;
INSERT INTO accounts VALUES ('erased.person@example.com', 'Erased'), ('second.gone@example.org', 'Gone');
-- Children spell the parent's key in other cases.
INSERT INTO logins SELECT row_number() OVER (ORDER BY a.email, g),
  CASE g WHEN 1 THEN upper(a.email) WHEN 2 THEN initcap(a.email) ELSE a.email END, date '2024-01-01' + g
  FROM accounts a, generate_series(1, 3) g;
INSERT INTO newsletters SELECT row_number() OVER (ORDER BY a.email), upper(a.email), 'topic'
  FROM accounts a;
"#,
        subjects_toml: "[ { table = \"public.accounts\", column = \"email\" } ]",
        subject_type: "text",
        erased: ids(&["Erased.Person@Example.COM", "SECOND.GONE@example.org"]),
    };
    let c = case.check();
    assert_eq!(scalar(&c.target, "SELECT count(*) FROM accounts"), "40");
    assert_eq!(
        scalar(
            &c.target,
            "SELECT count(*) FROM newsletters WHERE subscriber IS NULL"
        ),
        "2"
    );
}

#[test]
fn char_padded_keys_match_varchar_references() {
    let case = Case {
        tag: "s_char",
        source_sql: r#"
CREATE TABLE users (id bigint PRIMARY KEY, name text);
CREATE TABLE codes (code char(8) PRIMARY KEY, owner_id bigint NOT NULL REFERENCES users ON DELETE CASCADE);
CREATE TABLE usages (id bigint PRIMARY KEY, code varchar(8) NOT NULL REFERENCES codes ON DELETE CASCADE, used_on date);

INSERT INTO users SELECT i, 'user ' || i FROM generate_series(1, 30) i;
INSERT INTO users VALUES (990001, 'erased'), (990002, 'erased two');
INSERT INTO codes SELECT 'C' || row_number() OVER (ORDER BY u.id, g), u.id FROM users u, generate_series(1, 2) g;
-- 'C3' (as the parent is written before padding), and 'C3 ', 'C3  '.
INSERT INTO usages SELECT row_number() OVER (ORDER BY c.code, g), rtrim(c.code) || repeat(' ', g - 1), date '2024-02-01' + g
  FROM codes c, generate_series(1, 3) g;
"#,
        subjects_toml: USERS_ROOT,
        subject_type: "bigint",
        erased: ids(&["990001", "990002"]),
    };
    let c = case.check();
    assert_eq!(
        scalar(
            &c.env.src,
            "SELECT count(*) FROM usages u JOIN codes c ON c.code = u.code WHERE c.owner_id = 990001 AND u.code::text = rtrim(c.code)"
        ),
        "2",
        "the source has no unpadded reference to an erased user's code"
    );
    assert_eq!(scalar(&c.target, "SELECT count(*) FROM usages"), "180");
}

#[test]
fn a_numeric_key_matches_whatever_its_scale() {
    let case = Case {
        tag: "s_numeric",
        source_sql: r#"
CREATE TABLE users (id numeric PRIMARY KEY, name text);
CREATE TABLE invoices (id bigint PRIMARY KEY, user_id numeric(12,2) REFERENCES users ON DELETE CASCADE, amount numeric(10,2));
CREATE TABLE notes (id bigint PRIMARY KEY, user_id numeric REFERENCES users ON DELETE SET NULL, body text);

INSERT INTO users SELECT (i || (ARRAY['', '.0', '.00'])[1 + i % 3])::numeric, 'user ' || i FROM generate_series(1, 30) i;
INSERT INTO users VALUES ('990001.0', 'erased'), ('990002', 'erased two'), ('990003.000', 'erased three');
INSERT INTO invoices SELECT row_number() OVER (ORDER BY u.id, g), u.id, 10.5 * g FROM users u, generate_series(1, 3) g;
INSERT INTO notes SELECT row_number() OVER (ORDER BY u.id), u.id * 1.0, 'note' FROM users u;
"#,
        subjects_toml: USERS_ROOT,
        subject_type: "bigint",
        erased: ids(&["990001", "990002", "990003"]),
    };
    let c = case.check();
    assert_eq!(
        scalar(
            &c.env.src,
            "SELECT string_agg(user_id::text, ',' ORDER BY id) FROM invoices WHERE user_id = 990002"
        ),
        "990002.00,990002.00,990002.00"
    );
    assert_eq!(scalar(&c.target, "SELECT count(*) FROM users"), "30");
}

#[test]
fn a_domain_over_bigint_is_followed_like_bigint() {
    let case = Case {
        tag: "s_domain",
        source_sql: r#"
CREATE DOMAIN user_id AS bigint CHECK (VALUE > 0);
CREATE TABLE users (id user_id PRIMARY KEY, name text);
CREATE TABLE orders (id bigint PRIMARY KEY, user_id user_id REFERENCES users ON DELETE SET NULL, total numeric(10,2));
CREATE TABLE profiles (user_id user_id PRIMARY KEY REFERENCES users ON DELETE CASCADE, bio text);

INSERT INTO users SELECT i, 'user ' || i FROM generate_series(1, 40) i;
INSERT INTO users VALUES (990001, 'erased'), (990002, 'erased two');
INSERT INTO orders SELECT row_number() OVER (ORDER BY u.id, g), u.id, g * 2.5 FROM users u, generate_series(1, 3) g;
INSERT INTO orders VALUES (1000, NULL, 1.00);
INSERT INTO profiles SELECT id, 'bio of ' || id FROM users;
"#,
        subjects_toml: USERS_ROOT,
        subject_type: "bigint",
        erased: ids(&["990001", "990002"]),
    };
    let c = case.check();
    assert_eq!(
        scalar(
            &c.target,
            "SELECT count(*) FROM orders WHERE user_id IS NULL"
        ),
        "7"
    );
}

#[test]
fn a_schema_with_a_dot_in_its_name_can_be_configured() {
    let case = Case {
        tag: "s_dot",
        source_sql: r#"
CREATE SCHEMA "app.v2";
CREATE TABLE "app.v2".users (id bigint PRIMARY KEY, name text);
CREATE TABLE "app.v2".posts (id bigint PRIMARY KEY,
  author_id bigint NOT NULL REFERENCES "app.v2".users ON DELETE CASCADE, title text);
-- Decoys: tables whose unquoted names read the same or alike; not roots.
CREATE SCHEMA app;
CREATE TABLE app."v2.users" (id bigint PRIMARY KEY, name text);
CREATE TABLE public.users (id bigint PRIMARY KEY, name text);

INSERT INTO "app.v2".users SELECT i, 'user ' || i FROM generate_series(1, 30) i;
INSERT INTO "app.v2".users VALUES (990001, 'erased'), (990002, 'erased two');
INSERT INTO "app.v2".posts SELECT row_number() OVER (ORDER BY u.id, g), u.id, 'post ' || g
  FROM "app.v2".users u, generate_series(1, 2) g;
INSERT INTO app."v2.users" SELECT id, name FROM "app.v2".users;
INSERT INTO public.users SELECT id, name FROM "app.v2".users;
"#,
        subjects_toml: "[ { table = '\"app.v2\".users', column = \"id\" } ]",
        subject_type: "bigint",
        erased: ids(&["990001", "990002"]),
    };
    let c = case.check();
    assert_eq!(
        scalar(&c.target, "SELECT count(*) FROM \"app.v2\".users"),
        "30"
    );
    assert_eq!(
        scalar(&c.target, "SELECT count(*) FROM app.\"v2.users\""),
        "32"
    );
    assert_eq!(scalar(&c.target, "SELECT count(*) FROM public.users"), "32");
}

#[test]
fn a_multi_tenant_composite_key_is_followed() {
    let case = Case {
        tag: "s_tenant",
        source_sql: r#"
CREATE TABLE tenants (id int PRIMARY KEY, name text);
CREATE TABLE users (tenant_id int NOT NULL REFERENCES tenants ON DELETE CASCADE, id bigint NOT NULL, name text,
  PRIMARY KEY (tenant_id, id));
CREATE TABLE documents (id bigint PRIMARY KEY, tenant_id int NOT NULL, owner_id bigint NOT NULL, title text,
  FOREIGN KEY (tenant_id, owner_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE);
CREATE TABLE tasks (id bigint PRIMARY KEY, tenant_id int NOT NULL REFERENCES tenants, assignee_id bigint, title text,
  FOREIGN KEY (tenant_id, assignee_id) REFERENCES users (tenant_id, id) ON DELETE SET NULL (assignee_id));

INSERT INTO tenants VALUES (1, 'acme'), (2, 'globex'), (3, 'initech');
-- The same user ids in every tenant.
INSERT INTO users SELECT t, i, 'user ' || i || ' of ' || t FROM generate_series(1, 3) t, generate_series(1, 20) i;
INSERT INTO users VALUES (1, 990001, 'erased'), (2, 990001, 'erased'), (3, 990002, 'erased two'), (2, 990002, 'erased two');
INSERT INTO documents SELECT row_number() OVER (ORDER BY u.tenant_id, u.id, g), u.tenant_id, u.id, 'doc ' || g
  FROM users u, generate_series(1, 2) g;
INSERT INTO tasks SELECT row_number() OVER (ORDER BY u.tenant_id, u.id, g), u.tenant_id,
  CASE WHEN g = 3 THEN NULL ELSE u.id END, 'task ' || g
  FROM users u, generate_series(1, 3) g;
"#,
        subjects_toml: USERS_ROOT,
        subject_type: "bigint",
        erased: ids(&["990001", "990002"]),
    };
    let c = case.check();
    // SET NULL (assignee_id) keeps the tenant.
    assert_eq!(
        scalar(
            &c.target,
            "SELECT count(*) FROM tasks WHERE assignee_id IS NULL AND tenant_id IS NOT NULL"
        ),
        "72"
    );
}

#[test]
fn a_bigint_subject_on_a_text_root_is_refused_before_anything_is_written() {
    let case = Case {
        tag: "s_ref_text",
        source_sql: "CREATE TABLE users (handle text PRIMARY KEY, name text); \
                     INSERT INTO users SELECT i::text, 'user ' || i FROM generate_series(1, 20) i; \
                     INSERT INTO users VALUES ('990001', 'erased');",
        subjects_toml: "[ { table = \"public.users\", column = \"handle\" } ]",
        subject_type: "bigint",
        erased: ids(&["990001"]),
    };
    let err = case.refused();
    assert!(
        err.contains("users") && err.contains("handle") && err.contains("text"),
        "the refusal does not name public.users.handle and its type text:\n{err}"
    );
}

#[test]
fn a_bigint_subject_on_a_numeric_root_with_scale_is_refused() {
    let case = Case {
        tag: "s_ref_num",
        source_sql: "CREATE TABLE users (account_no numeric(12,2) PRIMARY KEY, name text); \
                     INSERT INTO users SELECT i, 'user ' || i FROM generate_series(1, 20) i; \
                     INSERT INTO users VALUES (990001, 'erased');",
        subjects_toml: "[ { table = \"public.users\", column = \"account_no\" } ]",
        subject_type: "bigint",
        erased: ids(&["990001"]),
    };
    let err = case.refused();
    assert!(
        err.contains("account_no") && err.contains("numeric(12,2)"),
        "the refusal does not name account_no and its type numeric(12,2):\n{err}"
    );
}

#[test]
fn a_foreign_key_over_a_float_column_is_refused_naming_it() {
    let case = Case {
        tag: "s_ref_float",
        source_sql: "CREATE TABLE users (id bigint PRIMARY KEY, score double precision UNIQUE); \
                     CREATE TABLE ratings (id bigint PRIMARY KEY, \
                       score double precision REFERENCES users (score) ON DELETE CASCADE); \
                     INSERT INTO users SELECT i, i / 7.0 FROM generate_series(1, 20) i; \
                     INSERT INTO users VALUES (990001, 0.1); \
                     INSERT INTO ratings SELECT id, score FROM users;",
        subjects_toml: USERS_ROOT,
        subject_type: "bigint",
        erased: ids(&["990001"]),
    };
    let err = case.refused();
    assert!(
        err.contains("ratings") && err.contains("score") && err.contains("double precision"),
        "the refusal does not name ratings.score and its type double precision:\n{err}"
    );
}

#[test]
fn a_restore_that_fails_after_loading_leaves_no_rows_in_the_target() {
    // The index calls a function that calls another without a schema: fine
    // in the source, but pg_dump's scripts run with an empty search_path,
    // so building the index in post-data fails once the data is loaded.
    let case = Case {
        tag: "s_late_fail",
        source_sql: r#"
CREATE FUNCTION inner_norm(t text) RETURNS text IMMUTABLE LANGUAGE sql AS 'SELECT lower(t)';
CREATE FUNCTION outer_norm(t text) RETURNS text IMMUTABLE LANGUAGE sql AS 'SELECT inner_norm(t)';
CREATE TABLE users (id bigint PRIMARY KEY, name text);
CREATE TABLE notes (id bigint PRIMARY KEY, user_id bigint REFERENCES users ON DELETE CASCADE, body text);
CREATE TABLE countries (code text PRIMARY KEY, name text);
INSERT INTO users SELECT i, 'user ' || i FROM generate_series(1, 40) i;
INSERT INTO users VALUES (990001, 'erased');
INSERT INTO notes SELECT row_number() OVER (ORDER BY u.id, g), u.id, 'Note ' || g FROM users u, generate_series(1, 3) g;
INSERT INTO countries VALUES ('DE', 'Germany'), ('FR', 'France');
CREATE INDEX notes_norm ON notes (outer_norm(body));
"#,
        subjects_toml: USERS_ROOT,
        subject_type: "bigint",
        erased: ids(&["990001"]),
    };
    let env = case.prepare();
    for jobs in ["1", "3"] {
        let target = TestDb::create("s_late_fail_dst");
        let out = env.run(&["restore", &env.id, "--target", &target.url, "--jobs", jobs]);
        let err = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "--jobs {jobs}: the restore did not fail:\n{err}"
        );
        assert!(
            err.contains("inner_norm"),
            "--jobs {jobs}: the restore failed, but not at the index:\n{err}"
        );
        let left: Vec<String> = relations(&target)
            .into_iter()
            .filter_map(|t| {
                let n = scalar(&target, &format!("SELECT count(*) FROM {t}"));
                (n != "0").then(|| format!("{t}: {n} rows"))
            })
            .collect();
        assert!(
            left.is_empty(),
            "--jobs {jobs}: the failed restore left rows in the target: {left:?}\n{err}"
        );
    }
}
