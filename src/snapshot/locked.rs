//! A snapshot under the repository's snapshot lock: the one call that
//! `lethe snapshot` and the daemon's job share.
//!
//! Take the lock (`locks/snapshot.json`), run the snapshot while refreshing
//! the lock, cancel the snapshot if the lock is lost (`lease.lost`), release
//! the lock. The snapshot itself ([`take`]) reads the erasure list for the
//! manifest and the leak check (`erasure::reader`) and logs
//! `snapshot.started`, `snapshot.completed` / `snapshot.failed` and
//! `erasure.leak_detected`; callers log only what is theirs (a skipped or
//! failed lock, the daemon's retry).

use super::run::{SnapshotOptions, SnapshotOutcome, take_snapshot};
use super::stage::SnapshotError;
use crate::config::Config;
use crate::erasure::ErasureStore;
use crate::repo::lease::{DEFAULT_TTL_SECS, Lease, LeaseError, SNAPSHOT_LOCK_KEY};
use crate::storage::Storage;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// How the lock is taken.
#[derive(Debug, Clone, Copy)]
pub struct LockOptions {
    /// How long the lock lives without a refresh.
    pub ttl: chrono::Duration,
    /// How long to wait after writing the lock before reading it back (so
    /// two writers at the same moment see who won).
    pub settle: std::time::Duration,
}

impl Default for LockOptions {
    fn default() -> Self {
        Self {
            ttl: chrono::Duration::seconds(DEFAULT_TTL_SECS),
            settle: std::time::Duration::from_secs(1),
        }
    }
}

/// Why work under the lock did not finish.
#[derive(Debug)]
pub enum LockedError<E> {
    /// Stopped before the lock was taken.
    Cancelled,
    /// Another process holds the lock (`expires_at`: when it runs out), or
    /// wrote it at the same moment (`expires_at` is then `None`).
    Held {
        holder: String,
        expires_at: Option<DateTime<Utc>>,
    },
    /// The lock could not be taken (storage).
    Lock(LeaseError),
    /// The lock was lost while the work ran, so the work was cancelled;
    /// `work` is how the work ended.
    Lost { lease: LeaseError, work: E },
    /// The work failed.
    Work(E),
}

/// Runs `work` under the snapshot lock. `work` gets a token that fires on
/// `cancel` or when the lock is lost.
///
/// # Errors
/// See [`LockedError`].
pub async fn under_lock<T, E, F, Fut>(
    storage: Arc<dyn Storage>,
    lock: LockOptions,
    now: &(dyn Fn() -> DateTime<Utc> + Send + Sync),
    cancel: &CancellationToken,
    work: F,
) -> Result<T, LockedError<E>>
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let acquired = tokio::select! {
        biased;
        () = cancel.cancelled() => return Err(LockedError::Cancelled),
        r = Lease::acquire(storage, SNAPSHOT_LOCK_KEY, lock.ttl, lock.settle, now()) => r,
    };
    let mut lease = match acquired {
        Ok(l) => l,
        Err(LeaseError::Held {
            holder, expires_at, ..
        }) => {
            return Err(LockedError::Held {
                holder,
                expires_at: Some(expires_at),
            });
        }
        Err(LeaseError::Lost { holder, .. }) => {
            return Err(LockedError::Held {
                holder,
                expires_at: None,
            });
        }
        Err(e) => return Err(LockedError::Lock(e)),
    };
    let work_cancel = cancel.child_token();
    let stop_refresh = CancellationToken::new();
    let take = async {
        let r = work(work_cancel.clone()).await;
        stop_refresh.cancel();
        r
    };
    let hold = async {
        let r = lease.hold(&stop_refresh, now).await;
        if let Err(e) = &r {
            tracing::error!(event = "lease.lost", key = SNAPSHOT_LOCK_KEY, error = %e, "stopping the snapshot");
            work_cancel.cancel();
        }
        r
    };
    let (taken, held) = tokio::join!(take, hold);
    lease.release_bounded().await;
    match (taken, held) {
        (Ok(t), _) => Ok(t),
        (Err(work), Err(lease)) => Err(LockedError::Lost { lease, work }),
        (Err(e), Ok(())) => Err(LockedError::Work(e)),
    }
}

/// One snapshot (not locked: run it through [`under_lock`]), with the
/// erasure list `store` (if any) read for the manifest's list state and the
/// leak check.
///
/// # Errors
/// As [`take_snapshot`].
pub async fn take(
    cfg: &Config,
    storage: Arc<dyn Storage>,
    store: Option<Arc<ErasureStore>>,
    mut opts: SnapshotOptions,
) -> Result<SnapshotOutcome, SnapshotError> {
    if let Some((state, set)) = crate::erasure::reader::for_snapshot(store, &cfg.erasure.path).await
    {
        opts.erasure_list = state;
        // A root a policy redacts or keeps holds its erased subjects' rows
        // on purpose (the application anonymises them): not a leak.
        let qualified = crate::pg::qualified;
        let kept: Vec<String> = cfg
            .erasure
            .policy
            .iter()
            .filter(|p| p.action != crate::erasure::policy::PolicyAction::Drop)
            .map(|p| qualified(&p.table))
            .collect();
        opts.leak_check = Some(super::run::LeakCheck {
            set,
            subject_type: cfg.erasure.subject_type,
            roots: cfg
                .erasure
                .subjects
                .iter()
                .filter(|r| !kept.contains(&qualified(&r.table)))
                .cloned()
                .collect(),
        });
    }
    take_snapshot(cfg, storage, opts).await
}
