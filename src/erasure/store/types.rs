//! The store's public records and its error type.

use super::{MAX_REFERENCE, STORE_VERSION};
use crate::erasure::config::SubjectType;
use crate::erasure::subject::SubjectError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the erasure list at {path} is locked by another process (a running `lethe daemon` or another `lethe erase`); use the daemon's API or wait for the other command to finish"
    )]
    Locked { path: PathBuf },
    #[error(
        "no erasure list at {path}; run `lethe erase sync` to build it from the journal in storage"
    )]
    Missing { path: PathBuf },
    #[error("cannot open the erasure list at {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error(
        "the erasure list at {path} has store version {found}, which this lethe does not know (it reads version {STORE_VERSION}); use a matching lethe release"
    )]
    UnknownVersion { path: PathBuf, found: String },
    #[error(
        "the erasure list at {path} is corrupt: {message}; move it aside and run `lethe erase sync` to rebuild it from storage"
    )]
    Corrupt { path: PathBuf, message: String },
    #[error(
        "the erasure list at {path} holds {store} ids but erasure.subject_type = {config}; a list cannot change type, point erasure.path elsewhere"
    )]
    TypeMismatch {
        path: PathBuf,
        store: String,
        config: String,
    },
    #[error("{}", invalid_message(.0))]
    Invalid(Vec<SubjectError>),
    /// One id to look up that cannot be an id of the list's type.
    #[error("{0}")]
    InvalidId(SubjectError),
    #[error("reference is too long ({0} bytes, at most {MAX_REFERENCE}) or contains a line break")]
    BadReference(usize),
    #[error(
        "--reason must say why the ids are removed: it is empty, longer than {MAX_REFERENCE} bytes ({0}) or contains a line break"
    )]
    BadReason(usize),
    #[error("{}", not_listed_message(.0))]
    NotListed(Vec<String>),
    #[error("erasure list at {path}: {op} failed: {message}")]
    Io {
        path: PathBuf,
        op: &'static str,
        message: String,
    },
}

fn invalid_message(errs: &[SubjectError]) -> String {
    let mut s = errs
        .iter()
        .take(5)
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ");
    if errs.len() > 5 {
        s.push_str(&format!("; and {} more", errs.len() - 5));
    }
    format!("{s} (nothing was added)")
}

fn not_listed_message(ids: &[String]) -> String {
    let shown: Vec<String> = ids
        .iter()
        .take(5)
        .map(|c| match crate::erasure::subject::split_subject(c) {
            (Some(name), id) => format!("{name}:{id}"),
            (None, id) => id.to_string(),
        })
        .collect();
    let more = if ids.len() > 5 {
        format!(" and {} more", ids.len() - 5)
    } else {
        String::new()
    };
    format!(
        "not on the erasure list: {}{more}; nothing was removed (check the ids with `lethe erase check`)",
        shown.join(", ")
    )
}

/// What merging one journal object did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeOutcome {
    /// Ids newly listed.
    pub added: u64,
    /// Entries removed by the object's removals.
    pub removed: u64,
}

/// Who added a batch of ids, when, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRecord {
    pub added_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Host name of the process that first acknowledged the ids.
    pub origin: String,
}

/// One listed id with its record, as `erase check` and `erase list` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryInfo {
    pub subject: String,
    pub added_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub origin: String,
    /// False while the entry waits for its journal upload.
    pub journaled: bool,
}

/// What an add did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddOutcome {
    /// Ids newly listed by this call.
    pub added: u64,
    /// Ids that were listed already (or repeated in the input).
    pub already_listed: u64,
    pub count: u64,
    pub digest: String,
    /// Acknowledged entries not yet in the journal in storage.
    pub pending: u64,
}

/// The list's summary, as `GET /v1/status` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStatus {
    pub path: PathBuf,
    pub subject_type: SubjectType,
    pub count: u64,
    pub digest: String,
    /// Acknowledged adds and removed ids not yet in the journal in storage.
    pub pending: u64,
    pub last_sync: Option<DateTime<Utc>>,
}

/// Ids waiting for their journal upload, grouped by the batch that added them.
#[derive(Debug, Default)]
pub struct PendingChunk {
    pub groups: Vec<(BatchRecord, Vec<String>)>,
    /// The pending records (one per batch) this chunk covers.
    pub(crate) keys: Vec<Vec<u8>>,
    pub(crate) ids: usize,
}

impl PendingChunk {
    /// Ids in the chunk.
    pub fn len(&self) -> usize {
        self.ids
    }
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}
