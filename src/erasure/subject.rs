//! Subject ids: validation, the canonical text form stored in the list, and
//! the 128-bit key the restore filter looks up.
//!
//! bigint → the i64 itself; uuid → its 128 bits (any case, with or without
//! hyphens); text → XXH3-128 of the bytes. A 128-bit hash makes a false match
//! between two distinct text ids astronomically unlikely (~n²/2¹²⁹).

use crate::erasure::config::SubjectType;

/// What the in-memory erasure set stores per id.
pub type SubjectKey = u128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {kind} subject id: {reason}")]
pub struct SubjectError {
    pub value: String,
    pub kind: &'static str,
    pub reason: &'static str,
}

fn kind_name(t: SubjectType) -> &'static str {
    match t {
        SubjectType::Bigint => "bigint",
        SubjectType::Uuid => "uuid",
        SubjectType::Text => "text",
    }
}

fn invalid(t: SubjectType, raw: &str, reason: &'static str) -> SubjectError {
    SubjectError {
        value: raw.to_string(),
        kind: kind_name(t),
        reason,
    }
}

/// Separates a named subject from its id in a stored entry
/// (`customer\u{1f}7`): entries of the unnamed subject (a config whose
/// roots name no `subject`, and every list written before names existed)
/// are the bare id. No text id may contain it (`normalize_new`).
pub const SUBJECT_SEP: char = '\u{1f}';

/// The stored form of `id` of subject `name` (`None`: the unnamed one).
pub fn qualify(name: Option<&str>, id: &str) -> String {
    match name {
        Some(n) => format!("{n}{SUBJECT_SEP}{id}"),
        None => id.to_string(),
    }
}

/// A stored entry's subject name (if named) and id.
pub fn split_subject(stored: &str) -> (Option<&str>, &str) {
    match stored.split_once(SUBJECT_SEP) {
        Some((name, id)) => (Some(name), id),
        None => (None, stored),
    }
}

/// Whether `name` can name a subject: a lower-case letter, then lower-case
/// letters, digits or `_`, at most 63 bytes.
pub fn valid_subject_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

/// The in-memory key of an id of subject `name`: its key under a seed of
/// the name's, so customer 7 and employee 7 never meet.
#[inline]
pub fn subject_key(name: &str, k: SubjectKey) -> SubjectKey {
    xxhash_rust::xxh3::xxh3_128_with_seed(
        &k.to_le_bytes(),
        xxhash_rust::xxh3::xxh3_64(name.as_bytes()),
    )
}

/// The in-memory key of a stored entry (`qualify`'s form).
pub fn entry_key(t: SubjectType, stored: &[u8]) -> Option<SubjectKey> {
    match memchr::memchr(SUBJECT_SEP as u8, stored) {
        Some(p) => {
            let name = std::str::from_utf8(&stored[..p]).ok()?;
            key_of(t, &stored[p + 1..]).map(|k| subject_key(name, k))
        }
        None => key_of(t, stored),
    }
}

/// Validates a user-supplied id (or a stored entry of a named subject,
/// `name\u{1f}id`) and returns its canonical text form.
///
/// # Errors
/// An id that is not valid for the configured type, or a bad subject name.
pub fn normalize(t: SubjectType, raw: &str) -> Result<String, SubjectError> {
    if let Some((name, id)) = raw.split_once(SUBJECT_SEP) {
        if !valid_subject_name(name) {
            return Err(invalid(
                t,
                raw,
                "names a subject that is not a lower-case word (a-z, 0-9, _)",
            ));
        }
        return Ok(qualify(Some(name), &normalize_id(t, id)?));
    }
    normalize_id(t, raw)
}

fn normalize_id(t: SubjectType, raw: &str) -> Result<String, SubjectError> {
    let err = |reason| invalid(t, raw, reason);
    match t {
        SubjectType::Bigint => {
            let v: i64 = raw
                .trim()
                .parse()
                .map_err(|_| err("expected a 64-bit integer"))?;
            Ok(v.to_string())
        }
        SubjectType::Uuid => {
            let v = parse_uuid(raw.trim().as_bytes())
                .ok_or_else(|| err("expected a UUID like 0b6e…-…"))?;
            Ok(format_uuid(v))
        }
        SubjectType::Text => {
            if raw.is_empty() {
                return Err(err("empty"));
            }
            if raw.len() > 1024 {
                return Err(err("longer than 1024 bytes"));
            }
            if raw.contains(['\n', '\r']) {
                return Err(err("contains a line break"));
            }
            Ok(raw.to_string())
        }
    }
}

/// [`normalize`] for an id about to enter the list (`erase add`, `erase
/// import`, `POST /v1/erasures`). A text id must also hold no NUL byte
/// (a PostgreSQL text value cannot, so it could never match) and no U+FEFF
/// (the invisible byte order mark a spreadsheet export leaves at the start
/// of its file: an id carrying it never matches the plain id in the
/// database). bigint and uuid ids already refuse both. Lookups and journal
/// merges keep using `normalize`, so a list that holds such an id from
/// before this check still syncs and can still be checked.
///
/// # Errors
/// An id that is not valid for the configured type, or not acceptable as a
/// new entry.
pub fn normalize_new(t: SubjectType, raw: &str) -> Result<String, SubjectError> {
    let c = normalize(t, raw)?;
    if t == SubjectType::Text {
        if split_subject(&c).1.contains(SUBJECT_SEP) {
            return Err(invalid(t, raw, "contains the control character U+001F"));
        }
        if c.contains('\0') {
            return Err(invalid(t, raw, "contains a NUL byte"));
        }
        if c.contains('\u{FEFF}') {
            return Err(invalid(
                t,
                raw,
                "contains U+FEFF, an invisible byte order mark (left by a spreadsheet export?)",
            ));
        }
    }
    Ok(c)
}

/// The lookup key of a value as it appears in a decoded COPY field. `None`
/// when the value cannot be an id of this type (so it cannot be listed).
#[inline]
pub fn key_of(t: SubjectType, value: &[u8]) -> Option<SubjectKey> {
    match t {
        SubjectType::Bigint => parse_i64(value).map(|v| v as u64 as u128),
        SubjectType::Uuid => parse_uuid(value),
        SubjectType::Text => Some(xxhash_rust::xxh3::xxh3_128(value)),
    }
}

#[inline]
fn parse_i64(b: &[u8]) -> Option<i64> {
    let (neg, digits) = match b.first()? {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let v = digits_u64(digits)?;
    if neg {
        // -2^63 is the one value whose magnitude is not an i64.
        (v <= 1 << 63).then(|| (v as i64).wrapping_neg())
    } else {
        i64::try_from(v).ok()
    }
}

/// The value of a run of 1 to 19 ASCII digits (at most 9_999_999_999_999_999_999,
/// which fits a u64); `None` if a byte is not a digit. Shared by the
/// bigint parser and the filter's integer keys (`restore::filter::decimal`).
#[inline]
pub(crate) fn digits_u64(digits: &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + u64::from(d);
    }
    Some(v)
}

#[inline]
fn parse_uuid(b: &[u8]) -> Option<u128> {
    let b = match b {
        [b'{', inner @ .., b'}'] => inner,
        _ => b,
    };
    let mut v: u128 = 0;
    let mut n = 0;
    for (i, &c) in b.iter().enumerate() {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            b'-' if b.len() == 36 && matches!(i, 8 | 13 | 18 | 23) => continue,
            _ => return None,
        };
        v = (v << 4) | u128::from(d);
        n += 1;
    }
    (n == 32 && (b.len() == 32 || b.len() == 36)).then_some(v)
}

fn format_uuid(v: u128) -> String {
    let h = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
#[path = "subject_tests.rs"]
mod tests;
