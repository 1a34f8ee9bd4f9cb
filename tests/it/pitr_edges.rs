//! Point-in-time restore at its edges: a restore that fails after rows
//! reached the target (in a plain table, a partition, an inheritance
//! child), and keys whose text depends on the session that renders them
//! (a base's COPY and the change stream are rendered by two sessions, and
//! the delta matches a change to its base row by that text).
//! Ground truth as in `pitr`: the source dumped at the point, the erased
//! subjects deleted by SQL.

use crate::capture::Capture;
use crate::common::TestDb;
use crate::continuous::LogicalDb;
use crate::pitr::{capturing, mark_point, run, truth};
use crate::schemas::{compare, fingerprints};
use serde_json::Value as Json;
use std::path::PathBuf;

/// Captures `db` while `changes` run, then: the point right after them
/// (dumped to `at.sql` in the capture's directory), a marker user `marker`
/// inserted after it and stored, the daemon stopped, and `erased` put on
/// the erasure list. The stopped capture, its directory, its config and
/// the point.
fn point_after(
    db: LogicalDb,
    changes: &str,
    marker: u32,
    erased: &str,
) -> (Capture, PathBuf, PathBuf, String) {
    let (c, d, cfg) = capturing(db);
    point_after_in(
        c,
        d,
        cfg,
        changes,
        &format!("INSERT INTO users VALUES ({marker}, 'marker')"),
        &[erased],
    )
}

/// As [`point_after`], for a capture already started: `marker` is the SQL
/// committed after the point, `erased` the ids listed.
pub(crate) fn point_after_in(
    mut c: Capture,
    d: PathBuf,
    cfg: PathBuf,
    changes: &str,
    marker: &str,
    erased: &[&str],
) -> (Capture, PathBuf, PathBuf, String) {
    c.db.sql(changes);
    let at = mark_point(&c.db, &d.join("at.sql"));
    c.db.sql(marker);
    stop_and_erase(&mut c, &cfg, erased);
    (c, d, cfg, at)
}

/// Waits until everything stored is restorable, stops the capture (its
/// log checked against the README), then erases `erased`.
pub(crate) fn stop_and_erase(c: &mut Capture, cfg: &std::path::Path, erased: &[&str]) {
    c.wait_restorable();
    assert_eq!(c.stop(), Some(0), "{}", c.log());
    c.check_log();
    let mut add = vec!["erase", "add", "--"];
    add.extend(erased);
    let (code, _, err) = run(cfg, &add);
    assert_eq!(code, 0, "{err}");
}

/// Flips a byte near the end of `table`'s first object in base `base`
/// (an id or `latest`): its key, its path and its good bytes.
fn damage_base_object(
    cfg: &std::path::Path,
    d: &std::path::Path,
    base: &str,
    table: &str,
) -> (String, PathBuf, Vec<u8>) {
    let (code, show, err) = run(cfg, &["show", base, "--json"]);
    assert_eq!(code, 0, "{err}");
    let manifest: Json = serde_json::from_str(&show).expect("show --json");
    let key = manifest["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["name"] == table)
        .and_then(|t| t["objects"][0]["key"].as_str())
        .unwrap_or_else(|| panic!("{table}'s object in the base"))
        .to_string();
    let path = d.join("repo").join(&key);
    let good = std::fs::read(&path).expect("the object");
    let mut bad = good.clone();
    let i = bad.len() * 9 / 10;
    bad[i] ^= 0x20;
    std::fs::write(&path, &bad).expect("damage");
    (key, path, good)
}

/// `restore --at` into a new database with `jobs` jobs: it must exit 1
/// naming the damaged object `key` and logging `restore.failed`, and leave
/// every one of `tables` empty. The database and the restore's stderr.
fn restore_fails(
    cfg: &std::path::Path,
    at: &str,
    key: &str,
    jobs: &str,
    tables: &[&str],
) -> (TestDb, String) {
    let dst = TestDb::create("pitr_fail_dst");
    let (code, _, err) = run(
        cfg,
        &["restore", "--at", at, "--target", &dst.url, "--jobs", jobs],
    );
    assert_eq!(code, 1, "the damaged base was restored: {err}");
    assert!(err.contains(key), "the error does not name {key}:\n{err}");
    assert!(err.contains("restore.failed"), "no restore.failed:\n{err}");
    for table in tables {
        assert_eq!(
            dst.sql(&format!("SELECT count(*) FROM {table}")).trim(),
            "0",
            "rows of {table} remain after the failed point restore"
        );
    }
    (dst, err)
}

/// Pass B fails after rows reached the target: a damaged base object of a
/// table whose rows are loaded before the damage is found (incompressible
/// rows span many age chunks; one job loads the tables in turn), with a
/// replayed window. The restore exits 1 naming the object, and every table
/// it loaded is emptied: no row of the failed restore is left, and none of
/// the changes either. The same point restores whole once the object is
/// put back, equal to the source with the erased user deleted.
#[test]
fn a_point_restore_that_fails_after_loading_rows_empties_every_table_it_loaded() {
    let db = LogicalDb::create("pitr_fail");
    db.sql(
        "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL); \
         CREATE TABLE blobs (id int PRIMARY KEY, user_id bigint REFERENCES users(id) ON DELETE CASCADE, \
                             a text, b text); \
         INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 100) g; \
         INSERT INTO blobs SELECT g, 1 + g % 100, md5(random()::text) || md5(random()::text), md5(g::text) \
           FROM generate_series(1, 60000) g;",
    );
    let (c, d, cfg, at) = point_after(
        db,
        "INSERT INTO users VALUES (101, 'user 101'); \
         INSERT INTO blobs SELECT g, 101, 'late', md5(g::text) FROM generate_series(60001, 60100) g; \
         UPDATE blobs SET user_id = 7 WHERE id <= 50; \
         DELETE FROM blobs WHERE id BETWEEN 100 AND 120;",
        102,
        "7",
    );

    // The base's object of blobs, damaged near its end.
    let base = c
        .log()
        .lines()
        .filter(|l| l.contains("\"event\":\"continuous.base_completed\""))
        .find_map(|l| {
            let v: Json = serde_json::from_str(l).ok()?;
            v["id"].as_str().map(str::to_string)
        })
        .expect("a base_completed event with its id");
    let (key, path, good) = damage_base_object(&cfg, &d, &base, "blobs");
    assert!(
        good.len() > 8 * 65536,
        "object too small to fail after rows were loaded: {}",
        good.len()
    );
    let (_dst, err) = restore_fails(&cfg, &at, &key, "1", &["users", "blobs"]);
    assert!(err.contains("rolled back"), "{err}");

    // Put back: the same point restores whole.
    std::fs::write(&path, &good).expect("repair");
    let truth = truth(&d.join("at.sql"), &["7"]);
    let want = fingerprints(&truth);
    let again = TestDb::create("pitr_fail_again");
    let (code, _, err) = run(&cfg, &["restore", "--at", &at, "--target", &again.url]);
    assert_eq!(code, 0, "{err}");
    compare(&truth, &want, &again, "after the repair");
    assert_eq!(
        again
            .sql("SELECT count(*) FROM blobs WHERE user_id = 7 OR id <= 50")
            .trim(),
        "0",
        "the erased user's blobs (moved to 7 in the window) came back"
    );
}

/// The same failure on a partitioned table loaded by two jobs at once: a
/// damaged base object of one partition, found after the other partition
/// and the users were loaded. Every partition, the parent's view of them
/// and the users are left empty.
#[test]
fn a_point_restore_that_fails_in_one_partition_leaves_no_partition_loaded() {
    let db = LogicalDb::create("pitr_fail_part");
    db.sql(
        "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL); \
         CREATE TABLE events (id int, user_id bigint REFERENCES users(id) ON DELETE CASCADE, \
                              a text, b text, PRIMARY KEY (id)) PARTITION BY RANGE (id); \
         CREATE TABLE events_a PARTITION OF events FOR VALUES FROM (1) TO (30001); \
         CREATE TABLE events_b PARTITION OF events FOR VALUES FROM (30001) TO (100000); \
         INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 100) g; \
         INSERT INTO events SELECT g, 1 + g % 100, md5(random()::text) || md5(random()::text), md5(g::text) \
           FROM generate_series(1, 60000) g;",
    );
    let (_c, d, cfg, at) = point_after(
        db,
        "INSERT INTO events SELECT g, 5, 'late', md5(g::text) FROM generate_series(60001, 60100) g; \
         UPDATE events SET id = id + 70000 WHERE id <= 20; \
         UPDATE events SET user_id = 7 WHERE id BETWEEN 100 AND 150;",
        102,
        "7",
    );
    let (key, _, _) = damage_base_object(&cfg, &d, "latest", "events_b");
    let (_dst, err) = restore_fails(
        &cfg,
        &at,
        &key,
        "2",
        &["users", "events", "events_a", "events_b"],
    );
    // The other partition and the users were committed before the failure
    // (each table loads in a transaction of its own) and are removed again.
    assert!(err.contains("removed again"), "{err}");
}

/// The same failure on an inheritance child: its base object damaged,
/// found after its parent and the users were loaded (two jobs). The
/// parent (which also shows the child's rows), the child and the users
/// are all left empty.
#[test]
fn a_point_restore_that_fails_in_an_inheritance_child_leaves_no_row_loaded() {
    let db = LogicalDb::create("pitr_fail_inh");
    db.sql(
        "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL); \
         CREATE TABLE logs (id int PRIMARY KEY, user_id bigint REFERENCES users(id) ON DELETE CASCADE, \
                            a text, b text); \
         CREATE TABLE logs_archive (PRIMARY KEY (id), \
                                    FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE) INHERITS (logs); \
         INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 100) g; \
         INSERT INTO logs SELECT g, 1 + g % 100, md5(g::text), md5(g::text) FROM generate_series(1, 2000) g; \
         INSERT INTO logs_archive SELECT g, 1 + g % 100, md5(random()::text) || md5(random()::text), md5(g::text) \
           FROM generate_series(100001, 160000) g;",
    );
    let (_c, d, cfg, at) = point_after(
        db,
        "INSERT INTO logs_archive SELECT g, 5, 'late', md5(g::text) FROM generate_series(160001, 160100) g; \
         UPDATE logs SET user_id = 7 WHERE id BETWEEN 100 AND 150; \
         UPDATE logs_archive SET user_id = 7 WHERE id BETWEEN 100100 AND 100150;",
        102,
        "7",
    );
    let (key, _, _) = damage_base_object(&cfg, &d, "latest", "logs_archive");
    let (_dst, err) = restore_fails(&cfg, &at, &key, "2", &["users", "logs", "logs_archive"]);
    assert!(err.contains("removed again"), "{err}");
}

/// Keys whose text depends on the session: a `timestamptz` key under a
/// database time zone of −03:30, `numeric` keys with trailing zeros. The
/// base's COPY and pgoutput render them in different sessions; if the two
/// texts differed, a row updated or deleted in the window would not replace
/// its base row and would come back. Ground truth as above.
#[test]
fn timestamptz_and_numeric_keys_under_a_local_time_zone_replace_their_base_rows() {
    let db = LogicalDb::create("pitr_tz");
    db.sql(&format!(
        "ALTER DATABASE {} SET timezone = 'America/St_Johns'",
        db.name
    ));
    db.sql(
        "CREATE TABLE users (id bigint PRIMARY KEY, name text); \
         CREATE TABLE readings (at timestamptz PRIMARY KEY, \
                                user_id bigint REFERENCES users(id) ON DELETE CASCADE, v numeric); \
         CREATE TABLE prices (amount numeric(12,4) PRIMARY KEY, \
                              user_id bigint REFERENCES users(id) ON DELETE SET NULL, note text); \
         INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 5) g; \
         INSERT INTO readings SELECT timestamptz '2026-03-08 01:30:00.123456+00' + g * interval '37 minutes', \
                                     1 + g % 5, g / 7.0 FROM generate_series(1, 60) g; \
         INSERT INTO prices SELECT g / 4.0, 1 + g % 5, 'price ' || g FROM generate_series(1, 40) g;",
    );
    let (_capture, d, cfg, at) = point_after(
        db,
        "UPDATE readings SET v = v + 1 WHERE user_id = 1; \
         DELETE FROM readings WHERE user_id = 4; \
         UPDATE readings SET user_id = 3 WHERE user_id = 2; \
         UPDATE prices SET note = 'changed' WHERE user_id = 5; \
         DELETE FROM prices WHERE amount IN (2.0, 3.5, 7.25); \
         UPDATE prices SET user_id = 3 WHERE user_id = 1; \
         UPDATE readings SET at = at + interval '1 second' WHERE user_id = 5;",
        6,
        "3",
    );

    let truth = truth(&d.join("at.sql"), &["3"]);
    // The truth: user 4's readings are gone, 3's (and 2's, moved to 3) too.
    assert_eq!(
        truth
            .sql("SELECT count(*) FROM readings WHERE user_id IN (2, 3, 4)")
            .trim(),
        "0"
    );
    let want = fingerprints(&truth);
    let dst = TestDb::create("pitr_tz_dst");
    let (code, _, err) = run(&cfg, &["restore", "--at", &at, "--target", &dst.url]);
    assert_eq!(code, 0, "{err}");
    compare(&truth, &want, &dst, "timestamptz and numeric keys");
    assert_eq!(
        dst.sql("SELECT count(*) FROM readings").trim(),
        truth.sql("SELECT count(*) FROM readings").trim(),
        "deleted or re-keyed readings came back"
    );
}
