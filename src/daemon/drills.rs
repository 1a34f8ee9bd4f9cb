//! The daemon's restore drills (`[drill] every`): one task that sleeps to
//! the next slot and runs [`crate::restore::drill::run`], which logs
//! `drill.*` and appends the evidence. A drill stopped by the daemon's
//! shutdown leaves its marked scratch database behind; the next drill drops
//! it first.

use crate::config::Config;
use crate::schedule::Schedule;
use crate::storage::Storage;
use chrono::Utc;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub(super) async fn run(
    cfg: Arc<Config>,
    storage: Arc<dyn Storage>,
    schedule: Schedule,
    stop: CancellationToken,
) {
    let mut next = schedule.next_after(Utc::now());
    tracing::info!(event = "drill.scheduled", next_run = %crate::units::rfc3339(next), "restore drills scheduled");
    loop {
        let wait = (next - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        tokio::select! {
            () = stop.cancelled() => return,
            _ = crate::restore::drill::run(&cfg, Arc::clone(&storage)) => {}
        }
        next = schedule.next_after(Utc::now());
    }
}
