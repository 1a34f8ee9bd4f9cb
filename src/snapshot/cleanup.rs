//! Removing what interrupted snapshots left behind: objects under a
//! snapshot prefix that has no manifest, and unfinished (multipart) uploads.
//!
//! Another process (a second daemon, a manual `lethe snapshot`) may be
//! writing a snapshot at this very moment, and its prefix looks exactly like
//! garbage until its manifest lands. So a prefix is only removed when it
//! has been quiet for the grace period: its id's start time, its newest
//! object and its newest unfinished upload are all older than `grace`
//! (default one hour, [`super::writer::DEFAULT_CLEANUP_GRACE`]). A snapshot
//! that is still writing produces an object at least every few minutes
//! (objects are cut at `snapshot.object_bytes`), so it is never mistaken for
//! a dead one. Just before deleting, the manifest is looked up once more so
//! a snapshot that committed meanwhile is kept.

use crate::repo::layout::{SNAPSHOTS_PREFIX, manifest_key};
use crate::repo::manifest::SnapshotId;
use crate::storage::{IncompleteUpload, ObjectMeta, Storage, StorageError};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::time::Duration;

/// What a cleanup did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// Incomplete snapshots whose leftovers were removed.
    pub removed: Vec<SnapshotId>,
    pub objects_deleted: u64,
    pub uploads_aborted: u64,
    /// Incomplete snapshots left alone because they were active recently.
    pub recent: Vec<SnapshotId>,
}

#[derive(Default)]
struct Prefix {
    complete: bool,
    objects: Vec<ObjectMeta>,
    uploads: Vec<IncompleteUpload>,
}

/// Deletes leftovers of incomplete snapshots quiet for `grace`, except
/// `keep` (the snapshot being taken), and aborts unfinished uploads older
/// than `grace` anywhere under `snapshots/` (also under complete snapshots,
/// where a retried upload may have left one). Logs
/// `snapshot.leftovers_deleted` per snapshot removed.
///
/// # Errors
/// Storage errors; what was removed before the error stays removed.
pub async fn cleanup_incomplete(
    storage: &dyn Storage,
    keep: Option<&SnapshotId>,
    grace: Duration,
) -> Result<CleanupReport, StorageError> {
    let now = Utc::now();
    let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
    let quiet = |t: DateTime<Utc>| now.signed_duration_since(t) >= grace;
    let mut prefixes: BTreeMap<SnapshotId, Prefix> = BTreeMap::new();
    for o in storage.list(SNAPSHOTS_PREFIX).await? {
        let Some((id, tail)) = crate::repo::layout::split_snapshot_key(&o.key) else {
            continue;
        };
        let p = prefixes.entry(id).or_default();
        p.complete |= tail == "manifest.json";
        p.objects.push(o);
    }
    for u in storage.list_incomplete(SNAPSHOTS_PREFIX).await? {
        let Some((id, _)) = crate::repo::layout::split_snapshot_key(&u.key) else {
            continue;
        };
        prefixes.entry(id).or_default().uploads.push(u);
    }

    let mut report = CleanupReport::default();
    for (id, p) in prefixes {
        if keep == Some(&id) {
            continue;
        }
        if p.complete {
            for u in p.uploads.iter().filter(|u| u.initiated.is_none_or(quiet)) {
                storage.abort_incomplete(u).await?;
                report.uploads_aborted += 1;
            }
            continue;
        }
        let last_activity = p
            .objects
            .iter()
            .map(|o| o.last_modified)
            .chain(p.uploads.iter().filter_map(|u| u.initiated))
            .chain(std::iter::once(id.started_at()))
            .max()
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        if !quiet(last_activity) {
            tracing::info!(
                event = "snapshot.leftovers_kept",
                id = %id,
                "incomplete snapshot was active less than the grace period ago; another process may be writing it"
            );
            report.recent.push(id);
            continue;
        }
        if storage.head(&manifest_key(&id)).await?.is_some() {
            continue; // committed since the listing
        }
        for u in &p.uploads {
            storage.abort_incomplete(u).await?;
        }
        for o in &p.objects {
            storage.delete(&o.key).await?;
        }
        tracing::info!(
            event = "snapshot.leftovers_deleted",
            id = %id,
            objects = p.objects.len(),
            uploads = p.uploads.len(),
        );
        report.objects_deleted += p.objects.len() as u64;
        report.uploads_aborted += p.uploads.len() as u64;
        report.removed.push(id);
    }
    Ok(report)
}

#[cfg(test)]
#[path = "cleanup_tests.rs"]
mod tests;
