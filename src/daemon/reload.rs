//! SIGHUP: re-read the config file. Anything invalid keeps the running
//! config (`daemon.reload_failed`); sections that only change at restart
//! are named in a warning (`daemon.reload_partial`).

use super::Daemon;
use crate::config::Config;
use crate::schedule::Schedule;
use crate::units::rfc3339;
use std::sync::Arc;

impl Daemon {
    /// SIGHUP: re-read the config file. Anything invalid keeps the running
    /// config (`daemon.reload_failed`); settings that need a restart are
    /// named in a warning.
    pub(super) async fn reload(&mut self) {
        self.notifier.reloading();
        let result = self.try_reload().await;
        self.notifier.ready(&self.status_line());
        match result {
            Ok(()) => tracing::info!(
                event = "daemon.reloaded",
                schedule = %self.schedule.describe(),
                retention_days = self.cfg.retention.days,
                next_run = %rfc3339(self.next_due),
            ),
            Err(e) => tracing::error!(
                event = "daemon.reload_failed",
                path = %self.config_path.display(),
                error = %e,
                "keeping the running configuration"
            ),
        }
    }

    pub(super) async fn try_reload(&mut self) -> Result<(), String> {
        let new = Config::load(&self.config_path).map_err(|e| e.to_string())?;
        let schedule = Schedule::from_config(&new.schedule)?;
        let old_cfg = self.cfg.clone();
        let old = old_cfg.as_ref();
        let storage = if format!("{:?}", new.storage) != format!("{:?}", old.storage) {
            let open = crate::storage::open(&new.storage);
            match tokio::time::timeout(std::time::Duration::from_secs(30), open).await {
                Ok(Ok(s)) => Some(s),
                Ok(Err(e)) => return Err(format!("storage {}: {e}", new.storage.url)),
                Err(_) => return Err(format!("storage {}: timed out opening it", new.storage.url)),
            }
        } else {
            None
        };
        let mut restart = Vec::new();
        if format!("{:?}", new.erasure) != format!("{:?}", old.erasure) {
            restart.push("erasure");
        }
        if format!("{:?}", new.api) != format!("{:?}", old.api) {
            restart.push("api");
        }
        if format!("{:?}", new.drill) != format!("{:?}", old.drill) {
            restart.push("drill");
        }
        if format!("{:?}", new.metrics) != format!("{:?}", old.metrics) {
            restart.push("metrics");
        }
        if format!("{:?}", new.log) != format!("{:?}", old.log) {
            restart.push("log");
        }
        if !restart.is_empty() {
            tracing::warn!(
                event = "daemon.reload_partial",
                sections = %restart.join(","),
                "these sections change only at restart; the running values stay"
            );
        }
        // Continuous capture: a changed [continuous] or source restarts it;
        // turned off, the slot and publication go (lethe never leaves a
        // slot behind). A source the preflight refuses keeps the old config.
        let capture_changed = format!("{:?}", new.continuous) != format!("{:?}", old.continuous)
            || new.source.url != old.source.url
            || storage.is_some();
        if capture_changed
            && new.continuous.enabled
            && let Err(e @ crate::continuous::PreflightError::Refused(_)) =
                crate::continuous::preflight(&new.source.url, &new.continuous).await
        {
            return Err(e.to_string());
        }
        if capture_changed {
            self.stop_capture(std::time::Duration::from_secs(10)).await;
            if old.continuous.enabled && !new.continuous.enabled {
                match crate::continuous::disable(&old.source.url, &old.continuous).await {
                    Ok(r) => tracing::info!(
                        event = "continuous.disabled",
                        slot = %old.continuous.slot,
                        slot_dropped = r.slot,
                        publication_dropped = r.publication,
                    ),
                    Err(e) => tracing::error!(
                        event = "continuous.disable_failed",
                        error = %e,
                        "continuous.enabled was turned off but the slot could not be dropped: run `lethe continuous disable`"
                    ),
                }
            }
        }
        if let Some(s) = storage {
            self.storage = s;
        }
        self.cfg = Arc::new(new);
        if capture_changed && let Err(e) = self.start_capture().await {
            return Err(e.to_string());
        }
        self.schedule = schedule;
        let now = self.clock.now();
        self.next_due = if self.failures > 0 {
            self.next_due.min(self.schedule.next_after(now))
        } else {
            self.schedule.due(self.last_attempt, now)
        };
        Ok(())
    }
}
