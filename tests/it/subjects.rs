//! Named subjects: customers and employees with their own bigint ids share
//! one list without sharing an id space; erasing customer 7 leaves
//! employee 7 alone. A list written before names existed keeps working.

use crate::common::{TestDb, lethe, write_config};

#[test]
fn erasing_customer_7_leaves_employee_7_and_their_rows_alone() {
    let dir = tempfile::tempdir().unwrap();
    let public = lethe::crypto::keygen(&dir.path().join("restore.key")).unwrap();
    let src = TestDb::create("subj_src");
    src.sql(
        "CREATE TABLE customers (id bigint PRIMARY KEY, name text); \
         CREATE TABLE employees (id bigint PRIMARY KEY, name text); \
         CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint REFERENCES customers ON DELETE CASCADE); \
         CREATE TABLE timesheets (id bigint PRIMARY KEY, employee_id bigint REFERENCES employees ON DELETE CASCADE); \
         INSERT INTO customers VALUES (7, 'c7'), (8, 'c8'); INSERT INTO employees VALUES (7, 'e7'), (9, 'e9'); \
         INSERT INTO orders VALUES (1, 7), (2, 8); INSERT INTO timesheets VALUES (1, 7), (2, 9);",
    );
    let cfg = write_config(
        dir.path(),
        &format!(
            "[source]\nurl = \"{url}\"\n\n[storage]\nurl = \"file://{repo}\"\n\n\
             [encryption]\nrecipients = [\"{public}\"]\nidentity_file = \"{key}\"\n\n\
             [erasure]\npath = \"{erasure}\"\nsubjects = [\n\
               {{ table = \"public.customers\", column = \"id\", subject = \"customer\" }},\n\
               {{ table = \"public.employees\", column = \"id\", subject = \"employee\" }},\n]\n\n\
             [api]\nlisten = \"unix:{sock}\"\n",
            url = src.url,
            repo = dir.path().join("repo").display(),
            key = dir.path().join("restore.key").display(),
            erasure = dir.path().join("erasure").display(),
            sock = dir.path().join("api.sock").display(),
        ),
    );
    let run = |args: &[&str]| lethe(&cfg, args);
    let ok = |args: &[&str]| {
        let out = run(args);
        assert!(
            out.status.success(),
            "lethe {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let id = ok(&["snapshot"]);

    // Without --subject the ids are ambiguous: refused, nothing listed.
    let out = run(&["erase", "add", "7"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("customer") && err.contains("employee") && err.contains("--subject"),
        "{err}"
    );
    let out = run(&["erase", "add", "--subject", "supplier", "7"]);
    assert_eq!(out.status.code(), Some(2), "an unknown subject is refused");

    ok(&["erase", "add", "--subject", "customer", "7"]);
    assert_eq!(
        run(&["erase", "check", "--subject", "customer", "7"])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        run(&["erase", "check", "--subject", "employee", "7"])
            .status
            .code(),
        Some(1)
    );
    let listed: serde_json::Value =
        serde_json::from_str(&ok(&["erase", "list", "--json"])).unwrap();
    assert_eq!(listed[0]["subject"], "7");
    assert_eq!(listed[0]["subject_name"], "customer");

    let dst = TestDb::create("subj_dst");
    ok(&["restore", &id, "--target", &dst.url]);
    let rows = |t: &str| {
        dst.sql(&format!(
            "SELECT string_agg(id::text, ',' ORDER BY id) FROM {t}"
        ))
        .trim()
        .to_string()
    };
    assert_eq!(rows("customers"), "8");
    assert_eq!(rows("orders"), "2");
    assert_eq!(rows("employees"), "7,9", "employee 7 is not customer 7");
    assert_eq!(rows("timesheets"), "1,2");

    // A mistyped add undone per subject: employee 9 goes, customer 7 stays;
    // customer 9 was never listed, so removing it changes nothing (exit 1).
    ok(&["erase", "add", "--subject", "employee", "9"]);
    let out = run(&[
        "erase",
        "remove",
        "--subject",
        "customer",
        "9",
        "--reason",
        "typo",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("customer:9"));
    ok(&[
        "erase",
        "remove",
        "--subject",
        "employee",
        "9",
        "--reason",
        "typo",
    ]);
    let check = |who: &str, id: &str| run(&["erase", "check", "--subject", who, id]).status.code();
    assert_eq!(check("employee", "9"), Some(1));
    assert_eq!(check("customer", "7"), Some(0));
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&["erase", "list", "--json"])).unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[1]["removed"], true);
    assert_eq!(
        (&listed[1]["subject"], &listed[1]["subject_name"]),
        (&"9".into(), &"employee".into())
    );
}
