//! The keys the row filter computes from a row's fields: a column tuple's
//! dropped-set key, plain or in its typed spelling, and the key a SET
//! DEFAULT writes.

use super::filter::{Effect, FkCheck, Replacement, decoded};
use super::keys::{self, KeyForm};
use crate::erasure::config::SubjectType;
use crate::erasure::key_of;

/// The dropped-set key of a column tuple of one row (`spans` are its
/// fields), `None` if any value is NULL. The same key as [`tuple_key`].
/// Always inlined: the per-row check calls it for every row, and a
/// single-column key (the common case) is then a few instructions with no
/// call.
#[inline(always)]
pub(super) fn key_of_tuple(
    input: &[u8],
    spans: &[(usize, usize)],
    cols: &[usize],
    dec: &mut Vec<u8>,
    keybuf: &mut Vec<u8>,
) -> Option<u128> {
    if let [c] = cols {
        let (a, b) = spans[*c];
        let raw = &input[a..b];
        // A plain integer has no escapes and is not `\N`: key it as it is.
        if let Some(n) = super::filter::decimal(raw) {
            return Some(super::filter::value_key_of_int(n));
        }
        return decoded(raw, dec).map(super::filter::value_key);
    }
    keybuf.clear();
    for &c in cols {
        let (a, b) = spans[c];
        let v = decoded(&input[a..b], dec)?;
        keybuf.extend_from_slice(&(v.len() as u32).to_le_bytes());
        keybuf.extend_from_slice(v);
    }
    Some(xxhash_rust::xxh3::xxh3_128(keybuf))
}

/// [`key_of_tuple`] of the values in their one spelling for `forms` (see
/// `restore::keys`): the same key for `3` and `3.00`, `C3` and `C3  `.
pub(super) fn key_of_formed(
    input: &[u8],
    spans: &[(usize, usize)],
    cols: &[usize],
    forms: &[KeyForm],
    dec: &mut Vec<u8>,
    keybuf: &mut Vec<u8>,
    canon: &mut Vec<u8>,
) -> Option<u128> {
    if let ([c], [form]) = (cols, forms) {
        let (a, b) = spans[*c];
        let v = decoded(&input[a..b], dec)?;
        return Some(super::filter::value_key(keys::canonical(*form, v, canon)));
    }
    keybuf.clear();
    for (&c, &form) in cols.iter().zip(forms) {
        let (a, b) = spans[c];
        let v = keys::canonical(form, decoded(&input[a..b], dec)?, canon);
        keybuf.extend_from_slice(&(v.len() as u32).to_le_bytes());
        keybuf.extend_from_slice(v);
    }
    Some(xxhash_rust::xxh3::xxh3_128(keybuf))
}

/// The key (as [`key_of_tuple`] / the list's, for a `Root` check: see
/// `RowFilter::default_dropped`) of the tuple a SET DEFAULT check writes
/// into the referencing columns, when it writes a constant into all of them.
pub(super) fn default_key(
    fk: &FkCheck,
    forms: Option<&[KeyForm]>,
    st: SubjectType,
) -> Option<(u128, Option<u128>)> {
    let Effect::Rewrite(entries) = &fk.effect else {
        return None;
    };
    if fk.redacts {
        return None;
    }
    let mut values = Vec::with_capacity(fk.columns.len());
    for c in &fk.columns {
        match entries.iter().find(|(e, _)| e == c).map(|(_, r)| r) {
            Some(Replacement::Value(v)) => {
                let mut d = Vec::new();
                super::filter::decode_escapes(v, &mut d);
                values.push(d);
            }
            _ => return None,
        }
    }
    let mut canon = Vec::new();
    let values: Vec<Vec<u8>> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let form = forms.map_or(KeyForm::Plain, |f| f[i]);
            keys::canonical(form, v, &mut canon).to_vec()
        })
        .collect();
    let tuple = if let [v] = &values[..] {
        super::filter::value_key(v)
    } else {
        let mut buf = Vec::new();
        for v in &values {
            buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
            buf.extend_from_slice(v);
        }
        xxhash_rust::xxh3::xxh3_128(&buf)
    };
    let listed = match &values[..] {
        [v] => key_of(st, v),
        _ => None,
    };
    Some((tuple, listed))
}
