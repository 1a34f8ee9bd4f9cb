use super::*;

const POST: &str = "\\restrict abc\n--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\n\
    SELECT pg_catalog.set_config('search_path', '', false);\n\n\
    --\n-- Name: users users_pkey; Type: CONSTRAINT; Schema: public; Owner: postgres\n--\n\n\
    ALTER TABLE ONLY public.users\n    ADD CONSTRAINT users_pkey PRIMARY KEY (id);\n\n\n\
    --\n-- Name: orders_2024_pkey; Type: INDEX ATTACH; Schema: app; Owner: -\n--\n\n\
    ALTER INDEX app.orders_pkey ATTACH PARTITION app.orders_2024_pkey;\n\n\
    --\n-- Name: orders orders_user_id_fkey; Type: FK CONSTRAINT; Schema: app; Owner: postgres\n--\n\n\
    ALTER TABLE app.orders\n    ADD CONSTRAINT orders_user_id_fkey FOREIGN KEY (user_id) REFERENCES app.users(id);\n\n\
    --\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict abc\n\n";

#[test]
fn splits_pg_dump_post_data_at_entry_headers() {
    let (pre, entries) = split(POST).unwrap();
    assert!(pre.contains("SET statement_timeout = 0;") && pre.contains("set_config"));
    assert!(!pre.contains("restrict"));
    let kinds: Vec<&str> = entries.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["CONSTRAINT", "INDEX ATTACH", "FK CONSTRAINT"]);
    assert_eq!(entries[0].name, "users users_pkey");
    assert!(
        entries[0]
            .sql
            .contains("ADD CONSTRAINT users_pkey PRIMARY KEY (id);")
    );
    assert!(entries[2].sql.contains("REFERENCES app.users(id);"));
    assert!(!entries[2].sql.contains("unrestrict"));
}

#[test]
fn other_meta_commands_make_it_give_up() {
    assert!(split("\\connect other\nSET x = 1;\n").is_none());
    assert_eq!(
        split("").map(|(p, e)| (p, e.len())),
        Some((String::new(), 0))
    );
}

fn entry(kind: &str, sql: &str) -> Entry {
    Entry {
        name: "n".into(),
        kind: kind.into(),
        sql: format!("--\n-- Name: n; Type: {kind}; Schema: public; Owner: -\n--\n\n{sql}\n"),
    }
}

fn table(schema: &str, name: &str) -> TableEntry {
    TableEntry {
        schema: schema.into(),
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

fn target(kind: &str, sql: &str) -> Option<(String, String)> {
    target_table(&entry(kind, sql))
}

fn pair(s: &str, t: &str) -> Option<(String, String)> {
    Some((s.into(), t.into()))
}

#[test]
fn reads_the_table_of_keys_and_indexes_as_pg_dump_writes_them() {
    assert_eq!(
        target(
            "CONSTRAINT",
            "ALTER TABLE ONLY public.users\n    ADD CONSTRAINT users_pkey PRIMARY KEY (id);"
        ),
        pair("public", "users")
    );
    assert_eq!(
        target(
            "CONSTRAINT",
            "ALTER TABLE app.t\n    ADD CONSTRAINT t_u UNIQUE (a);"
        ),
        pair("app", "t")
    );
    assert_eq!(
        target(
            "INDEX",
            "CREATE INDEX orders_user_id_idx ON public.orders USING btree (user_id);"
        ),
        pair("public", "orders")
    );
    assert_eq!(
        target(
            "INDEX",
            "CREATE UNIQUE INDEX \"Odd \"\" ON idx\" ON \"My Schema\".\"Order.Items\" USING btree (a);"
        ),
        pair("My Schema", "Order.Items")
    );
}

#[test]
fn entries_it_cannot_place_on_one_loaded_table_wait_for_all_data() {
    // An index on a partitioned parent (attached later), other kinds, and
    // anything unexpected.
    assert_eq!(
        target(
            "INDEX",
            "CREATE INDEX p_idx ON ONLY public.p USING btree (a);"
        ),
        None
    );
    assert_eq!(
        target(
            "FK CONSTRAINT",
            "ALTER TABLE ONLY public.o\n    ADD CONSTRAINT o_fk FOREIGN KEY (u) REFERENCES public.u(id);"
        ),
        None
    );
    assert_eq!(
        target("INDEX", "CREATE INDEX \"unterminated ON public.t"),
        None
    );
    assert_eq!(
        target("CONSTRAINT", "ALTER TABLE public.t OWNER TO x;"),
        None
    );
    assert_eq!(
        target("TRIGGER", "CREATE TRIGGER x AFTER INSERT ON public.t"),
        None
    );
}

#[test]
fn schedule_groups_entries_by_manifest_table_and_keeps_the_rest_in_order() {
    let tables = [table("public", "users"), table("public", "orders")];
    let entries = vec![
        entry(
            "CONSTRAINT",
            "ALTER TABLE ONLY public.users\n    ADD CONSTRAINT users_pkey PRIMARY KEY (id);",
        ),
        entry(
            "INDEX",
            "CREATE INDEX o_idx ON public.orders USING btree (user_id);",
        ),
        entry(
            "INDEX",
            "CREATE INDEX gone_idx ON public.not_in_snapshot USING btree (a);",
        ),
        entry(
            "CONSTRAINT",
            "ALTER TABLE ONLY public.orders\n    ADD CONSTRAINT orders_pkey PRIMARY KEY (id);",
        ),
        entry(
            "FK CONSTRAINT",
            "ALTER TABLE ONLY public.orders\n    ADD CONSTRAINT o_fk FOREIGN KEY (user_id) REFERENCES public.users(id);",
        ),
        entry(
            "INDEX",
            "CREATE INDEX p_idx ON ONLY public.orders USING btree (a);",
        ),
    ];
    let s = schedule(entries, &tables);
    let names = |es: &[Entry]| -> Vec<String> {
        es.iter()
            .map(|e| e.sql.lines().last().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(s.per_table.len(), 2);
    assert_eq!(s.per_table[&0].len(), 1);
    assert!(s.per_table[&0][0].sql.contains("users_pkey"));
    let orders = names(&s.per_table[&1]);
    assert_eq!(orders.len(), 2);
    assert!(orders[0].contains("o_idx") && orders[1].contains("orders_pkey"));
    let later = names(&s.later);
    assert_eq!(later.len(), 2);
    assert!(later[0].contains("gone_idx"));
    assert!(later[1].contains("p_idx"));
    assert_eq!(
        s.fks.len(),
        1,
        "a key between two restored tables runs early"
    );
    assert_eq!(
        (s.fks[0].1, s.fks[0].2),
        (1, 0),
        "(child orders, parent users)"
    );
}

#[test]
fn reads_both_tables_of_a_foreign_key() {
    let fk = |sql: &str| fk_tables(&entry("FK CONSTRAINT", sql));
    let t = |s: &str, n: &str| (s.to_string(), n.to_string());
    assert_eq!(
        fk(
            "ALTER TABLE ONLY public.orders\n    ADD CONSTRAINT orders_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;"
        ),
        Some((t("public", "orders"), t("public", "users")))
    );
    assert_eq!(
        fk(
            "ALTER TABLE app.orders\n    ADD CONSTRAINT c FOREIGN KEY (a, \"B c\") REFERENCES \"X\".\"Y.z\"(a, \"B c\") NOT VALID;"
        ),
        Some((t("app", "orders"), t("X", "Y.z")))
    );
    assert_eq!(
        fk("ALTER TABLE public.t ADD CONSTRAINT c CHECK (a > 0);"),
        None
    );
    // A key whose parent (or child) holds no data in the snapshot, e.g. a
    // partitioned table, waits for all the data.
    let s = schedule(
        vec![entry(
            "FK CONSTRAINT",
            "ALTER TABLE ONLY public.a\n    ADD CONSTRAINT a_fk FOREIGN KEY (p) REFERENCES public.parted(id);",
        )],
        &[table("public", "a")],
    );
    assert!(s.fks.is_empty());
    assert_eq!(s.later.len(), 1);
}
