use super::*;

#[test]
fn versions_parse() {
    assert_eq!(
        parse_major("pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"),
        Some(15)
    );
    assert_eq!(parse_major("pg_dump (PostgreSQL) 16devel"), Some(16));
    assert_eq!(parse_major("pg_dump (PostgreSQL) 9.6.24"), Some(9));
    assert_eq!(parse_major("nonsense"), None);
}

#[test]
fn an_old_pg_dump_is_refused_with_the_fix() {
    let d = PgDump {
        path: "/usr/bin/pg_dump".into(),
        major: 14,
        version: String::new(),
        skip_lethe: false,
    };
    assert!(d.check_server(140005).is_ok());
    let e = d.check_server(160002).unwrap_err().to_string();
    assert!(
        e.contains("postgresql-client-16") && e.contains("source.bin_dir"),
        "{e}"
    );
}
