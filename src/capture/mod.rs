//! Continuous capture (issue 19): every committed change of the source,
//! from a logical replication slot (`pgoutput`), into storage within
//! `continuous.flush_every`, beside the snapshots and through the same
//! object codec.
//!
//! - [`session`]: one run of the stream: where the stored stream ends (or a
//!   new epoch: slot with an exported snapshot, base taken by the snapshot
//!   engine from it), then the receiver, the writer, heartbeats and the lag
//!   poll.
//! - [`writer`]: messages → segments → head → confirmed position, in the
//!   order that makes a crash lose nothing (docs/design/continuous.md §3).
//! - [`segment`]: one segment's parts and manifest.
//!
//! [`run`] repeats sessions until stopped: a broken connection or a storage
//! outage ends a session, and the next one resumes from what is stored; the
//! slot holds the changes meanwhile.

pub mod base;
pub mod expiry;
pub mod receive;
pub mod schema;
pub mod segment;
pub mod session;
pub mod watch;
pub mod window;
pub mod writer;

use crate::pg::SourceError;
use crate::pg::replication::ReplicationFailure;
use crate::repo::changes::{ChangesError, Lsn};
use crate::storage::StorageError;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use session::SessionCfg;

/// The replication slot as `pg_replication_slots` shows it.
#[derive(Debug, Clone)]
pub struct SlotState {
    pub confirmed: Option<u64>,
    pub wal_status: Option<String>,
    pub active_pid: Option<i32>,
    pub lag_bytes: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(transparent)]
    Preflight(crate::continuous::PreflightError),
    #[error(transparent)]
    Slot(crate::continuous::SlotError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Replication(#[from] ReplicationFailure),
    #[error(transparent)]
    Writer(#[from] writer::WriterError),
    #[error("{key}: {source}")]
    Storage {
        key: String,
        #[source]
        source: StorageError,
    },
    #[error(transparent)]
    Format(ChangesError),
    #[error("encryption: {0}")]
    Crypto(String),
    #[error("the base snapshot failed: {0}")]
    Base(String),
    /// DDL overtook the base (`SnapshotError::Superseded`): taken again.
    #[error("the base was overtaken by DDL: {0}")]
    BaseSuperseded(String),
    #[error(
        "replication slot {slot} is in use by the process with pid {pid}: another lethe (or another consumer) reads it; \
         stop it, or give this one another continuous.slot"
    )]
    SlotBusy { slot: String, pid: i32 },
    #[error(
        "replication slot {slot} starts at {confirmed}, after the stored stream's end {stored}: it was dropped and created again \
         behind lethe's back (or consumed by something else)"
    )]
    SlotMoved {
        slot: String,
        stored: Lsn,
        confirmed: Lsn,
    },
    #[error("replication slot {slot} was dropped or invalidated during capture")]
    SlotVanished { slot: String },
    #[error("capture task failed: {0}")]
    Task(String),
}

impl CaptureError {
    pub(crate) fn storage(key: &str) -> impl Fn(StorageError) -> CaptureError + '_ {
        move |source| CaptureError::Storage {
            key: key.to_string(),
            source,
        }
    }

    /// Whether running again cannot help until the operator acts.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            CaptureError::Preflight(crate::continuous::PreflightError::Refused(_))
                | CaptureError::Crypto(_)
                | CaptureError::Format(_)
        )
    }
}

/// Runs capture sessions until `cancel`; a session that fails is logged
/// (`continuous.interrupted`) and run again after a pause that grows to a
/// minute. Returns only on `cancel` (`Ok`) or a failure that needs the
/// operator.
///
/// # Errors
/// A fatal [`CaptureError`] (the source refused by the preflight, bad
/// encryption settings, a stored stream lethe cannot read).
pub async fn run(s: SessionCfg, cancel: CancellationToken) -> Result<(), CaptureError> {
    let mut pause = Duration::from_secs(1);
    loop {
        let started = std::time::Instant::now();
        let r = session::run(&s, &cancel).await;
        if cancel.is_cancelled() {
            tracing::info!(event = "continuous.stopped", slot = %s.cfg.continuous.slot);
            return Ok(());
        }
        match r {
            Ok(()) => {}
            Err(e) if e.is_fatal() => {
                tracing::error!(event = "continuous.failed", error = %e, "continuous capture stopped; fix the cause and restart lethe");
                return Err(e);
            }
            Err(e) => {
                if started.elapsed() > Duration::from_secs(300) {
                    pause = Duration::from_secs(1);
                }
                tracing::warn!(event = "continuous.interrupted", error = %e, retry_in_s = pause.as_secs(), "capture resumes from what is stored; the slot holds the changes meanwhile");
                tokio::select! {
                    () = cancel.cancelled() => {
                        tracing::info!(event = "continuous.stopped", slot = %s.cfg.continuous.slot);
                        return Ok(());
                    }
                    () = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(60));
            }
        }
    }
}
