//! The COPY row filter: a streaming adapter over COPY text bytes that drops
//! the rows of erased subjects and of everything referencing them, and
//! rewrites `SET NULL` / `SET DEFAULT` references. Pure: no I/O beyond the
//! `Read` it is handed, so it is tested with in-memory input.
//!
//! COPY text: rows end at a raw `\n`, fields split on `\t`, `\N` is NULL,
//! and `\\ \t \n \r \b \f \v \NNN \xHH` escapes are decoded before a value
//! is turned into a key. The hot path allocates nothing per row: rows and
//! fields come from one SIMD pass over the bytes (`scan`), erasure-list
//! lookups are batched a block of rows at a time (`rowfilter`), and runs of
//! kept rows are copied to the output in one piece.

pub use crate::copytext::escape::{decode_escapes, decoded, encode_copy_text};
pub use crate::restore::plan::types::{
    Action, Effect, FkCheck, KeyForms, Replacement, SetRef, TablePlan,
};
use bytes::Bytes;
pub use rowfilter::{Collected, RowFilter};
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Read;

/// Bytes read from the object per refill (grown for rows longer than this).
pub const READ_BUF: usize = 1 << 20;
/// Output is handed on in pieces of about this size.
pub const OUT_CHUNK: usize = 1 << 20;

/// Hashes dropped-set keys with one folded multiply: enough for XXH3
/// output and for tagged integers (`value_key`), whose high half is a
/// constant and whose low half counts up. The hash table takes its control
/// bits from the top of the hash and its bucket from the bottom, so both
/// ends must vary: a plain fold would give every integer key the same
/// control bits.
#[derive(Default, Clone, Copy)]
pub struct FoldHasher(u64);

impl Hasher for FoldHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }
    fn write_u128(&mut self, v: u128) {
        let x = (v as u64) ^ ((v >> 64) as u64);
        let m = u128::from(x) * 0x9e37_79b9_7f4a_7c15;
        self.0 = (m as u64) ^ ((m >> 64) as u64);
    }
}

/// Keys of the rows dropped from one table, for one referenced column tuple:
/// the set a child table's foreign key is tested against.
#[derive(Debug, Default, Clone)]
pub struct KeySet(HashSet<u128, BuildHasherDefault<FoldHasher>>);

impl KeySet {
    pub fn insert(&mut self, k: u128) -> bool {
        self.0.insert(k)
    }
    /// Adds every key of `other`.
    pub fn extend(&mut self, other: &KeySet) {
        self.0.extend(other.0.iter().copied());
    }
    #[inline]
    pub fn contains(&self, k: u128) -> bool {
        self.0.contains(&k)
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The key of a (decoded) column tuple in a dropped-key set: for one value,
/// [`value_key`]; for a composite key, XXH3-128 of the length-prefixed
/// values, so `("ab", "c")` and `("a", "bc")` differ. Parent and child use
/// the same function.
#[inline]
pub fn tuple_key<'v>(
    values: impl ExactSizeIterator<Item = &'v [u8]>,
    scratch: &mut Vec<u8>,
) -> u128 {
    if values.len() == 1 {
        let mut values = values;
        return values.next().map_or(0, value_key);
    }
    scratch.clear();
    for v in values {
        scratch.extend_from_slice(&(v.len() as u32).to_le_bytes());
        scratch.extend_from_slice(v);
    }
    xxhash_rust::xxh3::xxh3_128(scratch)
}

/// The top half of the key of a value written as a plain decimal integer.
const INT_TAG: u128 = 0x4c45_5448_455f_494e_u128 << 64;

/// The dropped-set key of one (decoded) value. A plain decimal integer (how
/// PostgreSQL writes every integer key) is keyed by its value under a fixed
/// tag, with no hashing; anything else by its XXH3-128. Both are injective
/// on what they take, and a hash equal to a tagged integer is as unlikely as
/// any other 128-bit collision.
#[inline]
pub fn value_key(v: &[u8]) -> u128 {
    match decimal(v) {
        Some(n) => value_key_of_int(n),
        None => xxhash_rust::xxh3::xxh3_128(v),
    }
}

/// [`value_key`] of a value [`decimal`] read as `n`.
#[inline]
pub(crate) fn value_key_of_int(n: u64) -> u128 {
    INT_TAG | u128::from(n)
}

/// `v` as the bits of an i64 when it is written `-?[1-9][0-9]*` or `0` with
/// at most 18 digits; `None` otherwise, including for leading zeros, `+` or
/// `-0`, which another spelling of the same number would key differently as
/// text. The digits are read by the erasure list's digit loop.
#[inline]
pub(crate) fn decimal(v: &[u8]) -> Option<u64> {
    let (neg, digits) = match v {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, v),
    };
    match digits {
        [b'0'] if !neg => Some(0),
        // 18 digits: the magnitude is below 2^63, so negating cannot wrap.
        [b'1'..=b'9', ..] if digits.len() <= 18 => {
            let n = crate::erasure::digits_u64(digits)?;
            Some(if neg { n.wrapping_neg() } else { n })
        }
        _ => None,
    }
}

/// Per-table counts for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TableStats {
    pub rows_read: u64,
    pub rows_dropped: u64,
    /// Rows kept with references rewritten (SET NULL and SET DEFAULT).
    pub rows_nulled: u64,
    /// Erased subjects' rows kept with columns overwritten (a redact
    /// policy, or a declared reference's `on_erase = "redact"`).
    pub rows_redacted: u64,
    /// Erased subjects' rows kept unchanged (a keep policy).
    pub rows_kept: u64,
    /// Bytes of COPY text read.
    pub bytes_read: u64,
    /// Of `rows_dropped` and `rows_nulled`, the rows a point restore's
    /// changes put there (inserted or updated after the base; see
    /// `RowFilter::with_changes_after`). In the point report only.
    #[serde(skip)]
    pub changes_dropped: u64,
    #[serde(skip)]
    pub changes_nulled: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error(
        "{table}: row {row} has only {found} field(s) but the filter needs column {needed}; the data does not match the manifest's column list"
    )]
    ShortRow {
        table: String,
        row: u64,
        found: usize,
        needed: usize,
    },
    #[error("{table}: the data ends inside a row (no final newline): the object is truncated")]
    Truncated { table: String },
    #[error(
        "{table}: foreign key {fk} would set a column to a default that was not evaluated ({expr}); this is a bug in lethe"
    )]
    UnresolvedDefault {
        table: String,
        fk: String,
        expr: String,
    },
    #[error(
        "{table}: foreign key {fk} is ON DELETE SET DEFAULT, and its default points at a row that is dropped too (its subject is erased, or references one); PostgreSQL would refuse such a delete, so lethe refuses the restore: change the default, or the key to SET NULL or CASCADE"
    )]
    DefaultDropped { table: String, fk: String },
    #[error(
        "{table}: foreign key {fk} is ON UPDATE RESTRICT / NO ACTION, and it references a key that an erasure's SET NULL / SET DEFAULT rewrites; PostgreSQL would refuse such a delete, so lethe refuses the restore: make {fk} ON UPDATE CASCADE or SET NULL"
    )]
    UpdateRefused { table: String, fk: String },
    #[error(
        "{table}: row {row} holds a document that is not valid JSON where {check} looks for a subject's key; lethe cannot tell whether it references an erased subject, so it refuses to restore (fix or remove the declared reference's path)"
    )]
    BadJson {
        table: String,
        row: u64,
        check: String,
    },
    #[error(
        "{table}: a redaction writes pseudonyms but no pseudonym key was loaded (erasure.pseudonym_key_file); this is a bug in lethe"
    )]
    NoPseudonymKey { table: String },
    /// The destination stopped taking rows (`emit` found it gone): its own
    /// error says why.
    #[error("the loader stopped")]
    DestinationGone,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Where a check looks its key up, resolved for one run.
#[derive(Clone, Copy)]
pub enum Probe<'a> {
    Parent(&'a KeySet),
    /// This table's own record slot (a self-reference, inside a fixpoint).
    Own(usize),
    /// Its own slot or the union of the other partitions' sets (a
    /// partitioned table referencing itself).
    OwnOr(usize, &'a KeySet),
    Root,
}

/// Runs `filter` over a whole COPY stream, handing filtered output to `emit`
/// in pieces of about `OUT_CHUNK` bytes (`emit = None`: decide and record
/// only). Memory: one read buffer (grown only for a row longer than it) and
/// one output piece.
///
/// # Errors
/// Read errors (which name the object), a truncated last row, short rows,
/// and whatever `emit` returns.
pub fn run_stream<R: Read>(
    filter: &mut RowFilter<'_>,
    mut input: R,
    mut emit: Option<&mut dyn FnMut(Bytes) -> Result<(), FilterError>>,
) -> Result<(), FilterError> {
    let mut buf = vec![0u8; READ_BUF];
    let mut filled = 0;
    let mut out: Vec<u8> = Vec::with_capacity(if emit.is_some() {
        OUT_CHUNK + READ_BUF
    } else {
        0
    });
    loop {
        if filled == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let n = match input.read(&mut buf[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            if filled > 0 {
                return Err(FilterError::Truncated {
                    table: filter.plan.table.clone(),
                });
            }
            break;
        }
        filled += n;
        let used = if filter.plan.is_passthrough() {
            // Count rows and hand the bytes on as they are.
            let end = memchr::memrchr(b'\n', &buf[..filled]).map_or(0, |p| p + 1);
            filter.stats.rows_read += memchr::memchr_iter(b'\n', &buf[..end]).count() as u64;
            filter.stats.bytes_read += end as u64;
            if emit.is_some() {
                out.extend_from_slice(&buf[..end]);
            }
            end
        } else {
            filter.filter_rows(
                &buf[..filled],
                if emit.is_some() { Some(&mut out) } else { None },
            )?
        };
        buf.copy_within(used..filled, 0);
        filled -= used;
        if let Some(e) = emit.as_deref_mut()
            && out.len() >= OUT_CHUNK
        {
            let piece = std::mem::replace(&mut out, Vec::with_capacity(OUT_CHUNK + READ_BUF));
            e(Bytes::from(piece))?;
        }
    }
    if let Some(e) = emit
        && !out.is_empty()
    {
        e(Bytes::from(out))?;
    }
    Ok(())
}

mod rowfilter;

#[cfg(test)]
mod json_tests;
#[cfg(test)]
mod oracle_tests;
#[cfg(test)]
mod tests;
