use super::*;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

#[test]
fn every_runs_at_start_only_when_the_last_snapshot_is_older_than_the_interval() {
    let s = Schedule::Every(Duration::hours(1));
    let now = t("2026-03-01T12:00:00Z");
    assert_eq!(s.due(None, now), now);
    assert_eq!(s.due(Some(now - Duration::minutes(61)), now), now);
    assert_eq!(
        s.due(Some(now - Duration::minutes(20)), now),
        now + Duration::minutes(40)
    );
    // A snapshot "from the future" (clock stepped back) waits at most one interval.
    assert_eq!(
        s.due(Some(now + Duration::days(3)), now),
        now + Duration::hours(1)
    );
}

#[test]
fn cron_is_due_when_a_slot_was_missed() {
    let s = Schedule::cron("0 * * * *").unwrap();
    let now = t("2026-03-01T12:30:00Z");
    assert_eq!(s.next_after(now), t("2026-03-01T13:00:00Z"));
    assert_eq!(s.due(Some(t("2026-03-01T11:10:00Z")), now), now);
    assert_eq!(
        s.due(Some(t("2026-03-01T12:00:00Z")), now),
        t("2026-03-01T13:00:00Z")
    );
    assert_eq!(s.interval_near(now), Duration::hours(1));
    let daily = Schedule::cron("15 3 * * *").unwrap();
    assert_eq!(daily.interval_near(now), Duration::days(1));
    assert_eq!(daily.next_after(now), t("2026-03-02T03:15:00Z"));
}

#[test]
fn a_schedule_section_with_only_cron_is_valid_and_no_section_means_hourly() {
    let base = "[encryption]\ndisabled = true\n";
    let cfg =
        crate::config::Config::parse(&format!("{base}[schedule]\ncron = \"0 3 * * *\"\n")).unwrap();
    assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
    assert!(matches!(
        Schedule::from_config(&cfg.schedule),
        Ok(Schedule::Cron { .. })
    ));
    let bad = crate::config::Config::parse(&format!("{base}[schedule]\ncron = \"99 * * * *\"\n"))
        .unwrap();
    let issues = bad.validate();
    assert!(
        issues
            .iter()
            .any(|i| i.key == "schedule.cron" && i.value == "99 * * * *"),
        "{issues:?}"
    );
    let cfg = crate::config::Config::parse(base).unwrap();
    assert_eq!(
        Schedule::from_config(&cfg.schedule).unwrap().describe(),
        "every 1h"
    );
    let cfg =
        crate::config::Config::parse(&format!("{base}[schedule]\nevery = \"15m\"\n")).unwrap();
    assert_eq!(
        Schedule::from_config(&cfg.schedule).unwrap().describe(),
        "every 15m"
    );
}

#[test]
fn bad_cron_is_refused_by_name() {
    let e = Schedule::cron("61 * * * *").unwrap_err();
    assert!(
        e.contains("schedule.cron") && e.contains("61 * * * *"),
        "{e}"
    );
    let e = Schedule::from_config(&ScheduleConfig {
        every: None,
        cron: Some("nonsense".into()),
    })
    .unwrap_err();
    assert!(e.contains("nonsense"), "{e}");
}

#[test]
fn backoff_doubles_caps_and_never_exceeds_the_interval() {
    let b = Backoff::default();
    let hour = Duration::hours(1);
    let delays: Vec<i64> = (1..=9).map(|n| b.delay(n, hour).num_seconds()).collect();
    assert_eq!(delays, vec![10, 20, 40, 80, 160, 320, 600, 600, 600]);
    assert_eq!(b.delay(5, Duration::seconds(5)), Duration::seconds(5));
    assert_eq!(b.delay(u32::MAX, hour), Duration::minutes(10));
}
