//! Retention of the change stream: segments, their parts and gap records
//! go once older than `retention.days` (bases are snapshots and expire
//! with them), and parts no manifest lists (a segment cut by a crash or an
//! outage) go after a grace, as snapshot leftovers do. `head.json` is
//! rewritten while the capture runs and stays.
//!
//! A segment's age is its manifest's last write: every commit in it is
//! older. Deleting the manifest first unlists the segment, so a run cut
//! short leaves only parts, which the next run removes as leftovers.
//!
//! A point-in-time restore reads its base and every segment after it: while
//! a live restore lease names a base, segments and gap records written
//! since that base began are kept (the base itself is held by the
//! snapshot retention's plan), so a restore to a point near the oldest
//! edge of the window is not cut from under it.

use crate::repo::changes::{self, CHANGES_PREFIX};
use crate::storage::{ObjectMeta, Storage, StorageError};
use chrono::{DateTime, Duration, Utc};
use std::collections::{BTreeMap, BTreeSet};

/// Parts no manifest lists are left this long: a segment being written
/// (a long transaction streams into parts before its manifest exists).
pub const LEFTOVER_GRACE: Duration = Duration::hours(24);

/// What one run removes, in delete order.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Plan {
    /// Segment manifests past the retention, then their parts.
    pub segments: Vec<(String, Vec<String>)>,
    /// Parts of no listed segment, older than the grace.
    pub leftovers: Vec<String>,
    /// Gap records past the retention.
    pub gaps: Vec<String>,
    pub bytes: u64,
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Expired {
    pub segments: usize,
    pub leftovers: usize,
    pub gaps: usize,
    pub bytes_freed: u64,
    pub errors: Vec<String>,
}

/// `stem` of a part key (`<stem>.NNN.chg.zst[.age]`), or `None`.
fn part_stem(key: &str) -> Option<&str> {
    let rest = key
        .strip_suffix(".chg.zst.age")
        .or_else(|| key.strip_suffix(".chg.zst"))?;
    let (stem, n) = rest.rsplit_once('.')?;
    (n.len() == 3 && n.bytes().all(|b| b.is_ascii_digit())).then_some(stem)
}

/// Where the change stream is held for restores: the start of the oldest
/// base a live restore lease names (`None`: nothing held).
pub fn held_from(protections: &[crate::retention::Protection]) -> Option<DateTime<Utc>> {
    protections
        .iter()
        .filter_map(|p| match p {
            crate::retention::Protection::Restore { snapshot, .. } => Some(snapshot.started_at()),
            crate::retention::Protection::Writing { .. } => None,
        })
        .min()
}

/// Decides from a listing of `changes/` what goes; nothing written at or
/// after `held` (see [`held_from`]).
pub fn plan(
    listing: &[ObjectMeta],
    now: DateTime<Utc>,
    days: u32,
    grace: Duration,
    held: Option<DateTime<Utc>>,
) -> Plan {
    let edge = now - Duration::days(i64::from(days));
    let held = held.unwrap_or(DateTime::<Utc>::MAX_UTC);
    let mut parts: BTreeMap<&str, Vec<&ObjectMeta>> = BTreeMap::new();
    let mut manifests: Vec<(&ObjectMeta, String)> = Vec::new();
    let mut out = Plan::default();
    for o in listing {
        if let Some(stem) = part_stem(&o.key) {
            parts.entry(stem).or_default().push(o);
        } else if changes::parse_manifest_key(&o.key).is_some() {
            // The manifest's stem: the key less `-<last:016X>.json`.
            let stem = o.key[..o.key.len() - ".json".len() - 17].to_string();
            manifests.push((o, stem));
        } else if o.key.contains("/gaps/") && o.last_modified < edge && o.last_modified < held {
            out.gaps.push(o.key.clone());
            out.bytes += o.size;
        }
    }
    let listed: BTreeSet<&str> = manifests.iter().map(|(_, s)| s.as_str()).collect();
    for (m, stem) in &manifests {
        if m.last_modified >= edge || m.last_modified >= held {
            continue;
        }
        let keys: Vec<String> = parts
            .get(stem.as_str())
            .map(|ps| ps.iter().map(|p| p.key.clone()).collect())
            .unwrap_or_default();
        out.bytes += m.size
            + parts
                .get(stem.as_str())
                .map_or(0, |ps| ps.iter().map(|p| p.size).sum::<u64>());
        out.segments.push((m.key.clone(), keys));
    }
    for (stem, ps) in &parts {
        if listed.contains(stem) {
            continue;
        }
        for p in ps {
            if now - p.last_modified > grace {
                out.leftovers.push(p.key.clone());
                out.bytes += p.size;
            }
        }
    }
    out
}

/// Lists `changes/`, plans and deletes (holding what `held` says).
/// Failures are collected, not fatal.
///
/// # Errors
/// The listing failed.
pub async fn run(
    storage: &dyn Storage,
    now: DateTime<Utc>,
    days: u32,
    grace: Duration,
    held: Option<DateTime<Utc>>,
) -> Result<Expired, StorageError> {
    let listing = storage.list(CHANGES_PREFIX).await?;
    let p = plan(&listing, now, days, grace, held);
    let mut out = Expired::default();
    let delete = |key: String| async move {
        storage
            .delete(&key)
            .await
            .map_err(|e| format!("{key}: {e}"))
    };
    for (manifest, parts) in p.segments {
        match delete(manifest).await {
            Ok(()) => {
                out.segments += 1;
                for k in parts {
                    if let Err(e) = delete(k).await {
                        out.errors.push(e);
                    }
                }
            }
            Err(e) => out.errors.push(e),
        }
    }
    for k in p.leftovers {
        match delete(k).await {
            Ok(()) => out.leftovers += 1,
            Err(e) => out.errors.push(e),
        }
    }
    for k in p.gaps {
        match delete(k).await {
            Ok(()) => out.gaps += 1,
            Err(e) => out.errors.push(e),
        }
    }
    if out.errors.is_empty() {
        out.bytes_freed = p.bytes;
    }
    Ok(out)
}

#[cfg(test)]
#[path = "expiry_tests.rs"]
mod tests;
