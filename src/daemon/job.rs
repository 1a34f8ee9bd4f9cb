//! One daemon job: take the snapshot lock, snapshot (refreshing the lock
//! while it runs, cancelling the snapshot if the lock is lost), release the
//! lock, then apply retention. Jobs run one at a time; the lock keeps other
//! processes out.

use crate::config::Config;
use crate::erasure::ErasureStore;
use crate::repo::lease::SNAPSHOT_LOCK_KEY;
use crate::repo::manifest::Manifest;
use crate::retention::{self, Applied, Policy};
use crate::schedule::Clock;
use crate::snapshot::locked::{LockOptions, LockedError, under_lock};
use crate::storage::Storage;
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// A boxed error from the snapshot writer, shown with its message.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a finished snapshot reports to the daemon.
#[derive(Debug, Clone)]
pub struct SnapshotDone {
    pub manifest: Manifest,
    /// Rows of erased subjects found while snapshotting, per table: the
    /// application did not delete them. Counts only, never ids.
    pub leaks: Vec<crate::snapshot::run::Leak>,
    /// Whether the leak check ran (it needs the erasure list).
    pub leak_checked: bool,
}

/// The seam between the scheduler and the snapshot writer, so the
/// scheduler can be tested with time under control. Production:
/// [`WriterSnapshotter`], the same function `lethe snapshot` calls.
#[async_trait]
pub trait Snapshotter: Send + Sync + std::fmt::Debug {
    /// Takes one snapshot; must stop promptly and leave no manifest when
    /// `cancel` fires.
    async fn take(
        &self,
        cfg: Arc<Config>,
        storage: Arc<dyn Storage>,
        erasure: Option<Arc<ErasureStore>>,
        cancel: CancellationToken,
    ) -> Result<SnapshotDone, BoxError>;
}

/// The production snapshotter: `snapshot::locked::take`, the same function
/// `lethe snapshot` calls, with the erasure list's state recorded in the
/// manifest and the leak check on. It logs `snapshot.started`,
/// `snapshot.completed`, `erasure.leak_detected`, `snapshot.cancelled` and
/// `snapshot.failed` itself.
#[derive(Debug, Default)]
pub struct WriterSnapshotter;

#[async_trait]
impl Snapshotter for WriterSnapshotter {
    async fn take(
        &self,
        cfg: Arc<Config>,
        storage: Arc<dyn Storage>,
        erasure: Option<Arc<ErasureStore>>,
        cancel: CancellationToken,
    ) -> Result<SnapshotDone, BoxError> {
        use crate::snapshot::run::SnapshotOptions;
        let opts = SnapshotOptions {
            cancel,
            ..SnapshotOptions::default()
        };
        let out = crate::snapshot::locked::take(&cfg, storage, erasure, opts).await?;
        Ok(SnapshotDone {
            manifest: out.manifest,
            leaks: out.leaks,
            leak_checked: out.leak_checked,
        })
    }
}

/// Why a job was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// At start, because the last snapshot is older than the interval.
    Startup,
    Schedule,
    /// SIGUSR1.
    Signal,
    /// After a failure's backoff.
    Retry,
    /// Retention only (at start, when no snapshot is due).
    RetentionOnly,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Startup => "startup",
            Trigger::Schedule => "schedule",
            Trigger::Signal => "signal",
            Trigger::Retry => "retry",
            Trigger::RetentionOnly => "retention",
        }
    }
}

/// How the snapshot part of a job ended.
#[derive(Debug)]
pub enum SnapshotResult {
    Done(Box<SnapshotDone>),
    /// Another process holds the lock: a clear refusal, retried later.
    LockHeld {
        holder: String,
        expires_at: DateTime<Utc>,
    },
    /// The lock could not be taken, or was lost mid-snapshot: the daemon
    /// logs `snapshot.failed` (stage `lock`).
    LockFailed {
        error: String,
    },
    /// The snapshot failed; it logged `snapshot.failed` itself.
    Failed {
        error: String,
    },
    Cancelled,
}

/// What a job did.
#[derive(Debug)]
pub struct JobReport {
    pub trigger: Trigger,
    pub started_at: DateTime<Utc>,
    pub snapshot: Option<SnapshotResult>,
    pub retention: Option<Result<Applied, String>>,
}

/// Everything a job needs, cloned out of the daemon when it starts (a
/// reload does not change a running job).
#[derive(Debug, Clone)]
pub struct JobCtx {
    pub cfg: Arc<Config>,
    pub storage: Arc<dyn Storage>,
    pub erasure: Option<Arc<ErasureStore>>,
    pub clock: Arc<dyn Clock>,
    pub snapshotter: Arc<dyn Snapshotter>,
    pub lock_ttl: Duration,
    pub lock_settle: std::time::Duration,
}

/// Runs one job to the end (or until `cancel`).
pub async fn run(ctx: JobCtx, trigger: Trigger, cancel: CancellationToken) -> JobReport {
    crate::telemetry::panic::test_panic_point("daemon_job", || {
        format!(
            "{trigger:?} on {}; AWS_SECRET_ACCESS_KEY = {:?}",
            ctx.storage.describe(),
            std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_default()
        )
    });
    let started_at = ctx.clock.now();
    let mut report = JobReport {
        trigger,
        started_at,
        snapshot: None,
        retention: None,
    };
    if trigger != Trigger::RetentionOnly {
        let r = snapshot(&ctx, trigger, &cancel).await;
        // Cancelled: stopping. Lock held: the holder runs retention itself.
        let skip = matches!(
            r,
            SnapshotResult::Cancelled | SnapshotResult::LockHeld { .. }
        );
        report.snapshot = Some(r);
        if skip || cancel.is_cancelled() {
            return report;
        }
    }
    report.retention = Some(apply_retention(&ctx, &cancel).await);
    report
}

async fn snapshot(ctx: &JobCtx, trigger: Trigger, cancel: &CancellationToken) -> SnapshotResult {
    let lock = LockOptions {
        ttl: ctx.lock_ttl,
        settle: ctx.lock_settle,
    };
    let clock = ctx.clock.clone();
    let now = move || clock.now();
    let taken = under_lock(ctx.storage.clone(), lock, &now, cancel, |snap_cancel| {
        tracing::debug!(
            event = "daemon.snapshot_begin",
            trigger = trigger.as_str(),
            lock = SNAPSHOT_LOCK_KEY
        );
        ctx.snapshotter.take(
            ctx.cfg.clone(),
            ctx.storage.clone(),
            ctx.erasure.clone(),
            snap_cancel,
        )
    })
    .await;
    match taken {
        Ok(done) => SnapshotResult::Done(Box::new(done)),
        // The daemon is stopping: whatever the lock or the snapshot then
        // reported is the stop's doing, not a failure (the snapshot logged
        // `snapshot.cancelled` if it had started).
        Err(_) if cancel.is_cancelled() => SnapshotResult::Cancelled,
        Err(LockedError::Cancelled) => SnapshotResult::Cancelled,
        Err(LockedError::Held { holder, expires_at }) => SnapshotResult::LockHeld {
            holder,
            expires_at: expires_at.unwrap_or_else(|| ctx.clock.now() + ctx.lock_ttl),
        },
        Err(LockedError::Lock(e)) => SnapshotResult::LockFailed {
            error: format!("cannot take the snapshot lock: {e}"),
        },
        Err(LockedError::Lost { lease, .. }) => SnapshotResult::LockFailed {
            error: format!("stopped: {lease}"),
        },
        Err(LockedError::Work(e)) => SnapshotResult::Failed {
            error: error_chain(e.as_ref()),
        },
    }
}

/// `error: cause: cause`, for one log field.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

async fn apply_retention(ctx: &JobCtx, cancel: &CancellationToken) -> Result<Applied, String> {
    let started = std::time::Instant::now();
    let now = ctx.clock.now();
    let policy = Policy::days(ctx.cfg.retention.days);
    let survey = retention::survey(ctx.storage.as_ref(), now)
        .await
        .map_err(|e| e.to_string())?;
    let plan = retention::plan_from(&survey, now, policy);
    for h in &plan.held_for_restore {
        tracing::warn!(
            event = "retention.held_for_restore",
            id = %h.id,
            age_days = h.age_days,
            holder = %h.holder,
            "expired snapshot kept while a restore reads it"
        );
    }
    let mut applied = retention::apply(ctx.storage.as_ref(), &plan, cancel)
        .await
        .map_err(|e| e.to_string())?;
    // The change stream (continuous capture) expires beside the snapshots.
    let changes = crate::capture::expiry::run(
        ctx.storage.as_ref(),
        now,
        ctx.cfg.retention.days,
        crate::capture::expiry::LEFTOVER_GRACE,
        crate::capture::expiry::held_from(&survey.protections),
    )
    .await
    .map_err(|e| format!("listing the change stream: {e}"))?;
    applied.errors.extend(changes.errors.iter().cloned());
    applied.bytes_freed += changes.bytes_freed;
    retention::record_prune(
        Arc::clone(&ctx.storage),
        ctx.cfg.evidence.keep_days,
        now,
        &applied,
        retention::ChangesExpired {
            segments: changes.segments,
            gaps: changes.gaps,
        },
        false,
    )
    .await;
    tracing::info!(
        event = "retention.completed",
        kept = plan.keep.len() + plan.held_for_restore.len(),
        deleted = applied.snapshots_deleted.len(),
        leftovers_deleted = applied.leftovers_deleted.len(),
        segments_deleted = changes.segments,
        segment_leftovers_deleted = changes.leftovers,
        gaps_deleted = changes.gaps,
        uploads_aborted = applied.uploads_aborted,
        bytes_freed = applied.bytes_freed,
        errors = applied.errors.len(),
        seconds = started.elapsed().as_secs_f64(),
    );
    if applied.errors.is_empty() {
        Ok(applied)
    } else {
        Err(format!(
            "{} deletion(s) failed, first: {}",
            applied.errors.len(),
            applied.errors[0]
        ))
    }
}
