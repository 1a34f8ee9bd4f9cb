//! systemd integration: `READY=1` once start-up checks pass, `STATUS=` with
//! the last and next snapshot, `WATCHDOG=1` at half of `WATCHDOG_USEC`,
//! `STOPPING=1` on shutdown. Without `NOTIFY_SOCKET` every call is a no-op.

use sd_notify::NotifyState;

/// Sends notifications to the service manager, if there is one.
#[derive(Debug, Clone, Copy, Default)]
pub struct Notifier;

impl Notifier {
    fn send(&self, states: &[NotifyState]) {
        if let Err(e) = sd_notify::notify(states) {
            // Not fatal: systemd will time us out if READY never arrives,
            // and that is logged on its side too.
            tracing::warn!(event = "daemon.notify_failed", error = %e, "could not notify the service manager");
        }
    }

    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    pub fn reloading(&self) {
        let mono = sd_notify::NotifyState::monotonic_usec_now();
        match mono {
            Ok(m) => self.send(&[NotifyState::Reloading, m]),
            Err(_) => self.send(&[NotifyState::Reloading]),
        }
    }

    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    /// How often to ping the watchdog: half of `WATCHDOG_USEC`, or `None`
    /// when systemd set no watchdog for this process.
    pub fn watchdog_interval(&self) -> Option<std::time::Duration> {
        sd_notify::watchdog_enabled().map(|d| (d / 2).max(std::time::Duration::from_millis(100)))
    }
}
