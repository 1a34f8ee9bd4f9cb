//! Removing what interrupted snapshots left behind, at the start of a
//! snapshot: objects under a snapshot prefix that has no manifest, and
//! unfinished (multipart) uploads. The rule is retention's
//! ([`crate::retention::leftovers`]): a prefix is removed only when its id's
//! start time, its newest object and its newest unfinished upload are all
//! older than the grace period (default one hour,
//! [`super::run::DEFAULT_CLEANUP_GRACE`]); the snapshot being taken is
//! kept. Just before deleting, the manifest is looked up once more so a
//! snapshot that committed meanwhile is kept.

use crate::repo::layout::{SNAPSHOTS_PREFIX, manifest_key};
use crate::repo::manifest::SnapshotId;
use crate::retention::leftovers::{self, Keep, Verdict};
use crate::storage::{Storage, StorageError};
use chrono::Utc;
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

/// Deletes leftovers of incomplete snapshots quiet for `grace`, except
/// `keep` (the snapshot being taken), with their unfinished uploads, and
/// aborts unfinished uploads older than `grace` under complete snapshots
/// (where a retried upload may have left one; uploads with no known start
/// time are kept). Logs
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
    let prefixes = leftovers::group(
        storage.list(SNAPSHOTS_PREFIX).await?,
        storage.list_incomplete(SNAPSHOTS_PREFIX).await?,
    );
    let keep = Keep {
        id: keep,
        writing_since: None,
    };

    let mut report = CleanupReport::default();
    for (id, p) in prefixes {
        if keep.id == Some(&id) {
            continue;
        }
        if p.complete() {
            for u in p
                .uploads
                .iter()
                .filter(|u| leftovers::upload_expired(u.initiated, now, grace))
            {
                storage.abort_incomplete(u).await?;
                report.uploads_aborted += 1;
            }
            continue;
        }
        let last_activity = leftovers::last_activity(
            &id,
            p.last_write(),
            p.uploads.iter().map(|u| u.initiated),
            now,
        );
        match leftovers::verdict(&id, last_activity, now, grace, keep) {
            Verdict::Garbage => {}
            Verdict::Protected => continue,
            Verdict::RecentlyActive => {
                tracing::info!(
                    event = "snapshot.leftovers_kept",
                    id = %id,
                    "incomplete snapshot was active less than the grace period ago; another process may be writing it"
                );
                report.recent.push(id);
                continue;
            }
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
