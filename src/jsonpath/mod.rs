//! A simple JSON path (`$.actor.id`, `$."key with.dots".b`) and the scalar
//! it names in a JSON document, with PostgreSQL's `doc #>> '{actor,id}'`
//! semantics, found by scanning the bytes once (no document tree): it runs on
//! every row of a table during a restore.
//!
//! What PostgreSQL does, and so what [`JsonPath::scalar`] does:
//!
//! - a string gives its unescaped content, a number its literal text as
//!   written, `true`/`false` their names; JSON `null`, a missing key, or a
//!   path that runs into a scalar or an array give no value (SQL NULL);
//!   an object or an array at the path gives its JSON text, which is
//!   [`Lookup::NotScalar`] here;
//! - duplicate keys (possible in `json`, never in `jsonb`): every place the
//!   whole path matches, in document order, replaces the previous one, so the
//!   last one wins, also when the duplicates are on the way there
//!   (`{"a":{"b":1},"a":{"c":2}}` gives `1` for `{a,b}` and `2` for `{a,c}`);
//! - `#>>` de-escapes every string of the document, so an invalid escape, a
//!   lone UTF-16 surrogate or `\u0000` anywhere is an error, as is anything
//!   that is not JSON: [`Lookup::Invalid`].
//!
//! The scanner is iterative (a bit per open container, no recursion), so
//! nesting depth costs no stack.

mod scan;

use scan::{Hit, Invalid, scan, string_end, unescape};
use thiserror::Error;

/// A path [`JsonPath::parse`] refuses: the path as written and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "JSON path {path:?} is not supported: {reason}; a path is `$` then one or more `.key` \
     (letters, digits, `_`, `-`) or `.\"any key\"` (JSON string escapes allowed), e.g. \
     $.actor.id or $.\"key with.dots\".b; array indexes, wildcards and filters are not supported"
)]
pub struct JsonPathError {
    /// The path as it was given.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

/// A parsed path: a chain of object keys from the document's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    text: String,
    keys: Vec<Vec<u8>>,
}

/// What a document holds at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// A scalar, as `#>>` prints it (a string unescaped, a number as written,
    /// `true` or `false`).
    Found(&'a [u8]),
    /// JSON `null`, or nothing at the path.
    Absent,
    /// An object or an array at the path.
    NotScalar,
    /// Not valid JSON (or a string PostgreSQL cannot de-escape).
    Invalid,
}

impl JsonPath {
    /// Parses `$.actor.id`, `$.a`, `$."key with.dots".b`.
    ///
    /// # Errors
    /// Anything else: `$` alone, array indexes (`[0]`, and keys PostgreSQL's
    /// `#>>` would also read as an array index, such as `0` or `"-1"`),
    /// wildcards, filters, recursive descent, empty keys, trailing text.
    pub fn parse(s: &str) -> Result<JsonPath, JsonPathError> {
        let fail = |reason: String| JsonPathError {
            path: s.to_string(),
            reason,
        };
        let b = s.as_bytes();
        if b.first() != Some(&b'$') {
            return Err(fail("it must start with `$` (the document)".into()));
        }
        if b.len() == 1 {
            return Err(fail(
                "`$` alone is the whole document, not a scalar in it; name a key".into(),
            ));
        }
        let mut keys = Vec::new();
        let mut i = 1;
        while i < b.len() {
            match b[i] {
                b'.' => i += 1,
                b'[' => {
                    return Err(fail(format!(
                        "`[` at byte {i}: no array indexes or brackets"
                    )));
                }
                c => {
                    return Err(fail(format!(
                        "unexpected {:?} at byte {i}, where `.` or the end was expected",
                        char_at(s, i, c)
                    )));
                }
            }
            let key = match b.get(i) {
                None => return Err(fail("it ends with `.`: a key must follow".into())),
                Some(b'"') => {
                    let (end, escaped) = string_end(b, i + 1)
                        .map_err(|Invalid| fail(format!("unterminated quoted key at byte {i}")))?;
                    let raw = &b[i + 1..end];
                    let mut key = Vec::with_capacity(raw.len());
                    if escaped {
                        unescape(raw, |part| key.extend_from_slice(part)).map_err(|Invalid| {
                            fail(format!("invalid escape in the quoted key at byte {i}"))
                        })?;
                    } else {
                        key.extend_from_slice(raw);
                    }
                    i = end + 1;
                    key
                }
                Some(b'.') => return Err(fail("`..` (recursive descent or an empty key)".into())),
                Some(b'*') => return Err(fail("`*`: no wildcards".into())),
                Some(&c) => {
                    let start = i;
                    while i < b.len() && unquoted_key_byte(b[i]) {
                        i += 1;
                    }
                    if i == start {
                        return Err(fail(format!(
                            "unexpected {:?} at byte {i}, where a key was expected",
                            char_at(s, i, c)
                        )));
                    }
                    b[start..i].to_vec()
                }
            };
            if key.is_empty() {
                return Err(fail("an empty key".into()));
            }
            if is_pg_array_index(&key) {
                return Err(fail(format!(
                    "key {:?} would also index arrays in PostgreSQL's #>> (array indexes are not supported)",
                    String::from_utf8_lossy(&key)
                )));
            }
            keys.push(key);
        }
        Ok(JsonPath {
            text: s.to_string(),
            keys,
        })
    }

    /// The text the path was parsed from.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// PostgreSQL's `doc #>> '{k1,k2,…}'` for this path, on `doc` = the JSON
    /// text (`json` or `jsonb` output, decoded from COPY escapes). A string
    /// without escapes is returned as a slice of `doc`; one with escapes is
    /// unescaped into `scratch` (cleared first).
    pub fn scalar<'a>(&self, doc: &'a [u8], scratch: &'a mut Vec<u8>) -> Lookup<'a> {
        match scan(doc, &self.keys) {
            Err(Invalid) => Lookup::Invalid,
            Ok(Hit::Absent) => Lookup::Absent,
            Ok(Hit::NotScalar) => Lookup::NotScalar,
            Ok(Hit::Raw(s, e)) => Lookup::Found(&doc[s..e]),
            Ok(Hit::Escaped(s, e)) => {
                scratch.clear();
                match unescape(&doc[s..e], |part| scratch.extend_from_slice(part)) {
                    Ok(()) => Lookup::Found(scratch.as_slice()),
                    Err(Invalid) => Lookup::Invalid,
                }
            }
        }
    }
}

impl std::fmt::Display for JsonPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// The character at byte `i` of `s` (whose first byte is `c`), for messages.
fn char_at(s: &str, i: usize, c: u8) -> char {
    s.get(i..)
        .and_then(|t| t.chars().next())
        .unwrap_or(c as char)
}

/// Bytes of an unquoted key: ASCII letters, digits, `_`, `-`, and any
/// non-ASCII character (whose UTF-8 bytes are all ≥ 0x80).
fn unquoted_key_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c >= 0x80
}

/// Whether PostgreSQL's path lookup would read `key` as an array subscript:
/// it does so for what C's `strtol` accepts whole and fits an `int`
/// (leading white space, a sign, digits).
fn is_pg_array_index(key: &[u8]) -> bool {
    let mut i = 0;
    while i < key.len() && matches!(key[i], b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        i += 1;
    }
    let negative = key.get(i) == Some(&b'-');
    if matches!(key.get(i), Some(b'+' | b'-')) {
        i += 1;
    }
    let digits = &key[i..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let mut v: i64 = 0;
    for &d in digits {
        v = v * 10 + i64::from(d - b'0');
        if v > i64::from(i32::MAX) + 1 {
            return false;
        }
    }
    if negative {
        -v >= i64::from(i32::MIN)
    } else {
        v <= i64::from(i32::MAX)
    }
}

#[cfg(test)]
mod tests;
