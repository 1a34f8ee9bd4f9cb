use super::*;

#[test]
fn passwords_leave_the_url_for_the_environment() {
    let (u, p) =
        split_password("postgres://app:s%40cr%2Ft@db.internal:5432/restored?sslmode=require");
    assert_eq!(
        u,
        "postgres://app@db.internal:5432/restored?sslmode=require"
    );
    assert_eq!(p.as_deref(), Some("s@cr/t"));
    let (u, p) = split_password("postgres://postgres@127.0.0.1/x");
    assert_eq!((u.as_str(), p), ("postgres://postgres@127.0.0.1/x", None));
}

#[test]
fn copy_and_setval_quote_every_name() {
    use crate::repo::manifest::{Column, SequenceValue};
    let t = TableEntry {
        schema: "Odd Schema".into(),
        name: "t\"x".into(),
        columns: vec![Column {
            name: "Spaced Col".into(),
            type_name: "text".into(),
            default: None,
            base_type: None,
            nondeterministic: false,
            generated: false,
        }],
        rows: 0,
        raw_bytes: 0,
        objects: vec![],
        parents: vec![],
        extension_config: false,
        large_objects: false,
    };
    assert_eq!(
        copy_in_sql(&t, true),
        r#"COPY "Odd Schema"."t""x" ("Spaced Col") FROM STDIN WITH (FREEZE)"#
    );
    let s = SequenceValue {
        schema: "a'b".into(),
        name: "s".into(),
        last_value: 7,
        is_called: false,
    };
    assert_eq!(
        setval_sql(&s),
        r#"SELECT pg_catalog.setval('"a''b"."s"', 7, false);"#
    );
}
