//! `lethe continuous check`: the preflight of continuous capture against
//! real servers: the cluster with `wal_level = logical` that
//! `scripts/pg-logical-test.sh` starts, and the main one (`replica`).
//! Each check names what is wrong and its fix; the source is never changed.

use crate::common::{TestDb, lethe, pg_logical_base, psql_at, write_config};
use std::process::Output;

/// A database (and optionally a role) on the logical cluster for one test,
/// dropped on `Drop`.
struct LogicalDb {
    name: String,
    role: Option<String>,
}

impl LogicalDb {
    fn create(tag: &str) -> LogicalDb {
        let name = format!("lethe_{tag}_{:08x}", rand::random::<u32>());
        psql_at(
            &pg_logical_base(),
            "postgres",
            &format!("CREATE DATABASE {name}"),
        );
        LogicalDb { name, role: None }
    }

    fn sql(&self, sql: &str) -> String {
        psql_at(&pg_logical_base(), &self.name, sql)
    }

    /// The URL lethe connects with: as `postgres`, or as the test's role.
    fn url(&self) -> String {
        match &self.role {
            None => format!("{}/{}", pg_logical_base(), self.name),
            Some(role) => {
                let base = pg_logical_base();
                let hostport = base.rsplit_once('@').map_or("127.0.0.1:5499", |(_, h)| h);
                format!("postgres://{role}:pw@{hostport}/{}", self.name)
            }
        }
    }
}

impl Drop for LogicalDb {
    fn drop(&mut self) {
        let run = |sql: String| {
            let _ = std::process::Command::new("psql")
                .args([
                    "-X",
                    "-q",
                    "-d",
                    &format!("{}/postgres", pg_logical_base()),
                    "-c",
                ])
                .arg(sql)
                .output();
        };
        run(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
        if let Some(role) = &self.role {
            run(format!("DROP ROLE IF EXISTS {role}"));
        }
    }
}

/// `lethe continuous check` with a config whose source is `url`.
fn check(url: &str) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display();
    let cfg = write_config(
        dir.path(),
        &format!(
            "[source]\nurl = \"{url}\"\n\
             [storage]\nurl = \"file://{d}/repo\"\n\
             [encryption]\ndisabled = true\n\
             [erasure]\npath = \"{d}/erasure\"\n\
             [api]\nlisten = \"unix:{d}/api.sock\"\n\
             [continuous]\nenabled = true\n"
        ),
    );
    lethe(&cfg, &["continuous", "check"])
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const USERS: &str = "CREATE TABLE users (id bigint PRIMARY KEY, name text);";

#[test]
fn a_database_whose_tables_all_have_a_replica_identity_passes() {
    let db = LogicalDb::create("cont_ok");
    db.sql(&format!(
        "{USERS} CREATE TABLE tags (name text NOT NULL); \
         CREATE UNIQUE INDEX tags_name ON tags (name); \
         ALTER TABLE tags REPLICA IDENTITY USING INDEX tags_name; \
         CREATE TABLE events (at timestamptz, body text); ALTER TABLE events REPLICA IDENTITY FULL; \
         CREATE TABLE parts (id int PRIMARY KEY) PARTITION BY RANGE (id); \
         CREATE TABLE parts_1 PARTITION OF parts FOR VALUES FROM (0) TO (100);"
    ));
    let out = check(&db.url());
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("ready for continuous capture"), "{stdout}");
    assert!(stdout.contains("4 table(s)"), "{stdout}");
    // The cluster limits slot WAL (256MB): no warning about it.
    assert!(!stderr.contains("max_slot_wal_keep_size"), "{stderr}");
}

#[test]
fn tables_without_a_replica_identity_are_all_named_with_both_fixes_and_left_unchanged() {
    let db = LogicalDb::create("cont_noid");
    db.sql(&format!(
        "{USERS} CREATE TABLE logs (msg text); \
         CREATE TABLE blobs (id int PRIMARY KEY, b bytea); ALTER TABLE blobs REPLICA IDENTITY NOTHING; \
         CREATE TABLE \"Odd Name\" (x int);"
    ));
    let out = check(&db.url());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}{stderr}", text(&out.stdout));
    assert!(
        stderr.contains("3 table(s) have no replica identity"),
        "{stderr}"
    );
    for name in [
        "\"public\".\"logs\"",
        "\"public\".\"blobs\"",
        "\"public\".\"Odd Name\"",
    ] {
        assert!(stderr.contains(name), "{name} not named: {stderr}");
    }
    assert!(!stderr.contains("\"users\""), "{stderr}");
    assert!(stderr.contains("ADD PRIMARY KEY"), "{stderr}");
    assert!(stderr.contains("REPLICA IDENTITY FULL"), "{stderr}");
    // Nothing changed on the source: identities as created, no publication, no slot.
    assert_eq!(
        db.sql(
            "SELECT string_agg(relname || '=' || relreplident::text, ',' ORDER BY relname) FROM pg_class \
                WHERE relname IN ('logs', 'blobs', 'Odd Name')"
        )
        .trim(),
        "Odd Name=d,blobs=n,logs=d"
    );
    assert_eq!(db.sql("SELECT count(*) FROM pg_publication").trim(), "0");
    assert_eq!(
        db.sql(&format!(
            "SELECT count(*) FROM pg_replication_slots WHERE database = '{}'",
            db.name
        ))
        .trim(),
        "0"
    );
}

#[test]
fn a_role_without_replication_is_refused_naming_the_fix() {
    let mut db = LogicalDb::create("cont_role");
    let role = format!("lethe_norepl_{:08x}", rand::random::<u32>());
    psql_at(
        &pg_logical_base(),
        "postgres",
        &format!("CREATE ROLE {role} LOGIN PASSWORD 'pw' NOREPLICATION"),
    );
    db.role = Some(role.clone());
    db.sql(USERS);
    let out = check(&db.url());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}{stderr}", text(&out.stdout));
    assert!(
        stderr.contains(&format!(
            "role \"{role}\" has neither REPLICATION nor superuser"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("ALTER ROLE \"{role}\" REPLICATION")),
        "{stderr}"
    );
    assert!(!stderr.contains("wal_level"), "{stderr}");
}

#[test]
fn a_server_with_wal_level_replica_is_refused_saying_how_to_enable_logical() {
    let db = TestDb::create("cont_replica");
    let level = db.sql("SHOW wal_level");
    if level.trim() == "logical" {
        eprintln!("skipped: the main cluster already has wal_level = logical");
        return;
    }
    db.sql(USERS);
    let out = check(&db.url);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}{stderr}", text(&out.stdout));
    assert!(
        stderr.contains(&format!("wal_level is {}", level.trim())),
        "{stderr}"
    );
    assert!(
        stderr.contains("ALTER SYSTEM SET wal_level = logical"),
        "{stderr}"
    );
    assert!(stderr.contains("restart"), "{stderr}");
    assert!(stderr.contains("PostgreSQL 19"), "{stderr}");
}
