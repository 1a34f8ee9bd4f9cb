//! `lethe restore` against a real PostgreSQL: an empty list restores the
//! feature-rich database exactly (target and SQL file); erasing 5% of the
//! users gives what deleting them by SQL gives, table by table; damage
//! rolls the table back and names the object; a missing, corrupt or stale
//! list refuses before the target is touched.

use crate::common::{TestDb, lethe, pg_base, psql};
use std::path::{Path, PathBuf};
use std::process::Output;

/// A source database, a file repository, a key and a config whose erasure
/// roots are `subjects` (TOML array).
struct Env {
    dir: tempfile::TempDir,
    src: TestDb,
    cfg: PathBuf,
    repo: PathBuf,
}

fn config_text(
    dir: &Path,
    src_url: &str,
    repo: &Path,
    erasure: &Path,
    subjects: &str,
    public: &str,
) -> String {
    format!(
        "[source]\nurl = \"{src_url}\"\njobs = 2\n\n[storage]\nurl = \"file://{repo}\"\n\n\
         [encryption]\nrecipients = [\"{public}\"]\nidentity_file = \"{key}\"\n\n\
         [erasure]\npath = \"{erasure}\"\nsubject_type = \"bigint\"\nsubjects = {subjects}\n\n\
         [api]\nlisten = \"unix:{sock}\"\n\n[log]\nformat = \"json\"\n",
        repo = repo.display(),
        key = dir.join("restore.key").display(),
        erasure = erasure.display(),
        sock = dir.join("api.sock").display(),
    )
}

impl Env {
    fn new(tag: &str, sql: &str, subjects: &str) -> Env {
        Env::typed(tag, sql, subjects, "bigint")
    }

    /// With `erasure.subject_type = subject_type`.
    fn typed(tag: &str, sql: &str, subjects: &str, subject_type: &str) -> Env {
        let src = TestDb::create(tag);
        src.sql(sql);
        let dir = tempfile::tempdir().expect("tempdir");
        let public = lethe::crypto::keygen(&dir.path().join("restore.key")).expect("keygen");
        let repo = dir.path().join("repo");
        let text = config_text(
            dir.path(),
            &src.url,
            &repo,
            &dir.path().join("erasure"),
            subjects,
            &public,
        );
        let text = text.replace(
            "subject_type = \"bigint\"",
            &format!("subject_type = \"{subject_type}\""),
        );
        let cfg = crate::common::write_config(dir.path(), &text);
        Env {
            dir,
            src,
            cfg,
            repo,
        }
    }

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

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// `pg_dump` of a database, without the random `\restrict` keys.
fn dump(db: &TestDb, args: &[&str]) -> String {
    let out = std::process::Command::new("pg_dump")
        .args(args)
        .arg("-d")
        .arg(&db.url)
        .output()
        .expect("pg_dump runs");
    assert!(out.status.success(), "pg_dump: {}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every user table's rows, sorted, as text: order-independent content.
fn contents(db: &TestDb, tables: &[&str]) -> Vec<(String, String)> {
    tables
        .iter()
        .map(|t| {
            (
                t.to_string(),
                db.sql(&format!("SELECT x::text FROM {t} x ORDER BY 1")),
            )
        })
        .collect()
}

fn user_tables(db: &TestDb) -> String {
    db.sql(
        "SELECT string_agg(schemaname || '.' || relname, ',' ORDER BY 1) FROM pg_stat_user_tables",
    )
    .trim()
    .to_string()
}

#[test]
fn an_empty_list_restores_the_feature_rich_database_exactly() {
    let env = Env::new(
        "r_fidelity",
        crate::snapshot::FEATURE_SQL,
        "[ { table = \"app.users\", column = \"id\" } ]",
    );
    env.ok(&["erase", "sync"]);
    let id = env.ok(&["snapshot"]).trim().to_string();

    let dst = TestDb::create("r_fidelity_dst");
    let report = env.path("report.json");
    let out = env.ok(&[
        "restore", &id, "--target", &dst.url, "--jobs", "3", "--report", &report,
    ]);
    assert!(out.contains("app.users"), "{out}");
    assert_eq!(
        dump(&dst, &[]),
        dump(&env.src, &[]),
        "pg_dump of the restored database differs from the source"
    );

    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["snapshot"], id.as_str());
    assert_eq!(r["rows_dropped"], 0);
    assert_eq!(r["erasure_list"]["count"], 0);
    assert_eq!(r["erasure_list"]["fresh"], true);

    // The SQL file loads with psql into the same database.
    let file = env.path("restore.sql");
    env.ok(&["restore", "latest", "--to-file", &file]);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let from_file = TestDb::create("r_fidelity_file");
    let out = std::process::Command::new("psql")
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            &from_file.url,
            "-f",
            &file,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "psql -f: {}", text(&out.stderr));
    assert_eq!(dump(&from_file, &[]), dump(&env.src, &[]));

    // An existing file is never overwritten; a non-empty target is refused.
    let out = env.run(&["restore", "latest", "--to-file", &file]);
    assert!(
        !out.status.success() && text(&out.stderr).contains("already exists"),
        "{}",
        text(&out.stderr)
    );
    let out = env.run(&["restore", "latest", "--target", &dst.url]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not empty"),
        "{}",
        text(&out.stderr)
    );
}

/// users → orders → order_items (CASCADE), payments (RESTRICT and NO
/// ACTION), comments (SET NULL), reviews (SET DEFAULT, a constant and an
/// expression), addresses → deliveries (composite CASCADE), a category tree
/// (self-referencing CASCADE, rows stored children first), tags keyed by a
/// user's email, and users.invited_by (self-referencing SET NULL).
const SHOP_SQL: &str = r#"
CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL UNIQUE, name text,
  invited_by bigint REFERENCES users(id) ON DELETE SET NULL);
CREATE TABLE orders (id bigserial PRIMARY KEY, user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  total numeric(10,2), note text);
CREATE TABLE order_items (order_id bigint REFERENCES orders(id) ON DELETE CASCADE, line int, sku text,
  PRIMARY KEY (order_id, line));
CREATE TABLE comments (id bigserial PRIMARY KEY, author_id bigint REFERENCES users(id) ON DELETE SET NULL, body text);
CREATE TABLE payments (id bigserial PRIMARY KEY, order_id bigint REFERENCES orders(id) ON DELETE RESTRICT,
  payer_id bigint REFERENCES users(id), amount numeric);
CREATE TABLE reviews (id bigserial PRIMARY KEY,
  reviewer_id bigint NOT NULL DEFAULT 0 REFERENCES users(id) ON DELETE SET DEFAULT,
  editor_id bigint DEFAULT abs(0) REFERENCES users(id) ON DELETE SET DEFAULT, stars int);
CREATE TABLE addresses (user_id bigint REFERENCES users(id) ON DELETE CASCADE, n int, city text, PRIMARY KEY (user_id, n));
CREATE TABLE deliveries (id bigserial PRIMARY KEY, user_id bigint, addr_n int, note text,
  FOREIGN KEY (user_id, addr_n) REFERENCES addresses (user_id, n) ON DELETE CASCADE);
CREATE TABLE categories (id int PRIMARY KEY,
  parent_id int REFERENCES categories(id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
  owner_id bigint REFERENCES users(id) ON DELETE CASCADE, name text);
CREATE TABLE tags (name text PRIMARY KEY, created_by text REFERENCES users(email) ON DELETE CASCADE);
CREATE TABLE countries (code text PRIMARY KEY, name text);

SELECT setseed(0.42);
INSERT INTO users VALUES (0, 'ghost@example.eu', 'deleted user', NULL);
INSERT INTO users SELECT i, 'user' || i || '@example.eu', E'User\t' || i || E'\\',
  CASE WHEN i > 1 AND random() < 0.7 THEN 1 + floor(random() * (i - 1))::bigint END
  FROM generate_series(1, 2000) i;
INSERT INTO orders (user_id, total, note) SELECT 1 + floor(random() * 2000)::bigint, round((random() * 100)::numeric, 2),
  CASE WHEN i % 5 = 0 THEN E'gift\nwrap' END FROM generate_series(1, 6000) i;
INSERT INTO order_items SELECT o.id, l, 'SKU-' || (o.id * l % 313) FROM orders o, generate_series(1, 1 + (o.id % 3)::int) l;
INSERT INTO comments (author_id, body) SELECT CASE WHEN random() < 0.1 THEN NULL ELSE 1 + floor(random() * 2000)::bigint END,
  E'comment\twith\\escapes\n#' || i FROM generate_series(1, 4000) i;
INSERT INTO payments (order_id, payer_id, amount)
  SELECT id, CASE WHEN random() < 0.1 THEN 1 + floor(random() * 2000)::bigint ELSE user_id END, total
  FROM orders WHERE random() < 0.3;
INSERT INTO reviews (reviewer_id, editor_id, stars)
  SELECT 1 + floor(random() * 2000)::bigint, CASE WHEN random() < 0.5 THEN 1 + floor(random() * 2000)::bigint END, i % 5
  FROM generate_series(1, 3000) i;
INSERT INTO addresses SELECT u, n, 'City ' || u FROM generate_series(1, 2000) u, generate_series(1, 2) n WHERE n = 1 OR u % 3 = 0;
INSERT INTO deliveries (user_id, addr_n, note) SELECT a.user_id, a.n, 'd' || g FROM addresses a, generate_series(1, 2) g;
BEGIN;
INSERT INTO categories SELECT i, CASE WHEN i > 1 THEN i / 2 END,
  CASE WHEN random() < 0.05 THEN 1 + floor(random() * 2000)::bigint END, 'cat ' || i
  FROM generate_series(1, 600) i ORDER BY i DESC;
COMMIT;
INSERT INTO tags SELECT 'tag' || i, CASE WHEN i % 4 <> 0 THEN 'user' || (1 + (i * 37) % 2000) || '@example.eu' END
  FROM generate_series(1, 1500) i;
INSERT INTO countries VALUES ('DE', 'Germany'), ('FR', 'France'), ('NL', E'Nether\\lands');
"#;

const SHOP_TABLES: &[&str] = &[
    "users",
    "orders",
    "order_items",
    "comments",
    "payments",
    "reviews",
    "addresses",
    "deliveries",
    "categories",
    "tags",
    "countries",
];

#[test]
fn erasing_five_percent_of_users_matches_deleting_them_by_sql() {
    let env = Env::new(
        "r_truth",
        SHOP_SQL,
        "[ { table = \"public.users\", column = \"id\" } ]",
    );
    let id = env.ok(&["snapshot"]).trim().to_string();

    // 5% of the users, spread over the id range; never the ghost user 0.
    let erased: Vec<String> = (1..=2000u64)
        .filter(|i| (i * 7919) % 20 == 3)
        .map(|i| i.to_string())
        .collect();
    assert_eq!(erased.len(), 100);
    let mut args = vec!["erase", "add"];
    args.extend(erased.iter().map(String::as_str));
    env.ok(&args);

    // A dry run computes the report and touches nothing.
    let dst = TestDb::create("r_truth_dst");
    let dry = env.path("dry.json");
    env.ok(&[
        "restore",
        &id,
        "--target",
        &dst.url,
        "--dry-run",
        "--report",
        &dry,
    ]);
    assert_eq!(user_tables(&dst), "", "a dry run wrote to the target");

    let report = env.path("report.json");
    env.ok(&[
        "restore", &id, "--target", &dst.url, "--jobs", "3", "--report", &report,
    ]);

    // Ground truth: a copy of the source where the same users are deleted
    // by SQL (RESTRICT / NO ACTION children first).
    let truth_name = format!("lethe_r_truth_sql_{:08x}", rand::random::<u32>());
    psql(
        "postgres",
        &format!("CREATE DATABASE {truth_name} TEMPLATE {}", env.src.name),
    );
    let truth = TestDb {
        url: format!("{}/{truth_name}", pg_base()),
        name: truth_name,
    };
    let list = erased.join(",");
    truth.sql(&format!(
        "BEGIN; \
         DELETE FROM payments WHERE payer_id IN ({list}) OR order_id IN (SELECT id FROM orders WHERE user_id IN ({list})); \
         DELETE FROM users WHERE id IN ({list}); COMMIT;"
    ));
    for ((t, got), (_, want)) in contents(&dst, SHOP_TABLES)
        .into_iter()
        .zip(contents(&truth, SHOP_TABLES))
    {
        assert!(
            got == want,
            "table {t} differs from deleting the users by SQL ({} vs {} rows)",
            got.lines().count(),
            want.lines().count()
        );
    }
    assert_eq!(
        dump(&dst, &["--schema-only"]),
        dump(&env.src, &["--schema-only"])
    );

    // No erased id anywhere a user id lives.
    let leaks = dst.sql(&format!(
        "SELECT (SELECT count(*) FROM users WHERE id IN ({list}) OR invited_by IN ({list})) + \
                (SELECT count(*) FROM orders WHERE user_id IN ({list})) + \
                (SELECT count(*) FROM comments WHERE author_id IN ({list})) + \
                (SELECT count(*) FROM payments WHERE payer_id IN ({list})) + \
                (SELECT count(*) FROM reviews WHERE reviewer_id IN ({list}) OR editor_id IN ({list})) + \
                (SELECT count(*) FROM addresses WHERE user_id IN ({list})) + \
                (SELECT count(*) FROM deliveries WHERE user_id IN ({list})) + \
                (SELECT count(*) FROM categories WHERE owner_id IN ({list}))"
    ));
    assert_eq!(leaks.trim(), "0");

    // The report says what happened, and the dry run said the same.
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&dry).unwrap()).unwrap();
    assert_eq!(r["tables"], d["tables"]);
    assert_eq!(d["dry_run"], true);
    assert_eq!(r["erasure_list"]["count"], 100);
    let table = |name: &str| {
        r["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == format!("public.{name}"))
            .unwrap()
            .clone()
    };
    assert_eq!(table("users")["rows_dropped"], 100);
    assert!(table("orders")["rows_dropped"].as_u64().unwrap() > 0);
    assert!(table("comments")["rows_nulled"].as_u64().unwrap() > 0);
    assert!(table("reviews")["rows_nulled"].as_u64().unwrap() > 0);
    assert!(
        table("categories")["passes"].as_u64().unwrap() > 1,
        "the category tree needs a fixpoint"
    );
    assert_eq!(table("countries")["rows_dropped"], 0);
}

#[test]
fn a_damaged_object_fails_naming_it_and_rolls_its_table_back() {
    // Incompressible rows, so the object spans many age chunks and the
    // damage is found after rows have already been sent to the target.
    let sql = "CREATE TABLE users (id bigint PRIMARY KEY, name text); \
               CREATE TABLE blobs (id int PRIMARY KEY, a text, b text); \
               INSERT INTO users SELECT i, 'u' || i FROM generate_series(1, 100) i; \
               INSERT INTO blobs SELECT i, md5(random()::text) || md5(random()::text), md5(i::text) FROM generate_series(1, 60000) i;";
    let env = Env::new(
        "r_damage",
        sql,
        "[ { table = \"public.users\", column = \"id\" } ]",
    );
    env.ok(&["erase", "sync"]);
    let id = env.ok(&["snapshot"]).trim().to_string();
    let manifest: lethe::repo::manifest::Manifest =
        serde_json::from_str(&env.ok(&["show", &id, "--json"])).unwrap();
    let blobs = manifest.tables.iter().find(|t| t.name == "blobs").unwrap();
    assert_eq!(blobs.objects.len(), 1);
    let key = blobs.objects[0].key.clone();
    let path = env.repo.join(&key);
    let good = std::fs::read(&path).unwrap();
    assert!(
        good.len() > 8 * 65536,
        "object too small to test partial loads: {}",
        good.len()
    );

    for (what, bad) in [
        ("flipped byte", flip(&good)),
        ("truncation", good[..good.len() * 3 / 4].to_vec()),
    ] {
        std::fs::write(&path, &bad).unwrap();
        let dst = TestDb::create("r_damage_dst");
        let out = env.run(&["restore", &id, "--target", &dst.url, "--jobs", "1"]);
        assert_eq!(out.status.code(), Some(1), "{what}: {}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(
            err.contains(&key),
            "{what}: the error does not name {key}:\n{err}"
        );
        assert!(err.contains("rolled back"), "{what}: {err}");
        assert_eq!(
            dst.sql("SELECT count(*) FROM blobs").trim(),
            "0",
            "{what}: partial rows of blobs remain"
        );
        assert!(
            err.contains("restore.failed"),
            "{what}: no restore.failed event:\n{err}"
        );
    }
    std::fs::write(&path, &good).unwrap();
}

fn flip(b: &[u8]) -> Vec<u8> {
    let mut v = b.to_vec();
    let at = v.len() * 9 / 10;
    v[at] ^= 0x20;
    v
}

#[test]
fn a_missing_corrupt_or_stale_list_refuses_before_touching_the_target() {
    let sql = "CREATE TABLE users (id bigint PRIMARY KEY); INSERT INTO users SELECT generate_series(1, 10);";
    let env = Env::new(
        "r_closed",
        sql,
        "[ { table = \"public.users\", column = \"id\" } ]",
    );
    let id = env.ok(&["snapshot"]).trim().to_string();
    let dst = TestDb::create("r_closed_dst");

    // Missing: never overridable.
    for extra in [&[][..], &["--allow-stale-erasure-list"][..]] {
        let mut args = vec!["restore", id.as_str(), "--target", dst.url.as_str()];
        args.extend_from_slice(extra);
        let out = env.run(&args);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains("erasure list"),
            "{}",
            text(&out.stderr)
        );
        assert_eq!(user_tables(&dst), "");
    }

    // Corrupt: a directory that is not a readable list.
    let erasure = env.dir.path().join("erasure");
    std::fs::create_dir_all(&erasure).unwrap();
    std::fs::write(erasure.join("CURRENT"), "garbage\n").unwrap();
    let out = env.run(&[
        "restore",
        &id,
        "--target",
        &dst.url,
        "--allow-stale-erasure-list",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("refusing to restore"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(user_tables(&dst), "");
    std::fs::remove_dir_all(&erasure).unwrap();

    // Stale: another host journals an erasure this list has not merged.
    env.ok(&["erase", "sync"]);
    let other_dir = env.dir.path().join("other");
    std::fs::create_dir_all(&other_dir).unwrap();
    let public = lethe::crypto::keygen(&other_dir.join("restore.key")).unwrap();
    let other = crate::common::write_config(
        &other_dir,
        &config_text(
            &other_dir,
            &env.src.url,
            &env.repo,
            &other_dir.join("erasure"),
            "[ { table = \"public.users\", column = \"id\" } ]",
            &public,
        ),
    );
    let out = lethe(&other, &["erase", "add", "4"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = env.run(&["restore", &id, "--target", &dst.url]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("erase sync") && err.contains("--allow-stale-erasure-list"),
        "{err}"
    );
    assert_eq!(user_tables(&dst), "");

    // The emergency override restores with the local list, loudly.
    let report = env.path("stale.json");
    let out = env.run(&[
        "restore",
        &id,
        "--target",
        &dst.url,
        "--allow-stale-erasure-list",
        "--report",
        &report,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("restore.stale_erasure_list"),
        "{}",
        text(&out.stderr)
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["erasure_list"]["fresh"], false);
    assert_eq!(dst.sql("SELECT count(*) FROM users").trim(), "10");

    // After a sync the list is current and user 4 stays erased.
    env.ok(&["erase", "sync"]);
    let dst2 = TestDb::create("r_closed_dst2");
    env.ok(&["restore", &id, "--target", &dst2.url]);
    assert_eq!(
        dst2.sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM users")
            .trim(),
        "1,2,3,5,6,7,8,9,10"
    );

    // A list smaller than when the snapshot was taken is missing entries,
    // even if the journal in storage lost them too.
    let id2 = env.ok(&["snapshot"]).trim().to_string();
    std::fs::remove_dir_all(env.repo.join("erasures")).unwrap();
    std::fs::remove_dir_all(&erasure).unwrap();
    env.ok(&["erase", "sync"]);
    let dst3 = TestDb::create("r_closed_dst3");
    let out = env.run(&["restore", &id2, "--target", &dst3.url]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("fewer than the 1"), "{err}");
    assert_eq!(user_tables(&dst3), "");
}

#[test]
fn uuid_and_text_subjects_match_as_postgresql_writes_them() {
    // uuid: listed in upper case, written by COPY in lower case.
    let sql = "CREATE TABLE users (id uuid PRIMARY KEY, name text); \
               CREATE TABLE sessions (id int PRIMARY KEY, user_id uuid REFERENCES users(id) ON DELETE CASCADE); \
               INSERT INTO users VALUES ('0b6e6f3c-5c1a-4d2e-9f00-aa11bb22cc33', 'gone'), \
                 ('1b6e6f3c-5c1a-4d2e-9f00-aa11bb22cc33', 'kept'); \
               INSERT INTO sessions VALUES (1, '0b6e6f3c-5c1a-4d2e-9f00-aa11bb22cc33'), \
                 (2, '1b6e6f3c-5c1a-4d2e-9f00-aa11bb22cc33'), (3, NULL);";
    let env = Env::typed(
        "r_uuid",
        sql,
        "[ { table = \"public.users\", column = \"id\" } ]",
        "uuid",
    );
    env.ok(&["erase", "add", "0B6E6F3C-5C1A-4D2E-9F00-AA11BB22CC33"]);
    let id = env.ok(&["snapshot"]).trim().to_string();
    let dst = TestDb::create("r_uuid_dst");
    env.ok(&["restore", &id, "--target", &dst.url]);
    assert_eq!(
        dst.sql("SELECT string_agg(name, ',') FROM users").trim(),
        "kept"
    );
    assert_eq!(
        dst.sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM sessions")
            .trim(),
        "2,3"
    );

    // text: ids holding a tab, a backslash and non-ASCII, escaped by COPY.
    let sql = "CREATE TABLE accounts (handle text PRIMARY KEY); \
               CREATE TABLE posts (id int PRIMARY KEY, author text REFERENCES accounts(handle) ON DELETE SET NULL); \
               INSERT INTO accounts VALUES (E'we\\tird\\\\zoë'), ('plain'), (E'we\\tird'); \
               INSERT INTO posts VALUES (1, E'we\\tird\\\\zoë'), (2, 'plain'), (3, E'we\\tird');";
    let env = Env::typed(
        "r_text",
        sql,
        "[ { table = \"public.accounts\", column = \"handle\" } ]",
        "text",
    );
    env.ok(&["erase", "add", "we\tird\\zoë"]);
    let id = env.ok(&["snapshot"]).trim().to_string();
    let dst = TestDb::create("r_text_dst");
    env.ok(&["restore", &id, "--target", &dst.url]);
    assert_eq!(
        dst.sql("SELECT count(*) FROM accounts WHERE handle LIKE 'we%zo%'")
            .trim(),
        "0"
    );
    assert_eq!(dst.sql("SELECT count(*) FROM accounts").trim(), "2");
    assert_eq!(
        dst.sql(
            "SELECT string_agg(id || '=' || coalesce(author, 'NULL'), ',' ORDER BY id) FROM posts"
        )
        .trim(),
        "1=NULL,2=plain,3=we\tird"
    );
}
