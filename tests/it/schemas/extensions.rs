//! Rows of an extension's configuration table (`pg_extension_config_dump`,
//! what pg_cron's `cron.job` and pg_partman's `part_config` use) are backed
//! up and restored; `CREATE EXTENSION` recreates the extension's own rows.

use super::*;

/// Installs a tiny extension with a configuration table into the server's
/// extension directory (tests run as root on the CI machine), once.
fn install_config_extension() {
    let share = scalar_in(
        "postgres",
        "SELECT setting FROM pg_config WHERE name = 'SHAREDIR'",
    );
    let dir = Path::new(share.trim()).join("extension");
    std::fs::write(
        dir.join("lethe_test_cfg.control"),
        "comment = 'lethe test: a configuration table'\ndefault_version = '1.0'\nrelocatable = true\n",
    )
    .unwrap_or_else(|e| panic!("writing the test extension into {}: {e} (run the tests as root)", dir.display()));
    std::fs::write(
        dir.join("lethe_test_cfg--1.0.sql"),
        "CREATE TABLE jobs (id bigint PRIMARY KEY, owner_id bigint, command text NOT NULL, \
         system boolean NOT NULL DEFAULT false);\n\
         INSERT INTO jobs VALUES (1, NULL, 'vacuum', true);\n\
         SELECT pg_catalog.pg_extension_config_dump('jobs', 'WHERE NOT system');\n",
    )
    .unwrap();
}

fn scalar_in(db: &str, sql: &str) -> String {
    crate::common::psql(db, sql)
}

#[test]
fn user_rows_of_an_extension_configuration_table_are_backed_up_and_restored() {
    install_config_extension();
    let case = Case {
        tag: "s_extcfg",
        source_sql: r#"
CREATE EXTENSION lethe_test_cfg;
CREATE TABLE users (id bigint PRIMARY KEY, name text);
INSERT INTO users SELECT i, 'u' || i FROM generate_series(1, 20) i;
INSERT INTO jobs VALUES (2, 3, 'report for 3', false), (3, 4, 'cleanup', false);
"#,
        subjects_toml: "[ { table = \"public.users\", column = \"id\" } ]",
        subject_type: "bigint",
        erasure_toml: "",
        procedure: None,
        erased: ids(&["3"]),
    };
    let c = case.check();
    // The extension's own row came from CREATE EXTENSION, the users' rows
    // from the snapshot; nothing twice.
    for db in [&c.target, &c.from_file] {
        assert_eq!(
            scalar(db, "SELECT string_agg(id::text, ',' ORDER BY id) FROM jobs"),
            "1,2,3"
        );
    }
}

/// Every large object of a database: oid and md5 of its content.
fn large_objects(db: &TestDb) -> Vec<String> {
    db.sql("SELECT oid || ':' || md5(lo_get(oid)) FROM pg_largeobject_metadata ORDER BY oid")
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn large_objects_are_backed_up_and_those_of_dropped_rows_go_with_them() {
    let case = Case {
        tag: "s_lo",
        source_sql: r#"
CREATE TABLE users (id bigint PRIMARY KEY, name text);
CREATE TABLE documents (id bigint PRIMARY KEY,
  owner_id bigint NOT NULL REFERENCES users ON DELETE CASCADE, content oid);
INSERT INTO users SELECT i, 'u' || i FROM generate_series(1, 10) i;
-- Empty, one-chunk and several-chunk objects (chunks are 256 KiB).
INSERT INTO documents SELECT i, i,
  lo_from_bytea(0, convert_to(repeat('document ' || i || ';', 30000 * (i % 3)), 'UTF8'))
  FROM generate_series(1, 10) i;
-- An object no row declares: kept whatever is erased.
SELECT lo_from_bytea(0, 'orphan');
"#,
        subjects_toml: "[ { table = \"public.users\", column = \"id\" } ]\n\
                        large_objects = [ { table = \"public.documents\", column = \"content\" } ]",
        subject_type: "bigint",
        erasure_toml: "",
        procedure: None,
        erased: ids(&["3", "7"]),
    };
    let c = case.check();
    let gone: Vec<String> = c
        .env
        .src
        .sql("SELECT content FROM documents WHERE owner_id IN (3, 7) ORDER BY 1")
        .lines()
        .map(|l| format!("{}:", l.trim()))
        .collect();
    assert_eq!(gone.len(), 2);
    let want: Vec<String> = large_objects(&c.env.src)
        .into_iter()
        .filter(|l| !gone.iter().any(|g| l.starts_with(g.as_str())))
        .collect();
    assert_eq!(want.len(), 9, "nine objects stay: {want:?}");
    assert_eq!(large_objects(&c.target), want, "restored into the target");
    assert_eq!(
        large_objects(&c.from_file),
        want,
        "restored from the SQL file"
    );
}
