//! Captured DDL (issues 19 and 20): the capture's role is a superuser, so
//! lethe's event triggers put each DDL command into the stream. Indexes,
//! triggers, views and functions made or dropped during capture cost no
//! gap and no base, and a point restore runs them after post-data; a change
//! to one that no restore can replay (a rename) makes a gap and a base.
//! Ground truth as in `pitr`: the source dumped at each point, then the
//! erased users deleted by SQL; the schema objects compared with the
//! dump's, definition by definition.

use crate::continuous::LogicalDb;
use crate::pitr::{capturing, mark_point, run, truth};
use crate::pitr_edges::stop_and_erase;
use std::path::Path;
use std::time::Duration;

const SCHEMA: &str = "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL); \
    CREATE TABLE orders (id bigint PRIMARY KEY, \
                         user_id bigint NOT NULL REFERENCES users ON DELETE CASCADE, \
                         note text NOT NULL); \
    CREATE TABLE parts (id bigint NOT NULL, at date NOT NULL, \
                        user_id bigint REFERENCES users ON DELETE SET NULL, \
                        PRIMARY KEY (id, at)) PARTITION BY RANGE (at); \
    CREATE TABLE parts_2026 PARTITION OF parts FOR VALUES FROM ('2026-01-01') TO ('2027-01-01'); \
    INSERT INTO users SELECT i, 'user ' || i FROM generate_series(1, 20) i; \
    INSERT INTO orders SELECT i, i % 20 + 1, 'order ' || i FROM generate_series(1, 60) i; \
    INSERT INTO parts SELECT i, '2026-03-01', i % 20 + 1 FROM generate_series(1, 30) i;";

/// The schema objects DDL capture replays, as PostgreSQL renders them:
/// indexes, views, triggers and functions of schema public.
fn objects(sql: &dyn Fn(&str) -> String) -> String {
    sql("SELECT string_agg(d, E'\\n' ORDER BY d) FROM ( \
           SELECT 'index ' || indexdef AS d FROM pg_indexes WHERE schemaname = 'public' \
           UNION ALL SELECT 'view ' || viewname || ' ' || definition FROM pg_views WHERE schemaname = 'public' \
           UNION ALL SELECT 'trigger ' || pg_get_triggerdef(t.oid) FROM pg_trigger t \
             JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND NOT t.tgisinternal \
           UNION ALL SELECT 'function ' || pg_get_functiondef(p.oid) FROM pg_proc p \
             JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public') o")
}

/// What lethe's DDL capture left in a database: its schema and triggers.
fn lethe_objects(sql: &dyn Fn(&str) -> String) -> String {
    sql(
        "SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = 'lethe') \
              + (SELECT count(*) FROM pg_event_trigger WHERE evtname LIKE 'lethe%')",
    )
    .trim()
    .to_string()
}

/// Restores `at` into a database and into a SQL file loaded by psql: rows
/// equal to the truth at `dump` with `erased` deleted, and the indexes,
/// views, triggers and functions equal to the truth's, none of lethe's own.
fn restores_equal(cfg: &Path, d: &Path, at: &str, dump: &Path, erased: &[&str], what: &str) {
    let truth = truth(dump, erased);
    let want = objects(&|q| truth.sql(q));
    let (dst, loaded) = crate::pitr_types::restores_equal(cfg, d, at, &truth, erased, what);
    for (db, how) in [(&dst, "into a database"), (&loaded, "--to-file")] {
        assert_eq!(
            objects(&|q| db.sql(q)),
            want,
            "{what} {how}: schema objects"
        );
        assert_eq!(
            lethe_objects(&|q| db.sql(q)),
            "0",
            "{what} {how}: lethe's own objects"
        );
    }
}

/// The report's `point.ddl` of a dry run restoring `at`: the captured
/// statements the point replays.
pub(crate) fn point_ddl(cfg: &Path, d: &Path, at: &str) -> u64 {
    let report = d.join("ddl-report.json");
    let (code, _, err) = run(
        cfg,
        &[
            "restore",
            "--at",
            at,
            "--dry-run",
            "--report",
            report.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("json");
    r["point"]["ddl"].as_u64().expect("point.ddl")
}

#[test]
fn indexes_triggers_views_and_functions_made_during_capture_are_replayed_at_each_point() {
    let db = LogicalDb::create("pitr_ddl");
    db.sql(SCHEMA);
    let (mut c, d, cfg) = capturing(db);
    assert!(
        c.log().contains("\"ddl_capture\":\"event_triggers\""),
        "the capture did not install its event triggers:\n{}",
        c.log()
    );
    let erased = ["3", "7", "21"];

    // Before any DDL: the base's own schema.
    c.db.sql(
        "INSERT INTO orders VALUES (101, 3, 'early order of 3'), (102, 4, 'early order of 4')",
    );
    let at0 = mark_point(&c.db, &d.join("at0.sql"));

    // Made: an expression index, a partitioned table's index, a trigger
    // function and its trigger (which changes the rows it stamps on the
    // source: those rows come through the stream as written), a view.
    c.db.sql(
        "CREATE INDEX orders_note_lower ON orders (lower(note)); \
         CREATE INDEX parts_user ON parts (user_id); \
         CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS \
           $$BEGIN NEW.note := NEW.note || ' [stamped]'; RETURN NEW; END$$; \
         CREATE TRIGGER orders_stamp BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION stamp(); \
         CREATE VIEW user_orders WITH (security_barrier) AS \
           SELECT u.id, u.name, count(o.id) AS orders FROM users u LEFT JOIN orders o ON o.user_id = u.id GROUP BY u.id; \
         INSERT INTO users VALUES (21, 'user 21'), (22, 'user 22'); \
         INSERT INTO orders VALUES (103, 21, 'order of 21'), (104, 22, 'order of 22'), (105, 7, 'order of 7'); \
         INSERT INTO parts VALUES (31, '2026-04-01', 21), (32, '2026-04-01', 22);",
    );
    let at1 = mark_point(&c.db, &d.join("at1.sql"));

    // Dropped and replaced: the index, the trigger (then its function, with
    // CASCADE), the view with a column more; one index made concurrently.
    c.db.sql(
        "DROP INDEX orders_note_lower; \
         DROP TRIGGER orders_stamp ON orders; \
         DROP FUNCTION stamp() CASCADE; \
         CREATE OR REPLACE VIEW user_orders WITH (security_barrier) AS \
           SELECT u.id, u.name, count(o.id) AS orders, max(o.id) AS last_order \
           FROM users u LEFT JOIN orders o ON o.user_id = u.id GROUP BY u.id;",
    );
    c.db.sql("CREATE INDEX CONCURRENTLY orders_user_note ON orders (user_id, note)");
    c.db.sql(
        "INSERT INTO orders VALUES (106, 3, 'late order of 3'), (107, 22, 'late order of 22'); \
         UPDATE orders SET user_id = 21 WHERE id = 1;",
    );
    let at2 = mark_point(&c.db, &d.join("at2.sql"));
    c.db.sql("INSERT INTO users VALUES (90, 'marker')");
    c.wait_restorable();
    // None of it cost a gap or a base.
    assert_eq!(c.count("continuous.schema_changed"), 0, "{}", c.log());
    assert_eq!(c.count("continuous.base_completed"), 1, "{}", c.log());

    // A rename no restore can replay: a gap and a base, as for DDL the
    // digest sees.
    c.db.sql("ALTER INDEX orders_user_note RENAME TO orders_by_user");
    c.wait_for("continuous.base_completed", 2, Duration::from_secs(120));
    c.db.sql("INSERT INTO orders VALUES (108, 21, 'after the rename')");
    let at3 = mark_point(&c.db, &d.join("at3.sql"));
    c.db.sql("INSERT INTO users VALUES (91, 'marker')");
    stop_and_erase(&mut c, &cfg, &erased);
    assert!(c.count("continuous.schema_changed") >= 1, "{}", c.log());

    // The rows the trigger stamped came through the stream; the truth has
    // them too (a check that the test means something).
    let t1 = truth(&d.join("at1.sql"), &erased);
    assert_eq!(
        t1.sql("SELECT count(*) FROM orders WHERE note LIKE '%[stamped]'")
            .trim(),
        "1",
        "order 104 of user 22 is stamped in the truth at point 1"
    );
    drop(t1);

    // The report counts the statements run after post-data: none before
    // the DDL, and at least the five made before point 1.
    for (at, least, most) in [(&at0, 0, 0), (&at1, 5, 6), (&at2, 10, 20)] {
        let n = point_ddl(&cfg, &d, at);
        assert!((least..=most).contains(&n), "{n} statements at {at}");
    }

    for (at, dump, what) in [
        (&at0, "at0.sql", "before any DDL"),
        (
            &at1,
            "at1.sql",
            "after indexes, a trigger, its function and a view were made",
        ),
        (
            &at2,
            "at2.sql",
            "after they were dropped, replaced and made concurrently",
        ),
        (&at3, "at3.sql", "after the rename's base"),
    ] {
        restores_equal(&cfg, &d, at, &d.join(dump), &erased, what);
    }

    // `continuous disable` takes the triggers and the schema with it.
    let (code, out, err) = run(&cfg, &["continuous", "disable"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("removed event triggers") && out.contains("removed schema lethe"),
        "{out}"
    );
    assert_eq!(lethe_objects(&|q| c.db.sql(q)), "0");
}

/// A capture role that is not a superuser cannot install the event
/// triggers: an index made during capture is seen by the schema digest,
/// which costs a gap and a base, and a point after that base restores it.
#[test]
fn without_a_superuser_an_index_made_during_capture_costs_a_base_and_is_restored_after_it() {
    let mut db = LogicalDb::create("pitr_ddl_repl");
    db.sql(
        "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL); \
         CREATE TABLE orders (id bigint PRIMARY KEY, \
                              user_id bigint NOT NULL REFERENCES users ON DELETE CASCADE, \
                              note text NOT NULL); \
         INSERT INTO users SELECT i, 'user ' || i FROM generate_series(1, 20) i; \
         INSERT INTO orders SELECT i, i % 20 + 1, 'order ' || i FROM generate_series(1, 60) i;",
    );
    let role = format!("lethe_ddl_{:08x}", rand::random::<u32>());
    crate::common::psql_at(
        &crate::common::pg_logical_base(),
        "postgres",
        &format!("CREATE ROLE {role} LOGIN PASSWORD 'pw' REPLICATION"),
    );
    // The restores' cluster: pre-data gives the tables to their owner.
    crate::common::psql_at(
        &crate::common::pg_base(),
        "postgres",
        &format!("DROP ROLE IF EXISTS {role}; CREATE ROLE {role}"),
    );
    db.sql(&format!(
        "GRANT CREATE ON DATABASE {} TO {role}; \
         ALTER TABLE users OWNER TO {role}; ALTER TABLE orders OWNER TO {role};",
        db.name
    ));
    db.role = Some(role);
    let (mut c, d, cfg) = capturing(db);
    assert!(
        c.log().contains("\"ddl_capture\":\"schema_digest\""),
        "{}",
        c.log()
    );
    assert_eq!(
        lethe_objects(&|q| c.db.sql(q)),
        "0",
        "event triggers installed"
    );

    c.db.sql(
        "CREATE INDEX orders_note ON orders (lower(note)); INSERT INTO orders VALUES (101, 3, 'x')",
    );
    c.wait_for("continuous.base_completed", 2, Duration::from_secs(120));
    assert!(c.count("continuous.schema_changed") >= 1, "{}", c.log());
    c.db.sql("INSERT INTO orders VALUES (102, 4, 'after the index'), (103, 3, 'after, of 3')");
    let at = mark_point(&c.db, &d.join("at.sql"));
    c.db.sql("INSERT INTO users VALUES (90, 'marker')");
    stop_and_erase(&mut c, &cfg, &["3"]);
    restores_equal(
        &cfg,
        &d,
        &at,
        &d.join("at.sql"),
        &["3"],
        "after the index's base",
    );
}

/// A table someone put into schema `lethe` makes it not lethe's alone: a
/// snapshot backs the schema up with the table (never left out), and
/// `continuous disable` drops the triggers but leaves the schema.
#[test]
fn a_table_put_into_lethes_schema_is_backed_up_and_the_schema_is_left_alone() {
    let db = LogicalDb::create("pitr_ddl_own");
    db.sql(
        "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL); \
            INSERT INTO users VALUES (1, 'one'), (2, 'two');",
    );
    let (mut c, _d, cfg) = capturing(db);
    assert_eq!(
        lethe_objects(&|q| c.db.sql(q)),
        (1 + lethe::pg::ddl_capture::TRIGGERS.len()).to_string(),
        "schema lethe and its triggers"
    );
    assert_eq!(c.stop(), Some(0), "{}", c.log());
    c.db.sql(
        "CREATE TABLE lethe.kept (id int PRIMARY KEY, note text); \
              INSERT INTO lethe.kept VALUES (1, 'not lethe''s'), (2, 'kept');",
    );

    let (code, _, err) = run(&cfg, &["snapshot"]);
    assert_eq!(code, 0, "{err}");
    let dst = crate::common::TestDb::create("pitr_ddl_own_dst");
    let (code, _, err) = run(&cfg, &["restore", "latest", "--target", &dst.url]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        dst.sql("SELECT string_agg(id || ':' || note, ',' ORDER BY id) FROM lethe.kept")
            .trim(),
        "1:not lethe's,2:kept"
    );
    // lethe's triggers never reach a restore, whoever owns the schema.
    assert_eq!(
        dst.sql("SELECT count(*) FROM pg_event_trigger WHERE evtname LIKE 'lethe%'")
            .trim(),
        "0"
    );

    let (code, out, err) = run(&cfg, &["continuous", "disable"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("removed event triggers") && !out.contains("removed schema"),
        "{out}"
    );
    assert_eq!(c.db.sql("SELECT count(*) FROM lethe.kept").trim(), "2");
}

/// Captured DDL that fails in the target (an index in a tablespace the
/// target's cluster does not have) fails the restore naming the statement
/// and its commit, and leaves no row in the target.
#[test]
fn captured_ddl_that_fails_in_the_target_leaves_no_rows_and_names_the_statement() {
    let db = LogicalDb::create("pitr_ddl_fail");
    db.sql(SCHEMA);
    // A tablespace of the source's cluster only.
    let ts = format!("lethe_ts_{:08x}", rand::random::<u32>());
    let dir = tempfile::tempdir().expect("tempdir");
    // The server (user postgres) must reach it through the temp dir.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let loc = dir.path().join("ts");
    std::fs::create_dir(&loc).expect("mkdir");
    let ok = std::process::Command::new("chown")
        .args(["postgres:postgres", loc.to_str().expect("utf-8")])
        .status()
        .expect("chown")
        .success();
    assert!(ok, "chown the tablespace directory");
    crate::common::psql_at(
        &crate::common::pg_logical_base(),
        "postgres",
        &format!("CREATE TABLESPACE {ts} LOCATION '{}'", loc.display()),
    );
    let (mut c, d, cfg) = capturing(db);
    c.db.sql(&format!(
        "CREATE INDEX orders_note_ts ON orders (note) TABLESPACE {ts}; \
         INSERT INTO orders VALUES (101, 4, 'after the index')"
    ));
    let at = mark_point(&c.db, &d.join("at.sql"));
    c.db.sql("INSERT INTO users VALUES (90, 'marker')");
    stop_and_erase(&mut c, &cfg, &["3"]);
    assert_eq!(c.count("continuous.base_completed"), 1, "{}", c.log());

    let dst = crate::common::TestDb::create("pitr_ddl_fail_dst");
    let (code, _, err) = run(&cfg, &["restore", "--at", &at, "--target", &dst.url]);
    assert_eq!(code, 1, "the restore passed: {err}");
    assert!(
        err.contains("replaying the DDL captured in the transaction committed at")
            && err.contains("orders_note_ts"),
        "{err}"
    );
    for table in ["users", "orders", "parts"] {
        assert_eq!(
            dst.sql(&format!("SELECT count(*) FROM {table}")).trim(),
            "0",
            "{table} kept rows after the failure"
        );
    }
    drop(c);
    crate::common::psql_at(
        &crate::common::pg_logical_base(),
        "postgres",
        &format!("DROP TABLESPACE IF EXISTS {ts}"),
    );
}
