//! The one rule for leftovers of interrupted snapshots: objects under a
//! snapshot prefix that has no manifest, and unfinished (multipart) uploads.
//! Both callers use it: the cleanup at the start of a snapshot
//! (`snapshot::cleanup`, its own grace, keeps the id it is writing) and
//! retention ([`super::plan`], [`super::LEFTOVER_GRACE_HOURS`], keeps what a
//! live snapshot lock's holder may be writing).
//!
//! Another process may be writing a snapshot at this very moment, and its
//! prefix looks exactly like garbage until its manifest lands. So a prefix
//! is garbage only when it has been quiet for the grace period: its id's
//! start time, its newest object and its newest unfinished upload are all
//! older than the grace. An upload whose start time the storage does not
//! report counts as activity now: nothing says it is old. A snapshot that
//! is still writing produces an object at least every few minutes (objects
//! are cut at `snapshot.object_bytes`), so it is never mistaken for a dead
//! one. Callers look the manifest up once more just before deleting.

use crate::repo::layout::split_snapshot_key;
use crate::repo::manifest::SnapshotId;
use crate::storage::{IncompleteUpload, ObjectMeta};
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;

/// Everything found under one `snapshots/<id>/` prefix.
#[derive(Debug, Clone, Default)]
pub struct Prefix {
    /// Its `manifest.json`, when the snapshot is complete.
    pub manifest: Option<ObjectMeta>,
    /// Every object, the manifest included.
    pub objects: Vec<ObjectMeta>,
    pub uploads: Vec<IncompleteUpload>,
}

impl Prefix {
    /// True when the manifest exists.
    pub fn complete(&self) -> bool {
        self.manifest.is_some()
    }

    /// The newest object's modification time.
    pub fn last_write(&self) -> Option<DateTime<Utc>> {
        self.objects.iter().map(|o| o.last_modified).max()
    }
}

/// Groups a listing by snapshot prefix. Keys that are not under a snapshot
/// prefix (or whose id does not parse) are ignored.
pub fn group(
    objects: impl IntoIterator<Item = ObjectMeta>,
    uploads: impl IntoIterator<Item = IncompleteUpload>,
) -> BTreeMap<SnapshotId, Prefix> {
    let mut out: BTreeMap<SnapshotId, Prefix> = BTreeMap::new();
    for o in objects {
        let Some((id, tail)) = split_snapshot_key(&o.key) else {
            continue;
        };
        let p = out.entry(id).or_default();
        if tail == "manifest.json" {
            p.manifest = Some(o.clone());
        }
        p.objects.push(o);
    }
    for u in uploads {
        let Some((id, _)) = split_snapshot_key(&u.key) else {
            continue;
        };
        out.entry(id).or_default().uploads.push(u);
    }
    out
}

/// The newest sign of life of a prefix: its id's start time, its newest
/// object write and its newest upload start. An upload with no known start
/// time counts as `now`.
pub fn last_activity(
    id: &SnapshotId,
    last_write: Option<DateTime<Utc>>,
    upload_starts: impl IntoIterator<Item = Option<DateTime<Utc>>>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    upload_starts
        .into_iter()
        .map(|t| t.unwrap_or(now))
        .chain(last_write)
        .fold(id.started_at(), DateTime::max)
}

/// What the caller must keep whatever its age.
#[derive(Debug, Clone, Copy, Default)]
pub struct Keep<'a> {
    /// The snapshot the caller itself is writing.
    pub id: Option<&'a SnapshotId>,
    /// When a live snapshot lock (another writer) was taken: prefixes
    /// started since may be the snapshot it is writing.
    pub writing_since: Option<DateTime<Utc>>,
}

/// The verdict on a prefix without a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Quiet for the grace period and not protected: delete it.
    Garbage,
    /// Active less than the grace period ago; another process may be
    /// writing it.
    RecentlyActive,
    /// Named by the caller's [`Keep`].
    Protected,
}

/// Decides on a manifest-less prefix whose newest sign of life is
/// `last_activity` (see [`last_activity`]). Pure.
pub fn verdict(
    id: &SnapshotId,
    last_activity: DateTime<Utc>,
    now: DateTime<Utc>,
    grace: Duration,
    keep: Keep<'_>,
) -> Verdict {
    if keep.id == Some(id) {
        return Verdict::Protected;
    }
    // Ids carry their start time at second precision; a minute of slack
    // covers clocks that disagree a little.
    if keep
        .writing_since
        .is_some_and(|since| id.started_at() >= since - Duration::minutes(1))
    {
        return Verdict::Protected;
    }
    if now.signed_duration_since(last_activity) < grace {
        return Verdict::RecentlyActive;
    }
    Verdict::Garbage
}

/// True when an unfinished upload is older than `grace`. Uploads with no
/// known start time are kept: nothing says they are old.
pub fn upload_expired(
    initiated: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    grace: Duration,
) -> bool {
    initiated.is_some_and(|t| now.signed_duration_since(t) >= grace)
}

#[cfg(test)]
#[path = "leftovers_tests.rs"]
mod tests;
