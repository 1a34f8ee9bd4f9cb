//! When to snapshot: `schedule.every` or `schedule.cron` (UTC), the start-up
//! catch-up rule, and the backoff after a failure. Pure functions of the
//! times passed in; the daemon's clock is injected ([`Clock`]).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// Interval between snapshots, e.g. `1h`, `15m`. The 1h default applies
    /// only when `[schedule]` is absent: a section that sets just `cron`
    /// must not also inherit `every`.
    #[serde(with = "crate::units::humantime_opt", default)]
    pub every: Option<std::time::Duration>,
    /// Cron expression (5 fields, UTC); exclusive with `every`.
    pub cron: Option<String>,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            every: Some(std::time::Duration::from_secs(3600)),
            cron: None,
        }
    }
}

/// The source of "now". Production uses the system clock; tests drive a
/// clock tied to tokio's paused time so hours pass in milliseconds.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// Wall-clock time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that starts at a chosen instant and advances with tokio's time
/// (which tests can pause and auto-advance).
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start: DateTime<Utc>,
    base: tokio::time::Instant,
}

impl TokioClock {
    pub fn starting_at(start: DateTime<Utc>) -> TokioClock {
        TokioClock {
            start,
            base: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.base);
        self.start + Duration::from_std(elapsed).unwrap_or(Duration::zero())
    }
}

/// The parsed schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    Every(Duration),
    Cron {
        expr: String,
        cron: Box<croner::Cron>,
    },
}

/// A `[schedule]` section that describes no schedule: the key, its value
/// and what would be valid (config validation's `ConfigIssue` fields).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} = {value:?}: {message}")]
pub struct ScheduleIssue {
    pub key: &'static str,
    pub value: String,
    pub message: String,
}

impl Schedule {
    /// The schedule a `[schedule]` section describes. The rules live here
    /// only: config validation reports the same [`ScheduleIssue`].
    ///
    /// # Errors
    /// A message naming the key, its value and what is wrong.
    pub fn from_config(cfg: &ScheduleConfig) -> Result<Schedule, String> {
        Self::check(cfg).map_err(|i| i.to_string())
    }

    /// [`Schedule::from_config`] with the problem as key, value and message.
    ///
    /// # Errors
    /// Neither or both of `every` and `cron`, an interval under a second (or
    /// too large to add to a time), or a cron expression that does not parse.
    pub fn check(cfg: &ScheduleConfig) -> Result<Schedule, ScheduleIssue> {
        let issue = |key, value: String, message: String| ScheduleIssue {
            key,
            value,
            message,
        };
        match (&cfg.every, &cfg.cron) {
            (Some(_), Some(expr)) => Err(issue(
                "schedule.cron",
                expr.clone(),
                "set either schedule.every or schedule.cron, not both".into(),
            )),
            (None, None) => Err(issue(
                "schedule.every",
                "(unset)".into(),
                "set schedule.every (e.g. \"1h\") or schedule.cron".into(),
            )),
            (Some(d), None) => {
                let shown = humantime::format_duration(*d).to_string();
                if *d < std::time::Duration::from_secs(1) {
                    return Err(issue("schedule.every", shown, "must be at least 1s".into()));
                }
                Duration::from_std(*d)
                    .map(Schedule::Every)
                    .map_err(|e| issue("schedule.every", shown, format!("too long ({e})")))
            }
            (None, Some(expr)) => match parse_cron(expr) {
                Ok(cron) => Ok(Schedule::Cron {
                    expr: expr.clone(),
                    cron: Box::new(cron),
                }),
                Err(e) => Err(issue("schedule.cron", expr.clone(), e)),
            },
        }
    }

    /// Parses a cron expression (5 fields, or 6 with leading seconds; UTC).
    ///
    /// # Errors
    /// The parser's reason, naming the key and the expression.
    pub fn cron(expr: &str) -> Result<Schedule, String> {
        let cron = parse_cron(expr).map_err(|e| format!("schedule.cron = {expr:?}: {e}"))?;
        Ok(Schedule::Cron {
            expr: expr.to_string(),
            cron: Box::new(cron),
        })
    }

    /// The first slot strictly after `t`. A cron expression that has no
    /// further occurrence (already refused at parse) falls back to a day.
    pub fn next_after(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Schedule::Every(d) => t + *d,
            Schedule::Cron { cron, .. } => cron
                .find_next_occurrence(&t, false)
                .unwrap_or(t + Duration::days(1)),
        }
    }

    /// The gap between the slots around `t`: the interval for `every`, the
    /// distance between the next two occurrences for cron.
    pub fn interval_near(&self, t: DateTime<Utc>) -> Duration {
        match self {
            Schedule::Every(d) => *d,
            Schedule::Cron { .. } => {
                let a = self.next_after(t);
                self.next_after(a) - a
            }
        }
    }

    /// When the next snapshot is due, given when the last one (or the last
    /// attempt) started: the next slot after it, or `now` if that slot has
    /// passed (at start: "the last one is older than the interval").
    pub fn due(&self, last_start: Option<DateTime<Utc>>, now: DateTime<Utc>) -> DateTime<Utc> {
        match last_start {
            None => now,
            Some(t) => self.next_after(t).max(now).min(self.next_after(now)),
        }
    }

    /// For messages: `every 1h` or `cron "0 * * * *"`.
    pub fn describe(&self) -> String {
        match self {
            Schedule::Every(d) => format!(
                "every {}",
                humantime::format_duration(d.to_std().unwrap_or_default())
            ),
            Schedule::Cron { expr, .. } => format!("cron {expr:?} (UTC)"),
        }
    }
}

/// Checks a cron expression: parses, and fires at least once more (an
/// expression that never fires, e.g. 30 February, is refused now rather
/// than discovered as a daemon that silently never snapshots).
///
/// # Errors
/// Why it is refused, with an example of a valid one.
pub fn parse_cron(expr: &str) -> Result<croner::Cron, String> {
    let cron = croner::Cron::from_str(expr).map_err(|e| {
        format!("not a cron expression ({e}); e.g. \"0 * * * *\" for hourly, 5 fields in UTC")
    })?;
    cron.find_next_occurrence(&Utc::now(), false)
        .map_err(|e| format!("never fires ({e})"))?;
    Ok(cron)
}

/// Exponential backoff after consecutive failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::seconds(10),
            cap: Duration::minutes(10),
        }
    }
}

impl Backoff {
    /// The wait before retrying after `failures` consecutive failures
    /// (1 = the first): base·2^(n-1), capped, and never longer than one
    /// interval, so a failing daemon retries at least as often as it would
    /// have snapshotted: the schedule is never skipped for good.
    pub fn delay(&self, failures: u32, interval: Duration) -> Duration {
        let exp = failures.saturating_sub(1).min(20);
        let d = self.base * 2i32.pow(exp);
        d.min(self.cap).min(interval).max(Duration::seconds(1))
    }
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
