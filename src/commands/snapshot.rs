//! `lethe snapshot`: one snapshot now, through the same library call the
//! daemon makes, under the same repository lock (`locks/snapshot.json`), so
//! a manual run and the daemon never write snapshots at once. SIGINT/SIGTERM
//! cancel it cleanly (no manifest, uploads aborted); a second signal exits at
//! once.
//!
//! `LETHE_CLEANUP_GRACE` (a humantime duration, default 1h) overrides how
//! long an incomplete snapshot must have been quiet before this run deletes
//! its leftovers; tests set it to `0s`.

use super::Ctx;
use crate::commands::list::human_bytes;
use crate::repo::lease::{
    DEFAULT_TTL_SECS, Lease, LeaseError, SKEW_ALLOWANCE_SECS, SNAPSHOT_LOCK_KEY,
};
use crate::repo::manifest::ListState;
use crate::snapshot::run::{self, LeakCheck, SnapshotOptions};
use crate::snapshot::stage::{Progress, Stage};
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub async fn run(ctx: &Ctx) -> anyhow::Result<i32> {
    let cfg = ctx.config()?;
    // A failure before the snapshot starts is a failed snapshot too: alerts
    // on `snapshot.failed` must see it.
    let storage = match prepare(ctx, &cfg).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(event = "snapshot.failed", stage = "start", error = %format!("{e:#}"));
            return Err(e);
        }
    };
    let cleanup_grace = match std::env::var("LETHE_CLEANUP_GRACE") {
        Ok(v) => humantime::parse_duration(&v).map_err(|e| {
            super::UsageError(format!("LETHE_CLEANUP_GRACE = {v:?}: {e} (e.g. 1h, 0s)"))
        })?,
        Err(_) => run::DEFAULT_CLEANUP_GRACE,
    };
    let (erasure_list, leak_check) = erasure_state(&cfg);

    let cancel = CancellationToken::new();
    let signals = tokio::spawn(watch_signals(cancel.clone()));
    let progress = Arc::new(Progress::default());
    let ticker = std::io::stderr()
        .is_terminal()
        .then(|| tokio::spawn(show_progress(progress.clone())));
    let lease = match Lease::acquire(
        storage.clone(),
        SNAPSHOT_LOCK_KEY,
        chrono::Duration::seconds(DEFAULT_TTL_SECS),
        Duration::from_secs(1),
        chrono::Utc::now(),
    )
    .await
    {
        Ok(l) => l,
        Err(LeaseError::Held {
            holder, expires_at, ..
        }) => {
            signals.abort();
            tracing::warn!(event = "snapshot.skipped", reason = "lock_held", holder = %holder, lock_expires_at = %expires_at);
            anyhow::bail!(
                "another lethe ({holder}) is taking a snapshot of {}: its lock {SNAPSHOT_LOCK_KEY} is held until \
                 {expires_at} and that process is running (or ran on another host: if it is gone, the lock is \
                 taken over {SKEW_ALLOWANCE_SECS}s after that); try again then",
                storage.describe()
            );
        }
        Err(LeaseError::Lost { holder, .. }) => {
            signals.abort();
            tracing::warn!(event = "snapshot.skipped", reason = "lock_held", holder = %holder);
            anyhow::bail!(
                "another lethe ({holder}) took the snapshot lock {SNAPSHOT_LOCK_KEY} at the same moment; try again"
            );
        }
        Err(e) => {
            signals.abort();
            tracing::error!(event = "snapshot.failed", stage = "lock", error = %e);
            anyhow::bail!("cannot take the snapshot lock {SNAPSHOT_LOCK_KEY}: {e}");
        }
    };
    let opts = SnapshotOptions {
        cancel: cancel.clone(),
        erasure_list,
        leak_check,
        cleanup_grace,
        progress,
    };
    let result = hold_while(lease, &cancel, run::take_snapshot(&cfg, storage, opts)).await;
    signals.abort();
    if let Some(t) = ticker {
        t.abort();
        let _ = t.await;
        eprint!("\r\x1b[2K");
    }
    let outcome = result?;
    for leak in &outcome.leaks {
        tracing::warn!(
            event = "erasure.leak_detected",
            id = %outcome.manifest.id,
            table = %leak.table,
            column = %leak.column,
            rows = leak.rows,
            "the snapshot holds rows of erased subjects: the application did not delete them (restores still drop them)"
        );
    }
    println!("{}", outcome.manifest.id);
    Ok(crate::exit::OK)
}

/// Runs `work` while refreshing the lease; losing the lease cancels the
/// work. The lease is released afterwards (bounded: it expires anyway).
async fn hold_while<T>(
    mut lease: Lease,
    cancel: &CancellationToken,
    work: impl Future<Output = T>,
) -> T {
    let stop = CancellationToken::new();
    let now = chrono::Utc::now;
    let take = async {
        let r = work.await;
        stop.cancel();
        r
    };
    let hold = async {
        if let Err(e) = lease.hold(&stop, &now).await {
            tracing::error!(event = "lease.lost", key = SNAPSHOT_LOCK_KEY, error = %e, "stopping the snapshot");
            cancel.cancel();
        }
    };
    let (result, ()) = tokio::join!(take, hold);
    lease.release_bounded().await;
    result
}

/// The erasure list's state for the manifest and a set for the leak check,
/// when a list exists at `erasure.path`. Without one the snapshot records an
/// empty state; a list that cannot be read is reported and skipped (the
/// snapshot itself does not depend on it; restores refuse without it).
fn erasure_state(cfg: &crate::config::Config) -> (ListState, Option<LeakCheck>) {
    use crate::erasure::memset::MemSet;
    use crate::erasure::store::ErasureStore;
    let path = &cfg.erasure.path;
    if !path.join("CURRENT").exists() {
        return (ListState::default(), None);
    }
    let read = ErasureStore::open_for_restore(path, cfg.erasure.subject_type)
        .and_then(|store| Ok((store.state(), MemSet::from_store(&store)?)));
    match read {
        Ok((state, set)) => {
            let check = LeakCheck {
                set: Arc::new(set),
                subject_type: cfg.erasure.subject_type,
                roots: cfg.erasure.subjects.clone(),
            };
            (state, Some(check))
        }
        Err(e) => {
            tracing::warn!(
                event = "snapshot.erasure_list_unreadable",
                path = %path.display(),
                error = %e,
                "the manifest records an empty erasure list state and no leak check runs"
            );
            (ListState::default(), None)
        }
    }
}

async fn watch_signals(cancel: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    let mut seen = 0;
    loop {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        seen += 1;
        if seen == 1 {
            eprintln!(
                "\nlethe: stopping: aborting uploads, nothing will be committed (signal again to exit now)"
            );
            cancel.cancel();
        } else {
            std::process::exit(crate::exit::FAILURE);
        }
    }
}

/// A one-line progress display on stderr, redrawn every half second.
async fn show_progress(p: Arc<Progress>) {
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let raw = p.raw_bytes.load(Ordering::Relaxed);
        let secs = start.elapsed().as_secs_f64().max(0.001);
        let line = match p.stage() {
            Stage::Data | Stage::Sequences | Stage::Commit => format!(
                "{}: {}/{} tables, {} rows, {} read ({}/s)",
                p.stage(),
                p.tables_done.load(Ordering::Relaxed),
                p.tables_total.load(Ordering::Relaxed),
                p.rows.load(Ordering::Relaxed),
                human_bytes(raw),
                human_bytes((raw as f64 / secs) as u64),
            ),
            s => format!("{s}…"),
        };
        eprint!("\r\x1b[2K{line}");
    }
}

/// Opens the repository and checks its marker.
async fn prepare(
    ctx: &Ctx,
    cfg: &crate::config::Config,
) -> anyhow::Result<Arc<dyn crate::storage::Storage>> {
    let storage = ctx.storage(cfg).await?;
    match crate::repo::layout::read_marker(storage.as_ref()).await? {
        Some(m) if m.format > crate::repo::manifest::FORMAT_VERSION => anyhow::bail!(
            "repository {} has format {}, newer than this lethe understands; upgrade lethe",
            storage.describe(),
            m.format
        ),
        Some(_) => {}
        None => tracing::warn!(
            event = "repository.uninitialised",
            storage = %storage.describe(),
            "no repository marker: run `lethe init` to set up the lifecycle rule that backs up retention"
        ),
    }
    Ok(storage)
}
