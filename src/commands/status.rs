//! `lethe status [--json]`: the last snapshot and its age, the next run,
//! snapshot count and size, the erasure list, the daemon's last leak check
//! and the lifecycle rule.
//! Exit 0 healthy, 1 degraded, 2 down (no daemon answers): a health check
//! can run it as is (`crate::daemon::status::Health`).

use super::Ctx;
use super::list::human_bytes;
use crate::daemon::status::{Health, StatusReport, gather, human_age, leaked_tables};
use chrono::{DateTime, Utc};

pub async fn run(ctx: &Ctx, json: bool) -> anyhow::Result<i32> {
    let cfg = ctx.config()?;
    let storage = ctx.storage(&cfg).await?;
    let now = Utc::now();
    let report = gather(&cfg, storage.as_ref(), now).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report, now));
    }
    Ok(report.health.exit_code())
}

/// The report for people, one fact per line.
fn render(r: &StatusReport, now: DateTime<Utc>) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "repository    {}", r.repository);
    match &r.last_snapshot {
        Some(l) => {
            let _ = writeln!(
                s,
                "last snapshot {} ({} ago)",
                l.id,
                human_age(l.age_seconds)
            );
        }
        None => {
            let _ = writeln!(s, "last snapshot none yet");
        }
    }
    let next = match r.next_run {
        Some(_) if r.overdue => "due now (overdue)".to_string(),
        Some(t) => format!(
            "{} (in {})",
            t.format("%Y-%m-%d %H:%M:%SZ"),
            human_age((t - now).num_seconds())
        ),
        None => "unknown".into(),
    };
    let _ = writeln!(s, "schedule      {}; next run {next}", r.schedule);
    let _ = writeln!(
        s,
        "snapshots     {} complete, {} stored; {} past retention ({} days)",
        r.snapshots.count,
        human_bytes(r.snapshots.stored_bytes),
        r.expired,
        r.retention_days
    );
    if r.incomplete.count > 0 || r.unfinished_uploads > 0 {
        let _ = writeln!(
            s,
            "incomplete    {} snapshot(s) without manifest ({}), {} unfinished upload(s)",
            r.incomplete.count,
            human_bytes(r.incomplete.stored_bytes),
            r.unfinished_uploads
        );
    } else {
        let _ = writeln!(s, "incomplete    none");
    }
    let e = &r.erasure;
    match (&e.count, &e.error) {
        (Some(count), _) => {
            let sync = e.last_sync.map_or("never".to_string(), |t| {
                format!("{} ago", human_age((now - t).num_seconds()))
            });
            let _ = writeln!(
                s,
                "erasure list  {count} entries, {} pending, last sync {sync} (read from the {})",
                e.pending.unwrap_or(0),
                e.source
            );
        }
        (None, Some(err)) => {
            let _ = writeln!(s, "erasure list  unavailable: {err}");
        }
        (None, None) => {
            let _ = writeln!(s, "erasure list  unavailable");
        }
    }
    let leak = match (&r.leak_check, r.daemon_running) {
        (Some(l), _) if !l.checked => format!(
            "not run by the last snapshot {} (it could not read the erasure list)",
            l.snapshot
        ),
        (Some(l), _) if l.rows == 0 => format!("none found by the last snapshot {}", l.snapshot),
        (Some(l), _) => format!(
            "LEAK: the last snapshot {} found {} row(s) of erased subjects in {}",
            l.snapshot,
            l.rows,
            leaked_tables(l)
        ),
        (None, true) => "unknown (the daemon has taken no snapshot since it started)".into(),
        (None, false) => "unknown (no daemon answering)".into(),
    };
    let _ = writeln!(s, "leak check    {leak}");
    if let Some(c) = &r.continuous {
        let line = match (&c.error, c.verified_at) {
            (Some(e), _) => format!("unreadable: {e}"),
            (None, None) => "on; nothing stored yet (first base not complete)".to_string(),
            (None, Some(v)) => format!(
                "on; storage complete up to {} ago (verified {}), schema checked {}, last commit {}, slot lag {}, epoch {}",
                human_age(c.rpo_s.unwrap_or(0)),
                v.format("%Y-%m-%d %H:%M:%SZ"),
                c.schema_checked_at
                    .map_or("never (a base of an older lethe)".to_string(), |t| t
                        .format("%Y-%m-%d %H:%M:%SZ")
                        .to_string()),
                c.last_commit_at.map_or("none yet".to_string(), |t| t
                    .format("%Y-%m-%d %H:%M:%SZ")
                    .to_string()),
                c.slot_lag_bytes
                    .map_or("unknown".to_string(), |b| format!("{b} bytes")),
                c.epoch.as_deref().unwrap_or("?")
            ),
        };
        let _ = writeln!(s, "continuous    {line}");
    }
    if let Some(d) = &r.last_drill {
        let line = match (&d.error, d.outcome.as_str(), d.at) {
            (Some(e), _, _) => format!("unknown: the evidence log is unreadable: {e}"),
            (None, "completed", Some(t)) => format!(
                "passed {} ago (RTO {:.1} s, snapshot {})",
                human_age((now - t).num_seconds()),
                d.seconds.unwrap_or(0.0),
                d.snapshot.as_deref().unwrap_or("?")
            ),
            (None, "failed", Some(t)) => format!(
                "FAILED {} ago at {}",
                human_age((now - t).num_seconds()),
                d.step.as_deref().unwrap_or("?")
            ),
            _ => "none yet (drill.target is set: `lethe drill` runs one)".to_string(),
        };
        let _ = writeln!(s, "last drill    {line}");
    }
    let l = &r.lifecycle;
    let lifecycle = match l.state.as_str() {
        "present" => "present".to_string(),
        "not_applicable" => {
            "not applicable (directory repository: only the daemon expires snapshots)".to_string()
        }
        "missing" | "drifted" => format!("{} ({}): run `lethe init`", l.state, l.rules.join(", ")),
        _ => format!("unknown: {}", l.error.as_deref().unwrap_or("?")),
    };
    let _ = writeln!(s, "lifecycle     {lifecycle}");
    let daemon = match (r.daemon_running, r.paused, r.paused_since) {
        (false, _, _) => "not answering on api.listen".to_string(),
        (true, Some(true), since) => format!(
            "running; scheduled snapshots PAUSED{} (`lethe resume` resumes them)",
            since.map_or(String::new(), |t| format!(
                " since {} ({} ago)",
                t.format("%Y-%m-%d %H:%M:%SZ"),
                human_age((now - t).num_seconds())
            ))
        ),
        (true, _, _) => "running".to_string(),
    };
    let _ = writeln!(s, "daemon        {daemon}");
    let health = match r.health {
        Health::Healthy => "healthy (exit 0)",
        Health::Degraded => "degraded (exit 1)",
        Health::Down => "down (exit 2)",
    };
    let _ = writeln!(s, "health        {health}");
    for p in &r.problems {
        let _ = writeln!(s, "  - {p}");
    }
    s
}
