use super::*;

#[test]
fn bigint_normalises_and_keys_match_copy_text() {
    assert_eq!(normalize(SubjectType::Bigint, " 0042 ").unwrap(), "42");
    assert!(normalize(SubjectType::Bigint, "4x").is_err());
    assert!(normalize(SubjectType::Bigint, "99999999999999999999").is_err());
    assert_eq!(
        key_of(SubjectType::Bigint, b"42"),
        key_of(SubjectType::Bigint, b"+42")
    );
    assert_ne!(
        key_of(SubjectType::Bigint, b"-1"),
        key_of(SubjectType::Bigint, b"1")
    );
    assert_eq!(key_of(SubjectType::Bigint, b"abc"), None);
}

#[test]
fn uuid_is_case_insensitive() {
    let lower = "0b6e6f3c-5c1a-4d2e-9f00-aa11bb22cc33";
    let n = normalize(SubjectType::Uuid, &lower.to_uppercase()).unwrap();
    assert_eq!(n, lower);
    assert_eq!(
        key_of(SubjectType::Uuid, lower.as_bytes()),
        key_of(SubjectType::Uuid, lower.to_uppercase().as_bytes())
    );
    assert_eq!(
        key_of(SubjectType::Uuid, lower.replace('-', "").as_bytes()),
        key_of(SubjectType::Uuid, lower.as_bytes())
    );
    assert!(normalize(SubjectType::Uuid, "0b6e6f3c-5c1a-4d2e-9f00").is_err());
}

#[test]
fn text_keeps_bytes_exactly() {
    assert_eq!(
        normalize(SubjectType::Text, "Ünïcode id").unwrap(),
        "Ünïcode id"
    );
    assert_ne!(
        key_of(SubjectType::Text, b"a"),
        key_of(SubjectType::Text, b"A")
    );
    assert!(normalize(SubjectType::Text, "a\nb").is_err());
}

#[test]
fn bigint_keys_agree_with_the_standard_parser_at_the_edges() {
    let cases = [
        "0",
        "-0",
        "+0",
        "007",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "-9223372036854775809",
        "9999999999999999999",
        "-9999999999999999999",
        "18446744073709551615",
        "00000000000000000001",
        "1:",
        "1/",
        "-",
        "+",
        "",
        "--1",
        "12 ",
    ];
    for c in cases {
        let want = c.parse::<i64>().ok().filter(|_| {
            let d = c.strip_prefix(['-', '+']).unwrap_or(c);
            d.len() <= 19
        });
        assert_eq!(
            key_of(SubjectType::Bigint, c.as_bytes()),
            want.map(|v| v as u64 as u128),
            "{c:?}"
        );
    }
}

#[test]
fn bigint_keys_agree_with_the_standard_parser_on_random_spellings() {
    use rand::RngExt;
    let mut rng = rand::rng();
    for _ in 0..200_000 {
        let len = rng.random_range(1..=21);
        let s: String = (0..len)
            .map(|i| match rng.random_range(0..40) {
                0 if i == 0 => '-',
                1 if i == 0 => '+',
                2 => ['/', ':', ' ', 'a', '\u{0}', '\u{7f}'][rng.random_range(0..6)],
                _ => char::from(b'0' + rng.random_range(0..10)),
            })
            .collect();
        let digits = s.strip_prefix(['-', '+']).unwrap_or(&s);
        let want = s.parse::<i64>().ok().filter(|_| digits.len() <= 19);
        assert_eq!(
            key_of(SubjectType::Bigint, s.as_bytes()),
            want.map(|v| v as u64 as u128),
            "{s:?}"
        );
    }
}

#[test]
fn new_text_ids_refuse_a_bom_or_nul_that_lookups_still_accept() {
    for bad in ["\u{FEFF}abc", "a\u{FEFF}bc", "a\0b"] {
        let e = normalize_new(SubjectType::Text, bad).unwrap_err();
        assert_eq!(e.value, bad);
        // Lookups and journal merges accept what older versions listed.
        assert_eq!(normalize(SubjectType::Text, bad).unwrap(), bad);
    }
    assert!(
        normalize_new(SubjectType::Text, "\u{FEFF}x")
            .unwrap_err()
            .to_string()
            .contains("U+FEFF")
    );
    // Surrounding whitespace is kept, as `normalize` keeps it.
    assert_eq!(normalize_new(SubjectType::Text, " a b ").unwrap(), " a b ");
    assert!(normalize_new(SubjectType::Text, "a\rb").is_err());
    assert_eq!(normalize_new(SubjectType::Bigint, " 0042 ").unwrap(), "42");
    assert!(normalize_new(SubjectType::Bigint, "\u{FEFF}42").is_err());
    assert!(normalize_new(SubjectType::Bigint, "42\0").is_err());
    let u = "0b6e6f3c-5c1a-4d2e-9f00-aa11bb22cc33";
    assert!(normalize_new(SubjectType::Uuid, &format!("\u{FEFF}{u}")).is_err());
    assert_eq!(normalize_new(SubjectType::Uuid, u).unwrap(), u);
}
