//! Where a snapshot stands: its [`Stage`] (for progress, and for
//! `snapshot.failed`'s `stage`), its live [`Progress`] counters, and the
//! [`SnapshotError`] that names the stage that failed.

use crate::pg::SourceError;
use crate::storage::StorageError;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use tokio_util::sync::CancellationToken;

/// Where a snapshot is (for progress, and for `snapshot.failed`'s `stage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Stage {
    Cleanup,
    Connect,
    Catalog,
    Lock,
    Schema,
    Data,
    Sequences,
    Commit,
}

impl Stage {
    const ALL: [Stage; 8] = [
        Stage::Cleanup,
        Stage::Connect,
        Stage::Catalog,
        Stage::Lock,
        Stage::Schema,
        Stage::Data,
        Stage::Sequences,
        Stage::Commit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Cleanup => "cleanup",
            Stage::Connect => "connect",
            Stage::Catalog => "catalog",
            Stage::Lock => "lock",
            Stage::Schema => "schema",
            Stage::Data => "data",
            Stage::Sequences => "sequences",
            Stage::Commit => "commit",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot cancelled during {stage}; nothing was committed")]
    Cancelled { stage: Stage },
    #[error("{stage}: {error}")]
    Source { stage: Stage, error: SourceError },
    #[error("{stage}: {error}")]
    Storage { stage: Stage, error: StorageError },
    #[error("{stage}: object {key}: {message}")]
    Object {
        stage: Stage,
        key: String,
        message: String,
    },
    #[error("encryption: {0}; fix encryption.recipients")]
    Crypto(crate::crypto::CryptoError),
    #[error("{stage}: {message}")]
    Internal { stage: Stage, message: String },
    /// A base of continuous capture overtaken by DDL between its slot's
    /// consistent point and its locks (a table dropped or rewritten): it
    /// must be taken again from a new slot. Not a failure of the source.
    #[error("{stage}: {message}")]
    Superseded { stage: Stage, message: String },
}

impl SnapshotError {
    pub(crate) fn source(stage: Stage, error: SourceError) -> SnapshotError {
        SnapshotError::Source { stage, error }
    }

    /// The stage that failed, as logged in `snapshot.failed`.
    pub fn stage(&self) -> Stage {
        match self {
            SnapshotError::Cancelled { stage }
            | SnapshotError::Source { stage, .. }
            | SnapshotError::Storage { stage, .. }
            | SnapshotError::Object { stage, .. }
            | SnapshotError::Internal { stage, .. }
            | SnapshotError::Superseded { stage, .. } => *stage,
            SnapshotError::Crypto(_) => Stage::Connect,
        }
    }

    pub fn is_cancelled(&self) -> bool {
        matches!(self, SnapshotError::Cancelled { .. })
    }
}

/// Live counters for a progress display (updated without locks).
#[derive(Debug, Default)]
pub struct Progress {
    stage: AtomicU8,
    pub tables_total: AtomicU64,
    pub tables_done: AtomicU64,
    pub rows: AtomicU64,
    pub raw_bytes: AtomicU64,
}

impl Progress {
    pub fn stage(&self) -> Stage {
        Stage::ALL
            .get(usize::from(self.stage.load(Ordering::Relaxed)))
            .copied()
            .unwrap_or(Stage::Cleanup)
    }

    pub(crate) fn set_stage(&self, s: Stage) {
        self.stage.store(s as u8, Ordering::Relaxed);
    }
}

/// Runs `fut` unless `cancel` fires first.
pub(crate) async fn guard<T>(
    cancel: &CancellationToken,
    stage: Stage,
    fut: impl Future<Output = Result<T, SnapshotError>>,
) -> Result<T, SnapshotError> {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(SnapshotError::Cancelled { stage }),
        r = fut => r,
    }
}
