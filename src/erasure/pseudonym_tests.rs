//! Unit tests of pseudonyms: known answers, formats PostgreSQL accepts, key
//! files and their permissions.

use super::*;
use std::os::unix::fs::PermissionsExt;

/// The key 00 01 02 … 1f.
fn test_key() -> PseudonymKey {
    PseudonymKey::from_bytes(&(0u8..32).collect::<Vec<_>>()).unwrap()
}

fn pseudo(key: &PseudonymKey, kind: PseudonymKind, value: &[u8]) -> String {
    let mut out = b"prefix:".to_vec();
    key.pseudonym(kind, value, &mut out);
    let s = String::from_utf8(out).unwrap();
    s.strip_prefix("prefix:").expect("appended").to_string()
}

/// Known answers computed independently with Python's standard library:
///
/// ```text
/// python3 -c 'import hmac,hashlib,uuid
/// key = bytes(range(32))
/// for v in [b"", b"alice@example.com", b"42", "é".encode()]:
///     d = hmac.new(key, b"lethe pseudonym v1\0" + v, hashlib.sha256).digest()
///     b = bytearray(d[:16]); b[6] = b[6] & 0x0f | 0x80; b[8] = b[8] & 0x3f | 0x80
///     print(d[:16].hex(), uuid.UUID(bytes=bytes(b)), int.from_bytes(d[:8], "big") >> 1)'
/// ```
///
/// The uuids and bigints were then checked with psql
/// (`select '<uuid>'::uuid, '<n>'::bigint` returned them unchanged).
const KNOWN: &[(&[u8], &str, &str, &str)] = &[
    (
        b"",
        "16b4761959eee40a4479dd4345b4a4e3",
        "16b47619-59ee-840a-8479-dd4345b4a4e3",
        "818031207948710405",
    ),
    (
        b"alice@example.com",
        "d9d526f24c5430afaa098caa50c56954",
        "d9d526f2-4c54-80af-aa09-8caa50c56954",
        "7848247449187129431",
    ),
    (
        b"42",
        "a257855d6ee159984c7bf647f300684d",
        "a257855d-6ee1-8998-8c7b-f647f300684d",
        "5848982596728433868",
    ),
    (
        "é".as_bytes(),
        "a8868287dfb2da9ab1b3a4fc39e7a7bc",
        "a8868287-dfb2-8a9a-b1b3-a4fc39e7a7bc",
        "6071768482668178765",
    ),
];

#[test]
fn pseudonyms_of_a_fixed_key_are_the_known_answers() {
    let key = test_key();
    for &(value, text, uuid, bigint) in KNOWN {
        assert_eq!(pseudo(&key, PseudonymKind::Text, value), text);
        assert_eq!(pseudo(&key, PseudonymKind::Uuid, value), uuid);
        assert_eq!(pseudo(&key, PseudonymKind::Bigint, value), bigint);
    }
}

#[test]
fn formats_are_what_the_column_types_accept() {
    let key = test_key();
    for i in 0..2000u32 {
        let v = i.to_string();
        let t = pseudo(&key, PseudonymKind::Text, v.as_bytes());
        assert_eq!(t.len(), 32);
        assert!(
            t.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        );
        let u = pseudo(&key, PseudonymKind::Uuid, v.as_bytes());
        let groups: Vec<&str> = u.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(
            u.bytes()
                .all(|c| c == b'-' || c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        );
        assert_eq!(&u[14..15], "8", "version 8: {u}");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"), "variant: {u}");
        // The uuid is the text pseudonym with the version and variant bits set.
        assert_eq!(u.replace('-', "")[..12], t[..12]);
        let b = pseudo(&key, PseudonymKind::Bigint, v.as_bytes());
        let n: i64 = b.parse().expect("fits a bigint");
        assert!(n >= 0);
        assert_eq!(n.to_string(), b, "no leading zeros");
    }
}

#[test]
fn the_same_value_gives_the_same_pseudonym_and_other_keys_or_values_others() {
    let key = test_key();
    let again = test_key();
    let other = PseudonymKey::from_bytes(&[7u8; 32]).unwrap();
    let longer = PseudonymKey::from_bytes(&(0u8..33).collect::<Vec<_>>()).unwrap();
    for kind in [
        PseudonymKind::Text,
        PseudonymKind::Uuid,
        PseudonymKind::Bigint,
    ] {
        let a = pseudo(&key, kind, b"alice");
        assert_eq!(a, pseudo(&again, kind, b"alice"));
        assert_eq!(a, pseudo(&key.clone(), kind, b"alice"));
        assert_ne!(a, pseudo(&other, kind, b"alice"));
        assert_ne!(a, pseudo(&longer, kind, b"alice"));
        assert_ne!(a, pseudo(&key, kind, b"alice "));
        assert_ne!(a, pseudo(&key, kind, b"Alice"));
    }
}

#[test]
fn short_keys_are_refused() {
    for len in [0, 1, 16, 31] {
        let err = PseudonymKey::from_bytes(&vec![1u8; len]).unwrap_err();
        assert!(matches!(err, PseudonymError::TooShort { len: l } if l == len));
        assert!(err.to_string().contains("lethe keygen --pseudonym-key"));
    }
    assert!(PseudonymKey::from_bytes(&[1u8; 32]).is_ok());
    assert!(PseudonymKey::from_bytes(&[1u8; 100]).is_ok());
}

#[test]
fn debug_shows_nothing_of_the_key() {
    let key = PseudonymKey::from_bytes(&[0xab; 32]).unwrap();
    let shown = format!("{key:?} {key:#?}");
    assert!(shown.contains("redacted"), "{shown}");
    assert!(
        !shown.to_lowercase().contains("ab, ") && !shown.contains("171"),
        "{shown}"
    );
    assert!(!shown.to_lowercase().contains("abab"), "{shown}");
}

fn write_key_file(dir: &Path, name: &str, body: &str, mode: u32) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

#[test]
fn a_key_file_is_hex_of_at_least_32_bytes_and_private() {
    let dir = tempfile::tempdir().unwrap();
    let hex64: String = (0u8..32).map(|b| format!("{b:02x}")).collect();
    let p = write_key_file(dir.path(), "k", &format!("\n  {hex64}\n\n"), 0o600);
    let key = PseudonymKey::load(&p).unwrap();
    assert_eq!(
        pseudo(&key, PseudonymKind::Text, b"42"),
        "a257855d6ee159984c7bf647f300684d"
    );
    // Upper case and longer keys are fine.
    let p = write_key_file(dir.path(), "K", &hex64.repeat(2).to_uppercase(), 0o400);
    PseudonymKey::load(&p).unwrap();

    for (name, body, hint) in [
        ("empty", "\n".to_string(), "empty"),
        ("short", hex64[..62].to_string(), "fewer than 32"),
        ("odd", format!("{hex64}0"), "odd number"),
        ("nothex", format!("{}zz", &hex64[..62]), "not a hex digit"),
        (
            "spaced",
            format!("{} {}", &hex64[..32], &hex64[32..]),
            "not a hex digit",
        ),
        ("prefixed", format!("0x{hex64}"), "not a hex digit"),
    ] {
        let p = write_key_file(dir.path(), name, &body, 0o600);
        let err = PseudonymKey::load(&p).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, PseudonymError::Format { .. }),
            "{name}: {msg}"
        );
        assert!(msg.contains(&p.display().to_string()), "{name}: {msg}");
        assert!(msg.contains(hint), "{name}: {msg}");
        assert!(
            msg.contains("lethe keygen --pseudonym-key"),
            "{name}: {msg}"
        );
        assert!(!msg.contains(&hex64[..20]), "the key is not shown: {msg}");
    }

    for mode in [0o640, 0o604, 0o644, 0o660] {
        let p = write_key_file(dir.path(), "loose", &hex64, mode);
        let err = PseudonymKey::load(&p).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, PseudonymError::Unreadable(_)), "{msg}");
        assert!(
            msg.contains(&p.display().to_string()) && msg.contains("chmod 600"),
            "{msg}"
        );
    }

    let missing = dir.path().join("missing");
    let err = PseudonymKey::load(&missing).unwrap_err();
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
}

#[test]
fn keygen_writes_a_private_loadable_key_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("pseudonym.key");
    keygen(&p).unwrap();
    let meta = std::fs::metadata(&p).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&p).unwrap();
    assert_eq!(text.len(), 65);
    assert!(text.ends_with('\n'));
    assert!(text.trim().bytes().all(|c| c.is_ascii_hexdigit()));
    PseudonymKey::load(&p).unwrap();

    let err = keygen(&p).unwrap_err();
    assert!(matches!(err, PseudonymError::Exists { .. }), "{err}");
    assert_eq!(std::fs::read_to_string(&p).unwrap(), text, "untouched");

    let q = dir.path().join("second.key");
    keygen(&q).unwrap();
    assert_ne!(std::fs::read_to_string(&q).unwrap(), text, "random");
}

#[test]
fn kinds_follow_the_column_type() {
    use PseudonymKind::*;
    for (t, kind) in [
        ("text", Text),
        ("citext", Text),
        ("public.citext", Text),
        ("\"My Schema\".citext", Text),
        ("character varying", Text),
        ("character varying(32)", Text),
        ("character varying(255)", Text),
        ("varchar", Text),
        ("varchar(64)", Text),
        ("character(32)", Text),
        ("character(40)", Text),
        ("bpchar", Text),
        (" TEXT ", Text),
        ("uuid", Uuid),
        ("bigint", Bigint),
    ] {
        assert_eq!(PseudonymKind::for_type(t).unwrap(), kind, "{t}");
    }
    for t in [
        "integer",
        "smallint",
        "numeric",
        "numeric(20,0)",
        "character varying(10)",
        "character varying(31)",
        "varchar(31)",
        "character(1)",
        "character",
        "\"char\"",
        "name",
        "jsonb",
        "json",
        "bytea",
        "text[]",
        "uuid[]",
        "bigint[]",
        "public.citext[]",
        "character varying()",
        "character varying(x)",
        "character varying(32",
        "inet",
        "",
    ] {
        let err = PseudonymKind::for_type(t).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, PseudonymError::UnsupportedType { .. }), "{t}");
        assert!(msg.contains(&format!("{t:?}")), "{msg}");
        assert!(
            msg.contains("uuid") && msg.contains("bigint") && msg.contains("citext"),
            "{msg}"
        );
    }
}
