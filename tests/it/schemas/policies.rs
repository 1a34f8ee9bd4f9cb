//! Per-table erasure policies (drop, redact, keep) and declared references
//! (a plain column, a jsonb path), with the application's own erasure
//! procedure in SQL as the truth: UPDATE … SET the redacted columns, DELETE
//! where the policy drops, nothing where it keeps, and the foreign keys'
//! own actions for the rest.

use super::*;

/// Users are dropped (their orders cascade); customers are a redacted root
/// whose invoices (RESTRICT) are redacted, payments (CASCADE) kept, tickets
/// dropped by their own policy, and notes (no policy) left alone; events,
/// payloads (jsonb path), page views (set_null) and audit (redact) hold ids
/// without a foreign key.
pub(crate) const SCHEMA: &str = r#"
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE SCHEMA app; CREATE SCHEMA billing; CREATE SCHEMA analytics;
CREATE TABLE app.users (id bigint PRIMARY KEY, email text, name text,
  invited_by bigint REFERENCES app.users ON DELETE SET NULL);
CREATE TABLE app.orders (id bigint PRIMARY KEY, user_id bigint NOT NULL REFERENCES app.users ON DELETE CASCADE, note text);
CREATE TABLE app.customers (id bigint PRIMARY KEY, name text, email text, country text);
CREATE TABLE billing.invoices (id bigint PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES app.customers ON DELETE RESTRICT,
  customer_name text, customer_email text, amount numeric(10,2));
CREATE TABLE billing.invoice_lines (id bigint PRIMARY KEY,
  invoice_id bigint NOT NULL REFERENCES billing.invoices ON DELETE CASCADE, line text);
CREATE TABLE billing.payments (id bigint PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES app.customers ON DELETE CASCADE, payer text, amount numeric(10,2));
CREATE TABLE app.tickets (id bigint PRIMARY KEY,
  customer_id bigint REFERENCES app.customers ON DELETE CASCADE, body text);
CREATE TABLE app.notes (id bigint PRIMARY KEY,
  customer_id bigint REFERENCES app.customers ON DELETE CASCADE, body text);
CREATE TABLE analytics.events (id bigint PRIMARY KEY, actor bigint, kind text);
CREATE TABLE analytics.payloads (id bigint PRIMARY KEY, payload jsonb);
CREATE TABLE analytics.page_views (id bigint PRIMARY KEY, viewer bigint, url text);
CREATE TABLE app.audit (id bigint PRIMARY KEY, customer bigint, detail text);
-- Planted soft references: subject ids and e-mails no key reaches.
CREATE TABLE app.sessions (id bigint PRIMARY KEY, user_id bigint, token text);
CREATE TABLE app.newsletter (id bigint PRIMARY KEY, email text, topic text);

INSERT INTO app.users SELECT i, 'user' || i || '@example.com', 'User ' || i,
  CASE WHEN i > 1 THEN (i * 7) % (i - 1) + 1 END FROM generate_series(1, 60) i;
INSERT INTO app.orders SELECT i, (i % 60) + 1, 'order ' || i FROM generate_series(1, 300) i;
INSERT INTO app.customers SELECT 1000 + i, 'Customer ' || i, 'c' || i || '@example.org', 'DK'
  FROM generate_series(1, 40) i;
INSERT INTO billing.invoices SELECT i, 1000 + (i % 40) + 1, 'Customer ' || ((i % 40) + 1),
  'c' || ((i % 40) + 1) || '@example.org', i * 10.5 FROM generate_series(1, 200) i;
INSERT INTO billing.invoice_lines SELECT i, (i % 200) + 1, 'line ' || i FROM generate_series(1, 400) i;
INSERT INTO billing.payments SELECT i, 1000 + (i % 40) + 1, 'Payer ' || i, i FROM generate_series(1, 120) i;
INSERT INTO app.tickets SELECT i, 1000 + (i % 40) + 1, 'ticket ' || i FROM generate_series(1, 80) i;
INSERT INTO app.notes SELECT i, 1000 + (i % 40) + 1, 'note ' || i FROM generate_series(1, 80) i;
INSERT INTO analytics.events SELECT i, CASE WHEN i % 9 = 0 THEN NULL ELSE (i % 60) + 1 END, 'view'
  FROM generate_series(1, 500) i;
-- Ids as numbers and as strings, at the path and elsewhere; a prefix of an
-- erased id; JSON null; escapes in the document.
INSERT INTO analytics.payloads SELECT i, CASE i % 6
    WHEN 0 THEN jsonb_build_object('actor', jsonb_build_object('id', (i / 6) % 60 + 1), 'note', 'a "quoted" \ value')
    WHEN 1 THEN jsonb_build_object('actor', jsonb_build_object('id', ((i / 6) % 60 + 1)::text))
    WHEN 2 THEN jsonb_build_object('target', jsonb_build_object('id', (i / 6) % 60 + 1))
    WHEN 3 THEN jsonb_build_object('actor', jsonb_build_object('id', ((i / 6) % 60 + 1) * 10 + 5))
    WHEN 4 THEN jsonb_build_object('actor', NULL)
    ELSE jsonb_build_object('actor', jsonb_build_object('id', (i / 6) % 60 + 1, 'name', 'x'), 'id', 5) END
  FROM generate_series(1, 360) i;
INSERT INTO analytics.page_views SELECT i, (i % 60) + 1, '/page/' || i FROM generate_series(1, 240) i;
INSERT INTO app.audit SELECT i, 1000 + (i % 40) + 1, 'changed ' || i FROM generate_series(1, 120) i;
INSERT INTO app.sessions SELECT i, (i % 60) + 1, md5(i::text) FROM generate_series(1, 30) i;
INSERT INTO app.newsletter SELECT i, 'user' || i || '@example.com', 'news' FROM generate_series(1, 20) i;
"#;

pub(crate) const POLICIES: &str = r#"
pseudonym_key_file = "{dir}/pseudonym.key"

[[erasure.policy]]
table = "app.customers"
action = "redact"
set = { name = "NULL", email = "pseudonym", country = "'XX'" }
reason = "Bookkeeping act: customer master data kept 5 years"

[[erasure.policy]]
table = "billing.invoices"
action = "redact"
set = { customer_name = "NULL", customer_email = "'erased@invalid'" }
reason = "Bookkeeping act: 5 years"

[[erasure.policy]]
table = "billing.payments"
action = "keep"
reason = "Bookkeeping act: payments kept unchanged for 5 years"

[[erasure.policy]]
table = "app.tickets"
action = "drop"

[[erasure.reference]]
table = "analytics.events"
column = "actor"
references = "app.users.id"

[[erasure.reference]]
table = "analytics.payloads"
column = "payload"
path = "$.actor.id"
references = "app.users.id"
on_erase = "drop"

[[erasure.reference]]
table = "analytics.page_views"
column = "viewer"
references = "app.users.id"
on_erase = "set_null"

[[erasure.reference]]
table = "app.audit"
column = "customer"
references = "app.customers.id"
on_erase = "redact"
set = { detail = "'[erased]'" }
"#;

/// The application's erasure procedure for users 5 and 17 and customers
/// 1003 and 1021.
pub(crate) const PROCEDURE: &str = r#"
UPDATE billing.invoices SET customer_name = NULL, customer_email = 'erased@invalid'
  WHERE customer_id IN (1003, 1021);
DELETE FROM app.tickets WHERE customer_id IN (1003, 1021);
UPDATE app.audit SET detail = '[erased]' WHERE customer IN (1003, 1021);
UPDATE app.customers SET name = NULL, country = 'XX',
  email = substr(encode(hmac(convert_to('lethe pseudonym v1', 'UTF8') || '\x00'::bytea || convert_to(email, 'UTF8'),
    decode('00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff', 'hex'), 'sha256'), 'hex'), 1, 32)
  WHERE id IN (1003, 1021);
DELETE FROM analytics.events WHERE actor IN (5, 17);
DELETE FROM analytics.payloads WHERE payload #>> '{actor,id}' IN ('5', '17');
UPDATE analytics.page_views SET viewer = NULL WHERE viewer IN (5, 17);
DELETE FROM app.users WHERE id IN (5, 17);
"#;

fn case(tag: &'static str) -> Case {
    Case {
        tag,
        source_sql: SCHEMA,
        subjects_toml: "[ { table = \"app.users\", column = \"id\" }, { table = \"app.customers\", column = \"id\" } ]",
        subject_type: "bigint",
        erasure_toml: POLICIES,
        procedure: Some(PROCEDURE),
        erased: ids(&["5", "17", "1003", "1021"]),
    }
}

#[test]
fn policies_and_declared_references_equal_the_applications_own_procedure() {
    let c = case("s_policy").check();
    // The truth is not trivially the source: each policy changed something.
    for (sql, want) in [
        (
            "SELECT count(*) FROM billing.invoices WHERE customer_email = 'erased@invalid'",
            "10",
        ),
        (
            "SELECT count(*) FROM billing.payments WHERE customer_id IN (1003, 1021)",
            "6",
        ),
        ("SELECT count(*) FROM app.tickets", "76"),
        ("SELECT count(*) FROM app.notes", "80"),
        (
            "SELECT count(*) FROM app.customers WHERE country = 'XX' AND length(email) = 32",
            "2",
        ),
        (
            "SELECT count(*) FROM app.audit WHERE detail = '[erased]'",
            "6",
        ),
        (
            "SELECT count(*) FROM analytics.page_views WHERE viewer IS NULL",
            "8",
        ),
    ] {
        assert_eq!(scalar(&c.truth, sql), want, "truth: {sql}");
    }
    // The payload cases: numbers and strings at the path go, the same id
    // elsewhere in the document, a longer id and JSON null stay.
    assert_eq!(
        scalar(
            &c.env.src,
            "SELECT count(*) FROM analytics.payloads WHERE payload #>> '{actor,id}' IN ('5', '17')"
        ),
        "6",
        "the source has erased ids at the path"
    );
    assert_eq!(
        scalar(&c.env.src, "SELECT count(*) FROM analytics.payloads")
            .parse::<u64>()
            .unwrap()
            - scalar(&c.truth, "SELECT count(*) FROM analytics.payloads")
                .parse::<u64>()
                .unwrap(),
        scalar(
            &c.env.src,
            "SELECT count(*) FROM analytics.payloads WHERE payload #>> '{actor,id}' IN ('5', '17')"
        )
        .parse::<u64>()
        .unwrap()
    );

    // The report names each policy, its reason and what it did.
    let table = |name: &str| {
        c.report["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == name)
            .unwrap_or_else(|| panic!("{name} not in the report"))
            .clone()
    };
    let invoices = table("billing.invoices");
    assert_eq!(invoices["policy"]["action"], "redact");
    assert_eq!(invoices["policy"]["reason"], "Bookkeeping act: 5 years");
    assert_eq!(invoices["rows_redacted"], 10);
    assert_eq!(invoices["rows_dropped"], 0);
    let payments = table("billing.payments");
    assert_eq!(payments["policy"]["action"], "keep");
    assert_eq!(payments["rows_kept"], 6);
    assert_eq!(payments["rows_dropped"], 0);
    assert_eq!(table("app.customers")["rows_redacted"], 2);
    assert_eq!(table("app.tickets")["rows_dropped"], 4);
    assert_eq!(table("app.audit")["rows_redacted"], 6);
    assert_eq!(table("app.notes")["policy"], Value::Null);
    assert_eq!(table("analytics.page_views")["rows_nulled"], 8);
    assert_eq!(c.report["rows_kept"], 6);
}

#[test]
fn pseudonyms_are_stable_across_restores_and_tables() {
    let c = case("s_pseudo").check();
    // The same customer's pseudonym in a second restore.
    let again = TestDb::create("s_pseudo_again");
    c.env.ok(&["restore", &c.env.id, "--target", &again.url]);
    let sql = "SELECT string_agg(email, ',' ORDER BY id) FROM app.customers WHERE country = 'XX'";
    let first = scalar(&c.target, sql);
    assert_eq!(first.split(',').count(), 2, "{first}");
    assert_eq!(first, scalar(&again, sql));
    assert!(
        !first.contains("example.org"),
        "the original e-mail survived: {first}"
    );

    // A later snapshot's leak check: the dropped root's rows still in the
    // source are a leak; the redacted root's are kept on purpose.
    let out = c.env.run(&["snapshot"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let leaks: Vec<Value> = text(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == "erasure.leak_detected")
        .collect();
    let tables: Vec<&str> = leaks.iter().filter_map(|v| v["table"].as_str()).collect();
    assert_eq!(tables, ["app.users"], "{leaks:?}");
}

#[test]
fn the_erasure_map_says_what_a_restore_does_and_flags_soft_references() {
    let env = case("s_map").prepare();
    let json = env.ok(&["erasure", "map", "--json"]);
    assert_eq!(
        json,
        env.ok(&["erasure", "map", "--json", "--snapshot", &env.id]),
        "the map of latest and of its id differ"
    );
    let map: Value = serde_json::from_str(&json).expect("map json");
    assert_eq!(map["snapshot"], env.id.as_str());
    let actions: BTreeMap<String, String> = map["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["table"].as_str().unwrap().to_string(),
                t["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: BTreeMap<String, String> = [
        ("analytics.events", "drop"),
        ("analytics.page_views", "rewrite"),
        ("analytics.payloads", "drop"),
        ("app.audit", "redact"),
        ("app.customers", "redact"),
        ("app.newsletter", "untouched"),
        ("app.notes", "untouched"),
        ("app.orders", "drop"),
        ("app.sessions", "untouched"),
        ("app.tickets", "drop"),
        ("app.users", "drop"),
        ("billing.invoice_lines", "untouched"),
        ("billing.invoices", "redact"),
        ("billing.payments", "keep"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(actions, want);
    let table = |name: &str| {
        map["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == name)
            .unwrap()
            .clone()
    };
    let invoices = table("billing.invoices");
    assert_eq!(invoices["reason"], "Bookkeeping act: 5 years");
    assert_eq!(
        invoices["chain"],
        serde_json::json!(["app.customers", "billing.invoices"])
    );
    let redacted: Vec<&str> = invoices["redacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["column"].as_str().unwrap())
        .collect();
    assert_eq!(redacted, ["customer_email", "customer_name"]);
    assert_eq!(
        table("analytics.payloads")["reached_by"][0]["columns"],
        serde_json::json!(["payload $.actor.id"])
    );
    assert_eq!(
        table("app.orders")["chain"],
        serde_json::json!(["app.users", "app.orders"])
    );
    let suspects: Vec<(String, String)> = map["suspects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["table"].as_str().unwrap().to_string(),
                s["column"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        suspects,
        [
            ("app.newsletter".to_string(), "email".to_string()),
            ("app.sessions".to_string(), "user_id".to_string())
        ]
    );

    // The text form and the picture say the same.
    let text = env.ok(&["erasure", "map"]);
    assert!(text.contains("billing.payments"), "{text}");
    assert!(text.contains("app.sessions.user_id"), "{text}");
    let dot = env.path("map.dot");
    env.ok(&["erasure", "map", "--dot", &dot]);
    let dot = std::fs::read_to_string(&dot).expect("dot written");
    assert!(dot.starts_with("digraph erasure {"), "{dot}");
    assert!(
        dot.contains("\"app.customers\" -> \"billing.invoices\""),
        "{dot}"
    );
}

/// `lethe config check` against a source with the policy schema: exit 2
/// naming the key and what is wrong.
fn config_check(tag: &'static str, erasure_toml: &'static str) -> String {
    let case = Case {
        erasure_toml,
        ..case(tag)
    };
    let env = case.setup();
    let out = env.run(&["config", "check"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "config check passed: {err}");
    err
}

#[test]
fn config_check_refuses_each_invalid_policy_naming_it() {
    // A valid set passes, checked against the source's tables.
    let env = case("s_cc_ok").setup();
    let ok = env.ok(&["config", "check"]);
    assert!(ok.contains("checked against the source's tables"), "{ok}");

    let err = config_check(
        "s_cc_reason",
        "[[erasure.policy]]\ntable = \"billing.payments\"\naction = \"keep\"\n",
    );
    assert!(err.contains("erasure.policy[0].reason"), "{err}");
    // Invoices kept under customers that are dropped (no policy).
    let err = config_check(
        "s_cc_dangling",
        "[[erasure.policy]]\ntable = \"billing.invoices\"\naction = \"redact\"\nset = { customer_name = \"NULL\" }\nreason = \"law\"\n",
    );
    assert!(err.contains("invoices_customer_id_fkey"), "{err}");
    assert!(err.contains("app.customers"), "{err}");
    assert!(err.contains("redact or keep policy"), "{err}");
    let err = config_check(
        "s_cc_table",
        "[[erasure.policy]]\ntable = \"billing.nope\"\naction = \"drop\"\n",
    );
    assert!(
        err.contains("erasure.policy[0].table") && err.contains("billing.nope"),
        "{err}"
    );
    let err = config_check(
        "s_cc_column",
        "[[erasure.policy]]\ntable = \"app.customers\"\naction = \"redact\"\nset = { nmae = \"NULL\" }\nreason = \"law\"\n",
    );
    assert!(err.contains("erasure.policy[0].set.nmae"), "{err}");
    let err = config_check(
        "s_cc_type",
        "[[erasure.policy]]\ntable = \"app.customers\"\naction = \"keep\"\nreason = \"law\"\n\n[[erasure.policy]]\ntable = \"billing.invoices\"\naction = \"redact\"\nset = { amount = \"'abc'\" }\nreason = \"law\"\n",
    );
    assert!(err.contains("erasure.policy[1].set.amount"), "{err}");
    assert!(err.contains("numeric"), "{err}");
    let err = config_check(
        "s_cc_key",
        "[[erasure.policy]]\ntable = \"app.customers\"\naction = \"redact\"\nset = { id = \"NULL\" }\nreason = \"law\"\n",
    );
    assert!(err.contains("erasure.policy[0].set.id"), "{err}");
    let err = config_check(
        "s_cc_path",
        "[[erasure.reference]]\ntable = \"analytics.events\"\ncolumn = \"actor\"\npath = \"$.id\"\nreferences = \"app.users.id\"\n",
    );
    assert!(
        err.contains("erasure.reference[0].path") && err.contains("json"),
        "{err}"
    );
}

#[test]
fn a_dangling_policy_is_refused_by_the_restore_before_it_writes() {
    let case = Case {
        erasure_toml: "[[erasure.policy]]\ntable = \"billing.invoices\"\naction = \"keep\"\nreason = \"law\"\n",
        ..case("s_dangling")
    };
    let err = case.refused();
    assert!(err.contains("invoices_customer_id_fkey"), "{err}");
}

/// A restore that stops mid-data under policies (a json document the path
/// cannot be read in, after redacted and kept tables were loaded) leaves no
/// rows in the target: no redacted row without its erasure finished.
#[test]
fn a_restore_stopped_by_a_bad_document_leaves_no_rows_in_the_target() {
    let case = Case {
        tag: "s_policy_fail",
        source_sql: r#"
CREATE TABLE customers (id bigint PRIMARY KEY, name text);
CREATE TABLE invoices (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers ON DELETE RESTRICT, name text);
CREATE TABLE zz_events (id bigint PRIMARY KEY, payload json);
INSERT INTO customers SELECT i, 'Customer ' || i FROM generate_series(1, 40) i;
INSERT INTO invoices SELECT i, (i % 40) + 1, 'Customer ' || ((i % 40) + 1) FROM generate_series(1, 100) i;
-- The json type keeps \u0000, which PostgreSQL's own #>> refuses to read.
INSERT INTO zz_events SELECT i, ('{"actor": {"id": ' || (i % 40) + 1 || '}}')::json FROM generate_series(1, 50) i;
INSERT INTO zz_events VALUES (51, '{"actor": {"id": "\u0000"}}');
"#,
        subjects_toml: "[ { table = \"public.customers\", column = \"id\" } ]",
        subject_type: "bigint",
        erasure_toml: r#"
[[erasure.policy]]
table = "public.customers"
action = "redact"
set = { name = "NULL" }
reason = "law"

[[erasure.policy]]
table = "public.invoices"
action = "keep"
reason = "law"

[[erasure.reference]]
table = "public.zz_events"
column = "payload"
path = "$.actor.id"
references = "public.customers.id"
"#,
        procedure: None,
        erased: ids(&["3"]),
    };
    let env = case.prepare();
    for jobs in ["1", "3"] {
        let target = TestDb::create("s_policy_fail_dst");
        let out = env.run(&["restore", &env.id, "--target", &target.url, "--jobs", jobs]);
        let err = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "--jobs {jobs}: not refused:\n{err}"
        );
        assert!(
            err.contains("not valid JSON") && err.contains("row 51"),
            "--jobs {jobs}: failed, but not at the document:\n{err}"
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
