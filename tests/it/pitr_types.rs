//! Point-in-time restore on the schemas the snapshot restore is tested on
//! (`schemas`), with the rows that matter written after the base, so they
//! reach the restore only through the change stream: per-table policies
//! and declared references (a plain column, a jsonb path), char(n) keys
//! referenced as varchar, citext keys spelled in other cases; and a
//! generated column that is a foreign key, which pgoutput in PostgreSQL 15
//! does not carry, so points after such a table changed are refused.
//! Ground truth as in `pitr`: the source dumped at the point, then the
//! application's own erasure in SQL.

use crate::common::TestDb;
use crate::continuous::LogicalDb;
use crate::pitr::{capturing_with, mark_point, run, truth_after};
use crate::pitr_edges::point_after_in;
use crate::schemas::policies::{POLICIES, PROCEDURE, SCHEMA};
use crate::schemas::{compare, fingerprints, leak_check, load_file};
use std::path::Path;

/// Restores `at` into a database and into a SQL file loaded by psql; both
/// must equal `truth` table by table and hold no erased id it does not.
/// The two restored databases, for more checks.
pub(crate) fn restores_equal(
    cfg: &Path,
    d: &Path,
    at: &str,
    truth: &TestDb,
    erased: &[&str],
    what: &str,
) -> (TestDb, TestDb) {
    let want = fingerprints(truth);
    let erased: Vec<String> = erased.iter().map(|s| s.to_string()).collect();
    let dst = TestDb::create("pitr_types_dst");
    let (code, _, err) = run(cfg, &["restore", "--at", at, "--target", &dst.url]);
    assert_eq!(code, 0, "{what}: {err}");
    compare(truth, &want, &dst, what);
    leak_check(truth, &dst, &erased, what);

    let file = d.join("at-restored.sql");
    let file = file.to_str().expect("utf-8");
    let (code, _, err) = run(cfg, &["restore", "--at", at, "--to-file", file]);
    assert_eq!(code, 0, "{what} --to-file: {err}");
    let loaded = TestDb::create("pitr_types_file");
    load_file(&loaded, file);
    std::fs::remove_file(file).expect("remove the restored file");
    let what = format!("{what} --to-file");
    compare(truth, &want, &loaded, &what);
    leak_check(truth, &loaded, &erased, &what);
    (dst, loaded)
}

/// The policies case of `schemas::policies` (users dropped; customers a
/// redacted root; invoices redacted, payments kept, tickets dropped by
/// policy; references in a column, at a jsonb path, set to NULL, redacted)
/// plus char(8) codes referenced as varchar, with rows of every kind
/// written after the base: inserted for an erased subject, moved onto one,
/// moved away from one, an erased subject's row renamed.
#[test]
fn policies_references_and_char_keys_hold_for_rows_written_after_the_base() {
    let db = LogicalDb::create("pitr_policy");
    db.sql(SCHEMA);
    db.sql(
        "CREATE TABLE app.codes (code char(8) PRIMARY KEY, \
                                 owner_id bigint NOT NULL REFERENCES app.users ON DELETE CASCADE); \
         CREATE TABLE app.usages (id bigint PRIMARY KEY, \
                                  code varchar(8) NOT NULL REFERENCES app.codes ON DELETE CASCADE); \
         INSERT INTO app.codes SELECT 'C' || i, i FROM generate_series(1, 20) i; \
         INSERT INTO app.usages SELECT i, 'C' || (i % 20 + 1) FROM generate_series(1, 40) i;",
    );
    let erasure = format!(
        "subject_type = \"bigint\"\n\
         subjects = [ {{ table = \"app.users\", column = \"id\" }}, \
                      {{ table = \"app.customers\", column = \"id\" }} ]\n{POLICIES}\n"
    );
    let (c, d, cfg) = capturing_with(db, &erasure);
    let erased = ["5", "17", "1003", "1021"];
    let (_c, d, cfg, at) = point_after_in(
        c,
        d,
        cfg,
        "INSERT INTO app.users VALUES (61, 'user61@example.com', 'User 61', 5), \
                                      (62, 'user62@example.com', 'User 62', 17); \
         INSERT INTO app.orders VALUES (301, 17, 'late order of 17'), (302, 61, 'order of 61'); \
         UPDATE app.orders SET user_id = 5 WHERE id IN (1, 2); \
         UPDATE app.orders SET user_id = 6 WHERE user_id = 17 AND id < 100; \
         UPDATE app.users SET name = 'Renamed' WHERE id = 5; \
         INSERT INTO billing.invoices VALUES (201, 1003, 'Customer 3', 'c3@example.org', 99.5), \
                                             (202, 1004, 'Customer 4', 'c4@example.org', 1); \
         INSERT INTO billing.invoice_lines VALUES (401, 201, 'late line'), (402, 202, 'line'); \
         UPDATE billing.invoices SET customer_id = 1021 WHERE id = 5; \
         UPDATE billing.invoices SET customer_id = 1004 WHERE id = 3; \
         INSERT INTO billing.payments VALUES (121, 1021, 'Payer late', 5); \
         INSERT INTO app.tickets VALUES (81, 1003, 'late ticket'), (82, 1004, 'kept ticket'); \
         UPDATE app.tickets SET customer_id = 1021 WHERE id = 1; \
         INSERT INTO app.notes VALUES (81, 1003, 'late note'); \
         INSERT INTO analytics.events VALUES (501, 5, 'late'), (502, 61, 'late'); \
         UPDATE analytics.events SET actor = 17 WHERE id = 9; \
         UPDATE analytics.events SET actor = 6 WHERE id = 4; \
         INSERT INTO analytics.payloads VALUES (361, '{\"actor\": {\"id\": 17}}'), \
                                               (362, '{\"actor\": {\"id\": \"5\"}}'), \
                                               (363, '{\"actor\": {\"id\": 61}}'), \
                                               (364, '{\"target\": {\"id\": 5}}'); \
         UPDATE analytics.payloads SET payload = '{\"actor\": {\"id\": 5}}' WHERE id = 2; \
         INSERT INTO analytics.page_views VALUES (241, 17, '/late'), (242, 62, '/kept'); \
         INSERT INTO app.audit VALUES (121, 1003, 'late change'); \
         UPDATE app.audit SET customer = 1021 WHERE id = 2; \
         UPDATE app.customers SET name = 'Renamed' WHERE id = 1003; \
         INSERT INTO app.codes VALUES ('L5', 5), ('L6', 6); \
         INSERT INTO app.usages VALUES (41, 'L5'), (42, 'L5 '), (43, 'L6'), (44, 'C17 '), (45, 'C6'); \
         UPDATE app.codes SET owner_id = 17 WHERE code = 'C7'; \
         UPDATE app.codes SET owner_id = 8 WHERE code = 'C5';",
        "INSERT INTO app.users VALUES (99, 'marker@example.com', 'marker', NULL)",
        &erased,
    );

    let truth = TestDb::create("pitr_policy_truth");
    load_file(&truth, d.join("at.sql").to_str().expect("utf-8"));
    truth.sql(PROCEDURE);
    // The window's rows changed the truth where it matters.
    for (sql, want) in [
        (
            "SELECT count(*) FROM app.orders WHERE id IN (1, 2, 301)",
            "0",
        ),
        (
            "SELECT count(*) FROM app.users WHERE invited_by IS NULL AND id IN (61, 62)",
            "2",
        ),
        (
            "SELECT count(*) FROM billing.invoices \
             WHERE id IN (5, 201) AND customer_email = 'erased@invalid' AND customer_name IS NULL",
            "2",
        ),
        (
            "SELECT count(*) FROM billing.invoices WHERE id = 3 AND customer_name IS NOT NULL",
            "1",
        ),
        ("SELECT count(*) FROM billing.payments WHERE id = 121", "1"),
        ("SELECT count(*) FROM app.tickets WHERE id IN (1, 81)", "0"),
        (
            "SELECT count(*) FROM analytics.events WHERE id IN (9, 501)",
            "0",
        ),
        (
            "SELECT count(*) FROM analytics.payloads WHERE id IN (2, 361, 362)",
            "0",
        ),
        (
            "SELECT count(*) FROM analytics.payloads WHERE id IN (363, 364)",
            "2",
        ),
        (
            "SELECT count(*) FROM analytics.page_views WHERE id = 241 AND viewer IS NULL",
            "1",
        ),
        (
            "SELECT count(*) FROM app.audit WHERE id IN (2, 121) AND detail = '[erased]'",
            "2",
        ),
        (
            "SELECT count(*) FROM app.codes WHERE code IN ('L5', 'C7', 'C17')",
            "0",
        ),
        ("SELECT count(*) FROM app.codes WHERE code = 'C5'", "1"),
        (
            "SELECT count(*) FROM app.usages WHERE id IN (41, 42, 44)",
            "0",
        ),
    ] {
        assert_eq!(truth.sql(sql).trim(), want, "truth: {sql}");
    }
    restores_equal(&cfg, &d, &at, &truth, &erased, "policies at a point");
}

/// citext keys: the subject's own row and its children written after the
/// base in other cases than the erasure lists them; a child moved onto an
/// erased subject in another case, one moved away from one.
#[test]
fn citext_keys_hold_for_rows_written_after_the_base() {
    let db = LogicalDb::create("pitr_citext");
    db.sql(
        "CREATE EXTENSION IF NOT EXISTS citext; \
         CREATE TABLE accounts (email citext PRIMARY KEY, name text); \
         CREATE TABLE logins (id bigint PRIMARY KEY, \
           account_email citext NOT NULL REFERENCES accounts ON DELETE CASCADE, at date); \
         CREATE TABLE newsletters (id bigint PRIMARY KEY, \
           subscriber citext REFERENCES accounts ON DELETE SET NULL, topic text); \
         INSERT INTO accounts SELECT 'user' || i || '@example.com', 'User ' || i \
           FROM generate_series(1, 20) i; \
         INSERT INTO accounts VALUES ('erased.person@example.com', 'Erased'); \
         INSERT INTO logins SELECT i, 'user' || (i % 20 + 1) || '@example.com', date '2024-01-01' + i \
           FROM generate_series(1, 40) i; \
         INSERT INTO logins VALUES (100, 'ERASED.person@example.com', date '2024-03-01'); \
         INSERT INTO newsletters SELECT i, upper('user' || (i % 20 + 1) || '@example.com'), 't' \
           FROM generate_series(1, 20) i;",
    );
    let (c, d, cfg) = capturing_with(db, CITEXT_ROOT);
    let erased = ["new.person@example.com", "Erased.Person@EXAMPLE.com"];
    let (_c, d, cfg, at) = point_after_in(
        c,
        d,
        cfg,
        "INSERT INTO accounts VALUES ('New.Person@Example.com', 'New'); \
         INSERT INTO logins VALUES (41, 'NEW.PERSON@EXAMPLE.COM', date '2025-01-01'), \
                                   (42, 'Erased.Person@Example.com', date '2025-01-02'), \
                                   (43, 'new.person@example.com', date '2025-01-03'), \
                                   (44, 'USER3@example.com', date '2025-01-04'); \
         UPDATE logins SET account_email = 'ERASED.PERSON@example.com' WHERE id IN (1, 2); \
         UPDATE logins SET account_email = 'user9@EXAMPLE.com' WHERE id = 100; \
         UPDATE newsletters SET subscriber = 'new.PERSON@example.COM' WHERE id = 3; \
         INSERT INTO newsletters VALUES (21, 'Erased.Person@EXAMPLE.com', 'late'), \
                                        (22, 'User5@Example.com', 'kept'); \
         UPDATE accounts SET name = 'Renamed' WHERE email = 'erased.person@example.com';",
        "INSERT INTO accounts VALUES ('marker@example.com', 'marker')",
        &erased,
    );

    let truth = citext_truth(&d.join("at.sql"), &erased);
    for (sql, want) in [
        ("SELECT count(*) FROM accounts", "20"),
        (
            "SELECT count(*) FROM logins WHERE id IN (1, 2, 41, 42, 43)",
            "0",
        ),
        ("SELECT count(*) FROM logins WHERE id IN (44, 100)", "2"),
        (
            "SELECT count(*) FROM newsletters WHERE id IN (3, 21) AND subscriber IS NULL",
            "2",
        ),
    ] {
        assert_eq!(truth.sql(sql).trim(), want, "truth: {sql}");
    }
    restores_equal(&cfg, &d, &at, &truth, &erased, "citext at a point");
}

const CITEXT_ROOT: &str = "subject_type = \"text\"\n\
    subjects = [ { table = \"public.accounts\", column = \"email\" } ]\n";

/// A point's dump with RESTRICT as CASCADE and the `erased` accounts
/// deleted, compared as citext.
fn citext_truth(dump: &Path, erased: &[&str]) -> TestDb {
    truth_after(
        dump,
        &format!(
            "DELETE FROM accounts WHERE email IN ({})",
            erased
                .iter()
                .map(|e| format!("'{e}'::citext"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
}

/// A STORED generated column that a foreign key follows: pgoutput before
/// PostgreSQL 18 does not send it, so a row of that table written after
/// the base cannot be filtered. A point before the table changed restores
/// exactly (the table's rows come from the base); a point after it is
/// refused with exit 1, naming the table, the column and the base to
/// restore instead, with nothing written to the target and no file left.
#[test]
fn a_generated_key_column_changed_after_the_base_refuses_the_points_after_it() {
    let db = LogicalDb::create("pitr_generated");
    db.sql(
        "CREATE EXTENSION IF NOT EXISTS citext; \
         CREATE TABLE accounts (email citext PRIMARY KEY, name text); \
         CREATE TABLE documents (id bigint PRIMARY KEY, payload jsonb NOT NULL, \
           owner citext GENERATED ALWAYS AS ((payload->>'owner')::citext) STORED \
             REFERENCES accounts ON DELETE CASCADE, title text); \
         INSERT INTO accounts SELECT 'user' || i || '@example.com', 'User ' || i \
           FROM generate_series(1, 20) i; \
         INSERT INTO documents (id, payload, title) \
           SELECT i, jsonb_build_object('owner', 'USER' || (i % 20 + 1) || '@example.com'), 'doc ' || i \
           FROM generate_series(1, 40) i;",
    );
    let (mut c, d, cfg) = capturing_with(db, CITEXT_ROOT);
    let gap = std::time::Duration::from_millis(1100);
    c.db.sql(
        "INSERT INTO accounts VALUES ('late@example.com', 'Late'); \
         UPDATE accounts SET name = 'Renamed' WHERE email = 'user3@example.com';",
    );
    let before = mark_point(&c.db, &d.join("before.sql"));
    // An erased user's document written after the base: its owner is
    // only in the generated column.
    c.db.sql(
        "INSERT INTO documents (id, payload, title) \
           VALUES (41, '{\"owner\": \"late@example.com\"}', 'late');",
    );
    std::thread::sleep(gap);
    let after = crate::pitr::now(&c.db);
    std::thread::sleep(gap);
    c.db.sql("INSERT INTO accounts VALUES ('marker@example.com', 'marker')");
    c.wait_restorable();
    assert_eq!(c.stop(), Some(0), "{}", c.log());
    c.check_log();
    let erased = ["LATE@example.com", "user3@EXAMPLE.com"];
    let (code, _, err) = run(&cfg, &["erase", "add", "--", erased[0], erased[1]]);
    assert_eq!(code, 0, "{err}");

    // Before the table changed: exact, user 3's documents from the base gone.
    let truth = citext_truth(&d.join("before.sql"), &erased);
    assert_eq!(
        truth.sql("SELECT count(*) FROM documents").trim(),
        "38",
        "truth: user 3's two documents are gone"
    );
    restores_equal(
        &cfg,
        &d,
        &before,
        &truth,
        &erased,
        "before the generated key changed",
    );

    // After it: refused, nothing written.
    let dst = TestDb::create("pitr_generated_dst");
    let (code, _, err) = run(&cfg, &["restore", "--at", &after, "--target", &dst.url]);
    assert_eq!(code, 1, "a point after the change was restored: {err}");
    for says in [
        "public.documents",
        "generated column",
        "(owner)",
        "restore the base",
    ] {
        assert!(
            err.contains(says),
            "the refusal does not say {says:?}:\n{err}"
        );
    }
    assert_eq!(
        dst.sql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            .trim(),
        "0",
        "the refused restore wrote to the target"
    );
    let file = d.join("after.sql");
    let (code, _, err) = run(
        &cfg,
        &[
            "restore",
            "--at",
            &after,
            "--to-file",
            file.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(code, 1, "--to-file: {err}");
    assert!(
        !file.exists(),
        "the refused restore left {} behind",
        file.display()
    );
}

/// Multi-tenant composite keys (a user is `(tenant_id, id)`; documents
/// CASCADE, tasks `SET NULL (assignee_id)`) and a table whose replica
/// identity is a unique index, not a primary key, so the stream names its
/// rows by that index: rows moved onto erased users, away from them,
/// deleted, re-keyed, and inserted for them after the base.
#[test]
fn composite_keys_and_an_index_identity_hold_for_rows_written_after_the_base() {
    let db = LogicalDb::create("pitr_tenant");
    db.sql(
        "CREATE TABLE tenants (id int PRIMARY KEY, name text); \
         CREATE TABLE users (tenant_id int NOT NULL REFERENCES tenants ON DELETE CASCADE, \
           id bigint NOT NULL, name text, PRIMARY KEY (tenant_id, id)); \
         CREATE TABLE documents (id bigint PRIMARY KEY, tenant_id int NOT NULL, owner_id bigint NOT NULL, \
           title text, FOREIGN KEY (tenant_id, owner_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE); \
         CREATE TABLE tasks (id bigint PRIMARY KEY, tenant_id int NOT NULL REFERENCES tenants, \
           assignee_id bigint, title text, \
           FOREIGN KEY (tenant_id, assignee_id) REFERENCES users (tenant_id, id) ON DELETE SET NULL (assignee_id)); \
         CREATE TABLE tokens (token text NOT NULL, tenant_id int NOT NULL, user_id bigint NOT NULL, note text, \
           FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE); \
         CREATE UNIQUE INDEX tokens_token ON tokens (token); \
         ALTER TABLE tokens REPLICA IDENTITY USING INDEX tokens_token; \
         INSERT INTO tenants VALUES (1, 'acme'), (2, 'globex'), (3, 'initech'); \
         INSERT INTO users SELECT t, i, 'user ' || i || ' of ' || t \
           FROM generate_series(1, 3) t, generate_series(1, 10) i; \
         INSERT INTO users VALUES (1, 990001, 'erased'), (2, 990001, 'erased'); \
         INSERT INTO documents SELECT row_number() OVER (ORDER BY u.tenant_id, u.id), u.tenant_id, u.id, 'doc' \
           FROM users u; \
         INSERT INTO tasks SELECT row_number() OVER (ORDER BY u.tenant_id, u.id), u.tenant_id, u.id, 'task' \
           FROM users u; \
         INSERT INTO tokens SELECT 'tok-' || u.tenant_id || '-' || u.id, u.tenant_id, u.id, 'n' FROM users u;",
    );
    let (c, d, cfg) = crate::pitr::capturing(db);
    let erased = ["990001", "990002", "7"];
    let (_c, d, cfg, at) = point_after_in(
        c,
        d,
        cfg,
        "INSERT INTO users VALUES (3, 990002, 'erased after the base'), (3, 990001, 'erased too'); \
         INSERT INTO documents VALUES (1001, 3, 990002, 'late'), (1002, 3, 990001, 'late'), (1003, 3, 5, 'kept'); \
         INSERT INTO tasks VALUES (1001, 3, 990002, 'late'), (1002, 1, 5, 'kept'); \
         UPDATE documents SET owner_id = 7 WHERE tenant_id = 2 AND owner_id = 3; \
         UPDATE documents SET owner_id = 4 WHERE tenant_id = 1 AND owner_id = 990001; \
         UPDATE tasks SET assignee_id = 990001 WHERE tenant_id = 1 AND assignee_id = 2; \
         UPDATE tokens SET user_id = 990001 WHERE token = 'tok-2-1'; \
         UPDATE tokens SET user_id = 6 WHERE token = 'tok-2-990001'; \
         UPDATE tokens SET token = 'tok-moved' WHERE token = 'tok-1-6'; \
         UPDATE tokens SET note = 'changed' WHERE token = 'tok-1-7'; \
         DELETE FROM tokens WHERE token = 'tok-3-5'; \
         INSERT INTO tokens VALUES ('tok-late', 3, 990002, 'late'), ('tok-kept', 3, 5, 'kept');",
        "INSERT INTO tenants VALUES (99, 'marker')",
        &erased,
    );

    let truth = crate::pitr::truth(&d.join("at.sql"), &erased);
    for (sql, want) in [
        ("SELECT count(*) FROM users", "27"),
        (
            "SELECT count(*) FROM documents WHERE id IN (1001, 1002)",
            "0",
        ),
        ("SELECT count(*) FROM documents WHERE id = 1003", "1"),
        (
            "SELECT count(*) FROM documents WHERE tenant_id = 1 AND owner_id = 4",
            "2",
        ),
        (
            "SELECT count(*) FROM tasks WHERE id = 1001 AND assignee_id IS NULL",
            "1",
        ),
        (
            "SELECT count(*) FROM tasks WHERE tenant_id = 1 AND assignee_id IS NULL",
            "3",
        ),
        (
            "SELECT count(*) FROM tokens WHERE token IN ('tok-2-1', 'tok-late', 'tok-1-7', 'tok-3-5')",
            "0",
        ),
        (
            "SELECT count(*) FROM tokens WHERE token IN ('tok-2-990001', 'tok-moved', 'tok-kept')",
            "3",
        ),
    ] {
        assert_eq!(truth.sql(sql).trim(), want, "truth: {sql}");
    }
    restores_equal(&cfg, &d, &at, &truth, &erased, "composite keys at a point");
}

/// A reusable natural key (an e-mail) erased during the window, its
/// account deleted by the application, and the address registered again
/// by a new person after `reuse_grace`: a point before the erasure drops
/// the erased person (the erasure applies to rows as of the point); a
/// point after the new sign-up keeps the new account, as a snapshot taken
/// then would (the point's time decides, not the base's).
#[test]
fn a_reusable_key_erased_during_the_window_is_a_new_account_at_a_later_point() {
    let db = LogicalDb::create("pitr_reuse");
    db.sql(
        "CREATE TABLE accounts (id bigint PRIMARY KEY, email text UNIQUE NOT NULL); \
         CREATE TABLE orders (id bigint PRIMARY KEY, \
           account_id bigint NOT NULL REFERENCES accounts ON DELETE CASCADE, note text); \
         INSERT INTO accounts VALUES (1, 'a@example.com'), (2, 'b@example.com'); \
         INSERT INTO orders VALUES (1, 1, 'of a'), (2, 2, 'of b'), (3, 1, 'of a');",
    );
    let (mut c, d, cfg) = capturing_with(
        db,
        "subject_type = \"text\"\nreuse_grace = \"1s\"\n\
         subjects = [ { table = \"public.accounts\", column = \"email\", reusable = true } ]\n",
    );
    c.db.sql("INSERT INTO orders VALUES (11, 1, 'late of a')");
    let before = mark_point(&c.db, &d.join("before.sql"));
    // Erased while the daemon runs (through its API), then deleted by the
    // application, then the address taken again after the grace.
    let (code, _, err) = run(&cfg, &["erase", "add", "--", "a@example.com"]);
    assert_eq!(code, 0, "{err}");
    c.db.sql("DELETE FROM accounts WHERE email = 'a@example.com'");
    std::thread::sleep(std::time::Duration::from_millis(1600));
    c.db.sql(
        "INSERT INTO accounts VALUES (3, 'a@example.com'); \
         INSERT INTO orders VALUES (12, 3, 'the new person''s order');",
    );
    let after = mark_point(&c.db, &d.join("after.sql"));
    c.db.sql("INSERT INTO accounts VALUES (99, 'marker@example.com')");
    c.wait_restorable();
    assert_eq!(c.stop(), Some(0), "{}", c.log());
    c.check_log();

    let erased = ["a@example.com"];
    let truth = TestDb::create("pitr_reuse_truth");
    load_file(&truth, d.join("before.sql").to_str().expect("utf-8"));
    truth.sql("DELETE FROM accounts WHERE email = 'a@example.com'");
    assert_eq!(
        truth
            .sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM orders")
            .trim(),
        "2"
    );
    restores_equal(&cfg, &d, &before, &truth, &erased, "before the erasure");

    let truth = TestDb::create("pitr_reuse_truth");
    load_file(&truth, d.join("after.sql").to_str().expect("utf-8"));
    assert_eq!(
        truth
            .sql("SELECT string_agg(id || ':' || email, ',' ORDER BY id) FROM accounts")
            .trim(),
        "2:b@example.com,3:a@example.com"
    );
    restores_equal(&cfg, &d, &after, &truth, &erased, "after the new sign-up");
}

/// Keys that move and cascades inside the window: a user's id changed with
/// ON UPDATE CASCADE (the children's new keys arrive as their own
/// updates), so the erasure of the new id must reach them and the
/// erasure of an id no longer anyone's removes nothing; a reply thread
/// (self-reference, ON DELETE CASCADE) by other users grown after the base
/// under a comment on an erased user's post; and TRUNCATE … CASCADE of a
/// subtree followed by new rows.
#[test]
fn re_keyed_subjects_reply_threads_and_truncate_cascade_in_the_window() {
    let db = LogicalDb::create("pitr_rekey");
    db.sql(
        "CREATE TABLE users (id bigint PRIMARY KEY, name text); \
         CREATE TABLE posts (id bigint PRIMARY KEY, \
           author_id bigint NOT NULL REFERENCES users ON DELETE CASCADE ON UPDATE CASCADE, title text); \
         CREATE TABLE comments (id bigint PRIMARY KEY, \
           post_id bigint NOT NULL REFERENCES posts ON DELETE CASCADE, \
           author_id bigint REFERENCES users ON DELETE SET NULL ON UPDATE CASCADE, \
           parent_id bigint REFERENCES comments ON DELETE CASCADE, body text); \
         CREATE TABLE tags (id bigint PRIMARY KEY, name text); \
         CREATE TABLE post_tags (post_id bigint REFERENCES posts ON DELETE CASCADE, \
           tag_id bigint REFERENCES tags ON DELETE CASCADE, PRIMARY KEY (post_id, tag_id)); \
         INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 20) g; \
         INSERT INTO posts SELECT g, 1 + g % 20, 'post ' || g FROM generate_series(1, 40) g; \
         INSERT INTO comments SELECT g, 1 + g % 40, 1 + (g * 7) % 20, NULL, 'c' || g \
           FROM generate_series(1, 80) g; \
         INSERT INTO tags SELECT g, 'tag ' || g FROM generate_series(1, 5) g; \
         INSERT INTO post_tags SELECT p, 1 + p % 5 FROM generate_series(1, 40) p;",
    );
    let (c, d, cfg) = crate::pitr::capturing(db);
    // 3 becomes 103 (erased under its new id); 4 becomes 104 (erased
    // under its old id: nobody is 4 at the point). Comment 1 (on post 2,
    // whose author is 3, now 103) gets a thread of replies by others: it
    // goes with the post, and the replies with their parents. Comment 1's
    // own author, 8, is erased too (SET NULL).
    let erased = ["103", "4", "8"];
    let (_c, d, cfg, at) = point_after_in(
        c,
        d,
        cfg,
        "UPDATE users SET id = 103 WHERE id = 3; \
         UPDATE users SET id = 104 WHERE id = 4; \
         INSERT INTO posts VALUES (41, 103, 'late post of 103'), (42, 104, 'late post of 104'); \
         INSERT INTO comments VALUES (81, 41, 5, NULL, 'on a post of 103'), \
                                     (82, 2, 5, 1, 'reply to 8'), (83, 2, 6, 82, 'reply to the reply'), \
                                     (84, 2, 103, 83, 'by 103 deep in the thread'), \
                                     (85, 42, 104, NULL, 'by 104'); \
         TRUNCATE tags CASCADE; \
         INSERT INTO tags VALUES (10, 'new tag'); \
         INSERT INTO post_tags VALUES (41, 10), (42, 10), (5, 10);",
        "INSERT INTO users VALUES (99, 'marker')",
        &erased,
    );

    let truth = crate::pitr::truth(&d.join("at.sql"), &erased);
    for (sql, want) in [
        (
            "SELECT count(*) FROM users WHERE id IN (3, 4, 103, 104)",
            "1",
        ),
        ("SELECT count(*) FROM posts WHERE author_id = 104", "3"),
        ("SELECT count(*) FROM posts WHERE id = 41", "0"),
        (
            "SELECT count(*) FROM comments WHERE id IN (81, 82, 83, 84)",
            "0",
        ),
        (
            "SELECT count(*) FROM comments WHERE id = 85 AND author_id = 104",
            "1",
        ),
        ("SELECT count(*) FROM post_tags", "2"),
    ] {
        assert_eq!(truth.sql(sql).trim(), want, "truth: {sql}");
    }
    restores_equal(
        &cfg,
        &d,
        &at,
        &truth,
        &erased,
        "re-keyed subjects at a point",
    );
}
