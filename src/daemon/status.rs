//! `lethe status`: what an operator checks first. Gathered from storage (the
//! snapshots), the schedule (the next run), the erasure list (through the
//! daemon's API when it runs, else the store itself) and the bucket's
//! lifecycle rule. The JSON form is stable: fields are only ever added.

use crate::config::Config;
use crate::leak_state::LeakReport;
use crate::repo::layout;
use crate::retention::{self, Policy};
use crate::schedule::Schedule;
use crate::storage::Storage;
use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub repository: String,
    pub schedule: String,
    pub retention_days: u32,
    pub last_snapshot: Option<LastSnapshot>,
    /// When the schedule next wants a snapshot (`now` when overdue).
    pub next_run: Option<DateTime<Utc>>,
    /// The last snapshot is older than the interval: a run is due or late.
    pub overdue: bool,
    pub snapshots: Totals,
    /// Complete snapshots already past retention (deleted at the next prune).
    pub expired: usize,
    /// Snapshot prefixes without a manifest: interrupted, or being written.
    pub incomplete: Totals,
    pub unfinished_uploads: usize,
    pub erasure: ErasureReport,
    pub lifecycle: LifecycleReport,
    /// Whether a daemon answered on `api.listen`.
    pub daemon_running: bool,
    /// Whether the running daemon's scheduled snapshots are paused
    /// (`lethe pause`); `null` when no daemon answered (or it is too old
    /// to say).
    pub paused: Option<bool>,
    pub paused_since: Option<DateTime<Utc>>,
    /// The leak check of the daemon's last snapshot since it started
    /// (`rows` > 0: erased subjects' rows are still in the live database,
    /// `erasure.leak_detected`); `null` when no daemon answered or it has
    /// taken no snapshot since it started.
    pub leak_check: Option<LeakReport>,
    /// Continuous capture as stored (`changes/<source>/head.json`); `null`
    /// when `continuous.enabled` is off.
    pub continuous: Option<ContinuousReport>,
    /// The last restore drill as the evidence log has it (among its last
    /// 500 records); `null` when `drill.target` is not set.
    pub last_drill: Option<DrillSeen>,
    /// `healthy`, `degraded` or `down`: what `lethe status` exits with
    /// (0, 1, 2). See [`Health`].
    pub health: Health,
    /// Why it is not `healthy`, one sentence each.
    pub problems: Vec<String>,
}

/// The last drill's evidence record, as `lethe status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DrillSeen {
    pub at: Option<DateTime<Utc>>,
    /// `completed`, `failed`, or `none` (no drill record yet).
    pub outcome: String,
    pub snapshot: Option<String>,
    /// The RTO of a completed drill.
    pub seconds: Option<f64>,
    /// Where a failed drill stopped.
    pub step: Option<String>,
    pub error: Option<String>,
}

/// Where the stored change stream stands.
#[derive(Debug, Clone, Serialize)]
pub struct ContinuousReport {
    /// The stream (a new one starts after a gap).
    pub epoch: Option<String>,
    /// The newest commit stored.
    pub last_commit_at: Option<DateTime<Utc>>,
    /// When the capture last vouched that storage holds everything up to
    /// the server's position (each segment, and every minute while idle).
    pub verified_at: Option<DateTime<Utc>>,
    /// Seconds since `verified_at`: the most a crash of the source now
    /// could lose (the recovery point).
    pub rpo_s: Option<i64>,
    /// Until when the source's schema is known to be its newest base's:
    /// restorable points end here too (it stands still while a base after
    /// a schema change is being taken).
    pub schema_checked_at: Option<DateTime<Utc>>,
    /// Bases taken in this epoch.
    pub base_ids: Vec<String>,
    /// WAL the source keeps for the slot (`pg_current_wal_lsn()` −
    /// `confirmed_flush_lsn`); `null` when the source could not be asked
    /// within 5 s or the slot does not exist.
    pub slot_lag_bytes: Option<u64>,
    /// Reading the head failed.
    pub error: Option<String>,
}

/// A stored stream older than this (`rpo_s`) makes `status` degraded: the
/// capture writes the head at least once a minute while it runs.
pub const CONTINUOUS_STALE_S: i64 = 300;

/// What a health check reads from `lethe status`'s exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Exit 0.
    Healthy,
    /// Exit 1: the daemon answers but something needs a look (a snapshot
    /// overdue, lifecycle rule missing or drifted, an incomplete snapshot
    /// quiet for longer than the cleanup grace, the erasure list unreadable,
    /// a leak found by the last snapshot's check).
    Degraded,
    /// Exit 2: no daemon answers on `api.listen`.
    Down,
}

impl Health {
    pub fn exit_code(self) -> i32 {
        match self {
            Health::Healthy => 0,
            Health::Degraded => 1,
            Health::Down => 2,
        }
    }
}

/// The health and its reasons, from the facts gathered. `stale_incomplete`:
/// incomplete snapshots quiet for longer than the cleanup grace (one being
/// written right now is not a problem).
pub fn assess(r: &StatusReport, stale_incomplete: usize) -> (Health, Vec<String>) {
    let mut problems = Vec::new();
    if !r.daemon_running {
        problems.push("the daemon is not answering on api.listen".to_string());
    }
    if r.overdue {
        problems.push(match &r.last_snapshot {
            Some(l) => format!(
                "a snapshot is overdue: the last one finished {} ago",
                human_age(l.age_seconds)
            ),
            None => "a snapshot is overdue: there is none yet".to_string(),
        });
    }
    if matches!(
        r.lifecycle.state.as_str(),
        "missing" | "drifted" | "unknown"
    ) {
        problems.push(format!(
            "the bucket's lifecycle rule is {}: run `lethe init`",
            r.lifecycle.state
        ));
    }
    if stale_incomplete > 0 {
        problems.push(format!(
            "{stale_incomplete} incomplete snapshot(s) left by an interrupted run: the next snapshot or `lethe prune` removes them"
        ));
    }
    if r.daemon_running && r.erasure.count.is_none() {
        problems.push(format!(
            "the erasure list is unreadable: {}",
            r.erasure.error.as_deref().unwrap_or("unavailable")
        ));
    }
    if let Some(d) = &r.last_drill
        && d.outcome == "failed"
    {
        problems.push(format!(
            "the last restore drill{} failed at {}: run `lethe drill` and read its drill.failed event",
            d.at.map_or(String::new(), |t| format!(" ({})", crate::units::rfc3339(t))),
            d.step.as_deref().unwrap_or("an unknown step")
        ));
    }
    if let Some(c) = &r.continuous {
        match (&c.error, c.rpo_s) {
            (Some(e), _) => problems.push(format!("continuous capture: the stored stream is unreadable: {e}")),
            (None, None) => problems.push(
                "continuous capture: nothing stored yet (the first base is not complete)".to_string(),
            ),
            (None, Some(rpo)) if rpo > CONTINUOUS_STALE_S => problems.push(format!(
                "continuous capture: storage last confirmed complete {} ago (recovery point); is the capture running (continuous.interrupted, continuous.gap)?",
                human_age(rpo)
            )),
            _ => {}
        }
    }
    if let Some(l) = r.leak_check.as_ref().filter(|l| l.rows > 0) {
        problems.push(format!(
            "the last snapshot ({}) found {} row(s) of erased subjects in the live database ({}): \
             the application did not delete them (erasure.leak_detected; restores still drop them); \
             this clears when a later snapshot of the daemon finds none",
            l.snapshot,
            l.rows,
            leaked_tables(l)
        ));
    }
    let health = if !r.daemon_running {
        Health::Down
    } else if problems.is_empty() {
        Health::Healthy
    } else {
        Health::Degraded
    };
    (health, problems)
}

/// `public.users (3), public.staff (1)`
pub fn leaked_tables(l: &LeakReport) -> String {
    l.tables
        .iter()
        .map(|t| format!("{} ({})", t.table, t.rows))
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Debug, Clone, Serialize)]
pub struct LastSnapshot {
    pub id: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Seconds since it finished (since it started if the manifest is unreadable).
    pub age_seconds: i64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    pub count: usize,
    pub stored_bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ErasureReport {
    /// `daemon` (its API answered), `store` (opened here) or `unavailable`.
    pub source: String,
    pub count: Option<u64>,
    pub digest: Option<String>,
    /// Acknowledged entries not yet in the journal in storage.
    pub pending: Option<u64>,
    pub last_sync: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LifecycleReport {
    /// `present`, `missing`, `drifted`, `not_applicable` (directory) or `unknown`.
    pub state: String,
    pub rules: Vec<String>,
    pub error: Option<String>,
}

/// Gathers the report. Only storage being unreadable is an error; the
/// erasure list and lifecycle rule report their own problems in place.
///
/// # Errors
/// Storage errors while listing snapshots.
pub async fn gather(
    cfg: &Config,
    storage: &dyn Storage,
    now: DateTime<Utc>,
) -> Result<StatusReport, retention::RetentionError> {
    let survey = retention::survey(storage, now).await?;
    let plan = retention::plan_from(&survey, now, Policy::days(cfg.retention.days));
    let last = match survey.snapshots.last() {
        None => None,
        Some(s) => {
            let finished_at = layout::load_manifest(storage, &s.id)
                .await
                .ok()
                .map(|m| m.finished_at);
            Some(LastSnapshot {
                id: s.id.to_string(),
                started_at: s.started_at,
                finished_at,
                age_seconds: (now - finished_at.unwrap_or(s.started_at)).num_seconds(),
            })
        }
    };
    let (schedule, next_run, overdue) = match Schedule::from_config(&cfg.schedule) {
        // Continuous capture: bases come every base_every (the schedule runs
        // retention only); overdue when the last is older than that and an
        // hour.
        Ok(s) if cfg.continuous.enabled => {
            let every = chrono::Duration::from_std(cfg.continuous.base_every)
                .unwrap_or(chrono::Duration::days(1));
            let next = last.as_ref().map_or(now, |l| l.started_at + every);
            (
                format!(
                    "continuous capture, a base every {}; retention {}",
                    humantime::format_duration(cfg.continuous.base_every),
                    s.describe()
                ),
                Some(next),
                next + chrono::Duration::hours(1) <= now,
            )
        }
        Ok(s) => {
            let next = s.due(last.as_ref().map(|l| l.started_at), now);
            (s.describe(), Some(next), next <= now)
        }
        Err(e) => (format!("invalid: {e}"), None, false),
    };
    let (erasure, daemon_running) = erasure_report(cfg).await;
    let pause = if daemon_running {
        pause_state(cfg).await
    } else {
        None
    };
    let grace = chrono::Duration::from_std(crate::snapshot::run::DEFAULT_CLEANUP_GRACE)
        .unwrap_or(chrono::Duration::hours(1));
    let stale_incomplete = survey
        .leftovers
        .iter()
        .filter(|l| now - l.last_write > grace)
        .count();
    let mut report = StatusReport {
        repository: storage.describe(),
        schedule,
        retention_days: cfg.retention.days,
        last_snapshot: last,
        next_run,
        overdue,
        snapshots: Totals {
            count: survey.snapshots.len(),
            // What `lethe list` reports: the objects, not the manifests.
            stored_bytes: survey.snapshots.iter().map(|s| s.data_bytes).sum(),
        },
        expired: plan.expire.len() + plan.held_for_restore.len(),
        incomplete: Totals {
            count: survey.leftovers.len(),
            stored_bytes: survey.leftovers.iter().map(|l| l.bytes).sum(),
        },
        unfinished_uploads: survey.uploads.len(),
        erasure,
        lifecycle: lifecycle_report(cfg).await,
        daemon_running,
        paused: pause.as_ref().map(|p| p.paused),
        paused_since: pause.as_ref().and_then(|p| p.paused_since),
        leak_check: pause.and_then(|p| p.last_leak_check),
        continuous: continuous_report(cfg, storage, now).await,
        last_drill: last_drill(cfg, storage).await,
        health: Health::Healthy,
        problems: Vec::new(),
    };
    (report.health, report.problems) = assess(&report, stale_incomplete);
    Ok(report)
}

async fn last_drill(cfg: &Config, storage: &dyn Storage) -> Option<DrillSeen> {
    cfg.drill.target.as_ref()?;
    let none = DrillSeen {
        at: None,
        outcome: "none".into(),
        snapshot: None,
        seconds: None,
        step: None,
        error: None,
    };
    Some(
        match crate::repo::evidence::newest_of(storage, crate::repo::evidence::Kind::Drill, 500)
            .await
        {
            Ok(None) => none,
            Ok(Some(r)) => DrillSeen {
                at: Some(r.at),
                outcome: r.entry.action.clone(),
                snapshot: r.entry.snapshot.clone(),
                seconds: r
                    .entry
                    .counts
                    .get("milliseconds")
                    .map(|ms| *ms as f64 / 1000.0),
                step: r.entry.notes.get("step").cloned(),
                error: None,
            },
            Err(e) => DrillSeen {
                error: Some(e.to_string()),
                ..none
            },
        },
    )
}

async fn continuous_report(
    cfg: &Config,
    storage: &dyn Storage,
    now: DateTime<Utc>,
) -> Option<ContinuousReport> {
    if !cfg.continuous.enabled {
        return None;
    }
    let empty = ContinuousReport {
        epoch: None,
        last_commit_at: None,
        verified_at: None,
        rpo_s: None,
        schema_checked_at: None,
        base_ids: Vec::new(),
        slot_lag_bytes: None,
        error: None,
    };
    let source = match crate::pg::source_identity(&cfg.source.url) {
        Ok((s, _)) => s,
        Err(e) => {
            return Some(ContinuousReport {
                error: Some(e.to_string()),
                ..empty
            });
        }
    };
    let slot_lag_bytes = slot_lag(cfg).await;
    Some(
        match crate::capture::session::read_head(storage, &source).await {
            Ok(None) => ContinuousReport {
                slot_lag_bytes,
                ..empty
            },
            Ok(Some(h)) => ContinuousReport {
                epoch: Some(h.epoch.to_string()),
                last_commit_at: h.last_commit_at,
                verified_at: Some(h.verified_at),
                rpo_s: Some((now - h.verified_at).num_seconds().max(0)),
                schema_checked_at: h.schema_checked_at,
                base_ids: h.base_ids,
                slot_lag_bytes,
                error: None,
            },
            Err(e) => ContinuousReport {
                error: Some(e.to_string()),
                ..empty
            },
        },
    )
}

/// The slot's lag on the source, asked with a 5 s bound.
async fn slot_lag(cfg: &Config) -> Option<u64> {
    let ask = async {
        let conn = crate::pg::connect(&cfg.source.url).await.ok()?;
        crate::capture::watch::slot_state(&conn, &cfg.continuous.slot)
            .await
            .ok()
            .flatten()
            .and_then(|s| s.lag_bytes)
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), ask)
        .await
        .ok()
        .flatten()
}

/// The daemon's pause switch and last leak check, `None` if it cannot say.
async fn pause_state(cfg: &Config) -> Option<crate::erasure::api::ScheduleState> {
    let client =
        crate::erasure::client::ApiClient::for_config(&cfg.api, &cfg.erasure, &cfg.storage.url)
            .ok()?;
    client.schedule().await.ok()
}

async fn erasure_report(cfg: &Config) -> (ErasureReport, bool) {
    use crate::erasure::client::ApiClient;
    let mut r = ErasureReport {
        source: "unavailable".into(),
        ..Default::default()
    };
    // Only a daemon serving this config's list counts as its daemon.
    let probe = match ApiClient::for_config(&cfg.api, &cfg.erasure, &cfg.storage.url) {
        Ok(client) => client.probe().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let status = match probe {
        Ok(Some(s)) => {
            r.source = "daemon".into();
            Ok(s)
        }
        Ok(None) | Err(_) => {
            let (path, ty) = (cfg.erasure.path.clone(), cfg.erasure.subject_type);
            let opened = tokio::task::spawn_blocking(move || {
                crate::erasure::ErasureStore::open_for_restore(&path, ty).and_then(|s| s.status())
            })
            .await;
            match opened {
                Ok(Ok(s)) => {
                    r.source = "store".into();
                    Ok(s)
                }
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        }
    };
    let running = r.source == "daemon";
    match status {
        Ok(s) => {
            r.count = Some(s.count);
            r.digest = Some(s.digest);
            r.pending = Some(s.pending);
            r.last_sync = s.last_sync;
        }
        Err(e) => r.error = Some(e),
    }
    (r, running)
}

async fn lifecycle_report(cfg: &Config) -> LifecycleReport {
    use crate::storage::lifecycle::{LifecycleStatus as S, lifecycle_status};
    let check = lifecycle_status(
        &cfg.storage,
        crate::retention::lifecycle_policy(cfg.retention.days),
    );
    let result = tokio::time::timeout(std::time::Duration::from_secs(30), check).await;
    let (state, rules, error) = match result {
        Ok(Ok(S::Present)) => ("present", vec![], None),
        Ok(Ok(S::Missing(r))) => ("missing", r, None),
        Ok(Ok(S::Drifted(r))) => ("drifted", r, None),
        Ok(Ok(S::NotApplicable)) => ("not_applicable", vec![], None),
        Ok(Err(e)) => ("unknown", vec![], Some(e.to_string())),
        Err(_) => (
            "unknown",
            vec![],
            Some("timed out reading the bucket's lifecycle rules".to_string()),
        ),
    };
    LifecycleReport {
        state: state.into(),
        rules,
        error,
    }
}

/// `3d 4h`-style ages for people.
pub fn human_age(seconds: i64) -> String {
    crate::units::human_age(seconds, crate::units::AgeStyle::Compact)
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
