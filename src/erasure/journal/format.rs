//! Journal objects: what `erasures/<ULID>.json` holds, and how it is versioned.
//!
//! Format 1 (adds only; what every lethe so far wrote, and what this one
//! still writes for an object without removals, so older hosts keep syncing
//! them):
//!
//! ```json
//! {"format":1,"subject_type":"bigint","groups":[
//!   {"added_at":"2026-01-02T03:04:05Z","reference":"GDPR-17","origin":"db1","subjects":["42","43"]}]}
//! ```
//!
//! Format 2 adds `removals`, the undo of mistyped adds (`lethe erase remove`):
//!
//! ```json
//! {"format":2,"newer_lethe_required":"…","subject_type":"bigint","groups":[],"removals":[
//!   {"removed_at":"2026-01-02T04:00:00Z","reason":"typo for 43","origin":"db1","subjects":["42"]}]}
//! ```
//!
//! For one id, the later of its add and its removal wins (by `added_at` /
//! `removed_at`; an add on a tie), whatever order the objects are merged in.
//!
//! **Old readers fail closed.** A reader that ignored `removals` would bring
//! removed ids back silently, and one that refused them as "invalid" might
//! have the object deleted by hand. Format 1 readers parse the whole object
//! strictly (unknown fields refused) before looking at `format`, so the
//! first key after `format` is `newer_lethe_required`: their error names it
//! ("unknown field `newer_lethe_required`"), the sync stops, and their
//! restores refuse, because the object stays unmerged. This reader checks
//! `format` first, on its own, so a later format is refused as "written by a
//! newer lethe" before anything else is parsed.

use super::JournalError;
use crate::erasure::config::SubjectType;
use crate::erasure::store::{BatchRecord, RemovalRecord};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The newest journal object format this build reads (and writes for removals).
pub const FORMAT: u32 = 2;
/// The format of an object holding adds only.
pub const FORMAT_ADDS: u32 = 1;
/// The canary key's text (see the module doc).
const NEWER_LETHE: &str = "this journal object holds removals (format 2): a lethe that reads format 1 only must be upgraded to read it; do not delete it";

/// Only the format, read before anything else (other keys ignored).
#[derive(Deserialize)]
struct Head {
    format: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JournalObject {
    format: u32,
    #[serde(default)]
    #[allow(dead_code)] // the canary for format 1 readers; its text is not used
    newer_lethe_required: Option<String>,
    subject_type: SubjectType,
    groups: Vec<JournalGroup>,
    #[serde(default)]
    removals: Vec<JournalRemoval>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JournalGroup {
    added_at: DateTime<Utc>,
    #[serde(default)]
    reference: Option<String>,
    origin: String,
    subjects: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JournalRemoval {
    removed_at: DateTime<Utc>,
    reason: String,
    origin: String,
    subjects: Vec<String>,
}

/// The same shape, borrowing the ids (no copy of a million strings to encode
/// one object). Field order is the order written (the canary second).
#[derive(Serialize)]
struct JournalObjectRef<'a> {
    format: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    newer_lethe_required: Option<&'a str>,
    subject_type: SubjectType,
    groups: Vec<JournalGroupRef<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    removals: Vec<JournalRemovalRef<'a>>,
}

#[derive(Serialize)]
struct JournalGroupRef<'a> {
    added_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<&'a str>,
    origin: &'a str,
    subjects: &'a [String],
}

#[derive(Serialize)]
struct JournalRemovalRef<'a> {
    removed_at: DateTime<Utc>,
    reason: &'a str,
    origin: &'a str,
    subjects: &'a [String],
}

/// A decoded journal object.
#[derive(Debug, Default)]
pub(super) struct Decoded {
    pub groups: Vec<(BatchRecord, Vec<String>)>,
    pub removals: Vec<(RemovalRecord, Vec<String>)>,
}

/// Encodes adds and removals as one object: format 1 when there are no
/// removals, else format 2 with the canary for older readers.
pub(super) fn encode(
    subject_type: SubjectType,
    groups: &[(BatchRecord, Vec<String>)],
    removals: &[(RemovalRecord, Vec<String>)],
) -> Result<Vec<u8>, serde_json::Error> {
    let with_removals = !removals.is_empty();
    let obj = JournalObjectRef {
        format: if with_removals { FORMAT } else { FORMAT_ADDS },
        newer_lethe_required: with_removals.then_some(NEWER_LETHE),
        subject_type,
        groups: groups
            .iter()
            .map(|(r, s)| JournalGroupRef {
                added_at: r.added_at,
                reference: r.reference.as_deref(),
                origin: &r.origin,
                subjects: s,
            })
            .collect(),
        removals: removals
            .iter()
            .map(|(r, s)| JournalRemovalRef {
                removed_at: r.removed_at,
                reason: &r.reason,
                origin: &r.origin,
                subjects: s,
            })
            .collect(),
    };
    let ids: usize = groups.iter().map(|g| g.1.len()).sum();
    let mut out = Vec::with_capacity(ids * 16 + 256);
    serde_json::to_writer(&mut out, &obj)?;
    Ok(out)
}

pub(super) fn decode(
    key: &str,
    subject_type: SubjectType,
    data: &[u8],
) -> Result<Decoded, JournalError> {
    let bad = |message: String| JournalError::BadObject {
        key: key.to_string(),
        message,
    };
    let head: Head = serde_json::from_slice(data).map_err(|e| bad(e.to_string()))?;
    if head.format > FORMAT {
        return Err(JournalError::NewerFormat {
            key: key.to_string(),
            found: head.format,
        });
    }
    let obj: JournalObject = serde_json::from_slice(data).map_err(|e| bad(e.to_string()))?;
    if obj.format < FORMAT && !obj.removals.is_empty() {
        return Err(bad(format!(
            "format {} cannot hold removals (they need format {FORMAT})",
            obj.format
        )));
    }
    if obj.subject_type != subject_type {
        return Err(bad(format!(
            "it holds {:?} ids but erasure.subject_type is {subject_type:?}",
            obj.subject_type
        )));
    }
    Ok(Decoded {
        groups: obj
            .groups
            .into_iter()
            .map(|g| {
                (
                    BatchRecord {
                        added_at: g.added_at,
                        reference: g.reference,
                        origin: g.origin,
                    },
                    g.subjects,
                )
            })
            .collect(),
        removals: obj
            .removals
            .into_iter()
            .map(|r| {
                (
                    RemovalRecord {
                        removed_at: r.removed_at,
                        reason: r.reason,
                        origin: r.origin,
                    },
                    r.subjects,
                )
            })
            .collect(),
    })
}

#[cfg(test)]
#[path = "format_tests.rs"]
mod tests;
