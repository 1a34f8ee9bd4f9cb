//! Retention tests: the pure plan with an injected clock, and apply/lease
//! against a real directory repository.

use super::lease::{Lease, LeaseError, SNAPSHOT_LOCK_KEY};
use super::*;
use crate::storage::fs::FsStorage;
use crate::storage::{ByteStream, ObjectMeta, StorageExt};
use std::sync::{Arc, Mutex};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn id_at(at: DateTime<Utc>, n: u16) -> SnapshotId {
    format!("{}-{n:04x}", at.format("%Y%m%dT%H%M%SZ"))
        .parse()
        .unwrap()
}

fn info(id: &SnapshotId) -> SnapshotInfo {
    SnapshotInfo {
        id: id.clone(),
        started_at: id.started_at(),
        objects: 3,
        bytes: 100,
        data_bytes: 90,
    }
}

const NOW: &str = "2026-03-01T12:00:00Z";

#[test]
fn snapshots_aged_34_and_36_days_only_the_36_day_one_expires() {
    let now = t(NOW);
    let young = id_at(now - Duration::days(34), 1);
    let old = id_at(now - Duration::days(36), 2);
    let p = plan(
        &[info(&young), info(&old)],
        &[],
        &[],
        &[],
        now,
        Policy::days(35),
    );
    assert_eq!(p.expire.len(), 1);
    assert_eq!(p.expire[0].id, old);
    assert_eq!(p.expire[0].age_days, 36);
    assert_eq!(p.keep, vec![young]);
    assert!(p.leftovers.is_empty() && p.uploads.is_empty());
}

#[test]
fn the_boundary_is_inclusive_and_the_plan_is_deterministic() {
    let now = t(NOW);
    let exactly = id_at(now - Duration::days(35), 1);
    let just_under = id_at(now - Duration::days(35) + Duration::seconds(1), 2);
    let input = [info(&just_under), info(&exactly)];
    let p = plan(&input, &[], &[], &[], now, Policy::days(35));
    assert_eq!(
        p.expire.iter().map(|e| &e.id).collect::<Vec<_>>(),
        vec![&exactly]
    );
    assert_eq!(p, plan(&input, &[], &[], &[], now, Policy::days(35)));
}

#[test]
fn a_live_restore_lease_holds_an_expired_snapshot_until_it_ends() {
    let now = t(NOW);
    let old = id_at(now - Duration::days(40), 1);
    let lease = Protection::Restore {
        snapshot: old.clone(),
        holder: "h:1".into(),
        expires_at: now + Duration::minutes(2),
    };
    let p = plan(
        &[info(&old)],
        &[],
        &[],
        std::slice::from_ref(&lease),
        now,
        Policy::days(35),
    );
    assert!(p.expire.is_empty());
    assert_eq!(p.held_for_restore[0].id, old);
    // Past its expiry and the skew allowance, the lease no longer protects.
    let later = now + Duration::minutes(10);
    let p = plan(&[info(&old)], &[], &[], &[lease], later, Policy::days(35));
    assert_eq!(p.expire[0].id, old);
}

#[test]
fn leftovers_wait_out_the_grace_period_and_a_live_writer() {
    let now = t(NOW);
    let leftover = |started: DateTime<Utc>, idle: Duration, n| LeftoverInfo {
        id: id_at(started, n),
        last_write: now - idle,
        objects: 2,
        bytes: 10,
    };
    let fresh = leftover(now - Duration::hours(1), Duration::minutes(5), 1);
    let stale = leftover(now - Duration::days(2), Duration::days(2), 2);
    let p = plan(
        &[],
        &[fresh.clone(), stale.clone()],
        &[],
        &[],
        now,
        Policy::days(35),
    );
    assert_eq!(p.leftovers, vec![stale.clone()]);

    // A writer that took the lock 8 h ago may still be writing a prefix it
    // started 7 h ago, idle for 7 h (one huge table): kept.
    let slow = leftover(now - Duration::hours(7), Duration::hours(7), 3);
    let writing = Protection::Writing {
        holder: "other:9".into(),
        since: now - Duration::hours(8),
    };
    let p = plan(
        &[],
        &[slow.clone(), stale.clone()],
        &[],
        &[writing],
        now,
        Policy::days(35),
    );
    assert_eq!(p.leftovers, vec![stale]);
    let p = plan(
        &[],
        std::slice::from_ref(&slow),
        &[],
        &[],
        now,
        Policy::days(35),
    );
    assert_eq!(p.leftovers, vec![slow]);
}

#[test]
fn uploads_older_than_a_day_are_aborted_unknown_ages_kept() {
    let now = t(NOW);
    let u = |key: &str, age: Option<Duration>| UploadInfo {
        key: key.into(),
        upload_id: format!("u-{key}"),
        initiated: age.map(|a| now - a),
    };
    let old = u("snapshots/a/x", Some(Duration::hours(25)));
    let young = u("snapshots/b/x", Some(Duration::hours(23)));
    let unknown = u("snapshots/c/x", None);
    let p = plan(
        &[],
        &[],
        &[young, old.clone(), unknown],
        &[],
        now,
        Policy::days(35),
    );
    assert_eq!(p.uploads, vec![old]);
}

/// A directory repository that records the order of deletes.
#[derive(Debug)]
struct Recording {
    inner: FsStorage,
    deletes: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl Storage for Recording {
    async fn put(&self, key: &str, body: ByteStream) -> Result<ObjectMeta, StorageError> {
        self.inner.put(key, body).await
    }
    async fn get(&self, key: &str) -> Result<ByteStream, StorageError> {
        self.inner.get(key).await
    }
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StorageError> {
        self.inner.head(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StorageError> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.deletes.lock().unwrap().push(key.to_string());
        self.inner.delete(key).await
    }
    async fn list_incomplete(&self, prefix: &str) -> Result<Vec<IncompleteUpload>, StorageError> {
        self.inner.list_incomplete(prefix).await
    }
    async fn abort_incomplete(&self, upload: &IncompleteUpload) -> Result<(), StorageError> {
        self.inner.abort_incomplete(upload).await
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

async fn put_snapshot(s: &dyn Storage, id: &SnapshotId, complete: bool) {
    for part in [
        "schema/pre.sql.zst.age",
        "data/1.public.t.0.copy.zst.age",
        "data/2.public.u.0.copy.zst.age",
    ] {
        s.put_bytes(
            &format!("snapshots/{id}/{part}"),
            bytes::Bytes::from_static(b"x"),
        )
        .await
        .unwrap();
    }
    if complete {
        s.put_bytes(&manifest_key(id), bytes::Bytes::from_static(b"{}"))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn apply_deletes_the_manifest_first_and_touches_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let s = Recording {
        inner: FsStorage::open(dir.path().to_path_buf()).unwrap(),
        deletes: Mutex::new(Vec::new()),
    };
    let now = t(NOW);
    let young = id_at(now - Duration::days(34), 1);
    let old = id_at(now - Duration::days(36), 2);
    put_snapshot(&s, &young, true).await;
    put_snapshot(&s, &old, true).await;
    s.put_bytes(
        "erasures/01J0000000000000000000000A.json",
        bytes::Bytes::from_static(b"{}"),
    )
    .await
    .unwrap();
    s.put_bytes("lethe.json", bytes::Bytes::from_static(b"{}"))
        .await
        .unwrap();

    // Surveyed "now" is the injected clock; file mtimes are the real clock
    // and do not matter for complete snapshots (their age comes from the id).
    let survey = survey(&s, now).await.unwrap();
    assert_eq!(survey.snapshots.len(), 2);
    let p = plan_from(&survey, now, Policy::days(35));
    let before = s.list("").await.unwrap();
    assert_eq!(before.len(), 10);

    let done = apply(&s, &p, &CancellationToken::new()).await.unwrap();
    assert!(done.errors.is_empty(), "{:?}", done.errors);
    assert_eq!(done.snapshots_deleted, vec![old.clone()]);
    assert_eq!(done.objects_deleted, 4);
    let deletes = s.deletes.lock().unwrap().clone();
    assert_eq!(deletes[0], manifest_key(&old));
    assert_eq!(deletes.len(), 4);
    assert!(
        deletes
            .iter()
            .all(|k| k.starts_with(&format!("snapshots/{old}/")))
    );

    let after: Vec<String> = s
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(after.len(), 6);
    assert!(after.contains(&manifest_key(&young)));
    assert!(after.contains(&"erasures/01J0000000000000000000000A.json".to_string()));
    assert!(after.contains(&"lethe.json".to_string()));
}

#[tokio::test]
async fn a_leftover_that_gained_its_manifest_since_the_survey_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let s = FsStorage::open(dir.path().to_path_buf()).unwrap();
    let started = Utc::now() - Duration::days(3);
    let id = id_at(started, 7);
    put_snapshot(&s, &id, false).await;
    // Judge idleness from a clock two days ahead of the files' mtimes.
    let now = Utc::now() + Duration::days(2);
    let sv = survey(&s, now).await.unwrap();
    assert_eq!(sv.leftovers.len(), 1);
    let p = plan_from(&sv, now, Policy::days(35));
    assert_eq!(p.leftovers.len(), 1);
    s.put_bytes(&manifest_key(&id), bytes::Bytes::from_static(b"{}"))
        .await
        .unwrap();
    let done = apply(&s, &p, &CancellationToken::new()).await.unwrap();
    assert!(done.leftovers_deleted.is_empty());
    assert_eq!(s.list("snapshots/").await.unwrap().len(), 4);

    // Without the manifest it goes, every object of it.
    s.delete(&manifest_key(&id)).await.unwrap();
    let done = apply(&s, &p, &CancellationToken::new()).await.unwrap();
    assert_eq!(done.leftovers_deleted, vec![id]);
    assert!(s.list("snapshots/").await.unwrap().is_empty());
}

#[tokio::test]
async fn the_snapshot_lock_refuses_a_second_holder_and_is_taken_over_when_stale() {
    let dir = tempfile::tempdir().unwrap();
    let s: Arc<dyn Storage> = Arc::new(FsStorage::open(dir.path().to_path_buf()).unwrap());
    let now = t(NOW);
    let ttl = Duration::seconds(120);
    let zero = std::time::Duration::ZERO;
    let mut a = Lease::acquire(s.clone(), SNAPSHOT_LOCK_KEY, ttl, zero, now)
        .await
        .unwrap();
    match Lease::acquire(
        s.clone(),
        SNAPSHOT_LOCK_KEY,
        ttl,
        zero,
        now + Duration::seconds(30),
    )
    .await
    {
        Err(LeaseError::Held { holder, .. }) => assert_eq!(holder, a.record().holder),
        other => panic!("expected Held, got {other:?}"),
    }
    a.refresh(now + Duration::seconds(40)).await.unwrap();
    // Expired (160 s) but within the skew allowance: still refused.
    assert!(
        Lease::acquire(
            s.clone(),
            SNAPSHOT_LOCK_KEY,
            ttl,
            zero,
            now + Duration::seconds(200)
        )
        .await
        .is_err()
    );
    // Past it: taken over, and the old holder learns it lost at its refresh.
    let b = Lease::acquire(
        s.clone(),
        SNAPSHOT_LOCK_KEY,
        ttl,
        zero,
        now + Duration::seconds(230),
    )
    .await
    .unwrap();
    assert!(matches!(
        a.refresh(now + Duration::seconds(240)).await,
        Err(LeaseError::Lost { .. })
    ));
    // A loser's release leaves the winner's lease in place.
    a.release().await.unwrap();
    assert!(s.head(SNAPSHOT_LOCK_KEY).await.unwrap().is_some());
    b.release().await.unwrap();
    assert!(s.head(SNAPSHOT_LOCK_KEY).await.unwrap().is_none());
}

#[tokio::test]
async fn survey_reports_restore_leases_and_the_writer_lock() {
    let dir = tempfile::tempdir().unwrap();
    let s: Arc<dyn Storage> = Arc::new(FsStorage::open(dir.path().to_path_buf()).unwrap());
    let now = t(NOW);
    let old = id_at(now - Duration::days(36), 1);
    put_snapshot(s.as_ref(), &old, true).await;
    let r = Lease::for_restore(s.clone(), &old, Duration::seconds(120), now)
        .await
        .unwrap();
    let w = Lease::acquire(
        s.clone(),
        SNAPSHOT_LOCK_KEY,
        Duration::seconds(120),
        std::time::Duration::ZERO,
        now,
    )
    .await
    .unwrap();
    let sv = survey(s.as_ref(), now).await.unwrap();
    assert_eq!(sv.protections.len(), 2);
    let p = plan_from(&sv, now, Policy::days(35));
    assert!(p.expire.is_empty());
    assert_eq!(p.held_for_restore.len(), 1);
    r.release().await.unwrap();
    w.release().await.unwrap();
    let sv = survey(s.as_ref(), now).await.unwrap();
    assert!(sv.protections.is_empty());
    assert_eq!(plan_from(&sv, now, Policy::days(35)).expire.len(), 1);
}

#[test]
fn a_leftover_with_a_recent_or_undated_upload_is_kept() {
    let now = t(NOW);
    let id = id_at(now - Duration::days(2), 1);
    let l = LeftoverInfo {
        id: id.clone(),
        last_write: now - Duration::days(2),
        objects: 2,
        bytes: 10,
    };
    let u = |initiated| UploadInfo {
        key: format!("snapshots/{id}/data/3.public.t.0.copy.zst.age"),
        upload_id: "u-1".into(),
        initiated,
    };
    let p = |uploads: &[UploadInfo]| {
        plan(
            &[],
            std::slice::from_ref(&l),
            uploads,
            &[],
            now,
            Policy::days(35),
        )
        .leftovers
    };
    assert_eq!(p(&[]), vec![l.clone()]);
    assert_eq!(p(&[u(Some(now - Duration::hours(2)))]), vec![l.clone()]);
    assert!(p(&[u(Some(now - Duration::minutes(5)))]).is_empty());
    assert!(p(&[u(None)]).is_empty());
}
