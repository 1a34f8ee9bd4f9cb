//! Retention: forget on time. A pure [`plan`] decides which complete
//! snapshots have expired, which leftovers of interrupted snapshots and which
//! unfinished uploads are garbage; [`apply`] deletes them (a snapshot's
//! manifest first, so a half-deleted snapshot is never listed as complete).
//!
//! Only `snapshots/` and unfinished uploads are ever touched: the marker,
//! the erasure journal (`erasures/`), `locks/` and `restores/` are not.
//! The bucket's lifecycle rule is the backstop for when no daemon runs.

pub mod leftovers;
mod record;
pub use record::{ChangesExpired, record_prune};

use crate::repo::layout::{
    ERASURES_PREFIX, MARKER_KEY, SNAPSHOTS_PREFIX, manifest_key, snapshot_prefix,
};
use crate::repo::lease;
use crate::repo::manifest::SnapshotId;
use crate::storage::{IncompleteUpload, Storage, StorageError};
use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    pub days: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self { days: 35 }
    }
}

/// Leftovers of an interrupted snapshot are kept until its start, its
/// last write and its unfinished uploads' starts are this old: another
/// process may be writing that snapshot right now ([`leftovers`]). The
/// same hour the snapshot writer's own cleanup waits
/// (`snapshot::run::DEFAULT_CLEANUP_GRACE`).
pub const LEFTOVER_GRACE_HOURS: i64 = 1;
/// Unfinished multipart uploads older than this are aborted (the lifecycle
/// rule uses the same day).
pub const UPLOAD_GRACE_HOURS: i64 = 24;
/// Deletes in flight at once while removing a snapshot's objects.
const DELETE_CONCURRENCY: usize = 8;

/// The retention rules in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// A complete snapshot is deleted once its age reaches this.
    pub retention: Duration,
    /// See [`LEFTOVER_GRACE_HOURS`].
    pub leftover_grace: Duration,
    /// See [`UPLOAD_GRACE_HOURS`].
    pub upload_grace: Duration,
}

impl Policy {
    /// The policy for `retention.days`, with the default grace periods.
    pub fn days(days: u32) -> Policy {
        Policy {
            retention: Duration::days(i64::from(days)),
            leftover_grace: Duration::hours(LEFTOVER_GRACE_HOURS),
            upload_grace: Duration::hours(UPLOAD_GRACE_HOURS),
        }
    }
}

/// A complete snapshot (its manifest exists).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotInfo {
    pub id: SnapshotId,
    /// From the id: when the snapshot started, the conservative age base.
    pub started_at: DateTime<Utc>,
    pub objects: usize,
    /// Everything under its prefix, the manifest included.
    pub bytes: u64,
    /// Everything but `manifest.json`: the objects the manifest names, the
    /// size `lethe list` and `lethe show` report as stored.
    pub data_bytes: u64,
}

/// A snapshot prefix without a manifest: interrupted, or being written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeftoverInfo {
    pub id: SnapshotId,
    /// The newest object's modification time.
    pub last_write: DateTime<Utc>,
    pub objects: usize,
    pub bytes: u64,
}

/// Why something that looks deletable is kept for now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Protection {
    /// A restore holds a live lease on this snapshot.
    Restore {
        snapshot: SnapshotId,
        holder: String,
        expires_at: DateTime<Utc>,
    },
    /// Another process holds the snapshot lock: prefixes started since it
    /// took the lock may be the snapshot it is writing.
    Writing {
        holder: String,
        since: DateTime<Utc>,
    },
}

/// What a survey of the repository found: the inputs to [`plan`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct Survey {
    /// Oldest first.
    pub snapshots: Vec<SnapshotInfo>,
    pub leftovers: Vec<LeftoverInfo>,
    pub uploads: Vec<UploadInfo>,
    pub protections: Vec<Protection>,
}

/// A serialisable view of an unfinished upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UploadInfo {
    pub key: String,
    pub upload_id: String,
    pub initiated: Option<DateTime<Utc>>,
}

impl From<&IncompleteUpload> for UploadInfo {
    fn from(u: &IncompleteUpload) -> Self {
        UploadInfo {
            key: u.key.clone(),
            upload_id: u.upload_id.clone(),
            initiated: u.initiated,
        }
    }
}

impl UploadInfo {
    fn to_upload(&self) -> IncompleteUpload {
        IncompleteUpload {
            key: self.key.clone(),
            upload_id: self.upload_id.clone(),
            initiated: self.initiated,
        }
    }
}

/// One snapshot to delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expired {
    pub id: SnapshotId,
    pub age_days: i64,
    pub objects: usize,
    pub bytes: u64,
}

/// One snapshot kept although it is past retention, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Held {
    pub id: SnapshotId,
    pub age_days: i64,
    pub holder: String,
}

/// The decision: what [`apply`] will delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub now: DateTime<Utc>,
    pub retention_days: i64,
    /// Expired complete snapshots, oldest first.
    pub expire: Vec<Expired>,
    /// Expired but read by a running restore; deleted once its lease ends.
    pub held_for_restore: Vec<Held>,
    /// Complete snapshots kept.
    pub keep: Vec<SnapshotId>,
    /// Leftovers of interrupted snapshots past the grace period.
    pub leftovers: Vec<LeftoverInfo>,
    /// Unfinished uploads past their grace period.
    pub uploads: Vec<UploadInfo>,
}

impl Plan {
    /// True when applying would delete nothing.
    pub fn is_empty(&self) -> bool {
        self.expire.is_empty() && self.leftovers.is_empty() && self.uploads.is_empty()
    }
}

/// Whole days from `then` to `now` (negative if `then` is in the future).
fn age_days(now: DateTime<Utc>, then: DateTime<Utc>) -> i64 {
    (now - then).num_days()
}

/// Decides what to forget. Pure: the same inputs give the same plan.
///
/// - a complete snapshot is expired once `now - started_at >= retention`,
///   unless a live restore lease names it;
/// - a leftover is garbage by [`leftovers::verdict`]: once its start, its
///   last write and the start of every unfinished upload under its prefix
///   (unknown starts count as `now`) are older than the grace period, and
///   it did not start after a live snapshot lock was taken;
/// - an unfinished upload is garbage once older than its grace period
///   (uploads with no known start time are kept: nothing says they are old;
///   [`leftovers::upload_expired`]).
pub fn plan(
    snapshots: &[SnapshotInfo],
    leftovers: &[LeftoverInfo],
    uploads: &[UploadInfo],
    protections: &[Protection],
    now: DateTime<Utc>,
    policy: Policy,
) -> Plan {
    let mut out = Plan {
        now,
        retention_days: policy.retention.num_days(),
        expire: Vec::new(),
        held_for_restore: Vec::new(),
        keep: Vec::new(),
        leftovers: Vec::new(),
        uploads: Vec::new(),
    };
    let restore_holder = |id: &SnapshotId| {
        protections.iter().find_map(|p| match p {
            Protection::Restore {
                snapshot,
                holder,
                expires_at,
            } if snapshot == id
                && now < *expires_at + Duration::seconds(lease::SKEW_ALLOWANCE_SECS) =>
            {
                Some(holder.clone())
            }
            _ => None,
        })
    };
    let mut sorted: Vec<&SnapshotInfo> = snapshots.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    for s in sorted {
        let age = now - s.started_at;
        if age < policy.retention {
            out.keep.push(s.id.clone());
            continue;
        }
        match restore_holder(&s.id) {
            Some(holder) => out.held_for_restore.push(Held {
                id: s.id.clone(),
                age_days: age.num_days(),
                holder,
            }),
            None => out.expire.push(Expired {
                id: s.id.clone(),
                age_days: age_days(now, s.started_at),
                objects: s.objects,
                bytes: s.bytes,
            }),
        }
    }
    let writing_since = protections
        .iter()
        .filter_map(|p| match p {
            Protection::Writing { since, .. } => Some(*since),
            _ => None,
        })
        .min();
    let keep = leftovers::Keep {
        id: None,
        writing_since,
    };
    let upload_prefixes = leftovers::group(
        std::iter::empty(),
        uploads.iter().map(UploadInfo::to_upload),
    );
    for l in leftovers {
        let last_activity = leftovers::last_activity(
            &l.id,
            Some(l.last_write),
            upload_prefixes
                .get(&l.id)
                .into_iter()
                .flat_map(|p| p.uploads.iter().map(|u| u.initiated)),
            now,
        );
        if leftovers::verdict(&l.id, last_activity, now, policy.leftover_grace, keep)
            == leftovers::Verdict::Garbage
        {
            out.leftovers.push(l.clone());
        }
    }
    for u in uploads {
        if leftovers::upload_expired(u.initiated, now, policy.upload_grace) {
            out.uploads.push(u.clone());
        }
    }
    out.leftovers.sort_by(|a, b| a.id.cmp(&b.id));
    out.uploads
        .sort_by(|a, b| a.key.cmp(&b.key).then(a.upload_id.cmp(&b.upload_id)));
    out
}

#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error("retention could not read the repository: {0}")]
    Storage(#[from] StorageError),
    #[error("retention was cancelled")]
    Cancelled,
    #[error(transparent)]
    Lease(#[from] lease::LeaseError),
}

/// Reads what retention needs from storage: complete snapshots with their
/// sizes, leftovers, unfinished uploads and live leases.
///
/// # Errors
/// Storage errors.
pub async fn survey(storage: &dyn Storage, now: DateTime<Utc>) -> Result<Survey, RetentionError> {
    let mut survey = Survey::default();
    for (id, p) in leftovers::group(storage.list(SNAPSHOTS_PREFIX).await?, []) {
        let bytes: u64 = p.objects.iter().map(|o| o.size).sum();
        if let Some(manifest) = &p.manifest {
            survey.snapshots.push(SnapshotInfo {
                started_at: id.started_at(),
                data_bytes: bytes - manifest.size,
                id,
                objects: p.objects.len(),
                bytes,
            });
        } else {
            survey.leftovers.push(LeftoverInfo {
                last_write: p.last_write().unwrap_or(now),
                objects: p.objects.len(),
                bytes,
                id,
            });
        }
    }
    survey.uploads = storage
        .list_incomplete("")
        .await?
        .iter()
        .map(UploadInfo::from)
        .collect();
    survey.protections = protections(storage, now).await?;
    Ok(survey)
}

/// Plans from a survey.
pub fn plan_from(survey: &Survey, now: DateTime<Utc>, policy: Policy) -> Plan {
    plan(
        &survey.snapshots,
        &survey.leftovers,
        &survey.uploads,
        &survey.protections,
        now,
        policy,
    )
}

/// What [`apply`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Applied {
    pub snapshots_deleted: Vec<SnapshotId>,
    pub leftovers_deleted: Vec<SnapshotId>,
    pub uploads_aborted: usize,
    pub objects_deleted: usize,
    pub bytes_freed: u64,
    /// Each failure, naming what could not be deleted; the rest went on.
    pub errors: Vec<String>,
}

/// Executes a plan. An expired snapshot loses its manifest first, so if
/// anything stops half-way it is a leftover (cleaned next time), never a
/// listed snapshot with missing objects. A leftover that gained a manifest
/// since the survey is left alone. Failures are collected, not fatal: one
/// stubborn object does not keep every other expired snapshot alive.
///
/// Emits `retention.deleted` (id, age_days), `retention.leftover_deleted`
/// and `retention.upload_aborted`.
///
/// # Errors
/// `Cancelled` when the token fires between steps.
pub async fn apply(
    storage: &dyn Storage,
    plan: &Plan,
    cancel: &CancellationToken,
) -> Result<Applied, RetentionError> {
    let mut done = Applied::default();
    for e in &plan.expire {
        if cancel.is_cancelled() {
            return Err(RetentionError::Cancelled);
        }
        match delete_snapshot(storage, &e.id, true).await {
            Ok((n, bytes)) => {
                tracing::info!(
                    event = "retention.deleted",
                    id = %e.id,
                    age_days = e.age_days,
                    objects = n,
                    bytes,
                    "deleted expired snapshot"
                );
                done.objects_deleted += n;
                done.bytes_freed += bytes;
                done.snapshots_deleted.push(e.id.clone());
            }
            Err(err) => done.errors.push(format!("snapshot {}: {err}", e.id)),
        }
    }
    for l in &plan.leftovers {
        if cancel.is_cancelled() {
            return Err(RetentionError::Cancelled);
        }
        match storage.head(&manifest_key(&l.id)).await {
            Ok(Some(_)) => continue,
            Ok(None) => {}
            Err(err) => {
                done.errors.push(format!("leftover {}: {err}", l.id));
                continue;
            }
        }
        match delete_snapshot(storage, &l.id, false).await {
            Ok((n, bytes)) => {
                tracing::info!(
                    event = "retention.leftover_deleted",
                    id = %l.id,
                    objects = n,
                    bytes,
                    idle_hours = (plan.now - l.last_write).num_hours(),
                    "deleted leftovers of an interrupted snapshot"
                );
                done.objects_deleted += n;
                done.bytes_freed += bytes;
                done.leftovers_deleted.push(l.id.clone());
            }
            Err(err) => done.errors.push(format!("leftover {}: {err}", l.id)),
        }
    }
    for u in &plan.uploads {
        if cancel.is_cancelled() {
            return Err(RetentionError::Cancelled);
        }
        match storage.abort_incomplete(&u.to_upload()).await {
            Ok(()) => {
                tracing::info!(
                    event = "retention.upload_aborted",
                    key = %u.key,
                    age_hours = u.initiated.map(|t| (plan.now - t).num_hours()),
                    "aborted an unfinished upload"
                );
                done.uploads_aborted += 1;
            }
            Err(err) => done
                .errors
                .push(format!("unfinished upload of {}: {err}", u.key)),
        }
    }
    Ok(done)
}

/// Deletes every object under a snapshot's prefix; with `manifest_first`
/// the manifest goes before anything else. Returns objects and bytes removed.
async fn delete_snapshot(
    storage: &dyn Storage,
    id: &SnapshotId,
    manifest_first: bool,
) -> Result<(usize, u64), StorageError> {
    let manifest = manifest_key(id);
    let objects = storage.list(&snapshot_prefix(id)).await?;
    let mut count = 0;
    let mut bytes = 0;
    if manifest_first {
        storage.delete(&manifest).await?;
        if let Some(m) = objects.iter().find(|o| o.key == manifest) {
            count += 1;
            bytes += m.size;
        }
    }
    type Del<'a> =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, StorageError>> + Send + 'a>>;
    let deletes: Vec<Del<'_>> = objects
        .into_iter()
        .filter(|o| o.key != manifest)
        .map(|o| -> Del<'_> {
            Box::pin(async move { storage.delete(&o.key).await.map(|()| o.size) })
        })
        .collect();
    let mut results = futures::stream::iter(deletes).buffer_unordered(DELETE_CONCURRENCY);
    while let Some(r) = results.next().await {
        bytes += r?;
        count += 1;
    }
    Ok((count, bytes))
}

/// One-line human summary of a plan, then one line per action.
pub fn describe(plan: &Plan) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "retention {} days at {}: delete {} snapshot(s), {} leftover(s), abort {} upload(s); keep {}",
        plan.retention_days,
        plan.now.format("%Y-%m-%d %H:%M:%SZ"),
        plan.expire.len(),
        plan.leftovers.len(),
        plan.uploads.len(),
        plan.keep.len() + plan.held_for_restore.len()
    );
    for e in &plan.expire {
        let _ = writeln!(
            s,
            "  delete   {}  age {} days, {} objects, {} bytes",
            e.id, e.age_days, e.objects, e.bytes
        );
    }
    for h in &plan.held_for_restore {
        let _ = writeln!(
            s,
            "  hold     {}  age {} days, a restore is reading it ({})",
            h.id, h.age_days, h.holder
        );
    }
    for l in &plan.leftovers {
        let _ = writeln!(
            s,
            "  leftover {}  no manifest, idle {} h, {} objects",
            l.id,
            (plan.now - l.last_write).num_hours(),
            l.objects
        );
    }
    for u in &plan.uploads {
        let _ = writeln!(s, "  abort    {}  unfinished upload {}", u.key, u.upload_id);
    }
    s
}

/// The bucket lifecycle rules that back retention up when no daemon runs:
/// snapshots and the change stream of continuous capture expire after
/// `days`; the erasure journal and the repository
/// marker, which live as long as the repository, never do.
pub fn lifecycle_policy(days: u32) -> crate::storage::lifecycle::Policy {
    crate::storage::lifecycle::Policy {
        days,
        expire: SNAPSHOTS_PREFIX,
        also_expire: &[crate::repo::changes::CHANGES_PREFIX],
        protected: &[ERASURES_PREFIX, MARKER_KEY, crate::repo::evidence::PREFIX],
    }
}

/// Live leases that protect data from retention: restores reading a
/// snapshot, and a snapshot writer (whose new prefix has no manifest yet).
/// A damaged restore lease cannot say what it protects and is ignored with
/// a warning.
///
/// # Errors
/// Storage errors.
pub async fn protections(
    storage: &dyn Storage,
    now: DateTime<Utc>,
) -> Result<Vec<Protection>, StorageError> {
    let mut out = Vec::new();
    let lift = |e: lease::LeaseError| match e {
        lease::LeaseError::Storage { source, .. } => Err(source),
        other => Ok(other),
    };
    match lease::read(storage, lease::SNAPSHOT_LOCK_KEY).await {
        Ok(Some(r)) if r.is_live(now) => {
            out.push(Protection::Writing {
                holder: r.holder,
                since: r.acquired_at,
            });
        }
        Ok(_) => {}
        Err(e) => {
            let e = lift(e)?;
            tracing::warn!(event = "lease.damaged", key = lease::SNAPSHOT_LOCK_KEY, error = %e, "ignoring a damaged lease");
        }
    }
    for o in storage.list(lease::RESTORES_PREFIX).await? {
        if !o.key.ends_with(".lease") {
            continue;
        }
        match lease::read(storage, &o.key).await {
            Ok(Some(r)) if r.is_live(now) => {
                if let Some(snapshot) = r.snapshot {
                    out.push(Protection::Restore {
                        snapshot,
                        holder: r.holder,
                        expires_at: r.expires_at,
                    });
                }
            }
            Ok(_) => {}
            Err(e) => {
                let e = lift(e)?;
                tracing::warn!(event = "lease.damaged", key = %o.key, error = %e, "ignoring a damaged lease");
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
