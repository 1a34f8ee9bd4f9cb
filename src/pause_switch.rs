//! Whether a running daemon's scheduled snapshots are paused (`lethe pause`
//! / `lethe resume`, through the local API). Shared between the API, which
//! flips it, and the scheduler loop, which watches it. It lives in memory
//! only: a restarted daemon runs on schedule again.

use chrono::{DateTime, Utc};
use std::sync::Arc;
use tokio::sync::watch;

/// One switch, cloned into whoever needs it; `None` inside = running.
#[derive(Debug, Clone)]
pub struct PauseSwitch {
    tx: Arc<watch::Sender<Option<DateTime<Utc>>>>,
}

impl Default for PauseSwitch {
    fn default() -> Self {
        Self::new()
    }
}

impl PauseSwitch {
    /// Not paused.
    pub fn new() -> Self {
        Self {
            tx: Arc::new(watch::Sender::new(None)),
        }
    }

    /// Pauses at `now`; false when it already was (its time is kept).
    pub fn pause(&self, now: DateTime<Utc>) -> bool {
        self.tx.send_if_modified(|v| {
            if v.is_some() {
                false
            } else {
                *v = Some(now);
                true
            }
        })
    }

    /// Resumes; returns since when it was paused (`None`: it was not).
    pub fn resume(&self) -> Option<DateTime<Utc>> {
        let mut was = None;
        self.tx.send_if_modified(|v| {
            was = v.take();
            was.is_some()
        });
        was
    }

    /// Since when scheduled snapshots are paused, `None` when they run.
    pub fn paused_since(&self) -> Option<DateTime<Utc>> {
        *self.tx.borrow()
    }

    /// A receiver that wakes on every change.
    pub fn subscribe(&self) -> watch::Receiver<Option<DateTime<Utc>>> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
#[path = "pause_switch_tests.rs"]
mod tests;
