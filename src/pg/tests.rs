use super::*;

#[test]
fn identifiers_and_literals_are_quoted() {
    assert_eq!(quote_ident(r#"we"ird"#), r#""we""ird""#);
    assert_eq!(quote_qualified("a b", "C"), r#""a b"."C""#);
    assert_eq!(quote_literal("it's"), "'it''s'");
}
