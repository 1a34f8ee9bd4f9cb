//! The evidence log: one small JSON record in `evidence/` for every restore,
//! drill, prune, erasure batch and leak detection, chained by hash, so an
//! auditor (and the on-call engineer) can see what Lethe did with erased
//! people and trust that nobody removed or edited a line since.
//!
//! **Records** ([`Record`]) say what happened, when, on which host, which
//! snapshot or point, the erasure list state applied (count and digest),
//! counts, and the Lethe version. Never a raw subject id, never an error text
//! (a database error can quote a row): a failed step is named, not quoted.
//!
//! **Keys** are `evidence/<seq, 12 digits>-<BLAKE3 of the record's bytes,
//! 64 hex>.json`. Each record carries `prev`, the hash of the record before
//! it (none for the first), so:
//! - an edited record no longer hashes to its key;
//! - a removed record leaves a hole in the sequence, and its successor's
//!   `prev` names a hash nobody has;
//! - the newest record's removal is caught by `evidence/head.json`, written
//!   after each record with its sequence number and hash; and the
//!   `evidence.appended` event carries the same hash into the logs, an
//!   anchor outside the bucket.
//!
//! **Writers** take the `locks/evidence.json` lease (the same best-effort
//! lease as the snapshot lock), waiting their turn, so several hosts on one
//! repository append one after another. A writer that stalled past its
//! lease could still write a second record with the same sequence number:
//! the keys differ (their hashes do), nothing is overwritten, and
//! `lethe evidence verify` reports the fork by name. Never silent.
//!
//! **Keeping**: evidence holds no personal data, so it is kept by its own
//! rule (`evidence.keep_days`, default five years), not the retention of
//! snapshots, and the bucket's lifecycle rule never matches it. Expiry
//! ([`expire`]) first writes `evidence/horizon.json` naming the last
//! record it removes, then removes from the oldest, so the chain still
//! verifies from the horizon.

mod chain;
#[cfg(test)]
mod tests;
mod turn;

pub use chain::{Broken, Chain, Verified, expire, newest_of, read_chain, verify};
pub use turn::EarlyTurn;
use turn::take_turn;

use super::lease::LeaseError;
use super::manifest::ListState;
use crate::storage::{Storage, StorageError, StorageExt};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Where the records live, relative to the repository.
pub const PREFIX: &str = "evidence/";
/// The newest record's sequence number and hash.
pub const HEAD_KEY: &str = "evidence/head.json";
/// The last record expiry removed: where the kept chain starts.
pub const HORIZON_KEY: &str = "evidence/horizon.json";
/// The writers' lease.
pub const LOCK_KEY: &str = "locks/evidence.json";
/// Record format written by this version.
pub const FORMAT: u32 = 1;
/// Days records are kept unless `evidence.keep_days` says otherwise.
pub const DEFAULT_KEEP_DAYS: u32 = 1825;

/// `[evidence]`: how long records are kept.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvidenceConfig {
    /// Records older than this many days are removed by retention (the
    /// evidence holds no personal data: five years by default, not 35 days).
    pub keep_days: u32,
}

impl Default for EvidenceConfig {
    fn default() -> Self {
        Self {
            keep_days: DEFAULT_KEEP_DAYS,
        }
    }
}

/// How long a writer waits for its turn before giving up.
const WAIT_FOR_TURN: Duration = Duration::from_secs(120);

/// What a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Restore,
    Drill,
    Prune,
    Erasure,
    Leak,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Restore => "restore",
            Kind::Drill => "drill",
            Kind::Prune => "prune",
            Kind::Erasure => "erasure",
            Kind::Leak => "leak",
        }
    }
}

/// What one caller has to say: the chain fields are added by [`append`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub kind: Kind,
    /// What exactly: `completed`/`failed` for restores and drills, `add`,
    /// `remove`, `sync` for erasure batches, `detected` for leaks…
    pub action: String,
    /// The snapshot restored or checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// The point a point-in-time restore went to (as asked, and the last
    /// commit applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point: Option<String>,
    /// The erasure list state applied or reached: count and digest only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erasure_list: Option<ListState>,
    /// Counts: rows, tables, dropped, deleted, entries…
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counts: BTreeMap<String, u64>,
    /// Short words, never an error text or an id: the step that failed,
    /// where a restore went (`database`, `file`, `dry_run`)…
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub notes: BTreeMap<String, String>,
}

impl Entry {
    pub fn new(kind: Kind, action: &str) -> Entry {
        Entry {
            kind,
            action: action.to_string(),
            snapshot: None,
            point: None,
            erasure_list: None,
            counts: BTreeMap::new(),
            notes: BTreeMap::new(),
        }
    }

    pub fn count(mut self, name: &str, n: u64) -> Entry {
        self.counts.insert(name.to_string(), n);
        self
    }

    pub fn note(mut self, name: &str, value: &str) -> Entry {
        self.notes.insert(name.to_string(), value.to_string());
        self
    }

    pub fn snapshot(mut self, id: impl ToString) -> Entry {
        self.snapshot = Some(id.to_string());
        self
    }

    pub fn list(mut self, state: ListState) -> Entry {
        self.erasure_list = Some(state);
        self
    }
}

/// One stored record: the entry, where it sits in the chain, and who wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub format: u32,
    pub seq: u64,
    /// BLAKE3 (hex) of the previous record's bytes; `None` for the first.
    pub prev: Option<String>,
    pub at: DateTime<Utc>,
    pub host: String,
    pub lethe_version: String,
    #[serde(flatten)]
    pub entry: Entry,
}

/// `evidence/head.json` and `evidence/horizon.json`: a sequence number and
/// the hash of the record that had it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub seq: u64,
    pub hash: String,
    pub at: DateTime<Utc>,
}

/// What [`append`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub key: String,
    pub seq: u64,
    pub hash: String,
}

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("evidence log in {repo}: {source}")]
    Storage { repo: String, source: StorageError },
    #[error(
        "evidence log: another writer held {LOCK_KEY} for {waited:?} ({last}); the record was not written"
    )]
    Busy { waited: Duration, last: String },
    #[error("evidence log: {0}")]
    Lease(#[from] LeaseError),
    #[error("evidence object {key} is not valid: {message}")]
    Damaged { key: String, message: String },
}

/// The key of record `seq` whose bytes hash to `hash`.
pub fn record_key(seq: u64, hash: &str) -> String {
    format!("{PREFIX}{seq:012}-{hash}.json")
}

/// `(seq, hash)` of a record key, or `None` for any other object.
pub fn parse_record_key(key: &str) -> Option<(u64, &str)> {
    let stem = key.strip_prefix(PREFIX)?.strip_suffix(".json")?;
    let (seq, hash) = stem.split_once('-')?;
    let ok = seq.len() == 12
        && seq.bytes().all(|b| b.is_ascii_digit())
        && hash.len() == 64
        && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !ok {
        return None;
    }
    Some((seq.parse().ok()?, hash))
}

/// BLAKE3 of `bytes`, hex.
pub fn hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

fn storage_err(storage: &dyn Storage, source: StorageError) -> EvidenceError {
    EvidenceError::Storage {
        repo: storage.describe(),
        source,
    }
}

/// Reads a [`Link`] object, `None` when absent.
async fn read_link(storage: &dyn Storage, key: &str) -> Result<Option<Link>, EvidenceError> {
    match storage.get_bytes(key).await {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| EvidenceError::Damaged {
                key: key.into(),
                message: e.to_string(),
            }),
        Err(StorageError::NotFound { .. }) => Ok(None),
        Err(e) => Err(storage_err(storage, e)),
    }
}

async fn write_link(storage: &dyn Storage, key: &str, link: &Link) -> Result<(), EvidenceError> {
    let body = serde_json::to_vec_pretty(link).expect("a link serialises");
    storage
        .put_bytes(key, body.into())
        .await
        .map(|_| ())
        .map_err(|e| storage_err(storage, e))
}

/// One record as listed: its number, the hash its name gives, the object.
pub(crate) struct Listed {
    pub seq: u64,
    pub hash: String,
    pub meta: crate::storage::ObjectMeta,
}

/// What `evidence/` holds: the records sorted by key (so by number, then
/// hash), and the objects that are neither records nor head nor horizon.
pub(crate) struct Listing {
    pub records: Vec<Listed>,
    pub strays: Vec<String>,
}

/// Lists `evidence/` once, for every reader of the chain.
pub(crate) async fn list_records(storage: &dyn Storage) -> Result<Listing, EvidenceError> {
    let listed = storage
        .list(PREFIX)
        .await
        .map_err(|e| storage_err(storage, e))?;
    let mut out = Listing {
        records: Vec::new(),
        strays: Vec::new(),
    };
    for meta in listed {
        if meta.key == HEAD_KEY || meta.key == HORIZON_KEY {
            continue;
        }
        match parse_record_key(&meta.key) {
            Some((seq, h)) => out.records.push(Listed {
                seq,
                hash: h.to_string(),
                meta,
            }),
            None => out.strays.push(meta.key),
        }
    }
    out.records.sort_by(|a, b| a.meta.key.cmp(&b.meta.key));
    out.strays.sort();
    Ok(out)
}

/// One object's bytes.
pub(crate) async fn fetch(storage: &dyn Storage, key: &str) -> Result<bytes::Bytes, EvidenceError> {
    storage
        .get_bytes(key)
        .await
        .map_err(|e| storage_err(storage, e))
}

/// The newest record as the repository shows it: the highest listed
/// sequence number, or the head when it is ahead (its record was removed:
/// the next record chains onto the head, so the hole stays visible).
async fn tip(storage: &dyn Storage) -> Result<Option<(u64, String)>, EvidenceError> {
    let records = list_records(storage).await?.records;
    // The smallest key at the highest number: one rule for every writer.
    let top = records.last().map(|r| r.seq);
    let best = records
        .iter()
        .find(|r| Some(r.seq) == top)
        .map(|r| (r.seq, r.hash.clone()));
    let head = read_link(storage, HEAD_KEY).await?;
    let horizon = read_link(storage, HORIZON_KEY).await?;
    Ok([
        best,
        head.map(|h| (h.seq, h.hash)),
        horizon.map(|h| (h.seq, h.hash)),
    ]
    .into_iter()
    .flatten()
    .max_by_key(|(s, _)| *s))
}

/// Appends `entry` to the chain and returns where it went. Waits its turn
/// behind other writers (up to two minutes) and logs `evidence.appended`.
///
/// # Errors
/// Storage errors, another writer holding the lease too long, a damaged head.
pub async fn append(storage: Arc<dyn Storage>, entry: Entry) -> Result<Appended, EvidenceError> {
    append_with(storage, entry, SETTLE).await
}

/// How long a writer's lease waits to settle before it is read back.
const SETTLE: Duration = Duration::from_millis(300);

/// [`append`] with the lease's settle delay given (tests on a local
/// directory need none).
///
/// # Errors
/// As [`append`].
pub async fn append_with(
    storage: Arc<dyn Storage>,
    entry: Entry,
    settle: Duration,
) -> Result<Appended, EvidenceError> {
    append_in_turn(storage, entry, settle, None).await
}

/// [`append_with`], in `early`'s turn when it still holds one.
async fn append_in_turn(
    storage: Arc<dyn Storage>,
    entry: Entry,
    settle: Duration,
    early: Option<EarlyTurn>,
) -> Result<Appended, EvidenceError> {
    let held = match early {
        Some(t) => t.claim().await,
        None => None,
    };
    let lease = match held {
        Some(l) => l,
        None => take_turn(&storage, settle).await?,
    };
    let out = append_locked(storage.as_ref(), entry).await;
    lease.release_bounded().await;
    let out = out?;
    tracing::info!(
        event = "evidence.appended",
        kind = out.kind.as_str(),
        action = %out.action,
        seq = out.appended.seq,
        hash = %out.appended.hash,
        key = %out.appended.key,
    );
    Ok(out.appended)
}

struct Written {
    appended: Appended,
    kind: Kind,
    action: String,
}

async fn append_locked(storage: &dyn Storage, entry: Entry) -> Result<Written, EvidenceError> {
    let tip = tip(storage).await?;
    let (seq, prev) = match tip {
        Some((s, h)) => (s + 1, Some(h)),
        None => (1, None),
    };
    let record = Record {
        format: FORMAT,
        seq,
        prev,
        at: Utc::now(),
        host: super::holder::host_name(),
        lethe_version: env!("CARGO_PKG_VERSION").to_string(),
        entry,
    };
    let body = serde_json::to_vec_pretty(&record).expect("a record serialises");
    let h = hash(&body);
    let key = record_key(seq, &h);
    storage
        .put_bytes(&key, body.into())
        .await
        .map_err(|e| storage_err(storage, e))?;
    write_link(
        storage,
        HEAD_KEY,
        &Link {
            seq,
            hash: h.clone(),
            at: record.at,
        },
    )
    .await?;
    Ok(Written {
        appended: Appended { key, seq, hash: h },
        kind: record.entry.kind,
        action: record.entry.action,
    })
}

/// Appends `entry`, or logs `evidence.failed` at ERROR when it cannot: the
/// work the record describes is done and stays done; the missing record is
/// said loudly (the log is the evidence then).
pub async fn record(storage: Arc<dyn Storage>, entry: Entry) -> Option<Appended> {
    record_in_turn(storage, entry, None).await
}

/// [`record`], in `early`'s turn when it still holds one (the wait for the
/// lease to settle then overlapped the caller's last work).
pub async fn record_in_turn(
    storage: Arc<dyn Storage>,
    entry: Entry,
    early: Option<EarlyTurn>,
) -> Option<Appended> {
    let (kind, action) = (entry.kind, entry.action.clone());
    match append_in_turn(storage, entry, SETTLE, early).await {
        Ok(a) => Some(a),
        Err(e) => {
            tracing::error!(
                event = "evidence.failed",
                kind = kind.as_str(),
                action = %action,
                error = %e,
                "the evidence record was not written"
            );
            None
        }
    }
}
