//! What SET NULL and SET DEFAULT write: NULL, a column's constant default
//! as COPY text, or a default left to evaluate in the target.

use super::types::PendingDefault;
use super::types::Replacement;
use crate::copytext::escape::encode_copy_text;
use crate::repo::manifest::Manifest;

/// What a SET NULL (`to_default = false`) or SET DEFAULT writes into
/// columns `targets` of table `at.0`, for its check number `at.1`: NULL,
/// the column's constant default, or a default to evaluate in the target
/// (recorded in `pending`). A column without a default gets NULL.
pub(super) fn rewrite_entries(
    m: &Manifest,
    at: (usize, usize),
    fk_name: &str,
    targets: &[usize],
    to_default: bool,
    pending: &mut Vec<PendingDefault>,
) -> Vec<(usize, Replacement)> {
    let (table, fk) = at;
    targets
        .iter()
        .enumerate()
        .map(|(entry, &c)| {
            let column = &m.tables[table].columns[c];
            let r = match (to_default, &column.default) {
                (true, Some(expr)) => constant_default(expr).unwrap_or_else(|| {
                    pending.push(PendingDefault {
                        table,
                        fk,
                        entry,
                        fk_name: fk_name.to_string(),
                        column: column.name.clone(),
                        type_name: column.type_name.clone(),
                        expr: expr.clone(),
                    });
                    Replacement::Unresolved(expr.clone())
                }),
                _ => Replacement::Null,
            };
            (c, r)
        })
        .collect()
}

/// The COPY text of a column default that is a plain constant, as
/// `pg_get_expr` prints them: `0`, `'-1'::integer`, `'x'::text`,
/// `'…'::uuid`, `NULL::bigint`, `true`. The literal is what COPY FROM feeds
/// to the column type's input function, the same as the cast does.
/// `None` for anything else (functions, `E''` strings, operators).
pub fn constant_default(expr: &str) -> Option<Replacement> {
    let mut e = expr.trim();
    while let Some(inner) = e.strip_prefix('(').and_then(|s| s.strip_suffix(')')) {
        e = inner.trim();
    }
    // Drop trailing casts `::type` (outside the literal).
    let body = if let Some(rest) = e.strip_prefix('\'') {
        let mut lit = Vec::new();
        let b = rest.as_bytes();
        let mut i = 0;
        loop {
            match b.get(i)? {
                b'\'' if b.get(i + 1) == Some(&b'\'') => {
                    lit.push(b'\'');
                    i += 2;
                }
                b'\'' => break,
                &c => {
                    lit.push(c);
                    i += 1;
                }
            }
        }
        let tail = &rest[i + 1..];
        if !tail.is_empty() && !is_casts(tail) {
            return None;
        }
        return Some(Replacement::Value(encode_copy_text(&lit)));
    } else {
        match e.find("::") {
            Some(p) if is_casts(&e[p..]) => &e[..p],
            Some(_) => return None,
            None => e,
        }
    };
    let body = body.trim();
    if body.eq_ignore_ascii_case("null") {
        return Some(Replacement::Null);
    }
    if body == "true" || body == "false" {
        return Some(Replacement::Value(body.as_bytes().to_vec()));
    }
    let digits = body.strip_prefix('-').unwrap_or(body);
    let numeric = !digits.is_empty()
        && digits.bytes().all(|c| c.is_ascii_digit() || c == b'.')
        && digits.bytes().filter(|&c| c == b'.').count() <= 1
        && digits.bytes().next().is_some_and(|c| c.is_ascii_digit());
    numeric.then(|| Replacement::Value(body.as_bytes().to_vec()))
}

/// `::type` repeated, where a type is letters, digits, spaces, `_`, `"`, `.`,
/// `[]` and a parenthesised modifier.
fn is_casts(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("::") else {
        return false;
    };
    rest.split("::").all(|t| {
        !t.trim().is_empty()
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || " _\".[](),".contains(c))
    })
}
