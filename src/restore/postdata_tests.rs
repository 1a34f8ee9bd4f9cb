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
