//! The `lethe-changes 1` payload (design §2.2): the text a segment's parts
//! hold once unsealed and decompressed.
//!
//! The first line is `lethe-changes 1`; then one record per line (`\n`
//! terminated), fields split on `\t`, each in PostgreSQL COPY text
//! escaping. `\N` is NULL and the two-byte field `\u` is pgoutput's
//! "unchanged TOAST value" (a real backslash is always written `\\`, so it
//! cannot collide). LSNs are in PostgreSQL's `X/X` form.
//!
//! ```text
//! B <commit_lsn> <xid> <commit_time>     commit_time: µs since 2000-01-01
//! R <relid> <relation description as JSON>
//! I <relid> <cols...>
//! U <relid> - <new cols...>
//! U <relid> K|O <n> <n old cols...> <new cols...>
//! D <relid> K|O <old cols...>
//! T <flags> <relid>...
//! M <prefix> <content>
//! C <commit_lsn> <end_lsn>
//! ```

pub use super::read::{CodecError, CodecErrorKind, RecordReader};
pub use super::txn::{TxnChecker, TxnError, TxnSummary};

use super::Lsn;
use chrono::{DateTime, Utc};
use std::io::{self, Write};

/// The payload's first line without its version.
pub const PAYLOAD_MAGIC: &str = "lethe-changes";
/// The payload version this build writes and reads; newer ones are refused.
pub const PAYLOAD_VERSION: u32 = 1;

/// One column value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    /// SQL NULL (`\N`).
    Null,
    /// An unchanged TOAST value pgoutput did not send (`\u`).
    Unchanged,
    /// The value's text form, as the type's output function renders it.
    Text(Vec<u8>),
}

/// Which old tuple pgoutput sent: the replica identity's key columns
/// (`K`, the other columns NULL) or the whole row (`O`, REPLICA IDENTITY
/// FULL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OldKind {
    /// `K`: key columns only.
    Key,
    /// `O`: the full old row.
    Full,
}

impl OldKind {
    fn tag(self) -> &'static str {
        match self {
            OldKind::Key => "K",
            OldKind::Full => "O",
        }
    }
}

/// One payload record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Record {
    /// A transaction starts.
    Begin {
        /// The commit record's LSN.
        commit_lsn: Lsn,
        /// Transaction id.
        xid: u32,
        /// Commit time, µs since 2000-01-01 UTC (as pgoutput sends it).
        commit_time: i64,
    },
    /// The shape of a relation from here on in this segment (written
    /// before the relation's first change in a segment, and again when a
    /// Relation message changes it): each change has the shape of the
    /// last `R` of its relid before it.
    Relation(crate::repo::changes::manifest::RelationDesc),
    /// A row inserted.
    Insert {
        /// Relation oid.
        relid: u32,
        /// The new row.
        new: Vec<Value>,
    },
    /// A row updated.
    Update {
        /// Relation oid.
        relid: u32,
        /// The old key or row, when pgoutput sent one.
        old: Option<(OldKind, Vec<Value>)>,
        /// The new row.
        new: Vec<Value>,
    },
    /// A row deleted.
    Delete {
        /// Relation oid.
        relid: u32,
        /// What `old` holds.
        kind: OldKind,
        /// The old key or row.
        old: Vec<Value>,
    },
    /// Tables truncated.
    Truncate {
        /// 1 = CASCADE, 2 = RESTART IDENTITY.
        flags: u8,
        /// The relations truncated.
        relids: Vec<u32>,
    },
    /// A transactional logical decoding message.
    Message {
        /// The message's prefix (`lethe.ddl` is ours).
        prefix: String,
        /// Its content.
        content: Vec<u8>,
    },
    /// The transaction committed.
    Commit {
        /// The commit record's LSN.
        commit_lsn: Lsn,
        /// The end of the commit record.
        end_lsn: Lsn,
    },
}

impl Record {
    /// The record's one-letter tag.
    pub fn tag(&self) -> char {
        match self {
            Record::Begin { .. } => 'B',
            Record::Relation(_) => 'R',
            Record::Insert { .. } => 'I',
            Record::Update { .. } => 'U',
            Record::Delete { .. } => 'D',
            Record::Truncate { .. } => 'T',
            Record::Message { .. } => 'M',
            Record::Commit { .. } => 'C',
        }
    }
}

/// Seconds from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
const PG_EPOCH_UNIX_SECS: i64 = 946_684_800;

/// A pgoutput commit time (µs since 2000-01-01 UTC) as a time; `None`
/// outside what `DateTime` holds.
pub fn commit_time_to_utc(t: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(t.checked_add(PG_EPOCH_UNIX_SECS * 1_000_000)?)
}

/// A time as pgoutput's commit time (µs since 2000-01-01 UTC), the inverse
/// of [`commit_time_to_utc`] (sub-microsecond digits are dropped); `None`
/// when it does not fit.
pub fn utc_to_commit_time(t: DateTime<Utc>) -> Option<i64> {
    t.timestamp_micros()
        .checked_sub(PG_EPOCH_UNIX_SECS * 1_000_000)
}

/// Writes the payload's first line, `lethe-changes 1`.
///
/// # Errors
/// The writer's.
pub fn write_header(out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "{PAYLOAD_MAGIC} {PAYLOAD_VERSION}")
}

/// Writes `v` in COPY text escaping straight into `out`: `\\ \t \n \r`
/// escaped, every other byte as it is.
fn write_escaped(out: &mut impl Write, v: &[u8]) -> io::Result<()> {
    let mut start = 0;
    for (i, &b) in v.iter().enumerate() {
        let esc: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => continue,
        };
        out.write_all(&v[start..i])?;
        out.write_all(esc)?;
        start = i + 1;
    }
    out.write_all(&v[start..])
}

/// Writes each value preceded by a tab.
fn write_values(out: &mut impl Write, values: &[Value]) -> io::Result<()> {
    for v in values {
        match v {
            Value::Null => out.write_all(b"\t\\N")?,
            Value::Unchanged => out.write_all(b"\t\\u")?,
            Value::Text(t) => {
                out.write_all(b"\t")?;
                write_escaped(out, t)?;
            }
        }
    }
    Ok(())
}

/// Writes one record as one line. Nothing is allocated; the line goes out
/// in several writes, so `out` should buffer (a `BufWriter`, a zstd
/// encoder).
///
/// # Errors
/// The writer's.
pub fn write_record(out: &mut impl Write, r: &Record) -> io::Result<()> {
    match r {
        Record::Begin {
            commit_lsn,
            xid,
            commit_time,
        } => {
            return writeln!(out, "B\t{commit_lsn}\t{xid}\t{commit_time}");
        }
        Record::Relation(desc) => {
            out.write_all(b"R\t")?;
            let json = serde_json::to_vec(desc).map_err(io::Error::other)?;
            write_escaped(out, &json)?;
        }
        Record::Insert { relid, new } => {
            write!(out, "I\t{relid}")?;
            write_values(out, new)?;
        }
        Record::Update { relid, old, new } => {
            match old {
                None => write!(out, "U\t{relid}\t-")?,
                Some((kind, old)) => {
                    write!(out, "U\t{relid}\t{}\t{}", kind.tag(), old.len())?;
                    write_values(out, old)?;
                }
            }
            write_values(out, new)?;
        }
        Record::Delete { relid, kind, old } => {
            write!(out, "D\t{relid}\t{}", kind.tag())?;
            write_values(out, old)?;
        }
        Record::Truncate { flags, relids } => {
            write!(out, "T\t{flags}")?;
            for r in relids {
                write!(out, "\t{r}")?;
            }
        }
        Record::Message { prefix, content } => {
            out.write_all(b"M\t")?;
            write_escaped(out, prefix.as_bytes())?;
            out.write_all(b"\t")?;
            write_escaped(out, content)?;
        }
        Record::Commit {
            commit_lsn,
            end_lsn,
        } => return writeln!(out, "C\t{commit_lsn}\t{end_lsn}"),
    }
    out.write_all(b"\n")
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
