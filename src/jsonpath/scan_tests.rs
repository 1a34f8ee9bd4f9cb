//! Unit tests of the scanner: hostile documents, and random documents
//! against a serde_json reference.

use crate::jsonpath::tests::Exp::{self, *};
use crate::jsonpath::tests::lookup;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Map, Number, Value};

#[test]
fn hostile_documents_are_invalid_not_a_panic() {
    for doc in [
        &b""[..],
        b" ",
        b"{",
        b"}",
        b"[",
        b"]",
        b"{\"a\"",
        b"{\"a\":",
        b"{\"a\":}",
        b"{\"a",
        b"{\"a\\",
        b"{\"a\\\"",
        b"{\"a\":\"\\",
        b"{\"a\":\"\\u12",
        b"{\"a\":\"\\u12g4\"}",
        b"{\"a\":\"x\ny\"}",
        b"{\"a\":\"\x01\"}",
        b"{\"a\":1]",
        b"[1}",
        b"{\"a\":1}{",
        b"{\"a\":-}",
        b"{\"a\":1e+}",
        b"{\"a\":.1}",
        b"{\"a\":NaN}",
        b"{\"a\":nul}",
        b"{\"a\":truex}",
        b"{a:1}",
        b"{'a':1}",
        b"{\"a\":1,,\"b\":2}",
        b"[,]",
        b"\"unterminated",
        b"\xef\xbb\xbf{\"a\":1}",
    ] {
        assert_eq!(
            lookup("$.a", doc),
            Invalid,
            "{:?}",
            String::from_utf8_lossy(doc)
        );
    }
}

#[test]
fn every_truncation_of_a_document_is_invalid() {
    let doc =
        br#"{"actor": {"id": "u\"1\u00e9", "n": [1, 2.5e3, true, null, {"x": false}]}, "id": 7}"#;
    assert_eq!(lookup("$.actor.id", doc), Found("u\"1é"));
    for end in 0..doc.len() {
        assert_eq!(lookup("$.actor.id", &doc[..end]), Invalid, "{end}");
    }
}

#[test]
fn deep_nesting_uses_no_stack() {
    let n = 1_000_000;
    // Unterminated.
    let doc = vec![b'['; n];
    assert_eq!(lookup("$.a", &doc), Invalid);
    let mut doc = b"{\"a\":".repeat(n);
    doc.extend_from_slice(b"1");
    assert_eq!(lookup("$.a", &doc), Invalid);
    // Balanced, with the answer after the deep part.
    let mut doc = b"{\"x\":".to_vec();
    doc.extend(std::iter::repeat_n(b'[', n));
    doc.extend(std::iter::repeat_n(b']', n));
    doc.extend_from_slice(b",\"a\":\"after\"}");
    assert_eq!(lookup("$.a", &doc), Found("after"));
    // Mismatched far down.
    let mut bad = doc.clone();
    bad[5 + n] = b'}';
    assert_eq!(lookup("$.a", &bad), Invalid);
    // A long path down nested objects.
    let mut doc = b"{\"a\":".repeat(300);
    doc.extend_from_slice(b"\"deep\"");
    doc.extend(std::iter::repeat_n(b'}', 300));
    let path = format!("${}", ".a".repeat(300));
    assert_eq!(lookup(&path, &doc), Found("deep"));
    let path = format!("${}", ".a".repeat(299));
    assert_eq!(lookup(&path, &doc), NotScalar);
}

#[test]
fn huge_numbers_are_their_literal_text() {
    let digits = "9".repeat(10_000);
    let doc = format!(r#"{{"a":-{digits}.5e+999999,"b":1e400}}"#);
    let want = format!("-{digits}.5e+999999");
    assert_eq!(lookup("$.a", doc.as_bytes()), Found(want.leak()));
    assert_eq!(lookup("$.b", doc.as_bytes()), Found("1e400"));
}

#[test]
fn long_strings_cross_the_word_scanner_at_every_offset() {
    for len in 0..40 {
        for special in ["", "\\\"", "\\\\", "\\u00e9", "\\n"] {
            for at in 0..=len {
                let body: String = "x".repeat(at) + special + &"y".repeat(len - at);
                let doc = format!(r#"{{"k{body}":1,"a":"{body}"}}"#);
                let want = body
                    .replace("\\\"", "\"")
                    .replace("\\\\", "\\")
                    .replace("\\u00e9", "é")
                    .replace("\\n", "\n");
                assert_eq!(lookup("$.a", doc.as_bytes()), Found(want.leak()), "{doc}");
                let raw = format!(
                    "{{\"a\":\"{}\u{1}{}\"}}",
                    "x".repeat(at),
                    "y".repeat(len - at)
                );
                assert_eq!(lookup("$.a", raw.as_bytes()), Invalid, "{raw:?}");
            }
        }
    }
}

// ---- random documents against a serde_json reference ----

const KEYS: &[&str] = &[
    "a", "b", "ab", "id", "actor", "a\"b", "a\\", "é", "x y", "a.b", "😀", "",
];
const STRINGS: &[&str] = &[
    "",
    "plain",
    "id",
    "\"id\":1",
    "q\"uote",
    "back\\slash",
    "tab\tnl\nret\r",
    "\u{1}\u{1f}",
    "é€",
    "😀x😀",
    "/slash/",
    "{\"a\":[1]}",
    "\u{7f}\u{80}\u{ffff}",
];

fn random_value(rng: &mut StdRng, depth: u32) -> Value {
    let pick = if depth >= 4 {
        rng.random_range(0..6)
    } else {
        rng.random_range(0..9)
    };
    match pick {
        0 => Value::Null,
        1 => Value::Bool(rng.random()),
        2 => Value::from(rng.random::<i64>() >> rng.random_range(0..63)),
        3 => Number::from_f64(rng.random::<f64>() * 10f64.powi(rng.random_range(-30..30)))
            .map_or(Value::Null, Value::Number),
        4 | 5 => Value::String(STRINGS[rng.random_range(0..STRINGS.len())].to_string()),
        6 => Value::Array(
            (0..rng.random_range(0..4))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        _ => {
            let mut m = Map::new();
            for _ in 0..rng.random_range(0..6) {
                let k = KEYS[rng.random_range(0..KEYS.len())].to_string();
                m.insert(k, random_value(rng, depth + 1));
            }
            Value::Object(m)
        }
    }
}

/// Serialises `v` compact or pretty, then re-escapes some of its non-ASCII
/// characters and slashes (which occur only inside strings) as `\u` and `\/`
/// escapes, surrogate pairs included.
fn random_text(rng: &mut StdRng, v: &Value) -> String {
    let text = if rng.random() {
        serde_json::to_string(v).unwrap()
    } else {
        serde_json::to_string_pretty(v).unwrap()
    };
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if (c as u32 >= 0x80 || c == '/') && rng.random_bool(0.5) {
            if c == '/' {
                out.push_str("\\/");
            } else {
                for unit in c.encode_utf16(&mut [0; 2]) {
                    out.push_str(&format!("\\u{unit:04X}"));
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `#>>` on a serde_json tree (which has no duplicate keys).
fn reference(v: &Value, keys: &[&str]) -> Exp {
    let mut cur = v;
    for k in keys {
        match cur {
            Value::Object(m) => match m.get(*k) {
                Some(next) => cur = next,
                None => return Absent,
            },
            _ => return Absent,
        }
    }
    match cur {
        Value::Null => Absent,
        Value::Bool(b) => Found(if *b { "true" } else { "false" }),
        Value::Number(n) => Found(n.to_string().leak()),
        Value::String(s) => Found(s.clone().leak()),
        Value::Array(_) | Value::Object(_) => NotScalar,
    }
}

fn path_text(keys: &[&str]) -> String {
    let mut p = String::from("$");
    for k in keys {
        p.push('.');
        p.push_str(&serde_json::to_string(k).unwrap());
    }
    p
}

#[test]
fn random_documents_match_a_serde_json_reference() {
    let mut rng = StdRng::seed_from_u64(18);
    let key_choice: Vec<&str> = KEYS.iter().copied().filter(|k| !k.is_empty()).collect();
    let mut found = 0;
    for _ in 0..20_000 {
        let mut root = random_value(&mut rng, 0);
        if !root.is_object() && rng.random_bool(0.8) {
            let mut m = Map::new();
            m.insert("a".into(), root);
            root = Value::Object(m);
        }
        let text = random_text(&mut rng, &root);
        for _ in 0..4 {
            let keys: Vec<&str> = (0..rng.random_range(1..4))
                .map(|_| key_choice[rng.random_range(0..key_choice.len())])
                .collect();
            let path = path_text(&keys);
            let want = reference(&root, &keys);
            found += usize::from(matches!(want, Found(_)));
            assert_eq!(lookup(&path, text.as_bytes()), want, "{text} at {path}");
        }
    }
    assert!(found > 1000, "the generator rarely hits a path: {found}");
}

#[test]
fn random_damage_never_panics_and_what_serde_json_refuses_is_invalid() {
    let mut rng = StdRng::seed_from_u64(1818);
    let tokens: &[&[u8]] = &[
        b"{", b"}", b"[", b"]", b",", b":", b"\"", b"\\", b" ", b"1", b"-", b"e", b"n", b"\\u",
        b"\\ud83d", b"\x01",
    ];
    for _ in 0..20_000 {
        let root = random_value(&mut rng, 0);
        let mut text = random_text(&mut rng, &root).into_bytes();
        for _ in 0..rng.random_range(1..3) {
            let at = rng.random_range(0..=text.len());
            if text.get(at).is_some_and(|&c| c >= 0x80) {
                continue; // keep the text UTF-8, as PostgreSQL's always is
            }
            let tok = tokens[rng.random_range(0..tokens.len())];
            let end = match rng.random_range(0..3) {
                0 => at,                       // insert
                1 => (at + 1).min(text.len()), // replace
                _ => {
                    text.drain(at..(at + 1).min(text.len())); // delete
                    continue;
                }
            };
            text.splice(at..end, tok.iter().copied());
        }
        let got = lookup("$.a", &text);
        // serde_json also refuses numbers beyond f64 (`1e400`) and deep
        // nesting, which are valid JSON (and PostgreSQL takes them).
        let refused = serde_json::from_slice::<Value>(&text).is_err_and(|e| {
            let e = e.to_string();
            !e.contains("number out of range") && !e.contains("recursion limit")
        });
        if refused {
            assert_eq!(got, Invalid, "{:?}", String::from_utf8_lossy(&text));
        }
    }
}
