//! Point-in-time restore (`lethe restore --at`) against the ground truth:
//! an application workload runs on the logical test cluster while the
//! daemon captures it; at several points the source is dumped. Then
//! subjects of every kind are erased (present in the base, created after
//! it, deleted by the application during the window, whose children were
//! moved to another user, a manager others point at). For each point,
//! `restore --at` must give exactly the dump of that point with the erased
//! subjects deleted by SQL (RESTRICT / NO ACTION as CASCADE), table by
//! table, and no erased id anywhere. Points outside the stored windows are
//! refused with nothing written.

use crate::capture::Capture;
use crate::common::{TestDb, lethe};
use crate::continuous::LogicalDb;
use crate::schemas::{cascade_restricts, compare, fingerprints, load_file};
use serde_json::Value as Json;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const SCHEMA: &str = "\
    CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL, \
                        manager_id bigint REFERENCES users(id) ON DELETE SET NULL); \
    CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE, note text); \
    CREATE TABLE items (id bigint PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders(id) ON DELETE RESTRICT, sku text); \
    CREATE TABLE reviews (id bigint PRIMARY KEY, user_id bigint REFERENCES users(id) ON DELETE SET NULL, body text); \
    CREATE TABLE docs (id bigint PRIMARY KEY, user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE, \
                       title text, body text); \
    CREATE TABLE audit (at bigint, msg text); ALTER TABLE audit REPLICA IDENTITY FULL; \
    INSERT INTO users SELECT g, 'user ' || g, CASE WHEN g > 10 THEN 1 + g % 10 END FROM generate_series(1, 30) g; \
    INSERT INTO orders SELECT g, 1 + g % 30, 'order ' || g FROM generate_series(1, 90) g; \
    INSERT INTO items SELECT g, 1 + g % 90, 'sku ' || g FROM generate_series(1, 180) g; \
    INSERT INTO reviews SELECT g, 1 + g % 30, 'review ' || g FROM generate_series(1, 60) g; \
    INSERT INTO docs SELECT g, 1 + g % 30, 'doc ' || g, \
        (SELECT string_agg(md5(g::text || '-' || i), '') FROM generate_series(1, 400) i) \
      FROM generate_series(1, 30) g; \
    INSERT INTO audit SELECT g, 'boot' FROM generate_series(1, 5) g; \
    INSERT INTO audit VALUES (1, 'boot');";

/// Inserts after the base, children moved from 3 to 4, documents whose
/// TOASTed body is unchanged by an update, keys changed, user 5 deleted by
/// the application, one of two equal rows of a whole-row table deleted.
const PHASE_1: &str = "\
    INSERT INTO users SELECT g, 'user ' || g, 2 FROM generate_series(31, 45) g; \
    INSERT INTO orders SELECT g, 31 + g % 15, 'late order ' || g FROM generate_series(91, 120) g; \
    INSERT INTO items SELECT g, 91 + g % 30, 'sku ' || g FROM generate_series(181, 240) g; \
    UPDATE orders SET user_id = 4 WHERE user_id = 3; \
    UPDATE docs SET title = title || ' v2' WHERE user_id IN (1, 4, 9); \
    UPDATE items SET id = id + 10000 WHERE order_id IN (SELECT id FROM orders WHERE user_id = 9); \
    BEGIN; DELETE FROM items WHERE order_id IN (SELECT id FROM orders WHERE user_id = 5); \
           DELETE FROM users WHERE id = 5; COMMIT; \
    DELETE FROM audit WHERE ctid = (SELECT ctid FROM audit WHERE at = 1 LIMIT 1); \
    INSERT INTO audit VALUES (100, 'phase 1'); \
    UPDATE reviews SET user_id = 6 WHERE id IN (1, 2);";

/// A TRUNCATE, children moved from 6 to 7, a user created after the base
/// (42 gets an order), user 8 deleted by the application, a second
/// TOAST-keeping update.
const PHASE_2: &str = "\
    TRUNCATE audit; INSERT INTO audit VALUES (200, 'after truncate'), (200, 'after truncate'); \
    UPDATE orders SET user_id = 7 WHERE user_id = 6; \
    UPDATE docs SET user_id = 7 WHERE user_id = 6; \
    INSERT INTO users VALUES (46, 'user 46', 6); \
    INSERT INTO orders VALUES (121, 42, 'order of 42'), (122, 46, 'order of 46'); \
    INSERT INTO items VALUES (241, 121, 'sku of 42'); \
    BEGIN; DELETE FROM items WHERE order_id IN (SELECT id FROM orders WHERE user_id = 8); \
           DELETE FROM users WHERE id = 8; COMMIT; \
    UPDATE docs SET title = 'again ' || id WHERE user_id = 1; \
    UPDATE users SET name = 'renamed' WHERE id = 12;";

/// After a column was added (a gap and a new base).
const PHASE_3: &str = "\
    INSERT INTO users VALUES (47, 'user 47', 1, 'e47'); \
    UPDATE orders SET user_id = 47 WHERE id = 10; \
    DELETE FROM reviews WHERE id = 3; \
    UPDATE docs SET title = 'third' WHERE id = 4;";

const ERASED: &[&str] = &["1", "2", "3", "5", "6", "8", "42"];

/// The source's clock, in UTC, to the microsecond.
pub(crate) fn now(db: &LogicalDb) -> String {
    db.sql(
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    )
    .trim()
    .to_string()
}

/// The source as it is now, as a plain SQL dump.
pub(crate) fn dump(db: &LogicalDb, path: &Path) {
    let out = Command::new("pg_dump")
        .args([
            "--no-publications",
            "--no-subscriptions",
            "--no-owner",
            "-f",
        ])
        .arg(path)
        .args(["-d", &db.url()])
        .output()
        .expect("pg_dump runs");
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A point between commits: 1.1 s after the last one, the source's clock
/// read and the source dumped to `path`, then 1.1 s before the next. The
/// point's time.
pub(crate) fn mark_point(db: &LogicalDb, path: &Path) -> String {
    let gap = Duration::from_millis(1100);
    std::thread::sleep(gap);
    let at = now(db);
    dump(db, path);
    std::thread::sleep(gap);
    at
}

/// The truth for a point: its dump loaded, RESTRICT / NO ACTION as
/// CASCADE, the `erased` users deleted by SQL.
pub(crate) fn truth(dump: &Path, erased: &[&str]) -> TestDb {
    truth_after(
        dump,
        &format!("DELETE FROM users WHERE id IN ({})", erased.join(", ")),
    )
}

/// The truth for a point: its dump loaded, RESTRICT / NO ACTION as
/// CASCADE, then `delete` (the erased subjects deleted by SQL).
pub(crate) fn truth_after(dump: &Path, delete: &str) -> TestDb {
    let t = TestDb::create("pitr_truth");
    load_file(&t, dump.to_str().expect("utf-8"));
    cascade_restricts(&t);
    t.sql(delete);
    t
}

fn no_erased_id(db: &TestDb, what: &str) {
    let list = ERASED.join(", ");
    let n = db.sql(&format!(
        "SELECT (SELECT count(*) FROM users WHERE id IN ({list}) OR manager_id IN ({list})) \
              + (SELECT count(*) FROM orders WHERE user_id IN ({list})) \
              + (SELECT count(*) FROM reviews WHERE user_id IN ({list})) \
              + (SELECT count(*) FROM docs WHERE user_id IN ({list}))"
    ));
    assert_eq!(
        n.trim(),
        "0",
        "{what}: an erased id is in the restored database"
    );
}

pub(crate) fn run(cfg: &Path, args: &[&str]) -> (i32, String, String) {
    let out = lethe(cfg, args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tables_in(db: &TestDb) -> String {
    db.sql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        .trim()
        .to_string()
}

/// The daemon capturing `db` (users as the subjects, segments every
/// 300 ms, encrypted to a fresh key), started: the capture, its directory
/// and its config file.
pub(crate) fn capturing(db: LogicalDb) -> (Capture, std::path::PathBuf, std::path::PathBuf) {
    capturing_with(
        db,
        "subject_type = \"bigint\"\n\
         subjects = [ { table = \"public.users\", column = \"id\" } ]\n",
    )
}

/// As [`capturing`], with `erasure` as the `[erasure]` section after its
/// `path` (subjects, policies, references; `{dir}` is the capture's
/// directory, which holds a pseudonym key as `pseudonym.key`).
pub(crate) fn capturing_with(
    db: LogicalDb,
    erasure: &str,
) -> (Capture, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_path_buf();
    let public = lethe::crypto::keygen(&d.join("restore.key")).expect("keygen");
    // For policies that redact with pseudonyms (`{dir}/pseudonym.key`).
    let key = d.join("pseudonym.key");
    std::fs::write(&key, crate::schemas::PSEUDONYM_KEY_HEX).expect("write pseudonym key");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod pseudonym key");
    let cfg = crate::common::write_config(
        &d,
        &format!(
            "[source]\nurl = \"{url}\"\njobs = 2\n\
             [storage]\nurl = \"file://{d}/repo\"\n\
             [encryption]\nrecipients = [\"{public}\"]\nidentity_file = \"{d}/restore.key\"\n\
             [erasure]\npath = \"{d}/erasure\"\n{erasure}\
             [api]\nlisten = \"unix:{d}/api.sock\"\n\
             [continuous]\nenabled = true\nflush_every = \"300ms\"\nslot = \"{slot}\"\n\
             [schedule]\nevery = \"24h\"\n\
             [log]\nlevel = \"debug\"\n",
            url = db.url(),
            d = d.display(),
            slot = db.name,
            erasure = erasure.replace("{dir}", &d.display().to_string()),
        ),
    );
    let mut c = Capture::with_config(db, dir, cfg.clone());
    c.start_with(&[("LETHE_TEST_POLL_MS", "300")]);
    c.wait_for("continuous.started", 1, Duration::from_secs(120));
    (c, d, cfg)
}

#[test]
fn restore_at_each_point_equals_the_source_then_with_the_erased_deleted() {
    let db = LogicalDb::create("pitr");
    db.sql(SCHEMA);
    let before_base = now(&db);
    let (mut c, d, cfg) = capturing(db);
    let gap = Duration::from_millis(1100);

    c.db.sql(PHASE_1);
    let t1 = mark_point(&c.db, &d.join("p1.sql"));

    c.db.sql(PHASE_2);
    let t2 = mark_point(&c.db, &d.join("p2.sql"));
    // A commit after the point, so the window runs past it.
    c.db.sql("INSERT INTO audit VALUES (300, 'marker')");
    std::thread::sleep(gap);

    // A column added with a check (one without is replayed:
    // `pitr_columns`): capture records a gap and takes a new base.
    c.db.sql("ALTER TABLE users ADD COLUMN email text CHECK (email <> '')");
    let in_gap = now(&c.db);
    c.db.sql("UPDATE users SET email = 'x' WHERE id = 13");
    c.wait_for("continuous.base_completed", 2, Duration::from_secs(120));
    std::thread::sleep(gap);

    c.db.sql(PHASE_3);
    let t3 = mark_point(&c.db, &d.join("p3.sql"));
    c.db.sql("INSERT INTO audit VALUES (400, 'marker')");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(c.stop(), Some(0), "{}", c.log());
    c.check_log();

    let mut add = vec!["erase", "add", "--"];
    add.extend(ERASED);
    let (code, _, err) = run(&cfg, &add);
    assert_eq!(code, 0, "{err}");

    for (n, (t, file)) in [(&t1, "p1.sql"), (&t2, "p2.sql"), (&t3, "p3.sql")]
        .into_iter()
        .enumerate()
    {
        let what = format!("point {} ({t})", n + 1);
        let truth = truth(&d.join(file), ERASED);
        let want = fingerprints(&truth);
        let dst = TestDb::create("pitr_dst");
        let report = d.join(format!("report{n}.json"));
        let (code, out, err) = run(
            &cfg,
            &[
                "restore",
                "--at",
                t,
                "--target",
                &dst.url,
                "--report",
                report.to_str().expect("utf-8"),
            ],
        );
        assert_eq!(code, 0, "{what}: {err}");
        assert!(out.contains(" as it was at "), "{what}: {out}");
        compare(&truth, &want, &dst, &what);
        no_erased_id(&dst, &what);
        let r: Json =
            serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("json");
        assert!(
            r["point"]["transactions"].as_u64().unwrap_or(0) > 0,
            "{what}: {r}"
        );
        assert_eq!(r["point"]["at"], *t, "{what}: {r}");
        assert!(
            r["point"]["tables"]
                .as_array()
                .is_some_and(|a| !a.is_empty()),
            "{what}: {r}"
        );
        if n == 1 {
            // The same point as a SQL file, loaded by psql.
            let sql = d.join("p2-restored.sql");
            let (code, _, err) = run(
                &cfg,
                &[
                    "restore",
                    "--at",
                    t,
                    "--to-file",
                    sql.to_str().expect("utf-8"),
                ],
            );
            assert_eq!(code, 0, "{what} --to-file: {err}");
            let loaded = TestDb::create("pitr_file");
            load_file(&loaded, sql.to_str().expect("utf-8"));
            compare(&truth, &want, &loaded, &format!("{what} --to-file"));
            no_erased_id(&loaded, &format!("{what} --to-file"));
        }
    }

    // Refused with exit 1 and nothing written: before the first base, in
    // the gap, after the last flushed commit; each names what is restorable.
    let dst = TestDb::create("pitr_refused");
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    for (at, says) in [
        (
            before_base.as_str(),
            "older than the oldest restorable time",
        ),
        (in_gap.as_str(), "inside a gap of the change stream"),
        (later.as_str(), "newer than the last flushed commit"),
    ] {
        let (code, _, err) = run(&cfg, &["restore", "--at", at, "--target", &dst.url]);
        assert_eq!(code, 1, "--at {at}: {err}");
        assert!(err.contains(says), "--at {at}: {err}");
        assert_eq!(tables_in(&dst), "0", "--at {at} wrote to the target");
    }
    // `latest` and a dry run: the report without a database.
    let (code, out, err) = run(&cfg, &["restore", "--at", "latest", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("as it was at latest: base"), "{out}");
}

/// The attack: a foreign key added during capture. pgoutput does not carry
/// constraints, so a restore past it from the base taken before it would
/// not know `notes` now belongs to a user and would bring an erased user's
/// notes back. The capture must see the change (its schema digest), leave
/// a gap and take a base; a point after it restores from that base, one
/// before it as the source then was (no key: the notes stay), and a time
/// or an LSN in between is refused.
#[test]
fn a_foreign_key_added_during_capture_is_followed_after_it_and_refused_across_it() {
    let db = LogicalDb::create("pitr_fk");
    db.sql(
        "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL); \
         CREATE TABLE notes (id bigint PRIMARY KEY, user_id bigint, body text); \
         INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 6) g; \
         INSERT INTO notes SELECT g, 1 + g % 6, 'note ' || g FROM generate_series(1, 30) g;",
    );
    let (mut c, d, cfg) = capturing(db);
    let gap = Duration::from_millis(1100);

    c.db.sql("INSERT INTO notes VALUES (31, 2, 'late note of 2'), (32, 3, 'late note of 3')");
    std::thread::sleep(gap);
    let t1 = now(&c.db);
    dump(&c.db, &d.join("before.sql"));
    // The gap starts at the last check before the key, less a second.
    std::thread::sleep(Duration::from_millis(2500));

    // The key and a note in one transaction, and the position right after.
    let lsn_in_gap = c.db.sql(
        "BEGIN; ALTER TABLE notes ADD CONSTRAINT notes_user FOREIGN KEY (user_id) \
           REFERENCES users(id) ON DELETE CASCADE; \
         INSERT INTO notes VALUES (33, 2, 'note of 2 under the key'); COMMIT; \
         SELECT pg_current_wal_lsn();",
    );
    let lsn_in_gap = lsn_in_gap.trim().lines().last().expect("lsn").to_string();
    let in_gap = now(&c.db);
    c.wait_for("continuous.base_completed", 2, Duration::from_secs(120));
    std::thread::sleep(gap);

    c.db.sql("INSERT INTO notes VALUES (34, 2, 'later note of 2'), (35, 4, 'later note of 4')");
    let t2 = mark_point(&c.db, &d.join("after.sql"));
    c.db.sql("INSERT INTO notes VALUES (36, 5, 'marker')");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(c.stop(), Some(0), "{}", c.log());
    c.check_log();
    assert!(
        c.log().contains("\"event\":\"continuous.schema_changed\""),
        "the added key was not seen as a schema change:\n{}",
        c.log()
    );

    let (code, _, err) = run(&cfg, &["erase", "add", "--", "2"]);
    assert_eq!(code, 0, "{err}");
    for (t, file, notes_of_2) in [(&t1, "before.sql", "6"), (&t2, "after.sql", "0")] {
        let what = format!("--at {t} ({file})");
        let truth = truth(&d.join(file), &["2"]);
        // The truth itself: without the key user 2's notes stay, with it they go.
        assert_eq!(
            truth
                .sql("SELECT count(*) FROM notes WHERE user_id = 2")
                .trim(),
            notes_of_2,
            "{what}: the truth"
        );
        let want = fingerprints(&truth);
        let dst = TestDb::create("pitr_fk_dst");
        let (code, _, err) = run(&cfg, &["restore", "--at", t, "--target", &dst.url]);
        assert_eq!(code, 0, "{what}: {err}");
        compare(&truth, &want, &dst, &what);
    }
    // Between the last check before the key and the base after it: refused,
    // by time and by LSN, with nothing written.
    let dst = TestDb::create("pitr_fk_refused");
    for at in [in_gap.as_str(), lsn_in_gap.as_str()] {
        let (code, _, err) = run(&cfg, &["restore", "--at", at, "--target", &dst.url]);
        assert_eq!(code, 1, "--at {at} was not refused: {err}");
        assert!(
            err.contains("inside a gap") || err.contains("past the restorable window"),
            "--at {at}: {err}"
        );
        assert_eq!(tables_in(&dst), "0", "--at {at} wrote to the target");
    }
}

/// Partitions and inheritance under a point restore: rows moved from one
/// partition to another by an UPDATE of the partition key (a delete and an
/// insert in two leaves), rows moved onto an erased user, an inheritance
/// child with its own key to users. Ground truth as above.
#[test]
fn partitions_and_inheritance_at_a_point_equal_the_source_with_the_erased_deleted() {
    let db = LogicalDb::create("pitr_parts");
    db.sql(
        "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL); \
         CREATE TABLE events (id bigint, at int NOT NULL, \
                              user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE, \
                              what text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at); \
         CREATE TABLE events_old PARTITION OF events FOR VALUES FROM (MINVALUE) TO (100); \
         CREATE TABLE events_new PARTITION OF events FOR VALUES FROM (100) TO (MAXVALUE); \
         CREATE TABLE logs (id bigint PRIMARY KEY, user_id bigint REFERENCES users(id) ON DELETE SET NULL, msg text); \
         CREATE TABLE logs_archive (PRIMARY KEY (id), \
                                    FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE) INHERITS (logs); \
         INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 8) g; \
         INSERT INTO events SELECT g, g % 150, 1 + g % 8, 'e' || g FROM generate_series(1, 120) g; \
         INSERT INTO logs SELECT g, 1 + g % 8, 'log ' || g FROM generate_series(1, 16) g; \
         INSERT INTO logs_archive SELECT g, 1 + g % 8, 'old log ' || g FROM generate_series(101, 116) g;",
    );
    let (mut c, d, cfg) = capturing(db);
    let gap = Duration::from_millis(1500);
    // Every row the workload writes has a newer xmin than this.
    let xid = c.db.sql("SELECT pg_current_xact_id()::text");
    let xid = xid.trim();
    c.db.sql(
        "INSERT INTO users VALUES (9, 'user 9'); \
         INSERT INTO events SELECT g, g % 150, 1 + g % 9, 'late ' || g FROM generate_series(121, 160) g; \
         UPDATE events SET at = at + 100 WHERE user_id = 3 AND at < 50; \
         UPDATE events SET at = at - 100 WHERE user_id = 4 AND at >= 100; \
         UPDATE events SET user_id = 2 WHERE id IN (5, 6, 7) AND user_id <> 2; \
         UPDATE events SET user_id = 5 WHERE id IN (9, 10) AND user_id = 2; \
         INSERT INTO logs_archive VALUES (117, 2, 'archived later'), (118, 9, 'archived 9'); \
         INSERT INTO logs VALUES (17, 3, 'log of 3'); \
         UPDATE logs SET user_id = 2 WHERE id = 1; \
         DELETE FROM logs_archive WHERE id = 101; \
         DELETE FROM events WHERE id = 11;",
    );
    std::thread::sleep(gap);
    let t = now(&c.db);
    dump(&c.db, &d.join("point.sql"));
    // What the report must count per table as dropped / nulled from the
    // changes: the erased users' rows the workload wrote (logs sets NULL,
    // the others cascade).
    let from_changes: std::collections::BTreeMap<String, (u64, u64)> = c
        .db
        .sql(&format!(
            "SELECT 'public.' || c.relname, \
                    count(*) FILTER (WHERE c.relname <> 'logs'), count(*) FILTER (WHERE c.relname = 'logs') \
             FROM (SELECT tableoid, xmin, id AS u FROM users \
                   UNION ALL SELECT tableoid, xmin, user_id FROM events \
                   UNION ALL SELECT tableoid, xmin, user_id FROM logs) r \
             JOIN pg_class c ON c.oid = r.tableoid \
             WHERE r.u IN (2, 3, 9) AND r.xmin::text::bigint >= {xid} GROUP BY 1"
        ))
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            (f[0].to_string(), (f[1].parse().expect("n"), f[2].parse().expect("n")))
        })
        .collect();
    assert!(from_changes.len() >= 4, "{from_changes:?}");
    std::thread::sleep(gap);
    c.db.sql("INSERT INTO logs VALUES (18, 1, 'marker')");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(c.stop(), Some(0), "{}", c.log());
    c.check_log();

    let (code, _, err) = run(&cfg, &["erase", "add", "--", "2", "3", "9"]);
    assert_eq!(code, 0, "{err}");
    let truth = truth(&d.join("point.sql"), &["2", "3", "9"]);
    let want = fingerprints(&truth);
    let dst = TestDb::create("pitr_parts_dst");
    let report = d.join("report.json");
    let (code, _, err) = run(
        &cfg,
        &[
            "restore",
            "--at",
            &t,
            "--target",
            &dst.url,
            "--report",
            report.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    compare(&truth, &want, &dst, &format!("--at {t}"));
    let r: Json = serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("json");
    let counted: std::collections::BTreeMap<String, (u64, u64)> = r["point"]["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| {
            (
                t["table"].as_str().expect("name").to_string(),
                (
                    t["rows_dropped_from_changes"].as_u64().expect("dropped"),
                    t["rows_nulled_from_changes"].as_u64().expect("nulled"),
                ),
            )
        })
        .filter(|(_, c)| *c != (0, 0))
        .collect();
    assert_eq!(counted, from_changes, "{r}");
    let left = dst.sql(
        "SELECT (SELECT count(*) FROM events WHERE user_id IN (2, 3, 9)) \
              + (SELECT count(*) FROM logs WHERE user_id IN (2, 3, 9))",
    );
    assert_eq!(left.trim(), "0", "an erased user's rows are back");
}
