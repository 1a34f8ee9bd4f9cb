//! `lethe snapshot` and `lethe verify` against a real PostgreSQL: a
//! feature-rich database round-trips into a verified snapshot, a snapshot
//! killed at any stage is never listed and is cleaned up by the next one,
//! and damaged objects are named by `verify`.
//!
//! Crash points use the test-only `LETHE_TEST_PAUSE_AT=<stage>` hook (see
//! `src/snapshot/pause.rs`): the process announces the pause on stderr and
//! the test kills it with SIGKILL at that exact point.

use crate::common::{LetheCli, Outside, TestDb, lethe_cmd, psql};
use lethe::crypto::Opener;
use std::io::{BufRead, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

mod garage;

/// A feature-rich schema: several schemas, a partitioned table (with an
/// empty default partition), generated, identity and serial columns, enum
/// and domain types, a view and a materialized view, a trigger and its
/// function, arrays/jsonb/bytea holding tabs, newlines, backslashes and
/// non-ASCII text, an unlogged table, an empty table, NULLs everywhere, and
/// names that need quoting and key escaping.
pub const FEATURE_SQL: &str = r#"
CREATE SCHEMA app;
CREATE SCHEMA "Odd Schema";
CREATE TYPE app.mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN app.email AS text CHECK (VALUE LIKE '%@%');
CREATE TABLE app.users (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  email app.email,
  mood app.mood,
  tags text[],
  profile jsonb,
  avatar bytea,
  bio text,
  score numeric(10,2),
  ratio double precision,
  seen timestamptz,
  shout text GENERATED ALWAYS AS (upper(bio)) STORED
);
CREATE TABLE app.audit (id bigserial PRIMARY KEY, user_id bigint, what text);
CREATE FUNCTION app.audit_fn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO app.audit (user_id, what) VALUES (NEW.id, TG_OP); RETURN NEW; END $$;
CREATE TRIGGER users_audit AFTER INSERT ON app.users FOR EACH ROW EXECUTE FUNCTION app.audit_fn();
CREATE TABLE app.orders (
  id serial, user_id bigint REFERENCES app.users (id) ON DELETE CASCADE,
  placed date NOT NULL, total numeric, note text, PRIMARY KEY (id, placed)
) PARTITION BY RANGE (placed);
CREATE TABLE app.orders_2024 PARTITION OF app.orders FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE app.orders_2025 PARTITION OF app.orders FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE app.orders_default PARTITION OF app.orders DEFAULT;
CREATE UNLOGGED TABLE app.sessions (
  token uuid PRIMARY KEY, user_id bigint REFERENCES app.users (id) ON DELETE SET NULL, data text
);
CREATE TABLE "Odd Schema"."Mixed.Case=Table" (k int PRIMARY KEY, "Spaced Col" text, "ümlaut" int[]);
CREATE TABLE public.empty_table (a int, b text);
CREATE VIEW app.active_users AS SELECT id, email FROM app.users WHERE mood <> 'sad';

INSERT INTO app.users (email, mood, tags, profile, avatar, bio, score, ratio, seen) VALUES
 ('a@example.com', 'happy', ARRAY['x', 'y z', E'tab\there', E'back\\slash', E'new\nline', 'zoë ✓'],
  '{"k": "tab\there", "n": null, "u": "zoë ✓", "b": "back\\\\slash"}', '\x00015c090a0dff',
  E'line1\nline2\ttabbed\\back é ✓ 日本\r', 12.34, 0.1, '2025-03-04 05:06:07.891+00'),
 (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 ('b@example.com', 'sad', '{}', '[]', '', '', 0, 'NaN', '-infinity'),
 ('c@example.com', 'ok', ARRAY[NULL, 'NULL', E'\\N'], '"\\N"', '\x5c4e', E'\\N', -1.5, 1e300, NULL);
INSERT INTO app.users (email, bio) SELECT 'u' || g || '@x', repeat('é', g % 50) FROM generate_series(1, 500) g;
INSERT INTO app.orders (user_id, placed, total, note)
  SELECT (g % 50) + 1, date '2024-01-01' + (g % 700), g * 1.5, CASE WHEN g % 3 = 0 THEN NULL ELSE E'note\t' || g END
  FROM generate_series(1, 2000) g;
INSERT INTO app.sessions SELECT gen_random_uuid(), (g % 10) + 1, md5(g::text) FROM generate_series(1, 100) g;
INSERT INTO "Odd Schema"."Mixed.Case=Table" VALUES (1, E'x\ty', '{1,NULL,3}'), (2, NULL, NULL);
CREATE MATERIALIZED VIEW app.mood_counts AS SELECT mood, count(*) FROM app.users GROUP BY mood;
"#;

/// A scratch repository (a directory, or a fresh Garage bucket), key and
/// config around one test database; `outside` looks at the repository.
pub struct Setup {
    pub outside: Outside,
    pub dir: tempfile::TempDir,
    pub db: TestDb,
    pub cfg: PathBuf,
    pub key: PathBuf,
    pub repo: PathBuf,
}

impl Setup {
    /// A `file://` repository; `extra` is appended to the config (e.g. a
    /// `[snapshot]` section).
    pub fn new(tag: &str, sql: &str, extra: &str) -> Setup {
        Setup::build(tag, sql, extra, None)
    }

    /// A repository in a fresh bucket of the test Garage; `None` when
    /// Garage is unavailable locally (CI fails instead).
    pub fn on_garage(tag: &str, sql: &str, extra: &str) -> Option<Setup> {
        let g = crate::common::garage()?;
        Some(Setup::build(tag, sql, extra, Some(g)))
    }

    fn build(tag: &str, sql: &str, extra: &str, garage: Option<crate::common::Garage>) -> Setup {
        let db = TestDb::create(tag);
        if !sql.is_empty() {
            db.sql(sql);
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("restore.key");
        let public = lethe::crypto::keygen(&key).expect("keygen");
        let repo = dir.path().join("repo");
        let outside = Outside::open(&repo, garage.as_ref());
        let storage_toml = match (&garage, &outside.bucket) {
            (Some(g), Some(bucket)) => format!(
                "url = \"s3://{}/prod\"\nendpoint = \"{}\"\nregion = \"{}\"\npath_style = true",
                bucket.name, g.endpoint, g.region
            ),
            _ => format!("url = \"file://{}\"", repo.display()),
        };
        let text = format!(
            "[source]\nurl = \"{url}\"\njobs = 2\n\n[storage]\n{storage_toml}\n\n\
             [encryption]\nrecipients = [\"{public}\"]\nidentity_file = \"{key}\"\n\n\
             [erasure]\npath = \"{erasure}\"\n\n[log]\nformat = \"json\"\n{extra}\n",
            url = db.url,
            key = key.display(),
            erasure = dir.path().join("erasure").display(),
        );
        let cfg = crate::common::write_config(dir.path(), &text);
        Setup {
            outside,
            dir,
            db,
            cfg,
            key,
            repo,
        }
    }

    /// The decrypted, decompressed payload of one object.
    pub fn payload(&self, entry: &lethe::repo::manifest::ObjectEntry) -> Vec<u8> {
        let opener = Opener::from_identity_file(&self.key).expect("identity");
        let (storage, entry) = (self.outside.storage.clone(), entry.clone());
        self.outside.rt.block_on(async move {
            tokio::task::spawn_blocking(move || {
                let mut r = lethe::repo::object::open_object(storage, &entry, &opener)
                    .expect("open object");
                let mut v = Vec::new();
                r.read_to_end(&mut v).expect("read object");
                v
            })
            .await
            .expect("join")
        })
    }
}

impl LetheCli for Setup {
    fn cmd(&self, args: &[&str]) -> Command {
        lethe_cmd(&self.cfg, args, &self.outside.env)
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

fn count_rows(db: &TestDb, schema: &str, name: &str) -> u64 {
    let q = format!(
        "SELECT count(*) FROM \"{}\".\"{}\"",
        schema.replace('"', "\"\""),
        name.replace('"', "\"\"")
    );
    db.sql(&q).trim().parse().expect("count")
}

#[test]
fn feature_rich_database_snapshots_verifies_deep_and_matches_the_source() {
    let s = Setup::new("snapfeat", FEATURE_SQL, "");
    let id = s.snapshot();
    assert_eq!(s.listed(), vec![id.clone()]);

    let out = s.run(&["verify", "latest", "--deep"]);
    assert!(
        out.status.success(),
        "verify --deep: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("OK"), "{}", text(&out.stdout));

    let m = s.manifest("latest");
    let names: Vec<String> = m.tables.iter().map(|t| t.qualified()).collect();
    for want in [
        "app.users",
        "app.audit",
        "app.orders_2024",
        "app.orders_2025",
        "app.orders_default",
        "app.sessions",
        "Odd Schema.Mixed.Case=Table",
        "public.empty_table",
    ] {
        assert!(
            names.contains(&want.to_string()),
            "{want} missing from {names:?}"
        );
    }
    for absent in ["app.orders", "app.active_users", "app.mood_counts"] {
        assert!(
            !names.contains(&absent.to_string()),
            "{absent} must not be copied: {names:?}"
        );
    }
    for t in &m.tables {
        assert_eq!(
            t.rows,
            count_rows(&s.db, &t.schema, &t.name),
            "row count of {}",
            t.qualified()
        );
        assert!(!t.objects.is_empty(), "{} has no object", t.qualified());
    }
    assert_eq!(
        m.tables
            .iter()
            .find(|t| t.qualified() == "app.users")
            .map(|t| t.rows),
        Some(504)
    );
    assert_eq!(
        m.tables
            .iter()
            .find(|t| t.qualified() == "app.audit")
            .map(|t| t.rows),
        Some(504)
    );

    let users = m
        .tables
        .iter()
        .find(|t| t.qualified() == "app.users")
        .expect("users");
    let cols: Vec<&str> = users.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        cols,
        [
            "id", "email", "mood", "tags", "profile", "avatar", "bio", "score", "ratio", "seen"
        ]
    );
    assert_eq!(users.columns[2].type_name, "app.mood");
    assert_eq!(users.columns[3].type_name, "text[]");

    // Foreign keys as declared (on the partitioned table), with their ON
    // DELETE action; every leaf partition names the partitioned table as
    // its parent, which the restore plan expands.
    use lethe::repo::manifest::FkAction;
    assert!(
        m.foreign_keys.iter().any(|f| f.table == "app.orders"
            && f.ref_table == "app.users"
            && f.columns == ["user_id"]
            && f.ref_columns == ["id"]
            && f.on_delete == FkAction::Cascade),
        "app.orders → app.users CASCADE missing: {:?}",
        m.foreign_keys
    );
    assert!(m.partitioned.iter().any(|r| r.qualified() == "app.orders"));
    for leaf in ["app.orders_2024", "app.orders_2025", "app.orders_default"] {
        let t = m
            .tables
            .iter()
            .find(|t| t.qualified() == leaf)
            .expect("leaf");
        assert_eq!(t.parents, ["app.orders"], "{leaf}");
    }
    assert!(
        m.foreign_keys
            .iter()
            .any(|f| f.table == "app.sessions" && f.on_delete == FkAction::SetNull)
    );
    let seqs: Vec<String> = m
        .sequences
        .iter()
        .map(|q| format!("{}.{}", q.schema, q.name))
        .collect();
    for want in ["app.users_id_seq", "app.orders_id_seq", "app.audit_id_seq"] {
        assert!(
            seqs.contains(&want.to_string()),
            "{want} missing from {seqs:?}"
        );
    }
    let users_seq = m
        .sequences
        .iter()
        .find(|q| q.name == "users_id_seq")
        .expect("users seq");
    assert_eq!((users_seq.last_value, users_seq.is_called), (504, true));
    assert_eq!(m.database, s.db.name);
    assert_eq!(m.recipients.len(), 1);

    // The stored COPY stream is byte for byte what PostgreSQL's COPY writes.
    let got = s.payload(&users.objects[0]);
    let cols_sql = cols
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let want = psql(
        &s.db.name,
        &format!("COPY app.users ({cols_sql}) TO STDOUT"),
    );
    assert_eq!(text(&got), want);
    let odd = m
        .tables
        .iter()
        .find(|t| t.schema == "Odd Schema")
        .expect("odd table");
    assert_eq!(
        text(&s.payload(&odd.objects[0])),
        "1\tx\\ty\t{1,NULL,3}\n2\t\\N\t\\N\n"
    );
    assert!(
        odd.objects[0].key.contains("/data/")
            && odd.objects[0]
                .key
                .contains("Odd=20Schema.Mixed=2ECase=3DTable")
    );

    // The schema halves are pg_dump's plain output.
    let pre = text(&s.payload(&m.schema.pre));
    let post = text(&s.payload(&m.schema.post));
    assert!(
        pre.contains("CREATE TABLE app.users") && pre.contains("CREATE TYPE app.mood"),
        "pre-data:\n{pre}"
    );
    assert!(
        pre.contains("CREATE FUNCTION app.audit_fn()")
            && pre.contains("CREATE VIEW app.active_users")
    );
    assert!(
        post.contains("CREATE TRIGGER users_audit")
            && post.contains("REFRESH MATERIALIZED VIEW app.mood_counts")
    );
    assert!(
        !pre.contains("COPY ") || !pre.contains("FROM stdin"),
        "pre-data must hold no data"
    );
}

#[test]
fn large_tables_are_cut_into_objects_at_row_boundaries() {
    let s = Setup::new(
        "snapsplit",
        "CREATE TABLE big (id int, body text); \
         INSERT INTO big SELECT g, repeat(md5(g::text), 4) || E'\\t\\n' FROM generate_series(1, 30000) g;",
        "[snapshot]\nobject_bytes = 1048576\n",
    );
    s.snapshot();
    let m = s.manifest("latest");
    let big = m.tables.iter().find(|t| t.name == "big").expect("big");
    assert!(
        big.objects.len() >= 3,
        "expected several objects, got {}",
        big.objects.len()
    );
    assert_eq!(big.rows, 30000);
    assert_eq!(big.objects.iter().map(|o| o.rows).sum::<u64>(), 30000);
    let mut whole = Vec::new();
    for (i, o) in big.objects.iter().enumerate() {
        assert!(
            o.key.ends_with(&format!(".public.big.{i:03}.copy.zst.age")),
            "{}",
            o.key
        );
        let p = s.payload(o);
        assert_eq!(
            p.last(),
            Some(&b'\n'),
            "object {} must end at a row boundary",
            o.key
        );
        assert_eq!(p.iter().filter(|b| **b == b'\n').count() as u64, o.rows);
        whole.extend_from_slice(&p);
    }
    assert_eq!(
        text(&whole),
        psql(&s.db.name, "COPY public.big (id, body) TO STDOUT")
    );
    let out = s.run(&["verify", "latest", "--deep"]);
    assert!(out.status.success(), "{}", text(&out.stdout));
}

/// Runs `lethe snapshot` paused at `stage`, kills it with SIGKILL there and
/// returns the id it was writing.
fn kill_at(s: &Setup, stage: &str, extra_env: &[(&str, &str)]) -> String {
    let mut cmd = s.cmd(&["snapshot"]);
    cmd.env("LETHE_TEST_PAUSE_AT", stage)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn lethe snapshot");
    let (rx, reader) = crate::common::stream_stderr(&mut child);
    let mut id = None;
    let mut seen = Vec::new();
    let marker = format!("lethe-test-pause: {stage}");
    loop {
        let line = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!("no pause at {stage}; stderr so far:\n{}", seen.join("\n"));
            }
        };
        if line.contains("\"snapshot.started\"") {
            let v: serde_json::Value = serde_json::from_str(&line).expect("json log line");
            id = v["id"].as_str().map(str::to_string);
        }
        let done = line.contains(&marker);
        seen.push(line);
        if done {
            break;
        }
    }
    child.kill().expect("kill -9");
    let _ = child.wait();
    drop(rx);
    let _ = reader.join();
    id.expect("snapshot.started logged before the pause")
}

#[test]
fn a_snapshot_killed_at_any_stage_is_never_listed_and_the_next_run_cleans_it() {
    let s = Setup::new(
        "snapkill",
        "CREATE TABLE filler (id int, body text); \
         INSERT INTO filler SELECT g, md5(g::text) || md5((g * 7)::text) FROM generate_series(1, 60000) g; \
         CREATE TABLE small (a int); INSERT INTO small VALUES (1), (2);",
        "",
    );
    kill_then_clean(&s, &["schema", "data", "manifest"], 65536);
}

/// For each stage: kill a snapshot there, check it is not listed and left
/// something behind, that a run within the grace period keeps it, and that
/// a run past the grace period removes every object and unfinished upload.
pub fn kill_then_clean(s: &Setup, stages: &[&str], pause_bytes: u64) {
    for stage in stages {
        let id = kill_at(
            s,
            stage,
            &[("LETHE_TEST_PAUSE_BYTES", &pause_bytes.to_string())],
        );
        assert!(
            !s.listed().contains(&id),
            "killed snapshot {id} ({stage}) is listed"
        );
        let prefix = format!("snapshots/{id}/");
        let (objects, uploads) = s.outside.leftovers(&prefix);
        assert!(
            !objects.is_empty() || !uploads.is_empty(),
            "{stage}: the kill should leave something behind"
        );
        if *stage == "data" {
            assert!(
                !uploads.is_empty(),
                "a kill mid-table leaves an unfinished upload"
            );
        }
        assert!(objects.iter().all(|k| !k.ends_with("manifest.json")));
        let out = s.run(&["verify", &id]);
        assert!(
            !out.status.success(),
            "verify of an incomplete snapshot must fail"
        );

        // The killed run's lock is taken over at once (its process is gone),
        // and within the grace period the leftovers are kept (another
        // process could be writing them) ...
        let out = s.run(&["snapshot"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let log = text(&out.stderr);
        assert!(
            log.lines()
                .any(|l| l.contains("\"lease.taken_over\"") && l.contains("\"process_gone\"")),
            "{stage}: the killed snapshot's lock should be taken over as process_gone:\n{log}"
        );
        let next = text(&out.stdout).trim().to_string();
        assert_eq!(
            s.outside.leftovers(&prefix),
            (objects, uploads),
            "{stage}: leftovers removed within the grace period"
        );
        // ... and once it has passed, the next snapshot removes them all.
        let out = s
            .cmd(&["snapshot"])
            .env("LETHE_CLEANUP_GRACE", "0s")
            .output()
            .expect("lethe runs");
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("snapshot.leftovers_deleted"),
            "{}",
            text(&out.stderr)
        );
        assert_eq!(
            s.outside.leftovers(&prefix),
            (vec![], vec![]),
            "{stage}: leftovers remain"
        );
        let listed = s.listed();
        assert!(listed.contains(&next) && !listed.contains(&id));
    }
}

#[test]
fn sigterm_cancels_cleanly_without_a_manifest() {
    let s = Setup::new(
        "snapterm",
        "CREATE TABLE t (a int); INSERT INTO t VALUES (1);",
        "",
    );
    let mut cmd = s.cmd(&["snapshot"]);
    cmd.env("LETHE_TEST_PAUSE_AT", "schema")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let mut err = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if err.read_line(&mut line).expect("read stderr") == 0 {
            panic!("exited before the pause:\n{seen}");
        }
        seen.push_str(&line);
        if line.contains("lethe-test-pause: schema") {
            break;
        }
    }
    // A second writer is refused while this one holds the lock.
    let second = s.run(&["snapshot"]);
    assert_eq!(second.status.code(), Some(1), "{}", text(&second.stderr));
    assert!(
        text(&second.stderr).contains("is taking a snapshot"),
        "{}",
        text(&second.stderr)
    );

    // SAFETY: kill(2) on our own child's pid has no memory effects.
    let rc = unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let mut rest = String::new();
    err.read_to_string(&mut rest).expect("stderr");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(1), "{rest}");
    // A stop is `snapshot.cancelled` at INFO with its stage, not an alert.
    let cancelled: Vec<serde_json::Value> = rest
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "snapshot.cancelled")
        .collect();
    assert_eq!(cancelled.len(), 1, "{rest}");
    assert_eq!(cancelled[0]["level"], "INFO", "{rest}");
    assert_eq!(cancelled[0]["stage"], "schema", "{rest}");
    assert!(!rest.contains("\"snapshot.failed\""), "{rest}");
    assert!(!rest.contains("\"level\":\"ERROR\""), "{rest}");
    assert!(s.listed().is_empty());
    // A clean stop releases the lock: the next snapshot runs at once.
    s.snapshot();
}

#[test]
fn damaged_objects_are_each_named_by_verify() {
    let s = Setup::new("snapdmg", FEATURE_SQL, "");
    let id = s.snapshot();
    let m = s.manifest(&id);
    let keys: Vec<&str> = m
        .tables
        .iter()
        .filter(|t| t.rows > 0)
        .map(|t| t.objects[0].key.as_str())
        .collect();
    let (flipped, truncated, missing) = (keys[0], keys[1], keys[2]);
    let path = |k: &str| s.repo.join(k);
    let mut b = std::fs::read(path(flipped)).expect("read");
    let mid = b.len() / 2;
    b[mid] ^= 0x01;
    std::fs::write(path(flipped), b).expect("write");
    let b = std::fs::read(path(truncated)).expect("read");
    std::fs::write(path(truncated), &b[..b.len() - 7]).expect("write");
    std::fs::remove_file(path(missing)).expect("rm");

    for deep in [false, true] {
        let args: Vec<&str> = if deep {
            vec!["verify", "latest", "--deep"]
        } else {
            vec!["verify", "latest"]
        };
        let out = s.run(&args);
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "deep={deep}: {stdout}");
        assert!(
            stdout.contains(&format!("CHECKSUM   {flipped}")),
            "deep={deep}: {stdout}"
        );
        assert!(
            stdout.contains(&format!("TRUNCATED  {truncated}")),
            "deep={deep}: {stdout}"
        );
        assert!(
            stdout.contains(&format!("MISSING    {missing}")),
            "deep={deep}: {stdout}"
        );
        assert_eq!(
            stdout.lines().filter(|l| l.starts_with("  ")).count(),
            3,
            "deep={deep}: {stdout}"
        );
    }
    let out = s.run(&["verify", "--all"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn deep_verify_needs_the_identity() {
    let s = Setup::new("snapident", "CREATE TABLE t (a int);", "");
    s.snapshot();
    let text_cfg = std::fs::read_to_string(&s.cfg).expect("cfg");
    let no_identity: String = text_cfg
        .lines()
        .filter(|l| !l.starts_with("identity_file"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&s.cfg, no_identity).expect("cfg");
    let out = s.run(&["verify", "latest", "--deep"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--identity"),
        "{}",
        text(&out.stderr)
    );
    let key = s.key.display().to_string();
    let out = s.run(&["verify", "latest", "--deep", "--identity", &key]);
    assert!(out.status.success(), "{}", text(&out.stdout));
}

#[test]
fn unsupported_sources_are_refused_with_what_to_do() {
    // Row-level security that the role cannot bypass. The role is dropped
    // after the database (declared first, dropped last).
    struct Role(String);
    impl Drop for Role {
        fn drop(&mut self) {
            let _ = Command::new("psql")
                .args([
                    "-X",
                    "-q",
                    "-d",
                    &format!("{}/postgres", crate::common::pg_base()),
                    "-c",
                ])
                .arg(format!("DROP ROLE IF EXISTS {}", self.0))
                .output();
        }
    }
    let role = Role(format!("lethe_rls_{:08x}", rand::random::<u32>()));
    let s = Setup::new("snaprls", "", "");
    s.db.sql(&format!(
        "CREATE ROLE {r} LOGIN; CREATE TABLE secret (a int); ALTER TABLE secret ENABLE ROW LEVEL SECURITY; \
         GRANT SELECT ON secret TO {r};",
        r = role.0
    ));
    let cfg = std::fs::read_to_string(&s.cfg)
        .expect("cfg")
        .replace("postgres://postgres@", &format!("postgres://{}@", role.0));
    std::fs::write(&s.cfg, cfg).expect("cfg");
    let out = s.run(&["snapshot"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("row-level security")
            && err.contains("BYPASSRLS")
            && err.contains("public.secret"),
        "{err}"
    );
}

#[test]
fn a_missing_or_old_pg_dump_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let s = Setup::new("snappgd", "CREATE TABLE t (a int);", "");
    let empty = s.dir.path().join("nobin");
    std::fs::create_dir(&empty).expect("mkdir");
    let old = s.dir.path().join("oldbin");
    std::fs::create_dir(&old).expect("mkdir");
    let fake = old.join("pg_dump");
    std::fs::write(&fake, "#!/bin/sh\necho 'pg_dump (PostgreSQL) 11.22'\n").expect("fake");
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let base = std::fs::read_to_string(&s.cfg).expect("cfg");
    for (dir, want) in [(&empty, "cannot run pg_dump"), (&old, "postgresql-client-")] {
        let cfg = base.replace(
            "jobs = 2\n",
            &format!("jobs = 2\nbin_dir = \"{}\"\n", dir.display()),
        );
        std::fs::write(&s.cfg, cfg).expect("cfg");
        let out = s.run(&["snapshot"]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(want) && err.contains("source.bin_dir"),
            "{err}"
        );
    }
    assert!(s.listed().is_empty());
}

#[test]
fn the_source_connection_follows_sslmode() {
    let s = Setup::new(
        "snaptls",
        "CREATE TABLE t (a int); INSERT INTO t VALUES (1);",
        "",
    );
    if psql("postgres", "SHOW ssl").trim() != "on" {
        eprintln!("SKIPPED: the test server has ssl = off");
        return;
    }
    let base = std::fs::read_to_string(&s.cfg).expect("cfg");
    let with_mode = |mode: &str| {
        let url = format!("{}?sslmode={mode}", s.db.url);
        std::fs::write(
            &s.cfg,
            base.replace(&format!("\"{}\"", s.db.url), &format!("\"{url}\"")),
        )
        .expect("cfg");
    };
    // require: encrypted (the server's certificate is self-signed); pause
    // mid-snapshot to see lethe's own sessions in pg_stat_ssl.
    with_mode("require");
    let mut child = s
        .cmd(&["snapshot"])
        .env("LETHE_TEST_PAUSE_AT", "schema")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut err = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    while !line.contains("lethe-test-pause: schema") {
        line.clear();
        if err.read_line(&mut line).expect("stderr") == 0 {
            panic!("no pause");
        }
    }
    let sessions = psql(
        "postgres",
        &format!(
            "SELECT string_agg(s.ssl::text, ',') FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'lethe' AND a.datname = '{}'",
            s.db.name
        ),
    );
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        sessions.trim(),
        "true",
        "lethe's coordinator session must be encrypted"
    );

    // verify-full checks the certificate: a self-signed one is refused, by name.
    with_mode("verify-full");
    let out = s.run(&["snapshot"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("certificate") || stderr.contains("Certificate"),
        "{stderr}"
    );
}

#[test]
fn the_erasure_list_state_is_recorded_and_rows_of_erased_subjects_are_reported() {
    let s = Setup::new(
        "snapleak",
        "CREATE TABLE users (id bigint PRIMARY KEY, name text); \
         INSERT INTO users VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, NULL);",
        "",
    );
    let out = s.run(&["erase", "add", "2", "4", "99"]);
    assert!(out.status.success(), "erase add: {}", text(&out.stderr));
    let out = s.run(&["snapshot"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let id = text(&out.stdout).trim().to_string();
    let leak: serde_json::Value = stderr
        .lines()
        .filter(|l| l.contains("\"erasure.leak_detected\""))
        .map(|l| serde_json::from_str(l).expect("json log line"))
        .next()
        .unwrap_or_else(|| panic!("no erasure.leak_detected in:\n{stderr}"));
    assert_eq!(
        (leak["table"].as_str(), leak["rows"].as_u64()),
        (Some("public.users"), Some(2)),
        "{leak}"
    );
    let m = s.manifest(&id);
    assert_eq!(m.erasure_list.count, 3);
    assert_eq!(m.erasure_list.digest.len(), 64);
}
