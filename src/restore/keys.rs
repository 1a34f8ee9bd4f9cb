//! How key values compare: by the column type's equality, as PostgreSQL
//! compares them, not by their COPY text bytes.
//!
//! Most key types print one spelling per value (integers, uuid, text under
//! a deterministic collation, dates…), so equal bytes are equal values and
//! the filter keys them as they are ([`KeyForm::Plain`]). A few do not, and
//! their values are brought to one spelling before they are keyed:
//! - `numeric` keeps the scale it was given (`3.00`, `3`): trailing zeros
//!   are dropped ([`KeyForm::Numeric`]), so `3.00` is the integer 3;
//! - `character(n)` ignores trailing spaces, also when a `varchar` key is
//!   compared with it ([`KeyForm::Trim`]);
//! - `citext` compares `lower()` of both sides ([`KeyForm::Lower`], with
//!   the database's `LC_CTYPE`: ASCII only under `C`/`POSIX`).
//!
//! Types whose equality Lethe cannot reproduce (floating point, json,
//! arrays, ranges, nondeterministic collations, …) are refused wherever a
//! key is followed or a root is matched, naming the column and type.

use crate::erasure::config::SubjectType;
use crate::repo::manifest::Column;

/// How a key value is brought to its one spelling before it is keyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyForm {
    Plain,
    Numeric,
    Trim,
    /// `lower()` of ASCII letters only (`LC_CTYPE` C or POSIX).
    LowerAscii,
    /// `lower()` of every letter.
    Lower,
}

/// A key column's type, as far as its equality goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyClass {
    /// smallint, integer, bigint.
    Int,
    /// `numeric`, with the scale of its modifier if it has one.
    Numeric {
        scale: Option<u32>,
    },
    /// text, varchar, name.
    Text,
    /// character(n).
    BpChar,
    CiText,
    Uuid,
    /// A type whose equal values print identically (the base type name
    /// without modifier): compared only with the same type.
    Exact(String),
    /// Cannot be compared by Lethe.
    Unsupported(String),
}

/// Types whose equal values always print the same text.
const EXACT: &[&str] = &[
    "boolean",
    "date",
    "timestamp without time zone",
    "timestamp with time zone",
    "time without time zone",
    "bytea",
    "\"char\"",
    "inet",
    "cidr",
    "macaddr",
    "macaddr8",
];

/// The type a column's keys compare as (domains resolved, when the
/// manifest recorded it).
pub fn classify(c: &Column) -> KeyClass {
    let full = c.base_type.as_deref().unwrap_or(&c.type_name).trim();
    if c.nondeterministic {
        return KeyClass::Unsupported(format!("{full} with a nondeterministic collation"));
    }
    // The name without its modifier: `numeric(12,2)` -> `numeric`,
    // `timestamp(3) without time zone` -> `timestamp without time zone`.
    let (name, modifier) = match (full.find('('), full.find(')')) {
        (Some(a), Some(b)) if a < b => (
            format!("{}{}", &full[..a], &full[b + 1..]),
            Some(&full[a + 1..b]),
        ),
        _ => (full.to_string(), None),
    };
    // An extension's type may be schema-qualified (`public.citext`).
    let bare = if name.ends_with("citext") && !name.contains('"') {
        name.rsplit('.').next().unwrap_or(&name).to_string()
    } else {
        name.clone()
    };
    match bare.as_str() {
        // oid prints its unsigned value in decimal, as bigint does.
        "smallint" | "integer" | "bigint" | "oid" => KeyClass::Int,
        "numeric" => KeyClass::Numeric {
            scale: modifier.map(|m| {
                m.split_once(',')
                    .and_then(|(_, s)| s.trim().parse().ok())
                    .unwrap_or(0)
            }),
        },
        "text" | "character varying" | "name" => KeyClass::Text,
        "character" | "bpchar" => KeyClass::BpChar,
        "citext" => KeyClass::CiText,
        "uuid" => KeyClass::Uuid,
        n if EXACT.contains(&n) => KeyClass::Exact(n.to_string()),
        _ => KeyClass::Unsupported(full.to_string()),
    }
}

fn lower_form(ctype: Option<&str>) -> KeyForm {
    match ctype {
        Some("C" | "POSIX") => KeyForm::LowerAscii,
        _ => KeyForm::Lower,
    }
}

/// The form of a referenced (parent) column's keys.
pub fn parent_form(class: &KeyClass, ctype: Option<&str>) -> KeyForm {
    match class {
        KeyClass::Numeric { .. } => KeyForm::Numeric,
        KeyClass::BpChar => KeyForm::Trim,
        KeyClass::CiText => lower_form(ctype),
        _ => KeyForm::Plain,
    }
}

/// The form a referencing column's keys take to meet the parent's, or
/// `None` when Lethe cannot compare the two as PostgreSQL does.
pub fn child_form(child: &KeyClass, parent: &KeyClass, ctype: Option<&str>) -> Option<KeyForm> {
    use KeyClass as K;
    Some(match (parent, child) {
        (K::Unsupported(_), _) | (_, K::Unsupported(_)) => return None,
        (K::Int, K::Int) => KeyForm::Plain,
        (K::Numeric { .. }, K::Int | K::Numeric { .. }) => KeyForm::Numeric,
        // text = text: a character(n) value loses its padding in the cast.
        (K::Text, K::Text | K::CiText) => KeyForm::Plain,
        (K::Text, K::BpChar) => KeyForm::Trim,
        // bpchar = bpchar: trailing spaces never count.
        (K::BpChar, K::Text | K::BpChar) => KeyForm::Trim,
        (K::CiText, K::Text | K::CiText) => lower_form(ctype),
        (K::Uuid, K::Uuid) => KeyForm::Plain,
        (K::Exact(p), K::Exact(c)) if p == c => KeyForm::Plain,
        _ => return None,
    })
}

/// The form a scalar found at a declared reference's JSON path takes to
/// meet the referenced column's keys: the text `#>>` gives, spelled as the
/// referenced column's type prints it (a uuid in lower case, a numeric
/// without trailing zeros, a character(n) without padding, a citext
/// folded); `None` for types Lethe cannot compare.
pub fn json_form(parent: &KeyClass, ctype: Option<&str>) -> Option<KeyForm> {
    match parent {
        KeyClass::Unsupported(_) => None,
        KeyClass::Uuid => Some(KeyForm::LowerAscii),
        other => Some(parent_form(other, ctype)),
    }
}

/// The form a root column's values take before the erasure-list lookup,
/// or `None` when values of this type can never be subject ids of `st`
/// (or would be matched wrongly: a bigint id against `numeric(12,2)`).
pub fn root_form(class: &KeyClass, st: SubjectType, ctype: Option<&str>) -> Option<KeyForm> {
    use KeyClass as K;
    Some(match (st, class) {
        (SubjectType::Bigint, K::Int) => KeyForm::Plain,
        (
            SubjectType::Bigint,
            K::Numeric {
                scale: None | Some(0),
            },
        ) => KeyForm::Numeric,
        (SubjectType::Uuid, K::Uuid | K::Text | K::CiText) => KeyForm::Plain,
        (SubjectType::Uuid, K::BpChar) => KeyForm::Trim,
        (SubjectType::Text, K::Text) => KeyForm::Plain,
        (SubjectType::Text, K::BpChar) => KeyForm::Trim,
        (SubjectType::Text, K::CiText) => lower_form(ctype),
        _ => return None,
    })
}

/// Whether list entries must also be stored folded by `form` for a root of
/// this form to find them (text ids only: the other types parse the
/// folded value themselves).
pub fn folds_list(form: KeyForm, st: SubjectType) -> bool {
    st == SubjectType::Text && matches!(form, KeyForm::Trim | KeyForm::Lower | KeyForm::LowerAscii)
}

/// `v` in its one spelling for `form`, in `out` (or `v` itself).
pub fn canonical<'v>(form: KeyForm, v: &'v [u8], out: &'v mut Vec<u8>) -> &'v [u8] {
    match form {
        KeyForm::Plain => v,
        KeyForm::Trim => {
            let end = v.iter().rposition(|&b| b != b' ').map_or(0, |p| p + 1);
            &v[..end]
        }
        KeyForm::Numeric => numeric(v, out),
        KeyForm::LowerAscii => {
            out.clear();
            out.extend(v.iter().map(u8::to_ascii_lowercase));
            out
        }
        KeyForm::Lower => {
            if v.is_ascii() {
                out.clear();
                out.extend(v.iter().map(u8::to_ascii_lowercase));
                return out;
            }
            match std::str::from_utf8(v) {
                Ok(s) => {
                    out.clear();
                    // lower() maps each character by itself (towlower), not
                    // with Unicode's context rules (final sigma).
                    let mut buf = [0u8; 4];
                    for ch in s.chars() {
                        let mut l = ch.to_lowercase();
                        let one = match (l.next(), l.next()) {
                            (Some(a), None) => a,
                            _ => ch,
                        };
                        out.extend_from_slice(one.encode_utf8(&mut buf).as_bytes());
                    }
                    out
                }
                Err(_) => v,
            }
        }
    }
}

/// A numeric value without leading zeros, trailing fractional zeros or a
/// bare point: `003.500` -> `3.5`, `3.00` -> `3`, `-0.0` -> `0`.
/// `NaN` and infinities are left as they are.
fn numeric<'v>(v: &'v [u8], out: &'v mut Vec<u8>) -> &'v [u8] {
    let (neg, body) = match v {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, v),
    };
    if body.is_empty() || !body.iter().all(|&b| b.is_ascii_digit() || b == b'.') {
        return v;
    }
    let (int, frac) = match body.iter().position(|&b| b == b'.') {
        Some(p) => (&body[..p], &body[p + 1..]),
        None => (body, &body[..0]),
    };
    let int = &int[int.iter().position(|&b| b != b'0').unwrap_or(int.len())..];
    let frac = &frac[..frac.iter().rposition(|&b| b != b'0').map_or(0, |p| p + 1)];
    out.clear();
    if neg && !(int.is_empty() && frac.is_empty()) {
        out.push(b'-');
    }
    if int.is_empty() {
        out.push(b'0');
    } else {
        out.extend_from_slice(int);
    }
    if !frac.is_empty() {
        out.push(b'.');
        out.extend_from_slice(frac);
    }
    out
}

/// The seed under which a folded text id is hashed, so a folded entry can
/// only ever match a lookup folded the same way.
pub fn fold_seed(form: KeyForm) -> u64 {
    match form {
        KeyForm::Plain | KeyForm::Numeric => 0,
        KeyForm::Trim => 0x4c45_5448_4554_5249,
        KeyForm::LowerAscii => 0x4c45_5448_454c_4f41,
        KeyForm::Lower => 0x4c45_5448_454c_4f57,
    }
}

/// The erasure-list key of a folded text id (see [`folds_list`]).
pub fn folded_text_key(form: KeyForm, canonical: &[u8]) -> u128 {
    xxhash_rust::xxh3::xxh3_128_with_seed(canonical, fold_seed(form))
}

/// The lookup key of a root value of `form`: the erasure list's key of
/// its canonical spelling (a folded key for text ids, see [`folds_list`]).
#[inline]
pub fn root_key(st: SubjectType, form: KeyForm, v: &[u8], scratch: &mut Vec<u8>) -> Option<u128> {
    if form == KeyForm::Plain {
        return crate::erasure::key_of(st, v);
    }
    let c = canonical(form, v, scratch);
    if folds_list(form, st) {
        Some(folded_text_key(form, c))
    } else {
        crate::erasure::key_of(st, c)
    }
}

/// The key under which an erasure that applies to the snapshot being
/// restored is also held, for roots whose keys can be reused (see
/// `SubjectRoot::reusable`): a lookup of such a root finds only those.
#[inline]
pub fn reuse_key(k: u128) -> u128 {
    xxhash_rust::xxh3::xxh3_128_with_seed(&k.to_le_bytes(), 0x4c45_5448_4552_4555)
}

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
