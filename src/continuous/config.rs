//! `[continuous]`: whether the change stream runs, how often it flushes and
//! takes a base, the slot and publication it uses, and the lag that raises
//! the alarm.

use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContinuousConfig {
    /// Off by default: the scheduled snapshots stay the mode for servers
    /// without logical decoding.
    pub enabled: bool,
    /// The bound on how long a committed change may wait before it is in storage.
    #[serde(with = "crate::units::humantime_serde_dur")]
    pub flush_every: Duration,
    /// How often a new base snapshot is taken; shorter than the retention.
    #[serde(with = "crate::units::humantime_serde_dur")]
    pub base_every: Duration,
    /// The logical replication slot's name.
    pub slot: String,
    /// The publication's name.
    pub publication: String,
    /// The slot lag (bytes of WAL) past which Lethe raises the alarm.
    #[serde(with = "crate::units::bytes_serde")]
    pub max_lag: u64,
}

impl Default for ContinuousConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            flush_every: Duration::from_secs(5),
            base_every: Duration::from_secs(24 * 3600),
            slot: "lethe".into(),
            publication: "lethe".into(),
            max_lag: 8 << 30,
        }
    }
}

/// Bounds on `flush_every`.
pub const FLUSH_EVERY_MIN: Duration = Duration::from_millis(100);
pub const FLUSH_EVERY_MAX: Duration = Duration::from_secs(3600);
/// The shortest `base_every`.
pub const BASE_EVERY_MIN: Duration = Duration::from_secs(60);
/// The smallest `max_lag`.
pub const MAX_LAG_MIN: u64 = 1 << 20;

/// One problem in `[continuous]`: the key, its value and what would be valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub key: &'static str,
    pub value: String,
    pub message: String,
}

/// A name PostgreSQL takes for a slot and, unquoted, for a publication:
/// a lower-case letter or `_` first, then lower-case letters, digits or `_`,
/// at most 63 bytes (NAMEDATALEN - 1).
pub fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    s.len() <= 63
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl ContinuousConfig {
    /// Every problem in the section; `retention_days` bounds `base_every`
    /// (checked only when enabled: a disabled section takes no base).
    pub fn check(&self, retention_days: u32) -> Vec<Issue> {
        let mut out = Vec::new();
        let dur = |d: Duration| format!("{:?}", humantime::format_duration(d).to_string());
        if !(FLUSH_EVERY_MIN..=FLUSH_EVERY_MAX).contains(&self.flush_every) {
            out.push(Issue {
                key: "continuous.flush_every",
                value: dur(self.flush_every),
                message: "must be between 100ms and 1h (\"5s\" is the default)".into(),
            });
        }
        if self.base_every < BASE_EVERY_MIN {
            out.push(Issue {
                key: "continuous.base_every",
                value: dur(self.base_every),
                message: "must be at least 1m (\"24h\" is the default)".into(),
            });
        } else if self.enabled
            && self.base_every >= Duration::from_secs(u64::from(retention_days) * 86_400)
        {
            out.push(Issue {
                key: "continuous.base_every",
                value: dur(self.base_every),
                message: format!(
                    "must be shorter than retention.days ({retention_days} d): a base older than the retention is deleted, and changes without their base cannot be restored"
                ),
            });
        }
        for (key, name) in [
            ("continuous.slot", &self.slot),
            ("continuous.publication", &self.publication),
        ] {
            if !valid_name(name) {
                out.push(Issue {
                    key,
                    value: format!("{name:?}"),
                    message: "must be a PostgreSQL name: a lower-case letter or _ first, then a-z, 0-9 or _ (at most 63)".into(),
                });
            }
        }
        if self.max_lag < MAX_LAG_MIN {
            out.push(Issue {
                key: "continuous.max_lag",
                value: format!("{:?}", crate::units::format_bytes(self.max_lag)),
                message: "must be at least 1MiB (\"8GiB\" is the default)".into(),
            });
        }
        out
    }
}
