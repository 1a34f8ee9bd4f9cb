//! Redaction of panic messages.

use super::*;

#[test]
fn registered_secrets_and_url_passwords_are_removed() {
    register_secret("s3-Secret-Value-xyz");
    register_url_password("postgres://app:p%40ss-w0rd@db:5432/prod");
    let msg = "connect postgres://app:p%40ss-w0rd@db:5432/prod failed; secret s3-Secret-Value-xyz; \
               decoded p@ss-w0rd; other mysql://u:hunter2@h/x";
    let r = redact(msg);
    for needle in [
        "s3-Secret-Value-xyz",
        "p%40ss-w0rd",
        "p@ss-w0rd",
        "hunter2",
        "app:",
    ] {
        assert!(!r.contains(needle), "{needle} in {r}");
    }
    assert!(r.contains("postgres://[redacted]"), "{r}");
    assert!(r.contains("connect"), "the message keeps its words: {r}");
}

#[test]
fn ids_keys_and_quoted_values_are_removed_but_words_stay() {
    let msg = "called `Result::unwrap()` on an `Err` value: SubjectError { value: \"zz-user\\\"q\", \
               kind: \"text\" } while adding 73160591 and 0b6e5c1a-8f7e-4d3b-9a1c-2f4e6d8b0a11 for \
               alice@example.com with AGE-SECRET-KEY-1QQQQQQQQQQQQQQ and key deadbeefdeadbeefdeadbeef; \
               index 12 of 3";
    let r = redact(msg);
    for needle in [
        "zz-user",
        "73160591",
        "0b6e5c1a",
        "alice@example.com",
        "AGE-SECRET-KEY",
        "deadbeefdeadbeef",
    ] {
        assert!(!r.contains(needle), "{needle} in {r}");
    }
    for kept in [
        "Result::unwrap()",
        "SubjectError",
        "while adding",
        "index 12 of 3",
    ] {
        assert!(r.contains(kept), "{kept} lost from {r}");
    }
}

#[test]
fn long_messages_are_cut_and_odd_input_does_not_panic() {
    let r = redact(&"é".repeat(2_000));
    assert!(r.len() <= MAX_MESSAGE + "…".len(), "{}", r.len());
    for odd in ["\"", "\"\\", "://", "://@", "x://a@", "%", "a%zz", "%e9"] {
        let _ = redact(odd);
        register_url_password(odd);
    }
    assert_eq!(
        crate::secrets::percent_decode("a%20b%zz%4"),
        b"a b%zz%4".to_vec()
    );
}
