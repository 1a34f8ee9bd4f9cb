use super::PostDataCut;

/// pg_dump 15's post-data tail with lethe's event triggers between a
/// user's trigger and a user's own event trigger.
const POST: &str = "--
-- Name: t trg; Type: TRIGGER; Schema: public; Owner: postgres
--

CREATE TRIGGER trg BEFORE INSERT ON public.t FOR EACH ROW EXECUTE FUNCTION public.f();


--
-- Name: lethe_ddl_end; Type: EVENT TRIGGER; Schema: -; Owner: postgres
--

CREATE EVENT TRIGGER lethe_ddl_end ON ddl_command_end
   EXECUTE FUNCTION lethe.capture_ddl();

ALTER EVENT TRIGGER lethe_ddl_end ENABLE ALWAYS;


ALTER EVENT TRIGGER lethe_ddl_end OWNER TO postgres;

--
-- Name: lethe_sql_drop; Type: EVENT TRIGGER; Schema: -; Owner: postgres
--

CREATE EVENT TRIGGER lethe_sql_drop ON sql_drop
   EXECUTE FUNCTION lethe.capture_drop();

ALTER EVENT TRIGGER lethe_sql_drop ENABLE ALWAYS;


ALTER EVENT TRIGGER lethe_sql_drop OWNER TO postgres;

--
-- Name: mine; Type: EVENT TRIGGER; Schema: -; Owner: postgres
--

CREATE EVENT TRIGGER mine ON ddl_command_end
   EXECUTE FUNCTION public.audit();

--
-- PostgreSQL database dump complete
--
";

fn cut_in_chunks(input: &str, size: usize) -> String {
    let mut c = PostDataCut::default();
    let mut out = Vec::new();
    for chunk in input.as_bytes().chunks(size) {
        out.extend(c.push(chunk));
    }
    out.extend(c.finish());
    String::from_utf8(out).unwrap()
}

#[test]
fn lethes_event_triggers_are_cut_and_everything_else_kept_whatever_the_chunks() {
    let whole = cut_in_chunks(POST, POST.len());
    assert!(!whole.contains("lethe"), "{whole}");
    for kept in [
        "CREATE TRIGGER trg BEFORE INSERT ON public.t",
        "CREATE EVENT TRIGGER mine ON ddl_command_end",
        "EXECUTE FUNCTION public.audit();",
        "-- PostgreSQL database dump complete",
    ] {
        assert!(whole.contains(kept), "{kept} lost:\n{whole}");
    }
    for size in [1, 2, 7, 64, 100] {
        assert_eq!(cut_in_chunks(POST, size), whole, "chunks of {size}");
    }
}

#[test]
fn output_without_lethes_triggers_passes_unchanged_even_without_a_last_newline() {
    let plain = "CREATE INDEX i ON public.t USING btree (a);\n--\n-- Name: x\n--\nALTER TABLE ONLY public.t";
    for size in [1, 5, plain.len()] {
        assert_eq!(cut_in_chunks(plain, size), plain);
    }
}

/// The trigger names live in Rust (removal, the post-data cut) and in two
/// SQL files (installation, the digest's "captured" test): one spelling.
#[test]
fn the_install_and_digest_sql_name_the_triggers_the_code_names() {
    for t in super::TRIGGERS {
        assert!(
            super::INSTALL_SQL.contains(&format!("EVENT TRIGGER {t} ")),
            "{t}"
        );
        assert!(
            include_str!("schema_digest.sql").contains(&format!("'{t}'")),
            "{t}"
        );
    }
    assert!(
        super::INSTALL_SQL.contains(&format!("CREATE SCHEMA IF NOT EXISTS {};", super::SCHEMA))
    );
    // The digest counts them all as "captured".
    assert!(
        include_str!("schema_digest.sql")
            .contains(&format!("count(*) = {} AS captured", super::TRIGGERS.len()))
    );
    // Every function removal drops and the schema check allows is made by
    // the install.
    for f in super::function_names() {
        assert!(
            super::INSTALL_SQL.contains(&format!("FUNCTION lethe.{f}(")),
            "{f}"
        );
    }
}

/// `add_columns` carries what the columns add to the schema digest, which
/// the capture adds to the digest it last read: the trigger must hash each
/// line as the digest does, and render the columns' lines as it does.
#[test]
fn the_trigger_renders_and_hashes_column_lines_as_the_digest_does() {
    let digest = include_str!("schema_digest.sql");
    let trigger = super::INSTALL_SQL;
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let (digest, trigger) = (squash(digest), squash(trigger));
    for part in [
        "coalesce(sum(('x' || substr(md5(",
        "), 1, 16))::bit(64)::bigint::numeric), 0)",
        "% 18446744073709551616) + 18446744073709551616) % 18446744073709551616)::text",
        "|| ' ' || a.attnum || ' ' || quote_ident(a.attname) || ' ' \
         || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull::text || ' ' \
         || a.attidentity::text || a.attgenerated::text || ' ' || coalesce(co.collname, '') || ' ' \
         || coalesce(pg_get_expr(ad.adbin, ad.adrelid), '')",
    ] {
        let part = squash(part);
        assert!(digest.contains(&part), "digest: {part}");
        assert!(trigger.contains(&part), "trigger: {part}");
    }
    // The relation's name as the digest renders it.
    assert!(digest.contains("quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name"));
    assert!(trigger.contains(
        "'col ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname) || ' ' || a.attnum"
    ));
    assert!(digest.contains("SELECT 'col ' || r.name || ' ' || a.attnum"));
}
