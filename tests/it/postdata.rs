//! Post-data during the data phase: a table's indexes and keys are built as
//! soon as the restore reports that table loaded, not after every table.
//! Real PostgreSQL; ordering is checked by what exists when, not by time.

use crate::common::TestDb;
use lethe::repo::manifest::TableEntry;
use lethe::restore::dest::target::postdata::{Entry, Schedule, run_early, schedule};

fn table(name: &str) -> TableEntry {
    TableEntry {
        schema: "public".into(),
        name: name.into(),
        columns: Vec::new(),
        rows: 0,
        raw_bytes: 0,
        objects: Vec::new(),
        parents: vec![],
        extension_config: false,
        large_objects: false,
    }
}

fn entry(kind: &str, sql: &str) -> Entry {
    Entry {
        // The constraint's or index's name, as pg_dump's header gives it.
        name: sql
            .split_whitespace()
            .skip_while(|w| *w != "CONSTRAINT" && *w != "INDEX")
            .nth(1)
            .unwrap_or("?")
            .into(),
        kind: kind.into(),
        sql: format!("--\n-- Name: x; Type: {kind}; Schema: public; Owner: -\n--\n\n{sql}\n"),
    }
}

fn indexes(db: &TestDb) -> Vec<String> {
    db.sql("SELECT indexname FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1")
        .lines()
        .map(str::to_string)
        .collect()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Runs `s` with `reported` tables reported loaded and the data phase over.
fn run_after(
    rt: &tokio::runtime::Runtime,
    db: &TestDb,
    s: Schedule,
    reported: &[usize],
) -> Result<usize, lethe::restore::RestoreError> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    for &t in reported {
        tx.send(t).expect("send");
    }
    drop(tx);
    rt.block_on(run_early(
        db.url.clone(),
        String::new(),
        s.per_table,
        s.fks,
        rx,
        2,
    ))
}

/// Polls `f` every 50 ms for up to 30 s (a wait, not a timing assertion).
fn wait_for(what: &str, f: &dyn Fn() -> bool) {
    for _ in 0..600 {
        if f() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("{what} did not happen within 30 s");
}

#[test]
fn a_loaded_tables_indexes_are_built_while_other_tables_still_load() {
    let db = TestDb::create("early");
    db.sql(
        "CREATE TABLE a (id int, v text); INSERT INTO a SELECT g, g::text FROM generate_series(1, 5000) g; \
         CREATE TABLE b (id int); INSERT INTO b SELECT generate_series(1, 5000);",
    );
    let entries = vec![
        entry(
            "CONSTRAINT",
            "ALTER TABLE ONLY public.a\n    ADD CONSTRAINT a_pkey PRIMARY KEY (id);",
        ),
        entry("INDEX", "CREATE INDEX a_v_idx ON public.a USING btree (v);"),
        entry(
            "CONSTRAINT",
            "ALTER TABLE ONLY public.b\n    ADD CONSTRAINT b_pkey PRIMARY KEY (id);",
        ),
        entry(
            "INDEX",
            "CREATE INDEX other_idx ON public.not_restored USING btree (x);",
        ),
    ];
    let s = schedule(entries, &[table("a"), table("b")]);
    assert_eq!(s.later.len(), 1, "the entry on an unknown table waits");
    let rt = rt();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = rt.spawn(run_early(
        db.url.clone(),
        "SET client_min_messages = warning;\n".into(),
        s.per_table,
        s.fks,
        rx,
        2,
    ));
    tx.send(0).expect("send");
    // a's two entries run now; b's wait for its report.
    wait_for("a's indexes", &|| indexes(&db).len() >= 2);
    assert_eq!(
        indexes(&db),
        ["a_pkey", "a_v_idx"],
        "only a's indexes, as soon as a is loaded"
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        indexes(&db),
        ["a_pkey", "a_v_idx"],
        "b is not reported loaded yet"
    );
    tx.send(1).expect("send");
    drop(tx);
    let ran = rt.block_on(task).expect("join").expect("early post-data");
    assert_eq!(ran, 3);
    assert_eq!(indexes(&db), ["a_pkey", "a_v_idx", "b_pkey"]);
}

#[test]
fn tables_never_reported_still_get_their_indexes_and_a_failure_names_its_entry() {
    let db = TestDb::create("early_fail");
    db.sql("CREATE TABLE a (id int); INSERT INTO a VALUES (1), (1); CREATE TABLE b (id int);");
    let rt = rt();
    // b is never reported: its key is built when the data phase ends.
    let s = schedule(
        vec![entry(
            "CONSTRAINT",
            "ALTER TABLE ONLY public.b\n    ADD CONSTRAINT b_pkey PRIMARY KEY (id);",
        )],
        &[table("a"), table("b")],
    );
    let ran = run_after(&rt, &db, s, &[]).expect("early post-data");
    assert_eq!(ran, 1);
    assert_eq!(indexes(&db), ["b_pkey"]);
    // a holds a duplicate: its primary key fails, named in the error.
    let s = schedule(
        vec![entry(
            "CONSTRAINT",
            "ALTER TABLE ONLY public.a\n    ADD CONSTRAINT a_pkey PRIMARY KEY (id);",
        )],
        &[table("a"), table("b")],
    );
    let err = run_after(&rt, &db, s, &[0]).expect_err("a duplicate key fails the primary key");
    let msg = err.to_string();
    assert!(
        msg.contains("post-data") && msg.contains("CONSTRAINT"),
        "{msg}"
    );
    assert!(msg.contains("a_pkey"), "{msg}");
}

fn constraints(db: &TestDb) -> Vec<String> {
    db.sql("SELECT conname FROM pg_constraint WHERE contype = 'f' ORDER BY 1")
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_foreign_key_is_added_once_both_tables_are_loaded_and_keyed() {
    let db = TestDb::create("early_fk");
    db.sql(
        "CREATE TABLE p (id int); INSERT INTO p SELECT generate_series(1, 3000); \
         CREATE TABLE c (id int, p int); INSERT INTO c SELECT g, g % 3000 + 1 FROM generate_series(1, 9000) g; \
         CREATE TABLE other (id int);",
    );
    let entries = vec![
        entry(
            "CONSTRAINT",
            "ALTER TABLE ONLY public.p\n    ADD CONSTRAINT p_pkey PRIMARY KEY (id);",
        ),
        entry(
            "CONSTRAINT",
            "ALTER TABLE ONLY public.c\n    ADD CONSTRAINT c_pkey PRIMARY KEY (id);",
        ),
        entry(
            "FK CONSTRAINT",
            "ALTER TABLE ONLY public.c\n    ADD CONSTRAINT c_p_fkey FOREIGN KEY (p) REFERENCES public.p(id);",
        ),
    ];
    let s = schedule(entries, &[table("p"), table("c"), table("other")]);
    assert_eq!(s.fks.len(), 1);
    let rt = rt();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = rt.spawn(run_early(
        db.url.clone(),
        String::new(),
        s.per_table,
        s.fks,
        rx,
        2,
    ));
    tx.send(0).expect("send");
    wait_for("p's key", &|| indexes(&db) == ["p_pkey"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        constraints(&db).is_empty(),
        "c is not loaded: no foreign key yet"
    );
    tx.send(1).expect("send");
    // The key is added while the data phase still runs (`other` loads).
    wait_for("the foreign key", &|| constraints(&db) == ["c_p_fkey"]);
    assert_eq!(indexes(&db), ["c_pkey", "p_pkey"]);
    drop(tx);
    let ran = rt.block_on(task).expect("join").expect("early post-data");
    assert_eq!(ran, 3);
}
