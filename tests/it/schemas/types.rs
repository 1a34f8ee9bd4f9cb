//! Keys compared by their type: citext, char(n), numeric, domains; quoted
//! names; multi-tenant composite keys.

use super::*;

#[test]
fn citext_email_keys_match_case_insensitively() {
    let case = Case {
        tag: "s_citext",
        source_sql: r#"
CREATE EXTENSION IF NOT EXISTS citext;
CREATE TABLE accounts (email citext PRIMARY KEY, name text);
CREATE TABLE logins (id bigint PRIMARY KEY,
  account_email citext NOT NULL REFERENCES accounts ON DELETE CASCADE, at date);
CREATE TABLE newsletters (id bigint PRIMARY KEY,
  subscriber citext REFERENCES accounts ON DELETE SET NULL, topic text);

INSERT INTO accounts SELECT 'user' || i || '@example.com', 'User ' || i FROM generate_series(1, 40) i;
INSERT INTO accounts VALUES ('erased.person@example.com', 'Erased'), ('second.gone@example.org', 'Gone');
-- Children spell the parent's key in other cases.
INSERT INTO logins SELECT row_number() OVER (ORDER BY a.email, g),
  CASE g WHEN 1 THEN upper(a.email) WHEN 2 THEN initcap(a.email) ELSE a.email END, date '2024-01-01' + g
  FROM accounts a, generate_series(1, 3) g;
INSERT INTO newsletters SELECT row_number() OVER (ORDER BY a.email), upper(a.email), 'topic'
  FROM accounts a;
"#,
        subjects_toml: "[ { table = \"public.accounts\", column = \"email\" } ]",
        subject_type: "text",
        erasure_toml: "",
        procedure: None,
        erased: ids(&["Erased.Person@Example.COM", "SECOND.GONE@example.org"]),
    };
    let c = case.check();
    assert_eq!(scalar(&c.target, "SELECT count(*) FROM accounts"), "40");
    assert_eq!(
        scalar(
            &c.target,
            "SELECT count(*) FROM newsletters WHERE subscriber IS NULL"
        ),
        "2"
    );
}

#[test]
fn char_padded_keys_match_varchar_references() {
    let case = Case {
        tag: "s_char",
        source_sql: r#"
CREATE TABLE users (id bigint PRIMARY KEY, name text);
CREATE TABLE codes (code char(8) PRIMARY KEY, owner_id bigint NOT NULL REFERENCES users ON DELETE CASCADE);
CREATE TABLE usages (id bigint PRIMARY KEY, code varchar(8) NOT NULL REFERENCES codes ON DELETE CASCADE, used_on date);

INSERT INTO users SELECT i, 'user ' || i FROM generate_series(1, 30) i;
INSERT INTO users VALUES (990001, 'erased'), (990002, 'erased two');
INSERT INTO codes SELECT 'C' || row_number() OVER (ORDER BY u.id, g), u.id FROM users u, generate_series(1, 2) g;
-- 'C3' (as the parent is written before padding), and 'C3 ', 'C3  '.
INSERT INTO usages SELECT row_number() OVER (ORDER BY c.code, g), rtrim(c.code) || repeat(' ', g - 1), date '2024-02-01' + g
  FROM codes c, generate_series(1, 3) g;
"#,
        subjects_toml: USERS_ROOT,
        subject_type: "bigint",
        erasure_toml: "",
        procedure: None,
        erased: ids(&["990001", "990002"]),
    };
    let c = case.check();
    assert_eq!(
        scalar(
            &c.env.src,
            "SELECT count(*) FROM usages u JOIN codes c ON c.code = u.code WHERE c.owner_id = 990001 AND u.code::text = rtrim(c.code)"
        ),
        "2",
        "the source has no unpadded reference to an erased user's code"
    );
    assert_eq!(scalar(&c.target, "SELECT count(*) FROM usages"), "180");
}

#[test]
fn a_numeric_key_matches_whatever_its_scale() {
    let case = Case {
        tag: "s_numeric",
        source_sql: r#"
CREATE TABLE users (id numeric PRIMARY KEY, name text);
CREATE TABLE invoices (id bigint PRIMARY KEY, user_id numeric(12,2) REFERENCES users ON DELETE CASCADE, amount numeric(10,2));
CREATE TABLE notes (id bigint PRIMARY KEY, user_id numeric REFERENCES users ON DELETE SET NULL, body text);

INSERT INTO users SELECT (i || (ARRAY['', '.0', '.00'])[1 + i % 3])::numeric, 'user ' || i FROM generate_series(1, 30) i;
INSERT INTO users VALUES ('990001.0', 'erased'), ('990002', 'erased two'), ('990003.000', 'erased three');
INSERT INTO invoices SELECT row_number() OVER (ORDER BY u.id, g), u.id, 10.5 * g FROM users u, generate_series(1, 3) g;
INSERT INTO notes SELECT row_number() OVER (ORDER BY u.id), u.id * 1.0, 'note' FROM users u;
"#,
        subjects_toml: USERS_ROOT,
        subject_type: "bigint",
        erasure_toml: "",
        procedure: None,
        erased: ids(&["990001", "990002", "990003"]),
    };
    let c = case.check();
    assert_eq!(
        scalar(
            &c.env.src,
            "SELECT string_agg(user_id::text, ',' ORDER BY id) FROM invoices WHERE user_id = 990002"
        ),
        "990002.00,990002.00,990002.00"
    );
    assert_eq!(scalar(&c.target, "SELECT count(*) FROM users"), "30");
}

#[test]
fn a_domain_over_bigint_is_followed_like_bigint() {
    let case = Case {
        tag: "s_domain",
        source_sql: r#"
CREATE DOMAIN user_id AS bigint CHECK (VALUE > 0);
CREATE TABLE users (id user_id PRIMARY KEY, name text);
CREATE TABLE orders (id bigint PRIMARY KEY, user_id user_id REFERENCES users ON DELETE SET NULL, total numeric(10,2));
CREATE TABLE profiles (user_id user_id PRIMARY KEY REFERENCES users ON DELETE CASCADE, bio text);

INSERT INTO users SELECT i, 'user ' || i FROM generate_series(1, 40) i;
INSERT INTO users VALUES (990001, 'erased'), (990002, 'erased two');
INSERT INTO orders SELECT row_number() OVER (ORDER BY u.id, g), u.id, g * 2.5 FROM users u, generate_series(1, 3) g;
INSERT INTO orders VALUES (1000, NULL, 1.00);
INSERT INTO profiles SELECT id, 'bio of ' || id FROM users;
"#,
        subjects_toml: USERS_ROOT,
        subject_type: "bigint",
        erasure_toml: "",
        procedure: None,
        erased: ids(&["990001", "990002"]),
    };
    let c = case.check();
    assert_eq!(
        scalar(
            &c.target,
            "SELECT count(*) FROM orders WHERE user_id IS NULL"
        ),
        "7"
    );
}

#[test]
fn a_schema_with_a_dot_in_its_name_can_be_configured() {
    let case = Case {
        tag: "s_dot",
        source_sql: r#"
CREATE SCHEMA "app.v2";
CREATE TABLE "app.v2".users (id bigint PRIMARY KEY, name text);
CREATE TABLE "app.v2".posts (id bigint PRIMARY KEY,
  author_id bigint NOT NULL REFERENCES "app.v2".users ON DELETE CASCADE, title text);
-- Decoys: tables whose unquoted names read the same or alike; not roots.
CREATE SCHEMA app;
CREATE TABLE app."v2.users" (id bigint PRIMARY KEY, name text);
CREATE TABLE public.users (id bigint PRIMARY KEY, name text);

INSERT INTO "app.v2".users SELECT i, 'user ' || i FROM generate_series(1, 30) i;
INSERT INTO "app.v2".users VALUES (990001, 'erased'), (990002, 'erased two');
INSERT INTO "app.v2".posts SELECT row_number() OVER (ORDER BY u.id, g), u.id, 'post ' || g
  FROM "app.v2".users u, generate_series(1, 2) g;
INSERT INTO app."v2.users" SELECT id, name FROM "app.v2".users;
INSERT INTO public.users SELECT id, name FROM "app.v2".users;
"#,
        subjects_toml: "[ { table = '\"app.v2\".users', column = \"id\" } ]",
        subject_type: "bigint",
        erasure_toml: "",
        procedure: None,
        erased: ids(&["990001", "990002"]),
    };
    let c = case.check();
    assert_eq!(
        scalar(&c.target, "SELECT count(*) FROM \"app.v2\".users"),
        "30"
    );
    assert_eq!(
        scalar(&c.target, "SELECT count(*) FROM app.\"v2.users\""),
        "32"
    );
    assert_eq!(scalar(&c.target, "SELECT count(*) FROM public.users"), "32");
}

#[test]
fn a_multi_tenant_composite_key_is_followed() {
    let case = Case {
        tag: "s_tenant",
        source_sql: r#"
CREATE TABLE tenants (id int PRIMARY KEY, name text);
CREATE TABLE users (tenant_id int NOT NULL REFERENCES tenants ON DELETE CASCADE, id bigint NOT NULL, name text,
  PRIMARY KEY (tenant_id, id));
CREATE TABLE documents (id bigint PRIMARY KEY, tenant_id int NOT NULL, owner_id bigint NOT NULL, title text,
  FOREIGN KEY (tenant_id, owner_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE);
CREATE TABLE tasks (id bigint PRIMARY KEY, tenant_id int NOT NULL REFERENCES tenants, assignee_id bigint, title text,
  FOREIGN KEY (tenant_id, assignee_id) REFERENCES users (tenant_id, id) ON DELETE SET NULL (assignee_id));

INSERT INTO tenants VALUES (1, 'acme'), (2, 'globex'), (3, 'initech');
-- The same user ids in every tenant.
INSERT INTO users SELECT t, i, 'user ' || i || ' of ' || t FROM generate_series(1, 3) t, generate_series(1, 20) i;
INSERT INTO users VALUES (1, 990001, 'erased'), (2, 990001, 'erased'), (3, 990002, 'erased two'), (2, 990002, 'erased two');
INSERT INTO documents SELECT row_number() OVER (ORDER BY u.tenant_id, u.id, g), u.tenant_id, u.id, 'doc ' || g
  FROM users u, generate_series(1, 2) g;
INSERT INTO tasks SELECT row_number() OVER (ORDER BY u.tenant_id, u.id, g), u.tenant_id,
  CASE WHEN g = 3 THEN NULL ELSE u.id END, 'task ' || g
  FROM users u, generate_series(1, 3) g;
"#,
        subjects_toml: USERS_ROOT,
        subject_type: "bigint",
        erasure_toml: "",
        procedure: None,
        erased: ids(&["990001", "990002"]),
    };
    let c = case.check();
    // SET NULL (assignee_id) keeps the tenant.
    assert_eq!(
        scalar(
            &c.target,
            "SELECT count(*) FROM tasks WHERE assignee_id IS NULL AND tenant_id IS NOT NULL"
        ),
        "72"
    );
}

#[test]
fn a_foreign_key_on_a_stored_generated_column_is_followed() {
    let case = Case {
        tag: "s_generated",
        source_sql: r#"
CREATE TABLE users (id bigint PRIMARY KEY, name text);
CREATE TABLE documents (id bigint PRIMARY KEY, payload jsonb NOT NULL,
  owner_id bigint GENERATED ALWAYS AS ((payload->>'owner')::bigint) STORED
    REFERENCES users ON DELETE CASCADE,
  title text);
CREATE TABLE shares (id bigint PRIMARY KEY, document_id bigint REFERENCES documents ON DELETE CASCADE);
INSERT INTO users SELECT i, 'u' || i FROM generate_series(1, 30) i;
INSERT INTO users VALUES (990001, 'gone'), (990002, 'gone too');
INSERT INTO documents (id, payload, title)
  SELECT i, jsonb_build_object('owner', CASE WHEN i % 10 = 0 THEN 990001 WHEN i % 10 = 5 THEN 990002 ELSE i % 30 + 1 END), 'doc\t' || i
  FROM generate_series(1, 100) i;
INSERT INTO shares SELECT i, i FROM generate_series(1, 100) i;
"#,
        subjects_toml: "[ { table = \"public.users\", column = \"id\" } ]",
        subject_type: "bigint",
        erasure_toml: "",
        procedure: None,
        erased: ids(&["990001", "990002"]),
    };
    let c = case.check();
    assert_eq!(scalar(&c.target, "SELECT count(*) FROM documents"), "80");
    // The target computed the generated column again.
    assert_eq!(
        scalar(
            &c.target,
            "SELECT count(*) FROM documents WHERE owner_id = (payload->>'owner')::bigint"
        ),
        "80"
    );
}

/// accounts.owner is SET NULL when its user goes, and other tables
/// reference accounts.owner: PostgreSQL applies their ON UPDATE action.
const ON_UPDATE_SQL: &str = r#"
CREATE TABLE users (id bigint PRIMARY KEY, name text);
CREATE TABLE accounts (id bigint PRIMARY KEY,
  owner bigint UNIQUE REFERENCES users ON DELETE SET NULL, plan text);
CREATE TABLE grants (id bigint PRIMARY KEY,
  owner bigint REFERENCES accounts (owner) ON DELETE CASCADE ON UPDATE CASCADE);
CREATE TABLE audit (id bigint PRIMARY KEY,
  owner bigint REFERENCES accounts (owner) ON DELETE CASCADE ON UPDATE SET NULL, what text);
INSERT INTO users SELECT i, 'u' || i FROM generate_series(1, 20) i;
INSERT INTO users VALUES (990001, 'gone');
INSERT INTO accounts SELECT i, CASE WHEN i = 7 THEN 990001 ELSE i END, 'p' FROM generate_series(1, 20) i;
INSERT INTO grants SELECT i, CASE WHEN i % 4 = 0 THEN 990001 ELSE i % 6 + 1 END FROM generate_series(1, 40) i;
INSERT INTO audit SELECT i, CASE WHEN i % 5 = 0 THEN 990001 ELSE i % 6 + 1 END, 'x' FROM generate_series(1, 40) i;
"#;

#[test]
fn a_set_null_on_a_referenced_key_applies_the_on_update_actions() {
    let case = Case {
        tag: "s_onupdate",
        source_sql: ON_UPDATE_SQL,
        subjects_toml: "[ { table = \"public.users\", column = \"id\" } ]",
        subject_type: "bigint",
        erasure_toml: "",
        procedure: None,
        erased: ids(&["990001"]),
    };
    let c = case.check();
    assert_eq!(
        scalar(&c.target, "SELECT count(*) FROM grants WHERE owner IS NULL"),
        "10"
    );
    assert_eq!(
        scalar(&c.target, "SELECT count(*) FROM audit WHERE owner IS NULL"),
        "8"
    );
}

#[test]
fn an_on_update_no_action_under_a_rewritten_key_is_refused_and_leaves_no_rows() {
    let case = Case {
        tag: "s_onupd_no",
        source_sql: r#"
CREATE TABLE users (id bigint PRIMARY KEY);
CREATE TABLE accounts (id bigint PRIMARY KEY, owner bigint UNIQUE REFERENCES users ON DELETE SET NULL);
CREATE TABLE ledger (id bigint PRIMARY KEY, owner bigint REFERENCES accounts (owner));
INSERT INTO users SELECT generate_series(1, 10);
INSERT INTO accounts SELECT i, i FROM generate_series(1, 10) i;
INSERT INTO ledger SELECT i, i FROM generate_series(1, 10) i;
"#,
        subjects_toml: "[ { table = \"public.users\", column = \"id\" } ]",
        subject_type: "bigint",
        erasure_toml: "",
        procedure: None,
        erased: ids(&["4"]),
    };
    let env = case.prepare();
    let target = TestDb::create("s_onupd_no_dst");
    let out = env.run(&["restore", &env.id, "--target", &target.url]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("ledger_owner_fkey") && err.contains("ON UPDATE"),
        "{err}"
    );
    for t in ["users", "accounts", "ledger"] {
        let n = scalar(&target, &format!("SELECT count(*) FROM {t}"));
        assert_eq!(n, "0", "{t} kept rows after the refusal");
    }
}
