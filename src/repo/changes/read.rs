//! Reading a `lethe-changes 1` payload back (the format is in `codec`):
//! one record at a time, every malformed line a [`CodecError`] naming its
//! line number, never a panic.

use super::Lsn;
use super::codec::{OldKind, PAYLOAD_MAGIC, PAYLOAD_VERSION, Record, Value};
use crate::copytext::escape::decode_escapes;
use std::io::{self, BufRead};

/// What was wrong with a payload, at which line.
#[derive(Debug, thiserror::Error)]
#[error("changes payload line {line}: {kind}")]
pub struct CodecError {
    /// 1-based line number (the header is line 1).
    pub line: u64,
    /// What was wrong.
    pub kind: CodecErrorKind,
}

/// What was wrong with a payload line.
#[derive(Debug, thiserror::Error)]
pub enum CodecErrorKind {
    /// The first line is not a `lethe-changes` header this build reads.
    #[error("not a lethe-changes payload: the first line is {0:?}, expected \"lethe-changes 1\"")]
    NotPayload(String),
    /// The header names a newer payload version.
    #[error(
        "written by a newer Lethe (payload format {0}, this build reads {PAYLOAD_VERSION}); upgrade lethe to read it"
    )]
    Newer(u32),
    /// The last line has no newline.
    #[error("the last line has no newline: the payload is truncated")]
    Truncated,
    /// The line's first field is not a known tag.
    #[error("unknown record tag {0:?}")]
    UnknownTag(String),
    /// Too few or too many fields for the tag.
    #[error("{tag} record has {found} fields, expected {expected}")]
    FieldCount {
        /// The record's tag.
        tag: char,
        /// How many it should have, e.g. `5` or `at least 3`.
        expected: String,
        /// How many it has (the tag included).
        found: usize,
    },
    /// A field that should be an LSN is not.
    #[error("field {field} is not an LSN: {text:?}")]
    BadLsn {
        /// 1-based field number (the tag is field 1).
        field: usize,
        /// The field, shortened.
        text: String,
    },
    /// A field that should be a number is not (or does not fit).
    #[error("field {field} is not a {what}: {text:?}")]
    BadNumber {
        /// 1-based field number.
        field: usize,
        /// What it should be, e.g. `relid`.
        what: &'static str,
        /// The field, shortened.
        text: String,
    },
    /// An old-tuple kind other than `K`, `O` (or `-` for updates).
    #[error("field {field} is not an old-tuple kind: {text:?}")]
    BadKind {
        /// 1-based field number.
        field: usize,
        /// The field, shortened.
        text: String,
    },
    /// A field ending in a backslash that escapes nothing.
    #[error("field {field} ends in a stray backslash")]
    StrayBackslash {
        /// 1-based field number.
        field: usize,
    },
    /// A message prefix that is NULL, `\u` or not UTF-8, or NULL content.
    #[error("field {field}: {what}")]
    BadField {
        /// 1-based field number.
        field: usize,
        /// What is wrong with it.
        what: &'static str,
    },
    /// Reading failed.
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
}

/// At most 40 characters of `b`, for an error message.
fn shown(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.into_owned(),
    }
}

/// Reads a payload record by record, checking every line.
pub struct RecordReader<R: BufRead> {
    r: R,
    line: u64,
    buf: Vec<u8>,
}

impl<R: BufRead> RecordReader<R> {
    /// Reads and checks the header.
    ///
    /// # Errors
    /// No header or another one, a newer version, a read error.
    pub fn new(r: R) -> Result<RecordReader<R>, CodecError> {
        let mut me = RecordReader {
            r,
            line: 0,
            buf: Vec::new(),
        };
        let err = |kind| CodecError { line: 1, kind };
        let Some(header) = me.read_line()? else {
            return Err(err(CodecErrorKind::NotPayload(String::new())));
        };
        let version = std::str::from_utf8(header)
            .ok()
            .and_then(|h| h.strip_prefix(PAYLOAD_MAGIC)?.strip_prefix(' '))
            .filter(|v| !v.is_empty() && v.bytes().all(|c| c.is_ascii_digit()))
            .map(|v| v.parse::<u32>().unwrap_or(u32::MAX));
        match version {
            Some(PAYLOAD_VERSION) => Ok(me),
            Some(v) if v > PAYLOAD_VERSION => Err(err(CodecErrorKind::Newer(v))),
            _ => Err(err(CodecErrorKind::NotPayload(shown(header)))),
        }
    }

    /// The number of the last line read (0 before any).
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The next line without its newline, `None` at a clean end.
    fn read_line(&mut self) -> Result<Option<&[u8]>, CodecError> {
        self.buf.clear();
        let n = self
            .r
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| CodecError {
                line: self.line + 1,
                kind: CodecErrorKind::Io(e),
            })?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        match self.buf.split_last() {
            Some((b'\n', line)) => Ok(Some(line)),
            _ => Err(CodecError {
                line: self.line,
                kind: CodecErrorKind::Truncated,
            }),
        }
    }

    /// The next record, `None` at the end of the payload.
    ///
    /// # Errors
    /// A bad line (naming its number) or a read error.
    pub fn next_record(&mut self) -> Result<Option<Record>, CodecError> {
        let line_no = self.line + 1;
        let Some(line) = self.read_line()? else {
            return Ok(None);
        };
        let fields: Vec<&[u8]> = line.split(|&b| b == b'\t').collect();
        parse_record(&fields).map(Some).map_err(|kind| CodecError {
            line: line_no,
            kind,
        })
    }
}

/// A number field: ASCII digits only (a leading `-` when `signed`).
fn number<T: std::str::FromStr>(
    fields: &[&[u8]],
    i: usize,
    what: &'static str,
    signed: bool,
) -> Result<T, CodecErrorKind> {
    let f = fields.get(i).copied().unwrap_or_default();
    let digits = if signed {
        f.strip_prefix(b"-").unwrap_or(f)
    } else {
        f
    };
    let parsed = if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
        std::str::from_utf8(f).ok().and_then(|s| s.parse().ok())
    } else {
        None
    };
    parsed.ok_or_else(|| CodecErrorKind::BadNumber {
        field: i + 1,
        what,
        text: shown(f),
    })
}

fn lsn(fields: &[&[u8]], i: usize) -> Result<Lsn, CodecErrorKind> {
    let f = fields.get(i).copied().unwrap_or_default();
    std::str::from_utf8(f)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| CodecErrorKind::BadLsn {
            field: i + 1,
            text: shown(f),
        })
}

fn old_kind(fields: &[&[u8]], i: usize) -> Result<OldKind, CodecErrorKind> {
    match fields.get(i).copied().unwrap_or_default() {
        b"K" => Ok(OldKind::Key),
        b"O" => Ok(OldKind::Full),
        f => Err(CodecErrorKind::BadKind {
            field: i + 1,
            text: shown(f),
        }),
    }
}

/// Field `i`'s bytes with COPY escapes decoded; `\N` and `\u` are not
/// special here (the caller checks for them).
fn text(fields: &[&[u8]], i: usize) -> Result<Vec<u8>, CodecErrorKind> {
    let f = fields.get(i).copied().unwrap_or_default();
    if !f.contains(&b'\\') {
        return Ok(f.to_vec());
    }
    let trailing = f.iter().rev().take_while(|&&b| b == b'\\').count();
    if trailing % 2 == 1 {
        return Err(CodecErrorKind::StrayBackslash { field: i + 1 });
    }
    let mut out = Vec::with_capacity(f.len());
    decode_escapes(f, &mut out);
    Ok(out)
}

/// Fields `range` as values.
fn values(fields: &[&[u8]], range: std::ops::Range<usize>) -> Result<Vec<Value>, CodecErrorKind> {
    range
        .map(|i| match fields.get(i).copied().unwrap_or_default() {
            b"\\N" => Ok(Value::Null),
            b"\\u" => Ok(Value::Unchanged),
            _ => text(fields, i).map(Value::Text),
        })
        .collect()
}

fn parse_record(fields: &[&[u8]]) -> Result<Record, CodecErrorKind> {
    let n = fields.len();
    let tag = fields.first().copied().unwrap_or_default();
    let count = |tag: char, expected: String| CodecErrorKind::FieldCount {
        tag,
        expected,
        found: n,
    };
    let exactly = |tag: char, want: usize| {
        if n == want {
            Ok(())
        } else {
            Err(count(tag, want.to_string()))
        }
    };
    let at_least = |tag: char, want: usize| {
        if n >= want {
            Ok(())
        } else {
            Err(count(tag, format!("at least {want}")))
        }
    };
    Ok(match tag {
        b"B" => {
            exactly('B', 4)?;
            Record::Begin {
                commit_lsn: lsn(fields, 1)?,
                xid: number(fields, 2, "xid", false)?,
                commit_time: number(fields, 3, "commit time", true)?,
            }
        }
        b"R" => {
            exactly('R', 2)?;
            let json = text(fields, 1)?;
            let desc = serde_json::from_slice(&json).map_err(|_| CodecErrorKind::BadField {
                field: 2,
                what: "a relation record's description is not the JSON lethe writes",
            })?;
            Record::Relation(desc)
        }
        b"I" => {
            at_least('I', 2)?;
            Record::Insert {
                relid: number(fields, 1, "relid", false)?,
                new: values(fields, 2..n)?,
            }
        }
        b"U" => {
            at_least('U', 3)?;
            let relid = number(fields, 1, "relid", false)?;
            if fields[2] == b"-" {
                Record::Update {
                    relid,
                    old: None,
                    new: values(fields, 3..n)?,
                }
            } else {
                let kind = old_kind(fields, 2)?;
                at_least('U', 4)?;
                let nold: usize = number(fields, 3, "old column count", false)?;
                let split = nold.checked_add(4).filter(|&s| s <= n).ok_or_else(|| {
                    count('U', format!("at least 4 + {nold} (the old column count)"))
                })?;
                Record::Update {
                    relid,
                    old: Some((kind, values(fields, 4..split)?)),
                    new: values(fields, split..n)?,
                }
            }
        }
        b"D" => {
            at_least('D', 3)?;
            Record::Delete {
                relid: number(fields, 1, "relid", false)?,
                kind: old_kind(fields, 2)?,
                old: values(fields, 3..n)?,
            }
        }
        b"T" => {
            at_least('T', 2)?;
            Record::Truncate {
                flags: number(fields, 1, "truncate flags", false)?,
                relids: (2..n)
                    .map(|i| number(fields, i, "relid", false))
                    .collect::<Result<_, _>>()?,
            }
        }
        b"M" => {
            exactly('M', 3)?;
            for i in [1, 2] {
                if matches!(fields[i], b"\\N" | b"\\u") {
                    return Err(CodecErrorKind::BadField {
                        field: i + 1,
                        what: "a message's prefix and content cannot be NULL or unchanged",
                    });
                }
            }
            let prefix =
                String::from_utf8(text(fields, 1)?).map_err(|_| CodecErrorKind::BadField {
                    field: 2,
                    what: "a message prefix must be UTF-8",
                })?;
            Record::Message {
                prefix,
                content: text(fields, 2)?,
            }
        }
        b"C" => {
            exactly('C', 3)?;
            Record::Commit {
                commit_lsn: lsn(fields, 1)?,
                end_lsn: lsn(fields, 2)?,
            }
        }
        other => return Err(CodecErrorKind::UnknownTag(shown(other))),
    })
}
