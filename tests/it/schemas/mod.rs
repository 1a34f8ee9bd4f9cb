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
pub(super) struct Case {
    tag: &'static str,
    source_sql: &'static str,
    subjects_toml: &'static str,
    subject_type: &'static str,
    /// More of `[erasure]` (policies, references, the pseudonym key),
    /// after `subjects`; `{dir}` is the case's temporary directory.
    erasure_toml: &'static str,
    /// The application's own erasure procedure, run on the truth instead
    /// of the default one (RESTRICT / NO ACTION as CASCADE, then a DELETE
    /// per root); `{dir}` as above.
    procedure: Option<&'static str>,
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

/// The pseudonym key every case gets, as hex (the procedures' pgcrypto
/// `hmac` uses the same bytes).
pub(crate) const PSEUDONYM_KEY_HEX: &str =
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

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
        let mut env = self.setup();
        env.id = env.ok(&["snapshot"]).trim().to_string();
        let mut args = vec!["erase", "add", "--"];
        args.extend(self.erased.iter().map(String::as_str));
        env.ok(&args);
        env
    }

    /// The source with its tables and the config, no snapshot yet.
    fn setup(&self) -> Env {
        let src = TestDb::create(self.tag);
        let dir = tempfile::tempdir().expect("tempdir");
        let public = lethe::crypto::keygen(&dir.path().join("restore.key")).expect("keygen");
        // For cases that redact with pseudonyms (`{dir}/pseudonym.key`).
        let key = dir.path().join("pseudonym.key");
        std::fs::write(&key, PSEUDONYM_KEY_HEX).expect("write pseudonym key");
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod pseudonym key");
        let config = format!(
            "[source]\nurl = \"{src}\"\njobs = 2\n\n[storage]\nurl = \"file://{repo}\"\n\n\
             [encryption]\nrecipients = [\"{public}\"]\nidentity_file = \"{key}\"\n\n\
             [erasure]\npath = \"{erasure}\"\nsubject_type = \"{st}\"\nsubjects = {subjects}\n{extra}\n\n\
             [api]\nlisten = \"unix:{sock}\"\n\n[log]\nformat = \"json\"\n",
            src = src.url,
            repo = dir.path().join("repo").display(),
            key = dir.path().join("restore.key").display(),
            erasure = dir.path().join("erasure").display(),
            st = self.subject_type,
            subjects = self.subjects_toml,
            extra = self
                .erasure_toml
                .replace("{dir}", &dir.path().display().to_string()),
            sock = dir.path().join("api.sock").display(),
        );
        let cfg = write_config(dir.path(), &config);
        src.sql(self.source_sql);
        Env {
            dir,
            src,
            cfg,
            id: String::new(),
        }
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
        if let Some(procedure) = self.procedure {
            truth.sql(&procedure.replace("{dir}", &env.dir.path().display().to_string()));
            return truth;
        }
        cascade_restricts(&truth);

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

/// Turns every RESTRICT / NO ACTION foreign key of `db` into CASCADE, as
/// the truth has it (lethe drops such children with their parent).
pub(crate) fn cascade_restricts(truth: &TestDb) {
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
pub(crate) fn load_file(db: &TestDb, file: &str) {
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
pub(crate) fn relations(db: &TestDb) -> Vec<String> {
    db.sql(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE (c.relkind = 'r' OR (c.relkind = 'm' AND c.relispopulated)) \
           AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_' \
           AND (NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                            AND d.objid = c.oid AND d.deptype = 'e') \
                OR c.oid IN (SELECT unnest(extconfig) FROM pg_extension)) \
         ORDER BY 1",
    )
    .lines()
    .map(str::to_string)
    .collect()
}

/// Per relation: its row count and the md5 of its rows as text, sorted.
pub(crate) fn fingerprints(db: &TestDb) -> BTreeMap<String, (u64, String)> {
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
pub(crate) fn rows(db: &TestDb, t: &str) -> Vec<String> {
    db.sql(&format!("SELECT x::text FROM ONLY {t} x ORDER BY 1"))
        .lines()
        .map(str::to_string)
        .collect()
}

/// Asserts `db` holds the truth's relations with the truth's rows; a
/// mismatch names the relation, both counts and a few differing rows.
pub(crate) fn compare(
    truth: &TestDb,
    want: &BTreeMap<String, (u64, String)>,
    db: &TestDb,
    what: &str,
) {
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
pub(crate) fn leak_check(truth: &TestDb, db: &TestDb, erased: &[String], what: &str) {
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

mod extensions;
mod partitions;
pub(crate) mod policies;
mod refusals;
mod types;
