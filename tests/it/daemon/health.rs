//! `lethe status`: what it reports; as a health check it exits 0 healthy,
//! 1 degraded (a leak found by the last snapshot included), 2 down; the
//! text form shows what `--json` reports; `status`
//! and `list` agree on the stored size.

use super::rig::*;
use crate::common::LetheCli;
use serde_json::Value;
use std::time::{Duration, SystemTime};

fn status(s: &Rig, cfg: &std::path::Path) -> (Option<i32>, Value, String) {
    let json = crate::common::output_within(s.cmd_with(cfg, &["status", "--json"]));
    let v: Value = serde_json::from_slice(&json.stdout)
        .unwrap_or_else(|e| panic!("status json ({e}): {}", text(&json.stderr)));
    let human = crate::common::output_within(s.cmd_with(cfg, &["status"]));
    assert_eq!(human.status.code(), json.status.code(), "{v}");
    (json.status.code(), v, text(&human.stdout))
}

#[test]
fn status_exits_0_healthy_1_when_overdue_or_incomplete_and_2_when_the_daemon_is_down() {
    let s = Rig::new("dmnhealth", SMALL_SQL);
    daemon_config(&s, "every = \"1h\"");
    let id = s.snapshot();

    // Down: no daemon answers.
    let (code, v, human) = status(&s, &s.cfg);
    assert_eq!(code, Some(2), "{v}");
    assert_eq!(v["health"], "down", "{v}");
    assert!(human.contains("health        down (exit 2)"), "{human}");

    let mut d = start(&s, &[]);
    d.wait_for("daemon.ready", 1, Duration::from_secs(60));

    // Healthy: fresh snapshot, daemon up, nothing incomplete.
    let (code, v, human) = status(&s, &s.cfg);
    assert_eq!(code, Some(0), "{v}\n{human}");
    assert_eq!(v["health"], "healthy", "{v}");
    assert!(human.contains("incomplete    none"), "{human}");

    // `status` and `list` report the same stored size.
    let list: Vec<Value> =
        serde_json::from_slice(&s.run(&["list", "--json"]).stdout).expect("list json");
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(
        v["snapshots"]["stored_bytes"], list[0]["stored_bytes"],
        "status {v} vs list {list:?}"
    );

    // Overdue (seen through a config whose schedule is 1 s): degraded.
    let every_second = s.dir.path().join("every-second.toml");
    let cfg = std::fs::read_to_string(&s.cfg).expect("config");
    std::fs::write(
        &every_second,
        cfg.replace("every = \"1h\"", "every = \"1s\""),
    )
    .expect("write");
    std::thread::sleep(Duration::from_secs(2));
    let (code, v, human) = status(&s, &every_second);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["health"], "degraded", "{v}");
    assert!(human.contains("overdue"), "{human}");

    // An incomplete snapshot, quiet for two hours: degraded, and shown.
    let old = chrono::Utc::now() - chrono::Duration::hours(2);
    let leftover = s
        .repo
        .join("snapshots")
        .join(format!("{}-00aa", old.format("%Y%m%dT%H%M%SZ")))
        .join("data/1.public.users.0.copy.zst.age");
    std::fs::create_dir_all(leftover.parent().expect("parent")).expect("mkdir");
    std::fs::write(&leftover, b"partial").expect("write");
    std::fs::File::options()
        .write(true)
        .open(&leftover)
        .expect("open")
        .set_modified(SystemTime::now() - Duration::from_secs(7200))
        .expect("mtime");
    let (code, v, human) = status(&s, &s.cfg);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["incomplete"]["count"], 1, "{v}");
    assert!(
        human.contains("incomplete    1 snapshot(s) without manifest"),
        "{human}"
    );
    assert!(human.contains("interrupted run"), "{human}");

    d.signal(libc::SIGTERM);
    assert_eq!(
        d.wait_exit(Duration::from_secs(30)).0,
        Some(0),
        "{}",
        d.log()
    );
}

#[test]
fn status_reports_last_snapshot_next_run_sizes_and_the_list() {
    let s = Rig::new("dmnstat", SMALL_SQL);
    daemon_config(&s, "every = \"1h\"");
    let out = s.run(&["status", "--json"]);
    // No daemon: down, exit 2 (README "Health checks").
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["health"], "down", "{v}");
    assert!(v["last_snapshot"].is_null(), "{v}");
    assert_eq!(v["overdue"], true);
    assert_eq!(v["snapshots"]["count"], 0);
    assert_eq!(v["daemon_running"], false);
    assert_eq!(v["lifecycle"]["state"], "not_applicable");

    let id = s.snapshot();
    let v: Value = serde_json::from_slice(&s.run(&["status", "--json"]).stdout).expect("json");
    assert_eq!(v["last_snapshot"]["id"], id.as_str(), "{v}");
    assert!(
        v["last_snapshot"]["age_seconds"]
            .as_i64()
            .is_some_and(|a| (0..600).contains(&a)),
        "{v}"
    );
    assert_eq!(v["overdue"], false);
    assert_eq!(v["snapshots"]["count"], 1);
    assert!(
        v["snapshots"]["stored_bytes"]
            .as_u64()
            .is_some_and(|b| b > 0)
    );
    assert!(v["next_run"].is_string());
    // No list yet: reported in place, not a failure of `status`.
    assert_eq!(v["erasure"]["source"], "unavailable", "{v}");
    assert!(
        v["erasure"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("erasure")),
        "{v}"
    );

    // With the daemon running, the list is read through its API.
    let mut d = start(&s, &[]);
    d.wait_for("daemon.ready", 1, Duration::from_secs(60));
    let out = s.run(&["status", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["daemon_running"], true, "{v}");
    assert_eq!(v["erasure"]["source"], "daemon");
    let human = text(&s.run(&["status"]).stdout);
    assert!(
        human.contains(&format!("last snapshot {id}")) && human.contains("next run"),
        "{human}"
    );
    d.signal(libc::SIGTERM);
    assert_eq!(
        d.wait_exit(Duration::from_secs(30)).0,
        Some(0),
        "{}",
        d.log()
    );

    // The daemon created the list; with it stopped, status opens the store.
    let v: Value = serde_json::from_slice(&s.run(&["status", "--json"]).stdout).expect("json");
    assert_eq!(v["erasure"]["source"], "store", "{v}");
    assert_eq!(v["erasure"]["count"], 0);
    assert!(v["erasure"]["last_sync"].is_string(), "{v}");
}

/// `lethe status` (both forms, as [`status`]) once its `--json` form
/// satisfies `done` (polled for 60 s at most, JSON only: the two forms of
/// one poll may straddle a snapshot).
fn status_until(s: &Rig, done: impl Fn(&Value) -> bool) -> (Option<i32>, Value, String) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let out = crate::common::output_within(s.cmd_with(&s.cfg, &["status", "--json"]));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if done(&v) {
            return status(s, &s.cfg);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "status never got there: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn status_exits_1_while_the_daemons_last_snapshot_found_a_leak_and_0_once_one_finds_none() {
    let s = Rig::new("dmnleak", SMALL_SQL);
    daemon_config(&s, "every = \"1h\"");
    let mut d = start(&s, &[]);
    d.wait_for("daemon.ready", 1, Duration::from_secs(60));
    // The start-up snapshot (the repository is empty): nothing erased yet.
    let (code, v, human) = status_until(&s, |v| v["leak_check"].is_object());
    assert_eq!(code, Some(0), "{v}\n{human}");
    assert_eq!(v["leak_check"]["rows"], 0, "{v}");
    assert_eq!(v["leak_check"]["checked"], true, "{v}");
    assert!(human.contains("leak check    none found"), "{human}");
    let first = v["leak_check"]["snapshot"].clone();

    // User 5 is erased, but the application keeps its row: the next
    // snapshot's leak check finds it, and status says so until fixed.
    let out = s.run(&["erase", "add", "5"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    d.signal(libc::SIGUSR1);
    let (code, v, human) = status_until(&s, |v| v["leak_check"]["snapshot"] != first);
    assert_eq!(code, Some(1), "{v}\n{human}");
    assert_eq!(v["health"], "degraded", "{v}");
    let leak = &v["leak_check"];
    assert_eq!(
        (&leak["rows"], &leak["tables"][0]["table"]),
        (&1.into(), &"public.users".into()),
        "{v}"
    );
    let leaky = leak["snapshot"].as_str().expect("snapshot id").to_string();
    assert_eq!(d.first("erasure.leak_detected")["id"], leaky.as_str());
    assert!(
        v["problems"].as_array().is_some_and(|p| p.iter().any(|p| p
            .as_str()
            .is_some_and(|p| p.contains(&leaky) && p.contains("erased subjects")))),
        "{v}"
    );
    assert!(
        human.contains(&format!(
            "leak check    LEAK: the last snapshot {leaky} found 1 row(s)"
        )) && human.contains("degraded (exit 1)"),
        "{human}"
    );

    // The application deletes the row: the next snapshot finds none.
    s._db.sql("DELETE FROM users WHERE id = 5");
    d.signal(libc::SIGUSR1);
    let (code, v, human) = status_until(&s, |v| v["leak_check"]["snapshot"] != leaky.as_str());
    assert_eq!(code, Some(0), "{v}\n{human}");
    assert_eq!(v["leak_check"]["rows"], 0, "{v}");

    d.signal(libc::SIGTERM);
    assert_eq!(
        d.wait_exit(Duration::from_secs(30)).0,
        Some(0),
        "{}",
        d.log()
    );
    check_log_lines(&d, &[]);
}
