//! `lethe continuous check`: the preflight of continuous capture against
//! real servers: the cluster with `wal_level = logical` that
//! `scripts/pg-logical-test.sh` starts, and the main one (`replica`).
//! Each check names what is wrong and its fix; the source is never changed.

use crate::common::{TestDb, lethe, pg_logical_base, psql_at, write_config};
use std::process::Output;

/// A database (and optionally a role) on the logical cluster for one test,
/// dropped on `Drop`.
pub(crate) struct LogicalDb {
    pub(crate) name: String,
    pub(crate) role: Option<String>,
    /// The cluster's URL without a database.
    base: String,
}

impl LogicalDb {
    pub(crate) fn create(tag: &str) -> LogicalDb {
        LogicalDb::create_at(&pg_logical_base(), tag)
    }

    /// A database on the cluster at `base` (a URL without a database).
    pub(crate) fn create_at(base: &str, tag: &str) -> LogicalDb {
        let name = format!("lethe_{tag}_{:08x}", rand::random::<u32>());
        psql_at(base, "postgres", &format!("CREATE DATABASE {name}"));
        LogicalDb {
            name,
            role: None,
            base: base.to_string(),
        }
    }

    pub(crate) fn sql(&self, sql: &str) -> String {
        psql_at(&self.base, &self.name, sql)
    }

    /// The URL lethe connects with: as `postgres`, or as the test's role.
    pub(crate) fn url(&self) -> String {
        match &self.role {
            None => format!("{}/{}", self.base, self.name),
            Some(role) => {
                let base = &self.base;
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
                .args(["-X", "-q", "-d", &format!("{}/postgres", self.base), "-c"])
                .arg(sql)
                .output();
        };
        // Slots on the database (a test's capture) block DROP DATABASE.
        run(format!(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots \
             WHERE database = '{0}' AND active_pid IS NOT NULL; \
             SELECT pg_sleep(0.2); \
             SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '{0}'",
            self.name
        ));
        run(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
        if let Some(role) = &self.role {
            run(format!("DROP ROLE IF EXISTS {role}"));
        }
    }
}

/// A config in `dir` whose source is `url`, with `[continuous]` enabled,
/// followed by `more`: further keys of that section, then any tables.
pub(crate) fn continuous_config(
    dir: &std::path::Path,
    url: &str,
    more: &str,
) -> std::path::PathBuf {
    let d = dir.display();
    write_config(
        dir,
        &format!(
            "[source]\nurl = \"{url}\"\n\
             [storage]\nurl = \"file://{d}/repo\"\n\
             [encryption]\ndisabled = true\n\
             [erasure]\npath = \"{d}/erasure\"\n\
             [api]\nlisten = \"unix:{d}/api.sock\"\n\
             [continuous]\nenabled = true\n{more}"
        ),
    )
}

/// `lethe continuous check` with a config whose source is `url`.
fn check(url: &str) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = continuous_config(dir.path(), url, "");
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
    // A superuser's capture installs lethe's event triggers.
    assert!(
        stdout.contains("schema changes: captured by lethe's event triggers"),
        "{stdout}"
    );
    // The cluster limits slot WAL (4GB, scripts/pg-logical-test.sh): no warning about it.
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

/// pgoutput renders values with the role's defaults: a role whose dates
/// come out as `SQL, DMY` or whose floats are rounded would make a
/// point-in-time restore read them differently from the base.
#[test]
fn a_role_whose_defaults_render_values_unlike_a_snapshot_is_refused() {
    let mut db = LogicalDb::create("cont_style");
    let role = format!("lethe_style_{:08x}", rand::random::<u32>());
    psql_at(
        &pg_logical_base(),
        "postgres",
        &format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'pw' REPLICATION; \
             ALTER ROLE {role} SET DateStyle = 'SQL, DMY'; ALTER ROLE {role} SET extra_float_digits = 0"
        ),
    );
    db.role = Some(role.clone());
    db.sql(USERS);
    db.sql(&format!(
        "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"
    ));
    let out = check(&db.url());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}{stderr}", text(&out.stdout));
    assert!(
        stderr.contains("DateStyle is 'SQL, DMY' (needs ISO"),
        "{stderr}"
    );
    assert!(stderr.contains("extra_float_digits is '0'"), "{stderr}");
    assert!(!stderr.contains("IntervalStyle"), "{stderr}");
    assert!(
        stderr.contains(&format!("ALTER ROLE \"{role}\" SET")),
        "{stderr}"
    );
}

/// A role with REPLICATION that is not a superuser cannot create event
/// triggers: `continuous check` says schema changes are judged by the
/// digest, and why.
#[test]
fn a_replication_role_that_is_not_a_superuser_is_told_its_schema_changes_go_by_the_digest() {
    let mut db = LogicalDb::create("cont_repl");
    let role = format!("lethe_repl_{:08x}", rand::random::<u32>());
    psql_at(
        &pg_logical_base(),
        "postgres",
        &format!("CREATE ROLE {role} LOGIN PASSWORD 'pw' REPLICATION"),
    );
    db.sql(USERS);
    db.sql(&format!("ALTER TABLE users OWNER TO {role}"));
    db.role = Some(role.clone());
    let out = check(&db.url());
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(
            "schema changes: by the schema digest: creating event triggers takes a superuser"
        ),
        "{stdout}"
    );
}

/// Settings the source URL's `options` give Lethe's own sessions reach the
/// snapshot, not the replication connection (pg_walstream does not send
/// `options`): a time zone there would render a `timestamptz` key one way in
/// the base and another in the stream. Refused, naming each; the same
/// database without them passes.
#[test]
fn settings_in_the_urls_options_that_the_stream_would_not_share_are_refused() {
    let db = LogicalDb::create("cont_opts");
    db.sql(USERS);
    let url = format!("{}?options=--TimeZone%3DAsia%2FKolkata", db.url());
    let out = check(&url);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}{stderr}", text(&out.stdout));
    assert!(stderr.contains("TimeZone = 'Asia/Kolkata'"), "{stderr}");
    assert!(stderr.contains("ALTER ROLE"), "{stderr}");
    let out = check(&db.url());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
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

// ---- ensure / disable: the slot and the publication ----

/// A unique slot and publication name for one test; on `Drop` the slot is
/// dropped if it is still there (declare it after its `LogicalDb`, so it
/// goes first: a database with a logical slot cannot be dropped).
struct Names {
    cfg: lethe::continuous::ContinuousConfig,
}

impl Names {
    fn new() -> Names {
        let tag = format!("{:08x}", rand::random::<u32>());
        Names {
            cfg: lethe::continuous::ContinuousConfig {
                enabled: true,
                slot: format!("lethe_slot_{tag}"),
                publication: format!("lethe_pub_{tag}"),
                ..Default::default()
            },
        }
    }

    fn slot_rows(&self) -> String {
        psql_at(
            &pg_logical_base(),
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{}'",
                self.cfg.slot
            ),
        )
        .trim()
        .to_string()
    }
}

impl Drop for Names {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args(["-X", "-q", "-d", &format!("{}/postgres", pg_logical_base()), "-c"])
            .arg(format!(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{}'",
                self.cfg.slot
            ))
            .output();
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// `lethe continuous disable` with a config whose source is `url` and
/// whose slot and publication are `names`'.
fn disable_cli(url: &str, names: &Names) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = continuous_config(
        dir.path(),
        url,
        &format!(
            "slot = \"{}\"\npublication = \"{}\"\n",
            names.cfg.slot, names.cfg.publication
        ),
    );
    lethe(&cfg, &["continuous", "disable"])
}

const PARTS: &str = "CREATE TABLE parts (id int PRIMARY KEY) PARTITION BY RANGE (id); \
    CREATE TABLE parts_1 PARTITION OF parts FOR VALUES FROM (0) TO (100);";

#[test]
fn ensure_creates_the_slot_and_publication_once() {
    let db = LogicalDb::create("cont_ensure");
    let names = Names::new();
    db.sql(&format!("{USERS} {PARTS}"));
    let rt = rt();
    let first = rt
        .block_on(lethe::continuous::ensure(&db.url(), &names.cfg))
        .expect("ensure");
    assert_eq!(
        first,
        lethe::continuous::Ensured {
            slot: true,
            publication: true
        }
    );
    let second = rt
        .block_on(lethe::continuous::ensure(&db.url(), &names.cfg))
        .expect("ensure again");
    assert_eq!(
        second,
        lethe::continuous::Ensured {
            slot: false,
            publication: false
        }
    );
    assert_eq!(
        db.sql(&format!(
            "SELECT slot_type || ',' || plugin || ',' || database FROM pg_replication_slots WHERE slot_name = '{}'",
            names.cfg.slot
        ))
        .trim(),
        format!("logical,pgoutput,{}", db.name)
    );
    assert_eq!(
        db.sql(&format!(
            "SELECT count(*) FROM pg_publication WHERE pubname = '{}'",
            names.cfg.publication
        ))
        .trim(),
        "1"
    );
    assert_eq!(
        db.sql(&format!(
            "SELECT string_agg(schemaname || '.' || tablename, ',' ORDER BY tablename) \
             FROM pg_publication_tables WHERE pubname = '{}'",
            names.cfg.publication
        ))
        .trim(),
        "public.parts_1,public.users"
    );
    let out = disable_cli(&db.url(), &names);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(names.slot_rows(), "0");
}

#[test]
fn ensure_refuses_a_source_the_preflight_refuses_and_creates_nothing() {
    let db = LogicalDb::create("cont_ensure_no");
    let names = Names::new();
    db.sql(&format!("{USERS} CREATE TABLE logs (msg text);"));
    let err = rt()
        .block_on(lethe::continuous::ensure(&db.url(), &names.cfg))
        .expect_err("refused");
    assert!(
        matches!(
            err,
            lethe::continuous::SlotError::Preflight(lethe::continuous::PreflightError::Refused(_))
        ),
        "{err}"
    );
    assert!(err.to_string().contains("\"public\".\"logs\""), "{err}");
    assert_eq!(names.slot_rows(), "0");
    assert_eq!(db.sql("SELECT count(*) FROM pg_publication").trim(), "0");
}

#[test]
fn disable_removes_both_then_has_nothing_to_remove_and_leaves_no_slot() {
    let db = LogicalDb::create("cont_disable");
    let names = Names::new();
    db.sql(USERS);
    rt().block_on(lethe::continuous::ensure(&db.url(), &names.cfg))
        .expect("ensure");
    assert_eq!(names.slot_rows(), "1");

    let out = disable_cli(&db.url(), &names);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert_eq!(
        stdout,
        format!(
            "removed replication slot {}\nremoved publication {}\n",
            names.cfg.slot, names.cfg.publication
        )
    );
    // Lethe never leaves a slot behind.
    assert_eq!(names.slot_rows(), "0");
    assert_eq!(
        db.sql(&format!(
            "SELECT count(*) FROM pg_publication WHERE pubname = '{}'",
            names.cfg.publication
        ))
        .trim(),
        "0"
    );

    let again = disable_cli(&db.url(), &names);
    let stdout = text(&again.stdout);
    assert_eq!(
        again.status.code(),
        Some(0),
        "{stdout}{}",
        text(&again.stderr)
    );
    assert!(stdout.starts_with("nothing to remove"), "{stdout}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
}

#[test]
fn disable_refuses_a_slot_in_use_naming_its_pid_and_terminates_nothing() {
    let db = LogicalDb::create("cont_active");
    let names = Names::new();
    db.sql(USERS);
    rt().block_on(lethe::continuous::ensure(&db.url(), &names.cfg))
        .expect("ensure");
    let mut reader = std::process::Command::new("pg_recvlogical")
        .args([
            "-d",
            &db.url(),
            "--slot",
            &names.cfg.slot,
            "--start",
            "-f",
            "/dev/null",
        ])
        .args(["-o", "proto_version=1", "-o"])
        .arg(format!("publication_names={}", names.cfg.publication))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("pg_recvlogical runs");
    let pid_sql = format!(
        "SELECT coalesce(active_pid::text, '') FROM pg_replication_slots WHERE slot_name = '{}'",
        names.cfg.slot
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let pid = loop {
        let pid = db.sql(&pid_sql).trim().to_string();
        if !pid.is_empty() {
            break pid;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the slot never became active"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let out = disable_cli(&db.url(), &names);
    let _ = reader.kill();
    let _ = reader.wait();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}{stderr}", text(&out.stdout));
    assert!(stderr.contains(&format!("pid {pid}")), "{stderr}");
    assert!(stderr.contains(&names.cfg.slot), "{stderr}");
    // Nothing was dropped, nothing terminated.
    assert_eq!(names.slot_rows(), "1");
    assert_eq!(
        db.sql(&format!(
            "SELECT count(*) FROM pg_publication WHERE pubname = '{}'",
            names.cfg.publication
        ))
        .trim(),
        "1"
    );
    // Once the reader is gone, disable succeeds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !db.sql(&pid_sql).trim().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the slot stayed active"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = disable_cli(&db.url(), &names);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(names.slot_rows(), "0");
}

/// `continuous.enabled = true` captures changes that restore does not read
/// yet: `config check` says so instead of passing in silence.
#[test]
fn enabling_continuous_capture_says_restore_does_not_read_changes_yet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display();
    let cfg = write_config(
        dir.path(),
        &format!(
            "[source]\nurl = \"postgres://postgres@127.0.0.1:5432/postgres\"\n\
             [storage]\nurl = \"file://{d}/repo\"\n\
             [encryption]\ndisabled = true\n\
             [erasure]\npath = \"{d}/erasure\"\n\
             [api]\nlisten = \"unix:{d}/api.sock\"\n\
             [continuous]\nenabled = true\n"
        ),
    );
    let out = lethe(&cfg, &["config", "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("continuous.enabled = true") && err.contains("does not read the changes yet"),
        "{err}"
    );
}
