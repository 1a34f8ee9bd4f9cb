//! `lethe pause` / `lethe resume` as the scheduler loop sees them: the
//! switch lives in the API (`erasure::api`, `/v1/schedule/…`); the loop
//! skips due runs and SIGUSR1 while it is on (`snapshot.skipped`, reason
//! `paused`) and logs the changes here.

use super::Daemon;
use crate::units::rfc3339;
use chrono::{DateTime, Utc};

impl Daemon {
    /// Logs a pause or resume; on resume the schedule is worked out again,
    /// so a run missed while paused starts now.
    pub(super) fn pause_changed(
        &mut self,
        was: Option<DateTime<Utc>>,
        now_paused: Option<DateTime<Utc>>,
    ) {
        let now = self.clock.now();
        match (was, now_paused) {
            (None, Some(since)) => tracing::info!(
                event = "daemon.paused",
                since = %rfc3339(since),
                "scheduled snapshots paused (`lethe pause`); the erasure API keeps accepting erasures; a daemon restart ends the pause"
            ),
            (Some(since), None) => {
                if self.failures == 0 {
                    self.next_due = self.schedule.due(self.last_attempt, now);
                }
                tracing::info!(
                    event = "daemon.resumed",
                    paused_s = (now - since).num_seconds().max(0),
                    next_run = %rfc3339(self.next_due),
                    "scheduled snapshots resumed (`lethe resume`)"
                );
            }
            _ => {}
        }
    }
}
