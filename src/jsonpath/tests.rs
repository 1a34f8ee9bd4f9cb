//! Unit tests of JSON paths: parsing, and PostgreSQL's own answers (the
//! scanner's hostile and random documents are in `scan_tests.rs`).

use super::{JsonPath, Lookup};

/// The expected answer, as `#>>` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Exp {
    Found(&'static str),
    Absent,
    NotScalar,
    Invalid,
}
use Exp::*;

pub(super) fn lookup(path: &str, doc: &[u8]) -> Exp {
    let p = JsonPath::parse(path).unwrap_or_else(|e| panic!("{e}"));
    let mut scratch = Vec::new();
    match p.scalar(doc, &mut scratch) {
        Lookup::Found(v) => Found(String::from_utf8(v.to_vec()).unwrap().leak()),
        Lookup::Absent => Absent,
        Lookup::NotScalar => NotScalar,
        Lookup::Invalid => Invalid,
    }
}

/// Every expected value below is PostgreSQL 15's answer, obtained with
/// psql (`select json_typeof(doc::json #> path), doc::json #>> path`, one
/// query per line; a query that raised an error is `Invalid`, an object or
/// array is `NotScalar`, SQL NULL is `Absent`). The last two documents are
/// `jsonb` text output (`select '…'::jsonb::text`), as a restore of a jsonb
/// column sees them.
const POSTGRES: &[(&str, &str, Exp)] = &[
    (
        r#"{"actor": {"id": 42, "name": "Ann"}, "id": 7}"#,
        r#"$.actor.id"#,
        Found(r#"42"#),
    ),
    (
        r#"{"actor": {"id": 42, "name": "Ann"}, "id": 7}"#,
        r#"$.id"#,
        Found(r#"7"#),
    ),
    (
        r#"{"actor": {"id": 42, "name": "Ann"}, "id": 7}"#,
        r#"$.actor.name"#,
        Found(r#"Ann"#),
    ),
    (
        r#"{"actor": {"id": 42, "name": "Ann"}, "id": 7}"#,
        r#"$.actor"#,
        NotScalar,
    ),
    (
        r#"{"actor": {"id": 42, "name": "Ann"}, "id": 7}"#,
        r#"$.actor.id.x"#,
        Absent,
    ),
    (
        r#"{"actor": {"id": 42, "name": "Ann"}, "id": 7}"#,
        r#"$.missing"#,
        Absent,
    ),
    (
        r#"{"actor": {"id": 42, "name": "Ann"}, "id": 7}"#,
        r#"$.actor.missing"#,
        Absent,
    ),
    (r#"{"a":1,"a":2}"#, r#"$.a"#, Found(r#"2"#)),
    (r#"{"a":{"b":1},"a":{"c":2}}"#, r#"$.a.b"#, Found(r#"1"#)),
    (r#"{"a":{"b":1},"a":{"c":2}}"#, r#"$.a.c"#, Found(r#"2"#)),
    (r#"{"a":{"b":1},"a":{"c":2}}"#, r#"$.a"#, NotScalar),
    (r#"{"a":{"b":1},"a":2}"#, r#"$.a.b"#, Found(r#"1"#)),
    (r#"{"a":{"b":1},"a":2}"#, r#"$.a"#, Found(r#"2"#)),
    (r#"{"a":{"b":1},"a":{"b":null}}"#, r#"$.a.b"#, Absent),
    (r#"{"a":{"b":1},"a":null}"#, r#"$.a.b"#, Found(r#"1"#)),
    (r#"{"a":{"b":1},"a":null}"#, r#"$.a"#, Absent),
    (
        r#"{"a":{"b":"x"},"a":{"b":{"c":1}}}"#,
        r#"$.a.b"#,
        NotScalar,
    ),
    (
        r#"{"a":{"b":{"c":1}},"a":{"b":"x"}}"#,
        r#"$.a.b"#,
        Found(r#"x"#),
    ),
    (
        r#"{"a":[1,{"b":2}],"a":{"b":3}}"#,
        r#"$.a.b"#,
        Found(r#"3"#),
    ),
    (
        r#"{"a":{"b":3},"a":[1,{"b":2}]}"#,
        r#"$.a.b"#,
        Found(r#"3"#),
    ),
    (r#"{"a":{"b":3},"a":[1,{"b":2}]}"#, r#"$.a"#, NotScalar),
    (r#"{"ab":1,"a":2,"abc":3}"#, r#"$.a"#, Found(r#"2"#)),
    (r#"{"ab":1,"a":2,"abc":3}"#, r#"$.ab"#, Found(r#"1"#)),
    (r#"{"ab":1,"a":2,"abc":3}"#, r#"$.abc"#, Found(r#"3"#)),
    (r#"{"ab":1,"a":2,"abc":3}"#, r#"$.abcd"#, Absent),
    (r#"{"abc":1,"ab":{"c":2}}"#, r#"$.ab.c"#, Found(r#"2"#)),
    (r#"{"abc":1,"ab":{"c":2}}"#, r#"$.a"#, Absent),
    (
        r#"{"a\"b":"q\"uote","k":"v"}"#,
        r#"$."a\"b""#,
        Found(r#"q"uote"#),
    ),
    (r#"{"a\"b":"q\"uote","k":"v"}"#, r#"$.k"#, Found(r#"v"#)),
    (r#"{"a\"b":"q\"uote","k":"v"}"#, r#"$.a"#, Absent),
    (
        r#"{"s":"has \"id\": \"x\", inside","id":"real"}"#,
        r#"$.id"#,
        Found(r#"real"#),
    ),
    (
        r#"{"s":"has \"id\": \"x\", inside","id":"real"}"#,
        r#"$.s"#,
        Found(r#"has "id": "x", inside"#),
    ),
    (r#"{"s":"{\"id\":1}"}"#, r#"$.id"#, Absent),
    (r#"{"s":"{\"id\":1}"}"#, r#"$.s"#, Found(r#"{"id":1}"#)),
    (r#"{"x":{"id":1},"id":2}"#, r#"$.id"#, Found(r#"2"#)),
    (r#"{"x":{"id":1},"id":2}"#, r#"$.x.id"#, Found(r#"1"#)),
    (r#"{"x":{"id":1}}"#, r#"$.id"#, Absent),
    (r#"{"x":[{"id":1}]}"#, r#"$.id"#, Absent),
    (r#"{"x":[{"id":1}]}"#, r#"$.x.id"#, Absent),
    (
        r#"{"n":-12.5e+3,"big":123456789012345678901234567890,"z":0,"t":true,"f":false,"nul":null,"e":1E-7}"#,
        r#"$.n"#,
        Found(r#"-12.5e+3"#),
    ),
    (
        r#"{"n":-12.5e+3,"big":123456789012345678901234567890,"z":0,"t":true,"f":false,"nul":null,"e":1E-7}"#,
        r#"$.big"#,
        Found(r#"123456789012345678901234567890"#),
    ),
    (
        r#"{"n":-12.5e+3,"big":123456789012345678901234567890,"z":0,"t":true,"f":false,"nul":null,"e":1E-7}"#,
        r#"$.z"#,
        Found(r#"0"#),
    ),
    (
        r#"{"n":-12.5e+3,"big":123456789012345678901234567890,"z":0,"t":true,"f":false,"nul":null,"e":1E-7}"#,
        r#"$.t"#,
        Found(r#"true"#),
    ),
    (
        r#"{"n":-12.5e+3,"big":123456789012345678901234567890,"z":0,"t":true,"f":false,"nul":null,"e":1E-7}"#,
        r#"$.f"#,
        Found(r#"false"#),
    ),
    (
        r#"{"n":-12.5e+3,"big":123456789012345678901234567890,"z":0,"t":true,"f":false,"nul":null,"e":1E-7}"#,
        r#"$.nul"#,
        Absent,
    ),
    (
        r#"{"n":-12.5e+3,"big":123456789012345678901234567890,"z":0,"t":true,"f":false,"nul":null,"e":1E-7}"#,
        r#"$.e"#,
        Found(r#"1E-7"#),
    ),
    (
        r#"{"u":"\u00e9\u20AC\ud83d\ude00","e":"\b\f\n\r\t\/\\\""}"#,
        r#"$.u"#,
        Found(r#"é€😀"#),
    ),
    (
        r#"{"u":"\u00e9\u20AC\ud83d\ude00","e":"\b\f\n\r\t\/\\\""}"#,
        r#"$.e"#,
        Found("\u{8}\u{c}\n\r\t/\\\""),
    ),
    (
        r#"{"\u0061":"escaped key","b\u00e9":1}"#,
        r#"$.a"#,
        Found(r#"escaped key"#),
    ),
    (
        r#"{"\u0061":"escaped key","b\u00e9":1}"#,
        r#"$."bé""#,
        Found(r#"1"#),
    ),
    (
        " \n\t{ \"a\" : { \"b\" : \"ws\" } ,\"c\"\r\n:\t[ ] } \r\n",
        r#"$.a.b"#,
        Found(r#"ws"#),
    ),
    (
        " \n\t{ \"a\" : { \"b\" : \"ws\" } ,\"c\"\r\n:\t[ ] } \r\n",
        r#"$.c"#,
        NotScalar,
    ),
    (r#"[{"a":1}]"#, r#"$.a"#, Absent),
    (r#""str""#, r#"$.a"#, Absent),
    (r#"42"#, r#"$.a"#, Absent),
    (r#"null"#, r#"$.a"#, Absent),
    (r#"{"a":"x\u0000y"}"#, r#"$.a"#, Invalid),
    (r#"{"b":"\u0000","a":1}"#, r#"$.a"#, Invalid),
    (r#"{"a":"\ud83d"}"#, r#"$.a"#, Invalid),
    (r#"{"a":"\ude00x"}"#, r#"$.a"#, Invalid),
    (r#"{"a":"\ud83d\u0041"}"#, r#"$.a"#, Invalid),
    (r#"{"a":1,"b":{"c":"\x"}}"#, r#"$.a"#, Invalid),
    (r#"{"a":"x"} trailing"#, r#"$.a"#, Invalid),
    (r#"{"a":[1,2}"#, r#"$.a"#, Invalid),
    (r#"{"a":"x"#, r#"$.a"#, Invalid),
    (r#"{"a":1}}"#, r#"$.a"#, Invalid),
    (r#"{"a":1"#, r#"$.a"#, Invalid),
    (r#"{"a":01}"#, r#"$.a"#, Invalid),
    (r#"{"a":1.}"#, r#"$.a"#, Invalid),
    (r#"{"a":tru}"#, r#"$.a"#, Invalid),
    (r#"{"a":1,}"#, r#"$.a"#, Invalid),
    (r#"{"a" 1}"#, r#"$.a"#, Invalid),
    (
        r#"{"key with.dots":{"b":"dotted"}}"#,
        r#"$."key with.dots".b"#,
        Found(r#"dotted"#),
    ),
    (
        r#"{"é":{"ü":"unicode keys"}}"#,
        r#"$."é"."ü""#,
        Found(r#"unicode keys"#),
    ),
    (r#"{"a":{},"b":[],"c":[1,{"d":2}]}"#, r#"$.a"#, NotScalar),
    (r#"{"a":{},"b":[],"c":[1,{"d":2}]}"#, r#"$.b"#, NotScalar),
    (r#"{"a":{},"b":[],"c":[1,{"d":2}]}"#, r#"$.c"#, NotScalar),
    (r#"{"a":"","b":" "}"#, r#"$.a"#, Found(r#""#)),
    (r#"{"a":"","b":" "}"#, r#"$.b"#, Found(r#" "#)),
    (r#"{"a":{"a":{"a":7}}}"#, r#"$.a.a"#, NotScalar),
    (r#"{"a":{"a":{"a":7}}}"#, r#"$.a.a.a"#, Found(r#"7"#)),
    (r#"{"a":{"a":{"a":7}}}"#, r#"$.a.a.a.a"#, Absent),
    (r#"{"a":"s"}"#, r#"$.a.b"#, Absent),
    (
        r#"{"id": 5, "actor": {"id": "u-1", "tags": ["x", "y"]}}"#,
        r#"$.actor.id"#,
        Found(r#"u-1"#),
    ),
    (
        r#"{"id": 5, "actor": {"id": "u-1", "tags": ["x", "y"]}}"#,
        r#"$.actor.tags"#,
        NotScalar,
    ),
    (
        r#"{"id": 5, "actor": {"id": "u-1", "tags": ["x", "y"]}}"#,
        r#"$.id"#,
        Found(r#"5"#),
    ),
    (
        r#"{"a": [1, {"id": 2}], "b": {"id": "x\"yé"}, "id": {"id": "not me"}, "num": 1.50}"#,
        r#"$.b.id"#,
        Found(r#"x"yé"#),
    ),
    (
        r#"{"a": [1, {"id": 2}], "b": {"id": "x\"yé"}, "id": {"id": "not me"}, "num": 1.50}"#,
        r#"$.a"#,
        NotScalar,
    ),
    (
        r#"{"a": [1, {"id": 2}], "b": {"id": "x\"yé"}, "id": {"id": "not me"}, "num": 1.50}"#,
        r#"$.num"#,
        Found(r#"1.50"#),
    ),
    (
        r#"{"a": [1, {"id": 2}], "b": {"id": "x\"yé"}, "id": {"id": "not me"}, "num": 1.50}"#,
        r#"$.id"#,
        NotScalar,
    ),
    (
        r#"{"a": [1, {"id": 2}], "b": {"id": "x\"yé"}, "id": {"id": "not me"}, "num": 1.50}"#,
        r#"$.id.id"#,
        Found(r#"not me"#),
    ),
    (
        r#"{"a": [1, {"id": 2}], "b": {"id": "x\"yé"}, "id": {"id": "not me"}, "num": 1.50}"#,
        r#"$.a.id"#,
        Absent,
    ),
    (
        r#"{"meta": {"n": null, "ua": "Mozilla/5.0", "tags": ["a", "b"]}, "actor": {"id": "8f14e45f-ceea-467f-a0f0-e4c6a06b1c3e", "ip": "10.0.0.1"}, "action": "login"}"#,
        r#"$.actor.id"#,
        Found(r#"8f14e45f-ceea-467f-a0f0-e4c6a06b1c3e"#),
    ),
    (
        r#"{"meta": {"n": null, "ua": "Mozilla/5.0", "tags": ["a", "b"]}, "actor": {"id": "8f14e45f-ceea-467f-a0f0-e4c6a06b1c3e", "ip": "10.0.0.1"}, "action": "login"}"#,
        r#"$.meta.n"#,
        Absent,
    ),
    (
        r#"{"meta": {"n": null, "ua": "Mozilla/5.0", "tags": ["a", "b"]}, "actor": {"id": "8f14e45f-ceea-467f-a0f0-e4c6a06b1c3e", "ip": "10.0.0.1"}, "action": "login"}"#,
        r#"$.meta.ua"#,
        Found(r#"Mozilla/5.0"#),
    ),
    (
        r#"{"meta": {"n": null, "ua": "Mozilla/5.0", "tags": ["a", "b"]}, "actor": {"id": "8f14e45f-ceea-467f-a0f0-e4c6a06b1c3e", "ip": "10.0.0.1"}, "action": "login"}"#,
        r#"$.action"#,
        Found(r#"login"#),
    ),
];

#[test]
fn answers_match_postgresql() {
    let mut wrong = Vec::new();
    for &(doc, path, want) in POSTGRES {
        let got = lookup(path, doc.as_bytes());
        if got != want {
            wrong.push(format!("{doc} at {path}: got {got:?}, PostgreSQL {want:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_string_without_escapes_is_a_slice_of_the_document_and_one_with_escapes_is_in_scratch() {
    let p = JsonPath::parse("$.a").unwrap();
    let doc = br#"{"a":"plain"}"#;
    let mut scratch = b"old".to_vec();
    let Lookup::Found(v) = p.scalar(doc, &mut scratch) else {
        panic!()
    };
    assert_eq!(v, b"plain");
    assert!(doc.as_ptr_range().contains(&v.as_ptr()));

    let doc = br#"{"a":"tab\there"}"#;
    let mut scratch = b"old contents".to_vec();
    assert_eq!(p.scalar(doc, &mut scratch), Lookup::Found(b"tab\there"));
    assert_eq!(scratch, b"tab\there");
}

#[test]
fn parse_accepts_simple_paths_and_keeps_their_text() {
    for (text, keys) in [
        ("$.a", vec!["a"]),
        ("$.actor.id", vec!["actor", "id"]),
        ("$.user_id-2.é", vec!["user_id-2", "é"]),
        (r#"$."key with.dots".b"#, vec!["key with.dots", "b"]),
        (r#"$."a\"b"."c\\d"."\u00e9""#, vec![r#"a"b"#, r"c\d", "é"]),
        (r#"$."12a".a1"#, vec!["12a", "a1"]),
        (r#"$."99999999999""#, vec!["99999999999"]),
    ] {
        let p = JsonPath::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(p.as_str(), text);
        assert_eq!(p.to_string(), text);
        let want: Vec<Vec<u8>> = keys.iter().map(|k| k.as_bytes().to_vec()).collect();
        assert_eq!(p.keys, want, "{text}");
    }
}

#[test]
fn parse_refuses_everything_else_naming_the_path_and_what_works() {
    for bad in [
        "",
        "$",
        "a.b",
        ".a",
        "$.",
        "$.a.",
        "$..a",
        "$.a..b",
        "$[0]",
        "$.a[0]",
        "$.a[*]",
        "$.*",
        "$.a.*",
        "$.a ? (@ > 1)",
        "$.a ",
        " $.a",
        "$.a b",
        "$a",
        r#"$."""#,
        r#"$."a"#,
        r#"$."a"b"#,
        r#"$."\x""#,
        r#"$."\ud800""#,
        "$.0",
        "$.a.12",
        r#"$."-1""#,
        r#"$."+7""#,
        r#"$." 3""#,
        r#"$."2147483647""#,
        r#"$."-2147483648""#,
        "$.a+b",
        "$.(a)",
    ] {
        let err = JsonPath::parse(bad).expect_err(bad);
        let msg = err.to_string();
        assert_eq!(err.path, bad);
        assert!(msg.contains(&format!("{bad:?}")), "{msg}");
        assert!(msg.contains("$.actor.id"), "{msg}");
        assert!(msg.contains("array indexes"), "{msg}");
    }
}

#[test]
fn keys_that_are_too_large_for_an_array_index_are_plain_keys() {
    // PostgreSQL reads a path element as an array index only when it fits
    // an int; 2147483648 does not, so `#>>` matches it as a key only.
    assert_eq!(
        lookup(r#"$."2147483648""#, br#"{"2147483648":"k"}"#),
        Found("k")
    );
    assert_eq!(lookup(r#"$."2147483648""#, br#"["x"]"#), Absent);
}
