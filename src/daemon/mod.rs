//! The daemon: snapshots on a schedule, retention after each one, the
//! erasure journal worker and the local API, under one cancellation tree.
//! Every task is awaited with a deadline at shutdown; nothing is detached.
//!
//! Start-up: config and schedule parsed, storage reachable, erasure list
//! open, retention (and a snapshot if the last one is older than the
//! interval), lifecycle check; then `READY=1` and `daemon.ready`.

mod drills;
pub mod job;
mod metrics;
pub mod notify;
mod paused;
mod reload;
mod signals;
pub mod status;

pub use signals::Control;

use crate::config::Config;
use crate::erasure::ErasureStore;
use crate::leak_state::{LeakReport, LeakState};
use crate::pause_switch::PauseSwitch;
use crate::repo::layout;
use crate::schedule::{Backoff, Clock, Schedule};
use crate::storage::Storage;
use crate::units::rfc3339;
use chrono::{DateTime, Duration, Utc};
use job::{JobCtx, JobReport, SnapshotResult, Snapshotter, Trigger};
use notify::Notifier;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

/// Knobs with production defaults; tests shorten them.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub backoff: Backoff,
    /// Everything in flight gets this long to stop after SIGTERM (the
    /// promise is exit within 10 s).
    pub shutdown_deadline: std::time::Duration,
    pub lock_ttl: Duration,
    pub lock_settle: std::time::Duration,
    /// How often the bucket's lifecycle rule is checked.
    pub lifecycle_every: std::time::Duration,
    pub journal: crate::erasure::journal::WorkerOptions,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        DaemonOptions {
            backoff: Backoff::default(),
            shutdown_deadline: std::time::Duration::from_secs(8),
            lock_ttl: Duration::seconds(crate::repo::lease::DEFAULT_TTL_SECS),
            lock_settle: std::time::Duration::from_secs(1),
            lifecycle_every: std::time::Duration::from_secs(24 * 3600),
            journal: Default::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Config(String),
    #[error("cannot start: {0}")]
    Startup(String),
}

/// The longest single sleep: wall-clock jumps (suspend, NTP steps) are
/// noticed within this.
const MAX_SLEEP: std::time::Duration = std::time::Duration::from_secs(30);

/// A running daemon's moving parts.
pub struct Daemon {
    config_path: PathBuf,
    cfg: Arc<Config>,
    schedule: Schedule,
    storage: Arc<dyn Storage>,
    erasure: Option<Arc<ErasureStore>>,
    /// The local erasure API, bound before `READY=1`.
    api: Option<crate::erasure::api::ApiServer>,
    clock: Arc<dyn Clock>,
    snapshotter: Arc<dyn Snapshotter>,
    opts: DaemonOptions,
    notifier: Notifier,
    /// Start of the last snapshot attempt, success or not.
    last_attempt: Option<DateTime<Utc>>,
    /// The last complete snapshot: id and finish time.
    last_ok: Option<(String, DateTime<Utc>)>,
    failures: u32,
    next_due: DateTime<Utc>,
    /// `lethe pause` / `lethe resume` (through the API); memory only.
    pause: PauseSwitch,
    /// The last snapshot's leak check, reported by the API; memory only.
    leaks: LeakState,
    /// Continuous capture, while `continuous.enabled`.
    capture: Option<CaptureTask>,
}

/// The running capture and what stops it.
struct CaptureTask {
    handle: JoinHandle<()>,
    stop: CancellationToken,
}

enum Wake {
    Stop,
    Control(Control),
    Due,
    JobDone(Result<JobReport, tokio::task::JoinError>),
    Watchdog,
    Lifecycle,
    Aux,
    /// The pause switch changed.
    Paused(Option<DateTime<Utc>>),
}

impl Daemon {
    /// Builds a daemon from a loaded config and what the caller opened:
    /// storage and the erasure list (tests may run without one).
    ///
    /// # Errors
    /// A bad schedule.
    pub fn new(
        config_path: PathBuf,
        cfg: Config,
        storage: Arc<dyn Storage>,
        erasure: Option<Arc<ErasureStore>>,
        clock: Arc<dyn Clock>,
        snapshotter: Arc<dyn Snapshotter>,
        opts: DaemonOptions,
    ) -> Result<Daemon, DaemonError> {
        let schedule = Schedule::from_config(&cfg.schedule).map_err(DaemonError::Config)?;
        let now = clock.now();
        Ok(Daemon {
            config_path,
            cfg: Arc::new(cfg),
            schedule,
            storage,
            erasure,
            api: None,
            clock,
            snapshotter,
            opts,
            notifier: Notifier,
            last_attempt: None,
            last_ok: None,
            failures: 0,
            next_due: now,
            pause: PauseSwitch::new(),
            leaks: LeakState::default(),
            capture: None,
        })
    }

    /// Serves the erasure API from this daemon (needs the erasure list).
    pub fn with_api(mut self, api: crate::erasure::api::ApiServer) -> Daemon {
        self.api = Some(
            api.with_pause(self.pause.clone())
                .with_leaks(self.leaks.clone()),
        );
        self
    }

    /// The last snapshot's leak check, as the API reports it.
    pub fn leak_state(&self) -> LeakState {
        self.leaks.clone()
    }

    /// The switch `lethe pause` flips (tests flip it directly).
    pub fn pause_switch(&self) -> PauseSwitch {
        self.pause.clone()
    }

    fn job_ctx(&self) -> JobCtx {
        JobCtx {
            cfg: self.cfg.clone(),
            storage: self.storage.clone(),
            erasure: self.erasure.clone(),
            clock: self.clock.clone(),
            snapshotter: self.snapshotter.clone(),
            lock_ttl: self.opts.lock_ttl,
            lock_settle: self.opts.lock_settle,
        }
    }

    fn status_line(&self) -> String {
        let last = match &self.last_ok {
            Some((id, at)) => format!("last snapshot {id} at {}", at.format("%Y-%m-%d %H:%M:%SZ")),
            None => "no snapshot yet".into(),
        };
        format!(
            "{last}; next {}",
            self.next_due.format("%Y-%m-%d %H:%M:%SZ")
        )
    }

    /// Runs until `root` is cancelled (SIGTERM/SIGINT when run from
    /// [`run`]), then drains: the in-flight snapshot is cancelled, the
    /// journal worker pushes what is pending, every task is awaited within
    /// [`DaemonOptions::shutdown_deadline`].
    ///
    /// # Errors
    /// Start-up checks failed (storage unreadable).
    pub async fn run(
        mut self,
        root: CancellationToken,
        mut controls: mpsc::Receiver<Control>,
    ) -> Result<(), DaemonError> {
        let started = std::time::Instant::now();
        // Start-up check: the repository is readable, and when did the last
        // snapshot start?
        let complete = layout::list_complete(self.storage.as_ref())
            .await
            .map_err(|e| {
                DaemonError::Startup(format!("cannot list {}: {e}", self.storage.describe()))
            })?;
        if let Some(id) = complete.first() {
            self.last_attempt = Some(id.started_at());
            let finished = match layout::load_manifest(self.storage.as_ref(), id).await {
                Ok(m) => m.finished_at,
                Err(_) => id.started_at(),
            };
            self.last_ok = Some((id.to_string(), finished));
        }
        layout::check_marker(self.storage.as_ref())
            .await
            .map_err(|e| DaemonError::Startup(e.to_string()))?;
        let now = self.clock.now();
        self.next_due = self.schedule.due(self.last_attempt, now);
        self.start_capture().await?;

        let mut aux: JoinSet<()> = JoinSet::new();
        let journal = self.erasure.clone().map(|store| {
            tokio::spawn(crate::erasure::journal::run_worker(
                store,
                self.storage.clone(),
                self.opts.journal,
                root.child_token(),
            ))
        });
        let api = match (self.api.take(), self.erasure.clone()) {
            (Some(server), Some(store)) => Some(tokio::spawn(server.run(
                store,
                self.storage.clone(),
                root.child_token(),
            ))),
            _ => None,
        };
        // At start: retention now, unless a snapshot is due (it runs
        // retention right after).
        let first = if self.next_due <= now {
            Trigger::Startup
        } else {
            Trigger::RetentionOnly
        };
        let mut job: Option<(JoinHandle<JobReport>, CancellationToken)> =
            Some(self.start_job(first, &root));
        self.spawn_lifecycle_check(&mut aux);
        // Drills on their own schedule (validated with the config).
        if let Ok(Some(schedule)) = self.cfg.drill.schedule() {
            aux.spawn(drills::run(
                self.cfg.clone(),
                self.storage.clone(),
                schedule,
                root.child_token(),
            ));
        }

        let watchdog = self.notifier.watchdog_interval();
        let mut watchdog_tick =
            tokio::time::interval(watchdog.unwrap_or(std::time::Duration::from_secs(3600)));
        let mut lifecycle_tick = tokio::time::interval(self.opts.lifecycle_every);
        let mut pause_rx = self.pause.subscribe();
        let mut paused_since = *pause_rx.borrow_and_update();
        lifecycle_tick.tick().await; // the first tick is immediate; the check above covers it
        self.notifier.ready(&self.status_line());
        tracing::info!(
            event = "daemon.ready",
            repository = %self.storage.describe(),
            schedule = %self.schedule.describe(),
            retention_days = self.cfg.retention.days,
            next_run = %rfc3339(self.next_due),
            last_snapshot = self.last_ok.as_ref().map(|(id, _)| id.as_str()),
            api = %self.cfg.api.listen,
            watchdog_s = watchdog.map(|d| d.as_secs_f64() * 2.0),
            startup_s = started.elapsed().as_secs_f64(),
            pid = std::process::id(),
        );

        loop {
            let wait = (self.next_due - self.clock.now())
                .to_std()
                .unwrap_or_default()
                .min(MAX_SLEEP);
            // Biased: once a stop is asked for, it wins over everything else
            // that is ready at the same moment (a finished job, a due run),
            // so no new job starts after SIGTERM.
            let wake = tokio::select! {
                biased;
                () = root.cancelled() => Wake::Stop,
                c = controls.recv() => match c { Some(c) => Wake::Control(c), None => Wake::Stop },
                r = async { match job.as_mut() { Some((h, _)) => h.await, None => std::future::pending().await } } => Wake::JobDone(r),
                () = tokio::time::sleep(wait), if job.is_none() => Wake::Due,
                _ = watchdog_tick.tick(), if watchdog.is_some() => Wake::Watchdog,
                _ = lifecycle_tick.tick() => Wake::Lifecycle,
                Some(_) = aux.join_next(), if !aux.is_empty() => Wake::Aux,
                Ok(()) = pause_rx.changed() => Wake::Paused(*pause_rx.borrow_and_update()),
            };
            match wake {
                Wake::Stop => break,
                Wake::Watchdog => self.notifier.watchdog(),
                Wake::Lifecycle => self.spawn_lifecycle_check(&mut aux),
                Wake::Aux => {}
                Wake::Paused(now_paused) => {
                    self.pause_changed(paused_since, now_paused);
                    paused_since = now_paused;
                }
                Wake::Due if paused_since.is_some() => {
                    let now = self.clock.now();
                    if now >= self.next_due {
                        // The due run is skipped, not queued: the next one
                        // is a whole interval (or the next cron time) away.
                        self.next_due = self.schedule.due(Some(now), now);
                        tracing::info!(
                            event = "snapshot.skipped",
                            reason = "paused",
                            trigger = "schedule",
                            next_run = %rfc3339(self.next_due),
                            "scheduled snapshot skipped: paused by `lethe pause`; `lethe resume` resumes"
                        );
                    }
                }
                Wake::Due => {
                    if self.clock.now() >= self.next_due {
                        let trigger = if self.failures > 0 {
                            Trigger::Retry
                        } else {
                            Trigger::Schedule
                        };
                        job = Some(self.start_job(trigger, &root));
                    }
                }
                Wake::Control(Control::SnapshotNow) => {
                    if paused_since.is_some() {
                        tracing::info!(
                            event = "snapshot.skipped",
                            reason = "paused",
                            trigger = "signal",
                            "SIGUSR1 ignored: scheduled snapshots are paused by `lethe pause`; `lethe resume` first"
                        );
                    } else if job.is_some() {
                        tracing::info!(
                            event = "snapshot.skipped",
                            reason = "already_running",
                            "SIGUSR1 ignored: a job is running"
                        );
                    } else {
                        job = Some(self.start_job(Trigger::Signal, &root));
                    }
                }
                Wake::Control(Control::Reload) => self.reload().await,
                Wake::JobDone(r) => {
                    job = None;
                    match r {
                        Ok(report) => self.finish_job(report),
                        Err(e) => {
                            // A panic's message is in `e`: redacted like the panic hook's.
                            let error = crate::telemetry::panic::redact(&e.to_string());
                            tracing::error!(event = "daemon.job_panicked", error = %error, "a job ended abnormally; retrying later");
                            self.failures += 1;
                            self.next_due = self.clock.now() + self.backoff();
                        }
                    }
                    self.notifier.status(&self.status_line());
                }
            }
        }

        // Drain. The root token is cancelled, so every child token is too.
        root.cancel();
        tracing::info!(
            event = "daemon.stopping",
            snapshot_in_flight = job.is_some(),
            "stopping: draining tasks"
        );
        self.notifier.stopping();
        let deadline = tokio::time::Instant::now() + self.opts.shutdown_deadline;
        if let Some((handle, _)) = job.take()
            && !await_task("snapshot", handle, deadline).await
        {
            // The abandoned job could not release its lock: do it here,
            // so the next start need not wait for the lease to expire.
            let release = crate::repo::lease::release_own(
                self.storage.as_ref(),
                crate::repo::lease::SNAPSHOT_LOCK_KEY,
            );
            if let Ok(Ok(true)) =
                tokio::time::timeout(std::time::Duration::from_secs(1), release).await
            {
                tracing::info!(
                    event = "lease.released",
                    key = crate::repo::lease::SNAPSHOT_LOCK_KEY
                );
            }
        }
        if let Some(t) = self.capture.take() {
            t.stop.cancel();
            await_task("capture", t.handle, deadline).await;
        }
        if let Some(handle) = journal {
            await_task("erasure_journal", handle, deadline).await;
        }
        if let Some(handle) = api {
            await_task("api", handle, deadline).await;
        }
        aux.abort_all();
        while aux.join_next().await.is_some() {}
        tracing::info!(
            event = "daemon.stopped",
            seconds = started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// With `continuous.enabled`: the preflight (a refused source stops the
    /// start, exit 2, naming each problem and its fix), then the capture
    /// task, which retries on its own while the source or storage is away.
    pub(super) async fn start_capture(&mut self) -> Result<(), DaemonError> {
        let cont = &self.cfg.continuous;
        if !cont.enabled {
            return Ok(());
        }
        let url = &self.cfg.source.url;
        match crate::continuous::preflight(url, cont).await {
            Ok(p) => {
                for w in &p.warnings {
                    tracing::warn!(event = "continuous.warning", warning = %w);
                }
            }
            Err(e @ crate::continuous::PreflightError::Refused(_)) => {
                return Err(DaemonError::Config(e.to_string()));
            }
            // The source is away: the capture retries until it is back.
            Err(e) => {
                tracing::warn!(event = "continuous.interrupted", error = %e, "the source cannot be checked now; capture retries")
            }
        }
        let source = crate::pg::source_identity(url)
            .map_err(|e| DaemonError::Config(e.to_string()))?
            .0;
        let s = crate::capture::SessionCfg {
            cfg: self.cfg.clone(),
            storage: self.storage.clone(),
            store: self.erasure.clone(),
            source,
        };
        let stop = CancellationToken::new();
        let token = stop.clone();
        let handle = tokio::spawn(async move {
            // A fatal failure is logged (continuous.failed) by the capture;
            // the scheduled snapshots go on.
            let _ = crate::capture::run(s, token).await;
        });
        self.capture = Some(CaptureTask { handle, stop });
        Ok(())
    }

    /// Stops the capture (it stores what is complete) within `deadline`.
    pub(super) async fn stop_capture(&mut self, deadline: std::time::Duration) {
        if let Some(t) = self.capture.take() {
            t.stop.cancel();
            await_task("capture", t.handle, tokio::time::Instant::now() + deadline).await;
        }
    }

    fn backoff(&self) -> Duration {
        let now = self.clock.now();
        self.opts
            .backoff
            .delay(self.failures, self.schedule.interval_near(now))
    }

    fn start_job(
        &mut self,
        trigger: Trigger,
        root: &CancellationToken,
    ) -> (JoinHandle<JobReport>, CancellationToken) {
        let cancel = root.child_token();
        // With continuous capture the bases replace the scheduled
        // snapshots: the schedule runs retention only (SIGUSR1 still takes
        // a snapshot).
        let trigger = if self.cfg.continuous.enabled
            && matches!(
                trigger,
                Trigger::Schedule | Trigger::Startup | Trigger::Retry
            ) {
            let now = self.clock.now();
            self.next_due = self.schedule.due(Some(now), now);
            Trigger::RetentionOnly
        } else {
            trigger
        };
        if trigger != Trigger::RetentionOnly {
            self.last_attempt = Some(self.clock.now());
        }
        let handle = tokio::spawn(job::run(self.job_ctx(), trigger, cancel.clone()));
        (handle, cancel)
    }

    fn finish_job(&mut self, report: JobReport) {
        let now = self.clock.now();
        match report.snapshot {
            None | Some(SnapshotResult::Cancelled) => {}
            Some(SnapshotResult::Done(done)) => {
                self.failures = 0;
                let m = &done.manifest;
                self.last_ok = Some((m.id.to_string(), m.finished_at));
                self.leaks.record(LeakReport::new(
                    m.id.to_string(),
                    m.finished_at,
                    done.leak_checked,
                    done.leaks.clone(),
                ));
                self.next_due = self.schedule.due(Some(report.started_at), now);
            }
            Some(SnapshotResult::LockHeld { holder, expires_at }) => {
                self.failures += 1;
                let retry = self.backoff();
                self.next_due = now + retry;
                tracing::warn!(
                    event = "snapshot.skipped",
                    reason = "lock_held",
                    holder = %holder,
                    lock_expires_at = %rfc3339(expires_at),
                    retry_in_s = retry.num_seconds(),
                    "another lethe holds the snapshot lock on this repository"
                );
            }
            Some(
                SnapshotResult::Failed { ref error } | SnapshotResult::LockFailed { ref error },
            ) => {
                self.failures += 1;
                let retry = self.backoff();
                self.next_due = now + retry;
                if matches!(report.snapshot, Some(SnapshotResult::LockFailed { .. })) {
                    tracing::error!(event = "snapshot.failed", stage = "lock", error = %error);
                }
                tracing::warn!(
                    event = "daemon.retry_scheduled",
                    trigger = report.trigger.as_str(),
                    failures = self.failures,
                    retry_in_s = retry.num_seconds(),
                    error = %error,
                );
            }
        }
        if let Some(Err(e)) = report.retention {
            tracing::error!(event = "retention.failed", error = %e, "retention did not finish; it runs again after the next snapshot");
        }
    }

    fn spawn_lifecycle_check(&self, aux: &mut JoinSet<()>) {
        let storage_cfg = self.cfg.storage.clone();
        let days = self.cfg.retention.days;
        aux.spawn(async move {
            let check = crate::storage::lifecycle::lifecycle_status(&storage_cfg, crate::retention::lifecycle_policy(days));
            match tokio::time::timeout(std::time::Duration::from_secs(60), check).await {
                Ok(Ok(status)) => report_lifecycle(&status, days),
                Ok(Err(e)) => tracing::warn!(event = "retention.lifecycle_unknown", error = %e, "cannot read the bucket's lifecycle rules"),
                Err(_) => tracing::warn!(event = "retention.lifecycle_unknown", error = "timed out", "cannot read the bucket's lifecycle rules"),
            }
        });
    }
}

/// Logs the lifecycle rule's state; drift is `retention.lifecycle_drift`.
fn report_lifecycle(status: &crate::storage::lifecycle::LifecycleStatus, days: u32) {
    use crate::storage::lifecycle::LifecycleStatus as S;
    match status {
        S::Present => tracing::info!(event = "retention.lifecycle_ok", retention_days = days),
        S::NotApplicable => tracing::debug!(
            event = "retention.lifecycle_ok",
            note = "directory repository: no lifecycle"
        ),
        S::Missing(rules) => tracing::warn!(
            event = "retention.lifecycle_drift",
            state = "missing",
            rules = %rules.join(","),
            retention_days = days,
            "the bucket lacks Lethe's lifecycle rule: nothing expires snapshots while the daemon is down; run `lethe init`"
        ),
        S::Drifted(rules) => tracing::warn!(
            event = "retention.lifecycle_drift",
            state = "drifted",
            rules = %rules.join(","),
            retention_days = days,
            "the bucket's lifecycle rule differs from retention.days; run `lethe init`"
        ),
    }
}

/// Awaits a task until `deadline`, then aborts it (and says so). Returns
/// false when it had to be aborted.
async fn await_task<T>(
    name: &'static str,
    mut handle: JoinHandle<T>,
    deadline: tokio::time::Instant,
) -> bool {
    match tokio::time::timeout_at(deadline, &mut handle).await {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => {
            // A panicked task's message is in `e`: redacted like the hook's.
            let error = crate::telemetry::panic::redact(&e.to_string());
            tracing::warn!(event = "daemon.task_failed", task = name, error = %error);
            true
        }
        Err(_) => {
            tracing::warn!(
                event = "daemon.shutdown_timeout",
                task = name,
                "did not stop in time; aborted"
            );
            handle.abort();
            let _ = handle.await;
            false
        }
    }
}

/// `lethe daemon`: opens everything, installs signal handlers and runs
/// until SIGTERM/SIGINT. Returns the exit code (0 after a clean drain).
///
/// # Errors
/// `DaemonError::Config` (exit 2) or start-up failures (exit 1).
pub async fn run(config_path: PathBuf, cfg: Config) -> Result<i32, DaemonError> {
    let root = CancellationToken::new();
    let (tx, rx) = mpsc::channel(4);
    // Handlers first: a SIGTERM during start-up drains instead of killing.
    let signals = signals::spawn(root.clone(), tx)
        .map_err(|e| DaemonError::Startup(format!("signal handlers: {e}")))?;
    let result = async {
        let storage = crate::storage::open(&cfg.storage)
            .await
            .map_err(|e| DaemonError::Startup(format!("storage {}: {e}", cfg.storage.url)))?;
        let (path, ty) = (cfg.erasure.path.clone(), cfg.erasure.subject_type);
        let erasure = tokio::task::spawn_blocking(move || ErasureStore::open(&path, ty))
            .await
            .map_err(|e| DaemonError::Startup(e.to_string()))?
            .map_err(|e| DaemonError::Startup(format!("erasure list: {e}")))?;
        let api = crate::erasure::api::ApiServer::bind(&cfg.api)
            .await
            .map_err(|e| DaemonError::Startup(format!("erasure API: {e}")))?;
        let metrics = match cfg.metrics.addr() {
            Ok(Some(addr)) => Some(metrics::bind(addr).await.map_err(|e| {
                DaemonError::Startup(format!(
                    "metrics.listen {addr}: {e}; pick a free port or leave metrics.listen out"
                ))
            })?),
            Ok(None) => None,
            Err(e) => return Err(DaemonError::Startup(e)),
        };
        let served = metrics.map(|l| tokio::spawn(metrics::serve(l, root.child_token())));
        let daemon = Daemon::new(
            config_path,
            cfg,
            storage,
            Some(Arc::new(erasure)),
            Arc::new(crate::schedule::SystemClock),
            Arc::new(job::WriterSnapshotter),
            DaemonOptions::default(),
        )?
        .with_api(api);
        let out = daemon.run(root.clone(), rx).await;
        root.cancel();
        if let Some(task) = served {
            let _ = task.await;
        }
        out
    }
    .await;
    signals.stop().await;
    result.map(|()| crate::exit::OK)
}

#[cfg(test)]
mod tests;
