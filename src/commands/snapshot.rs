//! `lethe snapshot`: one snapshot now, through the same library call the
//! daemon makes, under the same repository lock (`locks/snapshot.json`), so
//! a manual run and the daemon never write snapshots at once. SIGINT/SIGTERM
//! cancel it cleanly (no manifest, uploads aborted); a second signal exits at
//! once.
//!
//! In test builds (feature `test-hooks`), `LETHE_CLEANUP_GRACE` (a
//! humantime duration, default 1h) overrides how long an incomplete
//! snapshot must have been quiet before this run deletes its leftovers;
//! tests set it to `0s`.

use super::{Ctx, reported};
use crate::commands::list::human_bytes;
use crate::repo::lease::{SKEW_ALLOWANCE_SECS, SNAPSHOT_LOCK_KEY};
use crate::shutdown::{Hooks, Shutdown};
use crate::snapshot::locked::{self, LockOptions, LockedError};
use crate::snapshot::run::{self, SnapshotOptions};
use crate::snapshot::stage::{Progress, Stage};
use crate::telemetry::LogMark;
use crate::telemetry::progress::{Display, SNAPSHOT_TEMPLATE};
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tracing::Level;

pub async fn run(ctx: &Ctx) -> anyhow::Result<i32> {
    let cfg = ctx.config()?;
    // A failure before the snapshot starts is a failed snapshot too: alerts
    // on `snapshot.failed` must see it.
    let storage = match prepare(ctx, &cfg).await {
        Ok(s) => s,
        Err(e) => {
            let mark = LogMark::now();
            tracing::error!(event = "snapshot.failed", stage = "start", error = %format!("{e:#}"));
            return Err(reported(&mark, Level::ERROR, e));
        }
    };
    let cleanup_grace = match std::env::var("LETHE_CLEANUP_GRACE")
        .ok()
        .filter(|_| cfg!(feature = "test-hooks"))
    {
        Some(v) => humantime::parse_duration(&v).map_err(|e| {
            super::UsageError(format!("LETHE_CLEANUP_GRACE = {v:?}: {e} (e.g. 1h, 0s)"))
        })?,
        None => run::DEFAULT_CLEANUP_GRACE,
    };
    let store = open_list(&cfg).await;

    let shutdown = Shutdown::install(Hooks::message(
        "lethe: stopping: aborting uploads, nothing will be committed (signal again to exit now)",
    ))?;
    let progress = Arc::new(Progress::default());
    let (progress_for_display, started) = (progress.clone(), Instant::now());
    let stop = shutdown.token();
    let display = std::io::stderr()
        .is_terminal()
        .then(|| Display::new(SNAPSHOT_TEMPLATE, 0))
        .flatten()
        .map(Arc::new);
    let ticker = display
        .as_ref()
        .map(|d| tokio::spawn(show_progress(progress.clone(), Arc::downgrade(d), started)));
    // The snapshot logs how it ended (`snapshot.failed`, `snapshot.cancelled`);
    // what it logged is not printed again.
    let mark = LogMark::now();
    let result = locked::under_lock(
        storage.clone(),
        LockOptions::default(),
        &chrono::Utc::now,
        &shutdown.token(),
        |cancel| {
            let opts = SnapshotOptions {
                cancel,
                cleanup_grace,
                progress,
                ..SnapshotOptions::default()
            };
            locked::take(&cfg, storage.clone(), store, opts)
        },
    )
    .await;
    shutdown.stop().await;
    if let Some(t) = ticker {
        t.abort();
        let _ = t.await;
    }
    if let Some(d) = display {
        // Where the snapshot stopped stays on screen, above what follows.
        refresh(&d, &progress_for_display, started);
        d.bar().disable_steady_tick();
    }
    let outcome = match result {
        Ok(o) => o,
        Err(LockedError::Work(e) | LockedError::Lost { work: e, .. }) => {
            // A stop is `snapshot.cancelled` at INFO, a failure
            // `snapshot.failed` at ERROR (and a lost lock `lease.lost`).
            let level = if e.is_cancelled() || stop.is_cancelled() {
                Level::INFO
            } else {
                Level::ERROR
            };
            return Err(reported(&mark, level, e.into()));
        }
        Err(LockedError::Cancelled) => {
            anyhow::bail!("snapshot cancelled before it started; nothing was committed")
        }
        Err(LockedError::Held {
            holder,
            expires_at: Some(expires_at),
        }) => {
            let why = format!(
                "another lethe ({holder}) is taking a snapshot of {}: its lock {SNAPSHOT_LOCK_KEY} is held until \
                 {expires_at} and that process is running (or ran on another host: if it is gone, the lock is \
                 taken over {SKEW_ALLOWANCE_SECS}s after that); try again then",
                storage.describe()
            );
            let mark = LogMark::now();
            tracing::warn!(event = "snapshot.skipped", reason = "lock_held", holder = %holder, lock_expires_at = %expires_at, "{why}");
            return Err(reported(&mark, Level::WARN, anyhow::anyhow!(why)));
        }
        Err(LockedError::Held {
            holder,
            expires_at: None,
        }) => {
            let why = format!(
                "another lethe ({holder}) took the snapshot lock {SNAPSHOT_LOCK_KEY} at the same moment; try again"
            );
            let mark = LogMark::now();
            tracing::warn!(event = "snapshot.skipped", reason = "lock_held", holder = %holder, "{why}");
            return Err(reported(&mark, Level::WARN, anyhow::anyhow!(why)));
        }
        Err(LockedError::Lock(e)) => {
            let why = format!("cannot take the snapshot lock {SNAPSHOT_LOCK_KEY}: {e}");
            let mark = LogMark::now();
            tracing::error!(event = "snapshot.failed", stage = "lock", error = %why);
            return Err(reported(&mark, Level::ERROR, anyhow::anyhow!(why)));
        }
    };
    println!("{}", outcome.manifest.id);
    Ok(crate::exit::OK)
}

/// The progress display on a terminal, refreshed every quarter second:
/// stage, tables done of the total (known once the catalog is read), rows,
/// bytes read and rate (the bytes to come are not known in advance).
async fn show_progress(p: Arc<Progress>, display: std::sync::Weak<Display>, start: Instant) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        let Some(d) = display.upgrade() else { return };
        refresh(&d, &p, start);
    }
}

/// One refresh of the snapshot's display from its counters.
fn refresh(d: &Display, p: &Progress, start: Instant) {
    let bar = d.bar();
    let raw = p.raw_bytes.load(Ordering::Relaxed);
    let secs = start.elapsed().as_secs_f64().max(0.001);
    bar.set_prefix(p.stage().to_string());
    bar.set_length(p.tables_total.load(Ordering::Relaxed));
    bar.set_position(p.tables_done.load(Ordering::Relaxed));
    bar.set_message(match p.stage() {
        Stage::Data | Stage::Sequences | Stage::Commit => format!(
            "{} rows, {} read ({}/s)",
            p.rows.load(Ordering::Relaxed),
            human_bytes(raw),
            human_bytes((raw as f64 / secs) as u64),
        ),
        _ => String::new(),
    });
}

/// The erasure list at `erasure.path`, opened for reading; `None` when there
/// is none (the snapshot records an empty state) or it cannot be opened
/// (reported; the snapshot goes on without the leak check).
async fn open_list(cfg: &crate::config::Config) -> Option<Arc<crate::erasure::ErasureStore>> {
    let (path, t) = (cfg.erasure.path.clone(), cfg.erasure.subject_type);
    let opened = tokio::task::spawn_blocking(move || crate::erasure::reader::open(&path, t)).await;
    match opened {
        Ok(Ok(store)) => store.map(Arc::new),
        Ok(Err(e)) => {
            crate::erasure::reader::unreadable(&cfg.erasure.path, &e);
            None
        }
        Err(_) => None,
    }
}

/// Opens the repository and checks its marker.
async fn prepare(
    ctx: &Ctx,
    cfg: &crate::config::Config,
) -> anyhow::Result<Arc<dyn crate::storage::Storage>> {
    let storage = ctx.storage(cfg).await?;
    crate::repo::layout::check_marker(storage.as_ref()).await?;
    Ok(storage)
}
