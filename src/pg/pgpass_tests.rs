use super::*;

#[test]
fn wildcards_and_escapes_match_like_libpq() {
    let text = "# comment\nother:5432:*:*:nope\n*:5432:app:lethe:s\\:e\\\\cret\n";
    assert_eq!(
        find(text, ["db", "5432", "app", "lethe"]).as_deref(),
        Some("s:e\\cret")
    );
    assert_eq!(find(text, ["db", "5433", "app", "lethe"]), None);
    assert_eq!(
        find("h:1:d:u:pa:ss", ["h", "1", "d", "u"]).as_deref(),
        Some("pa:ss")
    );
}
