//! Continuous capture's objects in the repository (design:
//! `docs/design/continuous.md` §2 and §5): the keys under `changes/`, the
//! LSN and epoch types they are built from, the JSON documents (segment
//! manifest, stream head, gap record; [`manifest`]) and the `lethe-changes 1`
//! payload codec ([`codec`], with the
//! transaction checker of [`txn`]).
//!
//! ```text
//! changes/<src>/<epoch>/head.json
//! changes/<src>/<epoch>/<YYYYMMDD>/<HH>/<first:016X>-<last:016X>.json          segment manifest
//! changes/<src>/<epoch>/<YYYYMMDD>/<HH>/<first:016X>-<last:016X>.<n:03>.chg.zst[.age]
//! changes/<src>/gaps/<ULID>.json
//! ```
//!
//! Pure: no storage and no PostgreSQL here. `<src>` is always
//! [`key_safe`] of the raw source identity (`host:port/dbname`), which the
//! functions take as it is.

pub mod codec;
pub mod ddl;
pub mod manifest;
pub mod point;
pub mod read;
pub mod txn;

pub use manifest::{
    DdlMark, GAP_FORMAT, GapReason, GapRecord, HEAD_FORMAT, Head, RelColumn, RelationDesc,
    SEGMENT_FORMAT, SegmentManifest,
};

use super::layout::{key_safe, payload_suffix};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where every continuous-capture object lives.
pub use point::Point;

pub const CHANGES_PREFIX: &str = "changes/";

/// What went wrong with a change-stream name, key or JSON document.
#[derive(Debug, thiserror::Error)]
pub enum ChangesError {
    /// Text that is not an LSN in PostgreSQL's `X/X` form.
    #[error(
        "{input:?} is not an LSN (expected two hex numbers of 1 to 8 digits, e.g. 16/B374D848)"
    )]
    BadLsn {
        /// The text as given.
        input: String,
    },
    /// Text that is not a ULID epoch.
    #[error("{input:?} is not a capture epoch (expected a 26-character ULID)")]
    BadEpoch {
        /// The text as given.
        input: String,
    },
    /// A document that is not valid JSON for its format.
    #[error("{what} {key} is not valid JSON for this format: {message}")]
    Parse {
        /// `segment manifest`, `stream head` or `gap record`.
        what: &'static str,
        /// The object's key.
        key: String,
        /// The JSON parser's message.
        message: String,
    },
    /// A document written by a newer Lethe.
    #[error(
        "{what} {key} has format {found}, newer than this lethe understands ({supported}); upgrade lethe to read it"
    )]
    TooNew {
        /// `segment manifest`, `stream head` or `gap record`.
        what: &'static str,
        /// The object's key.
        key: String,
        /// The format it declares.
        found: u32,
        /// The newest format this build reads.
        supported: u32,
    },
    /// A document that parses but breaks one of its rules.
    #[error("{what} {key} is inconsistent: {rule}")]
    Invalid {
        /// `segment manifest`, `stream head` or `gap record`.
        what: &'static str,
        /// The object's key.
        key: String,
        /// The broken rule, with the values that break it.
        rule: String,
    },
}

/// A PostgreSQL WAL position (`pg_lsn`). Displayed, parsed and serialised
/// as PostgreSQL prints it: `16/B374D848`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Lsn(pub u64);

impl Lsn {
    /// The LSN as 16 upper-case hex digits: the fixed-width form keys use,
    /// so that they sort in LSN order.
    pub fn hex16(&self) -> String {
        format!("{:016X}", self.0)
    }
}

impl std::fmt::Display for Lsn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// Up to 8 hex digits (either case), nothing else: what `pg_lsn_in` takes.
fn lsn_half(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

impl std::str::FromStr for Lsn {
    type Err = ChangesError;
    fn from_str(s: &str) -> Result<Lsn, ChangesError> {
        let parsed = s
            .split_once('/')
            .and_then(|(hi, lo)| Some((lsn_half(hi)? << 32) | lsn_half(lo)?));
        parsed.map(Lsn).ok_or_else(|| ChangesError::BadLsn {
            input: s.to_string(),
        })
    }
}

impl TryFrom<String> for Lsn {
    type Error = ChangesError;
    fn try_from(s: String) -> Result<Lsn, ChangesError> {
        s.parse()
    }
}

impl From<Lsn> for String {
    fn from(l: Lsn) -> String {
        l.to_string()
    }
}

/// Whether `s` is a canonical ULID: 26 upper-case Crockford base-32
/// characters (no I, L, O, U), the first at most `7` (128 bits).
pub(crate) fn is_ulid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 26
        && b[0] <= b'7'
        && b.iter().all(|&c| {
            c.is_ascii_digit()
                || (c.is_ascii_uppercase() && !matches!(c, b'I' | b'L' | b'O' | b'U'))
        })
}

/// A capture epoch: the ULID minted when a permanent slot is created. A
/// new slot after a gap starts a new epoch; ULIDs sort by creation time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Epoch(String);

impl Epoch {
    /// A new epoch, minted now.
    #[allow(clippy::new_without_default)] // a "default" epoch would be a fresh random one: surprising
    pub fn new() -> Epoch {
        Epoch(ulid::Ulid::generate().to_string())
    }

    /// The ULID text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Epoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Epoch {
    type Err = ChangesError;
    fn from_str(s: &str) -> Result<Epoch, ChangesError> {
        if is_ulid(s) {
            Ok(Epoch(s.to_string()))
        } else {
            Err(ChangesError::BadEpoch {
                input: s.to_string(),
            })
        }
    }
}

impl TryFrom<String> for Epoch {
    type Error = ChangesError;
    fn try_from(s: String) -> Result<Epoch, ChangesError> {
        s.parse()
    }
}

impl From<Epoch> for String {
    fn from(e: Epoch) -> String {
        e.0
    }
}

/// `changes/<src>/`: everything of one source.
pub fn source_prefix(src: &str) -> String {
    format!("{CHANGES_PREFIX}{}/", key_safe(src))
}

/// `changes/<src>/<epoch>/`: one slot's stream.
pub fn stream_prefix(src: &str, epoch: &Epoch) -> String {
    format!("{CHANGES_PREFIX}{}/{epoch}/", key_safe(src))
}

/// `changes/<src>/head.json`: the source's stream head, rewritten after
/// every segment (and at least once a minute while idle); it names the
/// current epoch, so finding it needs no listing.
pub fn head_key(src: &str) -> String {
    format!("{}head.json", source_prefix(src))
}

/// `changes/<src>/gaps/`: the source's gap records.
pub fn gaps_prefix(src: &str) -> String {
    format!("{CHANGES_PREFIX}{}/gaps/", key_safe(src))
}

/// `changes/<src>/gaps/<id>.json`, `id` a ULID (passed through
/// [`key_safe`] too, so no id can leave the prefix).
pub fn gap_key(src: &str, id: &str) -> String {
    format!("{}{}.json", gaps_prefix(src), key_safe(id))
}

/// A new gap record id (a ULID, minted now).
pub fn new_gap_id() -> String {
    ulid::Ulid::generate().to_string()
}

/// The common stem of a segment's keys,
/// `changes/<src>/<epoch>/<YYYYMMDD>/<HH>/<first:016X>`: the hour is the
/// first commit's (UTC) and the LSN is fixed-width, so keys sort in commit
/// order. Parts are named from the stem alone (they are written before the
/// last commit is known); the manifest adds `-<last:016X>.json`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentStem(String);

impl SegmentStem {
    /// The stem of the segment of `src`'s stream `epoch` whose first
    /// commit is at `first_commit_lsn` (committed at `first_commit_at`).
    pub fn new(
        src: &str,
        epoch: &Epoch,
        first_commit_at: DateTime<Utc>,
        first_commit_lsn: Lsn,
    ) -> SegmentStem {
        SegmentStem(format!(
            "{}{}/{}",
            stream_prefix(src, epoch),
            first_commit_at.format("%Y%m%d/%H"),
            first_commit_lsn.hex16(),
        ))
    }

    /// The stem itself.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The segment manifest's key: stem + `-<last:016X>.json`.
    pub fn manifest_key(&self, last_commit_lsn: Lsn) -> String {
        format!("{}-{}.json", self.0, last_commit_lsn.hex16())
    }

    /// Payload part `n`'s key: stem + `.NNN.chg.zst`, + `.age` when sealed
    /// (as [`payload_suffix`] names snapshot payloads).
    pub fn part_key(&self, n: u32, sealed: bool) -> String {
        format!("{}.{n:03}.chg{}", self.0, payload_suffix(sealed))
    }
}

/// What a segment manifest's key says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentKey {
    /// The source as it is in keys ([`key_safe`] of the identity).
    pub src_safe: String,
    /// The stream.
    pub epoch: Epoch,
    /// The hour of the first commit (the `<YYYYMMDD>/<HH>` directories).
    pub hour: DateTime<Utc>,
    /// The first commit's LSN.
    pub first: Lsn,
    /// The last commit's LSN.
    pub last: Lsn,
}

/// Whether `s` is what [`key_safe`] makes of some name (canonical: it
/// decodes to UTF-8 that encodes back to `s`).
fn is_key_safe(s: &str) -> bool {
    if s == "=" {
        return true;
    }
    let b = s.as_bytes();
    let mut raw = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' {
            let hex = |c: u8| c.is_ascii_digit() || (b'A'..=b'F').contains(&c);
            match (b.get(i + 1), b.get(i + 2)) {
                (Some(&h), Some(&l)) if hex(h) && hex(l) => {
                    let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) else {
                        return false;
                    };
                    raw.push(v);
                    i += 3;
                }
                _ => return false,
            }
        } else {
            raw.push(b[i]);
            i += 1;
        }
    }
    match String::from_utf8(raw) {
        Ok(name) => !name.is_empty() && key_safe(&name) == s,
        Err(_) => false,
    }
}

/// Exactly 16 upper-case hex digits.
fn hex16_lsn(s: &str) -> Option<Lsn> {
    let ok = s.len() == 16
        && s.bytes()
            .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c));
    if !ok {
        return None;
    }
    u64::from_str_radix(s, 16).ok().map(Lsn)
}

/// Parses a segment manifest's key,
/// `changes/<src>/<epoch>/<YYYYMMDD>/<HH>/<first:016X>-<last:016X>.json`,
/// exactly as [`SegmentStem::manifest_key`] writes it (a canonical
/// key-safe source, a ULID epoch, a real date and hour, upper-case
/// fixed-width LSNs with first ≤ last). `None` for anything else: heads,
/// parts, gap records, garbage.
pub fn parse_manifest_key(key: &str) -> Option<SegmentKey> {
    let rest = key.strip_prefix(CHANGES_PREFIX)?;
    let mut segs = rest.split('/');
    let (src, epoch, day, hour, file) = (
        segs.next()?,
        segs.next()?,
        segs.next()?,
        segs.next()?,
        segs.next()?,
    );
    if segs.next().is_some() || !is_key_safe(src) {
        return None;
    }
    let epoch: Epoch = epoch.parse().ok()?;
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|c| c.is_ascii_digit());
    if !digits(day, 8) || !digits(hour, 2) {
        return None;
    }
    let at = chrono::NaiveDateTime::parse_from_str(&format!("{day}{hour}0000"), "%Y%m%d%H%M%S")
        .ok()?
        .and_utc();
    let (first, last) = file.strip_suffix(".json")?.split_once('-')?;
    let (first, last) = (hex16_lsn(first)?, hex16_lsn(last)?);
    if first > last {
        return None;
    }
    Some(SegmentKey {
        src_safe: src.to_string(),
        epoch,
        hour: at,
        first,
        last,
    })
}

#[cfg(test)]
mod tests;
