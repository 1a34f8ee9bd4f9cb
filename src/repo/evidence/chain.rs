//! Reading the chain back: [`read_chain`] fetches every record, [`verify`]
//! judges it (a pure function, so every way of breaking it is a unit test),
//! [`expire`] forgets records older than `evidence.keep_days` without
//! breaking what is kept.

use super::{
    EvidenceError, HEAD_KEY, HORIZON_KEY, Link, Record, fetch, hash, list_records, read_link,
    storage_err, write_link,
};
use crate::storage::Storage;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use std::collections::BTreeMap;

/// Records fetched at once.
const FETCH_CONCURRENCY: usize = 8;

/// One stored record as read: its key, what its name says, what its bytes
/// hash to, and the record (`Err` with why, when it does not parse).
#[derive(Debug, Clone)]
pub struct Stored {
    pub key: String,
    pub seq: u64,
    pub named_hash: String,
    pub actual_hash: String,
    pub record: Result<Record, String>,
}

/// Everything under `evidence/`.
#[derive(Debug, Clone, Default)]
pub struct Chain {
    /// Sorted by key (so by sequence number).
    pub records: Vec<Stored>,
    pub head: Option<Link>,
    pub horizon: Option<Link>,
    /// Objects under `evidence/` that are none of the above.
    pub strays: Vec<String>,
}

/// A chain that holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub records: usize,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub last_hash: Option<String>,
    /// Where the kept chain starts when older records expired.
    pub horizon: Option<u64>,
}

/// The first broken link: the record (or object) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {what}")]
pub struct Broken {
    pub key: String,
    pub what: String,
}

/// Lists `evidence/` and fetches every record.
///
/// # Errors
/// Storage errors, a damaged head or horizon.
pub async fn read_chain(storage: &dyn Storage) -> Result<Chain, EvidenceError> {
    let listing = list_records(storage).await?;
    let records = futures::stream::iter(listing.records)
        .map(|r| async move {
            let bytes = fetch(storage, &r.meta.key).await?;
            let record = serde_json::from_slice::<Record>(&bytes).map_err(|e| e.to_string());
            Ok::<_, EvidenceError>(Stored {
                key: r.meta.key,
                seq: r.seq,
                named_hash: r.hash,
                actual_hash: hash(&bytes),
                record,
            })
        })
        .buffered(FETCH_CONCURRENCY)
        .try_collect()
        .await?;
    Ok(Chain {
        records,
        head: read_link(storage, HEAD_KEY).await?,
        horizon: read_link(storage, HORIZON_KEY).await?,
        strays: listing.strays,
    })
}

/// Judges a chain: every record hashes to its name, says its own sequence
/// number, and names the one before it; no number is missing or taken
/// twice; the head is not ahead of the last record; nothing else lies in
/// `evidence/`.
///
/// # Errors
/// The first broken link, by sequence number.
pub fn verify(chain: &Chain) -> Result<Verified, Broken> {
    let start = chain.horizon.as_ref().map_or(1, |h| h.seq + 1);
    // Records at or below the horizon are expiry's leftovers (it removes
    // them after writing the horizon): not part of the kept chain.
    let kept: Vec<&Stored> = chain.records.iter().filter(|r| r.seq >= start).collect();
    let mut by_seq: BTreeMap<u64, Vec<&Stored>> = BTreeMap::new();
    for r in &kept {
        by_seq.entry(r.seq).or_default().push(r);
    }
    let mut prev_hash: Option<String> = chain.horizon.as_ref().map(|h| h.hash.clone());
    let mut expected = start;
    let mut last_key = chain.horizon.as_ref().map_or_else(
        || "(the start of the log)".to_string(),
        |_| HORIZON_KEY.to_string(),
    );
    for (&seq, here) in &by_seq {
        let r = here[0];
        if seq != expected {
            let what = if expected + 1 == seq {
                format!("record {expected} is missing (after {last_key})")
            } else {
                format!(
                    "records {expected} to {} are missing (after {last_key})",
                    seq - 1
                )
            };
            return Err(Broken {
                key: r.key.clone(),
                what: format!("{what}: removed from storage"),
            });
        }
        if here.len() > 1 {
            return Err(Broken {
                key: r.key.clone(),
                what: format!(
                    "the chain forks: {} records hold number {seq} ({}); two writers appended at once",
                    here.len(),
                    here.iter()
                        .map(|s| s.key.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        if r.actual_hash != r.named_hash {
            return Err(Broken {
                key: r.key.clone(),
                what: "edited: its bytes no longer hash to its name".into(),
            });
        }
        let record = r.record.as_ref().map_err(|e| Broken {
            key: r.key.clone(),
            what: format!("not a valid record ({e})"),
        })?;
        if record.seq != seq {
            return Err(Broken {
                key: r.key.clone(),
                what: format!("says it is number {} but is stored as {seq}", record.seq),
            });
        }
        if record.prev != prev_hash {
            return Err(Broken {
                key: r.key.clone(),
                what: format!(
                    "names {} as the record before it, but {last_key} hashes to {}",
                    record.prev.as_deref().unwrap_or("no record"),
                    prev_hash
                        .as_deref()
                        .unwrap_or("nothing (the log starts here)")
                ),
            });
        }
        prev_hash = Some(r.named_hash.clone());
        last_key = r.key.clone();
        expected = seq + 1;
    }
    if let Some(head) = &chain.head {
        let last = expected - 1;
        if head.seq > last {
            return Err(Broken {
                key: HEAD_KEY.into(),
                what: format!(
                    "names record {} ({}), but the log ends at {last}: the newest record(s) were removed",
                    head.seq, head.hash
                ),
            });
        }
        if head.seq == last && Some(&head.hash) != prev_hash.as_ref() {
            return Err(Broken {
                key: HEAD_KEY.into(),
                what: format!(
                    "names hash {} for record {last}, but it hashes to {}",
                    head.hash,
                    prev_hash.as_deref().unwrap_or("nothing")
                ),
            });
        }
    }
    if let Some(stray) = chain.strays.first() {
        return Err(Broken {
            key: stray.clone(),
            what: "not an evidence record: nothing but records, head.json and horizon.json belongs in evidence/".into(),
        });
    }
    Ok(Verified {
        records: kept.len(),
        first_seq: by_seq.keys().next().copied(),
        last_seq: by_seq.keys().next_back().copied(),
        last_hash: prev_hash.filter(|_| !by_seq.is_empty()),
        horizon: chain.horizon.as_ref().map(|h| h.seq),
    })
}

/// Removes records older than `keep_days` from the oldest, stopping at the
/// first younger one: writes `evidence/horizon.json` naming the last one
/// removed first, so a crash half-way leaves a chain that still verifies.
/// Returns how many were removed.
///
/// # Errors
/// Storage errors.
pub async fn expire(
    storage: &dyn Storage,
    keep_days: u32,
    now: DateTime<Utc>,
) -> Result<u64, EvidenceError> {
    let cutoff = now - chrono::Duration::days(i64::from(keep_days));
    let records = list_records(storage).await?.records;
    let horizon = read_link(storage, HORIZON_KEY).await?;
    let start = horizon.as_ref().map_or(1, |h| h.seq + 1);
    // Leftovers of an expiry that stopped half-way go first.
    let mut doomed: Vec<String> = records
        .iter()
        .filter(|r| r.seq < start)
        .map(|r| r.meta.key.clone())
        .collect();
    let mut last: Option<Link> = None;
    for r in records.iter().filter(|r| r.seq >= start) {
        if r.meta.last_modified >= cutoff {
            break;
        }
        // The stored time, not the object's: a copied bucket keeps it.
        let bytes = fetch(storage, &r.meta.key).await?;
        let at = serde_json::from_slice::<Record>(&bytes).map(|r| r.at).ok();
        if at.is_none_or(|at| at >= cutoff) {
            break;
        }
        if last.as_ref().is_some_and(|l| l.seq + 1 != r.seq) {
            break;
        }
        last = Some(Link {
            seq: r.seq,
            hash: r.hash.clone(),
            at: now,
        });
        doomed.push(r.meta.key.clone());
    }
    if let Some(link) = &last {
        write_link(storage, HORIZON_KEY, link).await?;
    }
    let mut removed = 0;
    for key in doomed {
        storage
            .delete(&key)
            .await
            .map_err(|e| storage_err(storage, e))?;
        removed += 1;
    }
    Ok(removed)
}

/// The newest record of `kind` among the last `look_back` records (newest
/// first), `None` when there is none that recent or it cannot be read.
///
/// # Errors
/// Storage errors.
pub async fn newest_of(
    storage: &dyn Storage,
    kind: super::Kind,
    look_back: usize,
) -> Result<Option<Record>, EvidenceError> {
    let records = list_records(storage).await?.records;
    for r in records.iter().rev().take(look_back) {
        let bytes = fetch(storage, &r.meta.key).await?;
        if let Ok(r) = serde_json::from_slice::<Record>(&bytes)
            && r.entry.kind == kind
        {
            return Ok(Some(r));
        }
    }
    Ok(None)
}
