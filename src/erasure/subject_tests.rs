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
