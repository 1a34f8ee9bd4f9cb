//! What a prune leaves in the evidence log: records older than
//! `evidence.keep_days` expire, and the prune itself is recorded (by the
//! CLI always; by the daemon when it deleted something or failed, so an
//! hourly schedule that finds nothing to forget writes nothing).

use super::Applied;
use crate::repo::evidence::{self, Entry, Kind};
use crate::storage::Storage;
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// The stream of continuous capture's share of a prune.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChangesExpired {
    pub segments: usize,
    pub gaps: usize,
}

/// Expires old evidence, then appends this prune's record (when `always`,
/// or when anything was deleted or failed). Failures are logged
/// (`evidence.failed`), never returned: the prune is done either way.
pub async fn record_prune(
    storage: Arc<dyn Storage>,
    keep_days: u32,
    now: DateTime<Utc>,
    applied: &Applied,
    changes: ChangesExpired,
    always: bool,
) {
    let expired = match evidence::expire(storage.as_ref(), keep_days, now).await {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(
                event = "evidence.failed",
                kind = "prune",
                action = "expire",
                error = %e,
                "old evidence records were not expired"
            );
            0
        }
    };
    let deleted = applied.snapshots_deleted.len()
        + applied.leftovers_deleted.len()
        + changes.segments
        + changes.gaps;
    if !(always || deleted > 0 || expired > 0 || !applied.errors.is_empty()) {
        return;
    }
    let action = if applied.errors.is_empty() {
        "completed"
    } else {
        "failed"
    };
    let entry = Entry::new(Kind::Prune, action)
        .count("snapshots_deleted", applied.snapshots_deleted.len() as u64)
        .count("leftovers_deleted", applied.leftovers_deleted.len() as u64)
        .count("segments_deleted", changes.segments as u64)
        .count("gaps_deleted", changes.gaps as u64)
        .count("objects_deleted", applied.objects_deleted as u64)
        .count("bytes_freed", applied.bytes_freed)
        .count("errors", applied.errors.len() as u64)
        .count("evidence_expired", expired);
    evidence::record(storage, entry).await;
}
