//! What is refused before anything is written, and a failure after the
//! data is in, which must leave no rows.

use super::*;

#[test]
fn a_bigint_subject_on_a_text_root_is_refused_before_anything_is_written() {
    let case = Case {
        tag: "s_ref_text",
        source_sql: "CREATE TABLE users (handle text PRIMARY KEY, name text); \
                     INSERT INTO users SELECT i::text, 'user ' || i FROM generate_series(1, 20) i; \
                     INSERT INTO users VALUES ('990001', 'erased');",
        subjects_toml: "[ { table = \"public.users\", column = \"handle\" } ]",
        subject_type: "bigint",
        erasure_toml: "",
        procedure: None,
        erased: ids(&["990001"]),
    };
    let err = case.refused();
    assert!(
        err.contains("users") && err.contains("handle") && err.contains("text"),
        "the refusal does not name public.users.handle and its type text:\n{err}"
    );
}

#[test]
fn a_bigint_subject_on_a_numeric_root_with_scale_is_refused() {
    let case = Case {
        tag: "s_ref_num",
        source_sql: "CREATE TABLE users (account_no numeric(12,2) PRIMARY KEY, name text); \
                     INSERT INTO users SELECT i, 'user ' || i FROM generate_series(1, 20) i; \
                     INSERT INTO users VALUES (990001, 'erased');",
        subjects_toml: "[ { table = \"public.users\", column = \"account_no\" } ]",
        subject_type: "bigint",
        erasure_toml: "",
        procedure: None,
        erased: ids(&["990001"]),
    };
    let err = case.refused();
    assert!(
        err.contains("account_no") && err.contains("numeric(12,2)"),
        "the refusal does not name account_no and its type numeric(12,2):\n{err}"
    );
}

#[test]
fn a_foreign_key_over_a_float_column_is_refused_naming_it() {
    let case = Case {
        tag: "s_ref_float",
        source_sql: "CREATE TABLE users (id bigint PRIMARY KEY, score double precision UNIQUE); \
                     CREATE TABLE ratings (id bigint PRIMARY KEY, \
                       score double precision REFERENCES users (score) ON DELETE CASCADE); \
                     INSERT INTO users SELECT i, i / 7.0 FROM generate_series(1, 20) i; \
                     INSERT INTO users VALUES (990001, 0.1); \
                     INSERT INTO ratings SELECT id, score FROM users;",
        subjects_toml: USERS_ROOT,
        subject_type: "bigint",
        erasure_toml: "",
        procedure: None,
        erased: ids(&["990001"]),
    };
    let err = case.refused();
    assert!(
        err.contains("ratings") && err.contains("score") && err.contains("double precision"),
        "the refusal does not name ratings.score and its type double precision:\n{err}"
    );
}

#[test]
fn a_restore_that_fails_after_loading_leaves_no_rows_in_the_target() {
    // The index calls a function that calls another without a schema: fine
    // in the source, but pg_dump's scripts run with an empty search_path,
    // so building the index in post-data fails once the data is loaded.
    let case = Case {
        tag: "s_late_fail",
        source_sql: r#"
CREATE FUNCTION inner_norm(t text) RETURNS text IMMUTABLE LANGUAGE sql AS 'SELECT lower(t)';
CREATE FUNCTION outer_norm(t text) RETURNS text IMMUTABLE LANGUAGE sql AS 'SELECT inner_norm(t)';
CREATE TABLE users (id bigint PRIMARY KEY, name text);
CREATE TABLE notes (id bigint PRIMARY KEY, user_id bigint REFERENCES users ON DELETE CASCADE, body text);
CREATE TABLE countries (code text PRIMARY KEY, name text);
INSERT INTO users SELECT i, 'user ' || i FROM generate_series(1, 40) i;
INSERT INTO users VALUES (990001, 'erased');
INSERT INTO notes SELECT row_number() OVER (ORDER BY u.id, g), u.id, 'Note ' || g FROM users u, generate_series(1, 3) g;
INSERT INTO countries VALUES ('DE', 'Germany'), ('FR', 'France');
CREATE INDEX notes_norm ON notes (outer_norm(body));
"#,
        subjects_toml: USERS_ROOT,
        subject_type: "bigint",
        erasure_toml: "",
        procedure: None,
        erased: ids(&["990001"]),
    };
    let env = case.prepare();
    for jobs in ["1", "3"] {
        let target = TestDb::create("s_late_fail_dst");
        let out = env.run(&["restore", &env.id, "--target", &target.url, "--jobs", jobs]);
        let err = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "--jobs {jobs}: the restore did not fail:\n{err}"
        );
        assert!(
            err.contains("inner_norm"),
            "--jobs {jobs}: the restore failed, but not at the index:\n{err}"
        );
        let left: Vec<String> = relations(&target)
            .into_iter()
            .filter_map(|t| {
                let n = scalar(&target, &format!("SELECT count(*) FROM {t}"));
                (n != "0").then(|| format!("{t}: {n} rows"))
            })
            .collect();
        assert!(
            left.is_empty(),
            "--jobs {jobs}: the failed restore left rows in the target: {left:?}\n{err}"
        );
    }
}

#[test]
fn a_restore_stopped_by_sigterm_after_loading_leaves_no_rows() {
    let case = Case {
        tag: "s_sigterm",
        source_sql: r#"
CREATE TABLE users (id bigint PRIMARY KEY, name text);
CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint REFERENCES users ON DELETE CASCADE);
INSERT INTO users SELECT i, 'u' || i FROM generate_series(1, 50) i;
INSERT INTO orders SELECT i, i % 50 + 1 FROM generate_series(1, 200) i;
"#,
        subjects_toml: "[ { table = \"public.users\", column = \"id\" } ]",
        subject_type: "bigint",
        erasure_toml: "",
        procedure: None,
        erased: ids(&["7"]),
    };
    let env = case.prepare();
    let target = TestDb::create("s_sigterm_dst");
    let mut child = crate::common::lethe_cmd(
        &env.cfg,
        &["restore", &env.id, "--target", &target.url, "--jobs", "1"],
        &[("LETHE_TEST_PAUSE_AT", "restore".to_string())],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("lethe runs");
    let (lines, reader) = crate::common::collect_stderr(&mut child);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !lines
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("lethe-test-pause: restore"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no pause: {:?}",
            lines.lock().unwrap()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // A table is committed: the target holds rows now.
    let loaded: u64 = ["users", "orders"]
        .iter()
        .map(|t| {
            scalar(&target, &format!("SELECT count(*) FROM {t}"))
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert!(loaded > 0, "the pause came before any row was committed");
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().expect("lethe exits");
    reader.join().unwrap();
    assert!(!status.success());
    let err = lines.lock().unwrap().join("\n");
    assert!(err.contains("removed again"), "{err}");
    for t in ["users", "orders"] {
        assert_eq!(
            scalar(&target, &format!("SELECT count(*) FROM {t}")),
            "0",
            "{t}: {err}"
        );
    }
}
