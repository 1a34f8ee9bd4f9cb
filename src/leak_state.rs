//! What the daemon's last snapshot found in its leak check: rows of erased
//! subjects still in the live database (`erasure.leak_detected`: the
//! application did not delete them). Shared between the daemon's loop,
//! which records each finished snapshot's check, and the local API, which
//! reports it (`GET /v1/schedule`), so `lethe status` can call the daemon
//! degraded. In memory only: a restarted daemon reports nothing until its
//! next snapshot.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

/// Rows of erased subjects found in one root table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leak {
    pub table: String,
    pub column: String,
    pub rows: u64,
}

/// The leak check of one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeakReport {
    /// The snapshot's id.
    pub snapshot: String,
    pub finished_at: DateTime<Utc>,
    /// Whether the check ran (it needs the erasure list; without it the
    /// snapshot is taken unchecked and `rows` is 0).
    pub checked: bool,
    /// Rows of erased subjects found, over all root tables.
    pub rows: u64,
    /// The root tables holding such rows.
    pub tables: Vec<Leak>,
}

impl LeakReport {
    /// The report for snapshot `snapshot` from the leaks its check found.
    pub fn new(
        snapshot: String,
        finished_at: DateTime<Utc>,
        checked: bool,
        tables: Vec<Leak>,
    ) -> LeakReport {
        LeakReport {
            rows: tables.iter().map(|l| l.rows).sum(),
            snapshot,
            finished_at,
            checked,
            tables,
        }
    }
}

/// The last snapshot's report, cloned into whoever needs it.
#[derive(Debug, Clone, Default)]
pub struct LeakState(Arc<Mutex<Option<LeakReport>>>);

impl LeakState {
    /// Replaces the last report (a later snapshot supersedes an earlier one:
    /// once the application deleted the rows, the next check clears it).
    pub fn record(&self, report: LeakReport) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(report);
    }

    /// The last snapshot's report; `None` before the first one.
    pub fn last(&self) -> Option<LeakReport> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}
