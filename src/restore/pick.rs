//! Saying which snapshot a restore picked: `restore latest` and
//! `restore --before` print it on stderr before anything starts (so an
//! operator sees at once if it is the damaged one), and `restore.started`
//! carries it for every restore.

use crate::repo::layout::Selector;
use crate::repo::manifest::Manifest;
use crate::units::rfc3339;
use chrono::{DateTime, Utc};

/// Logs `restore.started`; for a snapshot picked by `latest` or `--before`
/// (not named by id) also prints [`picked_line`] on stderr when `print`.
pub fn announce(m: &Manifest, selector: &Selector, dry_run: bool, print: bool, now: DateTime<Utc>) {
    let id = &m.id;
    if print && !matches!(selector, Selector::Id(_)) {
        eprintln!("{}", picked_line(m, selector, now));
    }
    tracing::info!(
        event = "restore.started",
        snapshot = %id,
        dry_run,
        selector = %selector,
        snapshot_started_at = %rfc3339(m.started_at),
        snapshot_finished_at = %rfc3339(m.finished_at),
        age_s = (now - m.started_at).num_seconds(),
        "restoring snapshot {id}"
    );
}

/// `lethe: restoring snapshot <ID>, taken 2026-12-06 10:15:00 UTC (3 h 12 min
/// ago), finished 10:16:02 UTC; picked as …`
pub fn picked_line(m: &Manifest, selector: &Selector, now: DateTime<Utc>) -> String {
    let why = match selector {
        Selector::Latest => "the newest complete snapshot of this database".to_string(),
        Selector::Before(t) => format!(
            "the newest complete snapshot of this database finished before {}",
            t.format("%Y-%m-%d %H:%M:%S UTC")
        ),
        Selector::Id(_) => "named by id".to_string(),
        Selector::At(p) => format!(
            "the newest base at or before {p}, with the changes after it replayed to that point"
        ),
    };
    let finished = if m.finished_at.date_naive() == m.started_at.date_naive() {
        m.finished_at.format("%H:%M:%S UTC").to_string()
    } else {
        m.finished_at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
    };
    format!(
        "lethe: restoring {}{}, taken {} ({} ago), finished {finished}; picked as {why}",
        if matches!(selector, Selector::At(_)) {
            "base "
        } else {
            "snapshot "
        },
        m.id,
        m.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
        human_ago((now - m.started_at).num_seconds()),
    )
}

/// `3 h 12 min`, `2 d 4 h`, `45 s`.
pub fn human_ago(seconds: i64) -> String {
    crate::units::human_age(seconds, crate::units::AgeStyle::Spaced)
}

#[cfg(test)]
#[path = "pick_tests.rs"]
mod tests;
