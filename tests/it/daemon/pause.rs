//! `lethe pause` / `lethe resume` against a running daemon: no snapshot
//! while paused (SIGUSR1 and the schedule are skipped, logged), erasures
//! still accepted through the API, `status` shows it, resume snapshots again.

use super::rig::*;
use crate::common::LetheCli;
use serde_json::Value;
use std::time::{Duration, Instant};

fn skipped(d: &Running, trigger: &str) -> bool {
    d.events().iter().any(|e| {
        e["event"] == "snapshot.skipped" && e["reason"] == "paused" && e["trigger"] == trigger
    })
}

fn wait_skipped(d: &Running, trigger: &str, timeout: Duration) {
    let until = Instant::now() + timeout;
    while !skipped(d, trigger) {
        assert!(
            Instant::now() < until,
            "no snapshot.skipped (paused, {trigger}):\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn paused_daemon_takes_no_snapshot_but_accepts_erasures_and_resume_snapshots_again() {
    let s = Rig::new("dmnpause", SMALL_SQL);
    daemon_config(&s, "every = \"6s\"");
    // No daemon: nothing to pause, exit 1 saying so.
    let out = s.run(&["pause"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("daemon is not running"),
        "{}",
        text(&out.stderr)
    );

    let mut d = start(&s, &[]);
    d.wait_for("snapshot.completed", 1, Duration::from_secs(60));
    let out = s.run(&["pause"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("NOT kept across a daemon restart"),
        "{}",
        text(&out.stdout)
    );
    d.wait_for("daemon.paused", 1, Duration::from_secs(30));

    let v: Value = serde_json::from_slice(&s.run(&["status", "--json"]).stdout).expect("json");
    assert_eq!(v["paused"], true, "{v}");
    assert!(v["paused_since"].is_string(), "{v}");
    assert!(text(&s.run(&["status"]).stdout).contains("PAUSED"));

    d.signal(libc::SIGUSR1);
    wait_skipped(&d, "signal", Duration::from_secs(30));
    wait_skipped(&d, "schedule", Duration::from_secs(30));
    let out = s.run(&["erase", "add", "42"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    d.wait_for("erasure.added", 1, Duration::from_secs(30));
    assert_eq!(d.count("snapshot.completed"), 1, "{}", d.log());

    let out = s.run(&["resume"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    d.wait_for("daemon.resumed", 1, Duration::from_secs(30));
    d.wait_for("snapshot.completed", 2, Duration::from_secs(60));
    let v: Value = serde_json::from_slice(&s.run(&["status", "--json"]).stdout).expect("json");
    assert_eq!(v["paused"], false, "{v}");

    d.signal(libc::SIGTERM);
    assert_eq!(
        d.wait_exit(Duration::from_secs(30)).0,
        Some(0),
        "{}",
        d.log()
    );
    check_log_lines(&d, &[]);
}
