//! Columns appended during capture (issue 20, "captured DDL is applied in
//! order"): an `ALTER TABLE … ADD COLUMN` on a keyed table, captured by
//! lethe's event triggers, costs no gap and no base; a point restore adds
//! the columns after pre-data and gives every row stored before them the
//! value PostgreSQL gives it (NULL, a constant default, or the `now()` of
//! the ALTER). An ALTER TABLE that adds a foreign key with its column is
//! a gap and a base, and the filter follows that key after it.
//! Ground truth as in `pitr`: the source dumped at each point, the erased
//! users then deleted by SQL.

use crate::pitr::{capturing, mark_point, truth};
use crate::pitr_edges::stop_and_erase;
use std::time::Duration;

const SCHEMA: &str = "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL); \
    CREATE TABLE orders (id bigint PRIMARY KEY, \
                         user_id bigint NOT NULL REFERENCES users ON DELETE CASCADE, \
                         note text NOT NULL); \
    CREATE TABLE parts (id bigint NOT NULL, at date NOT NULL, \
                        user_id bigint NOT NULL REFERENCES users ON DELETE CASCADE, \
                        PRIMARY KEY (id, at)) PARTITION BY RANGE (at); \
    CREATE TABLE parts_2026 PARTITION OF parts FOR VALUES FROM ('2026-01-01') TO ('2027-01-01'); \
    CREATE TABLE parts_2027 (at date NOT NULL, junk int, id bigint NOT NULL, user_id bigint NOT NULL); \
    ALTER TABLE parts_2027 DROP COLUMN junk; \
    ALTER TABLE parts ATTACH PARTITION parts_2027 FOR VALUES FROM ('2027-01-01') TO ('2028-01-01'); \
    INSERT INTO users SELECT i, 'user ' || i FROM generate_series(1, 20) i; \
    INSERT INTO orders SELECT i, i % 20 + 1, 'order ' || i FROM generate_series(1, 60) i; \
    INSERT INTO parts SELECT i, CASE WHEN i % 2 = 0 THEN date '2026-05-01' ELSE date '2027-05-01' END, i % 20 + 1 \
      FROM generate_series(1, 40) i;";

#[test]
fn columns_appended_during_capture_are_added_at_each_point_with_the_values_old_rows_hold() {
    let db = crate::continuous::LogicalDb::create("pitr_columns");
    db.sql(SCHEMA);
    let (mut c, d, cfg) = capturing(db);
    assert!(
        c.log().contains("\"ddl_capture\":\"event_triggers\""),
        "{}",
        c.log()
    );
    let erased = ["3", "7", "21"];

    // In the base's shape, after the base: rows the delta stores with
    // fewer fields than the table will have.
    c.db.sql(
        "INSERT INTO orders VALUES (101, 3, 'early order of 3'), (102, 4, 'early order of 4'); \
         UPDATE users SET name = 'renamed 5' WHERE id = 5; \
         UPDATE orders SET note = 'edited' WHERE id = 2;",
    );
    let at0 = mark_point(&c.db, &d.join("at0.sql"));

    // Appended: a column with no default (NULL in old rows), a NOT NULL
    // one with a constant, one whose default is the ALTER's now() (old
    // rows hold that instant, not the restore's), and in another
    // transaction a numeric with a default on orders.
    c.db.sql(
        "ALTER TABLE users ADD COLUMN email text, \
           ADD COLUMN tier int NOT NULL DEFAULT 1, \
           ADD COLUMN joined timestamptz DEFAULT now()",
    );
    // One transaction writes orders in both shapes: a row before the
    // column, the column, a row after it, the first row updated.
    c.db.sql(
        "INSERT INTO orders VALUES (110, 5, 'before the column'); \
         ALTER TABLE orders ADD COLUMN amount numeric(10,2) DEFAULT 9.50; \
         INSERT INTO orders VALUES (111, 3, 'after the column, of erased user 3', 4.75); \
         UPDATE orders SET note = 'updated after the column' WHERE id = 110;",
    );
    c.db.sql(
        "INSERT INTO users VALUES (21, 'user 21', 'u21@example.eu', 2, now()), \
                                  (22, 'user 22', 'u22@example.eu', 3, now()); \
         UPDATE users SET email = 'u4@example.eu', tier = 5 WHERE id = 4; \
         UPDATE users SET name = 'renamed 6' WHERE id = 6; \
         INSERT INTO orders VALUES (103, 21, 'order of 21', 1.25), (104, 22, 'order of 22', DEFAULT), \
                                   (105, 7, 'order of 7', 3); \
         UPDATE orders SET user_id = 21 WHERE id = 1; \
         UPDATE orders SET note = 'edited again' WHERE id = 3;",
    );
    // A partitioned table: the column reaches both partitions, one of
    // which has a dropped column before it.
    c.db.sql(
        "UPDATE parts SET user_id = 4 WHERE id = 5; \
         ALTER TABLE parts ADD COLUMN qty int NOT NULL DEFAULT 1; \
         INSERT INTO parts VALUES (41, '2026-06-01', 21, 7), (42, '2027-06-01', 22, 8), (43, '2027-06-01', 3, 9); \
         UPDATE parts SET qty = 5 WHERE id IN (6, 7);",
    );
    let at1 = mark_point(&c.db, &d.join("at1.sql"));
    c.db.sql("INSERT INTO users (id, name) VALUES (90, 'marker')");
    c.wait_restorable();
    assert_eq!(c.count("continuous.schema_changed"), 0, "{}", c.log());
    assert_eq!(c.count("continuous.base_completed"), 1, "{}", c.log());
    // A restart compares the schema with the one the columns left (the
    // head keeps it), not the base's: still no change.
    c.stop();
    c.start_with(&[]);
    c.wait_for("continuous.started", 2, Duration::from_secs(60));
    c.db.sql("INSERT INTO users (id, name) VALUES (92, 'marker')");
    c.wait_restorable();
    assert_eq!(c.count("continuous.schema_changed"), 0, "{}", c.log());
    assert_eq!(c.count("continuous.base_completed"), 1, "{}", c.log());

    // A column with a foreign key: the filter must follow the key, which
    // no appended column may bring. A gap and a base.
    c.db.sql("ALTER TABLE orders ADD COLUMN reviewer bigint REFERENCES users ON DELETE CASCADE");
    c.wait_for("continuous.base_completed", 2, Duration::from_secs(120));
    c.db.sql(
        "INSERT INTO orders VALUES (106, 22, 'reviewed by 7', 2, 7), (107, 22, 'reviewed by 8', 2, 8)",
    );
    let at2 = mark_point(&c.db, &d.join("at2.sql"));
    c.db.sql("INSERT INTO users (id, name) VALUES (91, 'marker')");
    stop_and_erase(&mut c, &cfg, &erased);
    assert!(c.count("continuous.schema_changed") >= 1, "{}", c.log());

    // The truth means something: old rows hold the ALTER's instant, and
    // order 106 goes with erased user 7 through the new key.
    let t1 = truth(&d.join("at1.sql"), &erased);
    assert_eq!(
        t1.sql(
            "SELECT count(DISTINCT joined) FILTER (WHERE id <= 20), count(*) FILTER (WHERE tier = 1 AND email IS NULL) FROM users"
        )
        .trim(),
        "1|17",
        "users 1–20 but 3, 4 and 7 joined at the ALTER, tier 1, no email"
    );
    drop(t1);

    // Point 1 replays the three ALTERs.
    for (at, n) in [(&at0, 0), (&at1, 3)] {
        assert_eq!(crate::pitr_ddl::point_ddl(&cfg, &d, at), n, "{at}");
    }

    for (at, dump, what) in [
        (&at0, "at0.sql", "before the columns were added"),
        (&at1, "at1.sql", "after the columns were added"),
        (&at2, "at2.sql", "after the foreign key's base"),
    ] {
        let truth = truth(&d.join(dump), &erased);
        crate::pitr_types::restores_equal(&cfg, &d, at, &truth, &erased, what);
        if at == &at2 {
            assert_eq!(
                truth
                    .sql("SELECT count(*) FROM orders WHERE id = 106")
                    .trim(),
                "0",
                "the truth drops the order reviewed by an erased user"
            );
        }
    }
}

/// What lethe's event triggers call each `ALTER TABLE`, read back from a
/// `test_decoding` slot: only one that appends columns to a keyed plain
/// table and changes nothing else may be `add_columns` (replayed without a
/// base); a column with a key, a check, a rewrite, an identity, a
/// generated column, another change in the same command, a partition or
/// an inheritance child, a table keyed by its whole row must stay `other`
/// (a gap and a base), or a restore would miss what the filter must follow.
#[test]
fn only_alter_tables_that_just_append_columns_to_a_keyed_table_are_replayed() {
    let db = crate::continuous::LogicalDb::create("pitr_columns_kinds");
    db.sql(
        "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL); \
         CREATE TABLE full_rows (a int, b text); ALTER TABLE full_rows REPLICA IDENTITY FULL; \
         CREATE TABLE by_index (a int NOT NULL, b text); CREATE UNIQUE INDEX by_index_a ON by_index (a); \
         ALTER TABLE by_index REPLICA IDENTITY USING INDEX by_index_a; \
         CREATE TABLE parts (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at); \
         CREATE TABLE parts_1 PARTITION OF parts FOR VALUES FROM ('2026-01-01') TO ('2027-01-01'); \
         CREATE TABLE parts_2 (at date NOT NULL, junk int, id int NOT NULL); ALTER TABLE parts_2 DROP COLUMN junk; \
         ALTER TABLE parts ATTACH PARTITION parts_2 FOR VALUES FROM ('2027-01-01') TO ('2028-01-01'); \
         CREATE TABLE nested (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at); \
         CREATE TABLE nested_1 PARTITION OF nested FOR VALUES FROM ('2026-01-01') TO ('2027-01-01') PARTITION BY RANGE (at); \
         CREATE TABLE nested_1a PARTITION OF nested_1 FOR VALUES FROM ('2026-01-01') TO ('2026-07-01'); \
         CREATE TABLE lonely (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at); \
         CREATE TABLE parent (id int PRIMARY KEY); CREATE TABLE child (id int PRIMARY KEY) INHERITS (parent); \
         CREATE TABLE gen (id int PRIMARY KEY, d int GENERATED ALWAYS AS (id * 2) STORED); \
         INSERT INTO users VALUES (1, 'one'); INSERT INTO gen (id) VALUES (1);",
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let conn = lethe::pg::connect(&db.url()).await.expect("connect");
        lethe::pg::ddl_capture::install(&conn)
            .await
            .expect("install");
    });
    db.sql("SELECT pg_create_logical_replication_slot('lethe_kinds', 'test_decoding')");
    let cases: &[(&str, &str)] = &[
        ("ALTER TABLE users ADD COLUMN a text", "add_columns"),
        (
            "ALTER TABLE users ADD COLUMN b int NOT NULL DEFAULT 0, ADD COLUMN c timestamptz DEFAULT now()",
            "add_columns",
        ),
        (
            "ALTER TABLE users ADD COLUMN d text COLLATE \"C\"",
            "add_columns",
        ),
        ("ALTER TABLE by_index ADD COLUMN c int", "add_columns"),
        (
            "ALTER TABLE users ADD COLUMN e bigint REFERENCES users",
            "other",
        ),
        ("ALTER TABLE users ADD COLUMN f int CHECK (f > 0)", "other"),
        ("ALTER TABLE users ADD COLUMN g int UNIQUE", "other"),
        (
            "ALTER TABLE users ADD COLUMN h float DEFAULT random()",
            "other",
        ),
        (
            "ALTER TABLE users ADD COLUMN i int GENERATED ALWAYS AS IDENTITY",
            "other",
        ),
        (
            "ALTER TABLE users ADD COLUMN j int GENERATED ALWAYS AS (id * 3) STORED",
            "other",
        ),
        (
            "ALTER TABLE users ADD COLUMN k int, ALTER COLUMN name SET DEFAULT 'n'",
            "other",
        ),
        (
            "ALTER TABLE users ADD COLUMN l int, ADD CONSTRAINT users_l FOREIGN KEY (l) REFERENCES users",
            "other",
        ),
        (
            "ALTER TABLE users ADD COLUMN m int, ALTER COLUMN a TYPE varchar(10)",
            "other",
        ),
        (
            "ALTER TABLE users ADD COLUMN n int, ENABLE ROW LEVEL SECURITY",
            "other",
        ),
        ("ALTER TABLE users ADD COLUMN IF NOT EXISTS a text", "other"),
        ("ALTER TABLE users RENAME COLUMN a TO a2", "other"),
        ("ALTER TABLE users DROP COLUMN a2", "other"),
        ("ALTER TABLE users ALTER COLUMN name DROP NOT NULL", "other"),
        ("ALTER TABLE full_rows ADD COLUMN c int", "other"),
        (
            "ALTER TABLE parts ADD COLUMN c int DEFAULT 3",
            "add_columns",
        ),
        ("ALTER TABLE nested ADD COLUMN c int", "other"),
        ("ALTER TABLE lonely ADD COLUMN c int", "other"),
        (
            "ALTER TABLE parts ADD COLUMN d int REFERENCES users",
            "other",
        ),
        ("ALTER TABLE child ADD COLUMN d int", "other"),
        ("ALTER TABLE parent ADD COLUMN c int", "other"),
        ("ALTER TABLE gen ADD COLUMN c int", "other"),
    ];
    // Each command's messages, read from the slot after it.
    let mut added = Vec::new();
    for (sql, want) in cases {
        db.sql(sql);
        let out = db.sql(
            "SELECT substr(data, strpos(data, 'content:') + 8) \
             FROM pg_logical_slot_get_changes('lethe_kinds', NULL, NULL) \
             WHERE data LIKE 'message: transactional: 1 prefix: lethe.ddl%'",
        );
        let msgs: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .filter(|m: &serde_json::Value| m["tag"] == "ALTER TABLE")
            .collect();
        assert!(!msgs.is_empty(), "{sql}: no message");
        let replayed: Vec<&serde_json::Value> = msgs
            .iter()
            .filter(|m| m["change"] == "add_columns")
            .collect();
        if *want == "add_columns" {
            assert_eq!(msgs.len(), 1, "{sql}: {msgs:#?}");
            added.push(replayed[0].clone());
        } else {
            assert!(replayed.is_empty(), "{sql} must not be replayed: {msgs:#?}");
        }
    }
    db.sql("SELECT pg_drop_replication_slot('lethe_kinds')");
    // The statements an add_columns message carries add the columns as
    // they are on the source.
    let sql: Vec<&str> = added
        .iter()
        .map(|m| m["sql"].as_str().expect("sql"))
        .collect();
    assert_eq!(
        sql,
        [
            "ALTER TABLE ONLY public.users ADD COLUMN a text",
            "ALTER TABLE ONLY public.users ADD COLUMN b integer DEFAULT 0 NOT NULL, \
             ADD COLUMN c timestamp with time zone DEFAULT now()",
            "ALTER TABLE ONLY public.users ADD COLUMN d text COLLATE pg_catalog.\"C\"",
            "ALTER TABLE ONLY public.by_index ADD COLUMN c integer",
            "ALTER TABLE public.parts ADD COLUMN c integer DEFAULT 3",
        ]
    );
    // The partitioned table's message names each partition, with the value
    // its old rows read (the one with a dropped column included).
    let parts = added.last().expect("parts");
    let got: Vec<(String, String)> = parts["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| {
            (
                p["table"]["name"].as_str().expect("name").to_string(),
                p["columns"][0]["missing"]
                    .as_str()
                    .expect("missing")
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("parts_1".to_string(), "3".to_string()),
            ("parts_2".to_string(), "3".to_string())
        ]
    );
}
