use super::*;

fn report(daemon_running: bool, overdue: bool, lifecycle: &str) -> StatusReport {
    StatusReport {
        repository: "file:///repo".into(),
        schedule: "every 1h".into(),
        retention_days: 35,
        last_snapshot: None,
        next_run: None,
        overdue,
        snapshots: Totals::default(),
        expired: 0,
        incomplete: Totals::default(),
        unfinished_uploads: 0,
        erasure: ErasureReport {
            source: "daemon".into(),
            count: Some(0),
            ..ErasureReport::default()
        },
        lifecycle: LifecycleReport {
            state: lifecycle.into(),
            ..LifecycleReport::default()
        },
        daemon_running,
        paused: None,
        paused_since: None,
        leak_check: None,
        continuous: None,
        last_drill: None,
        health: Health::Healthy,
        problems: Vec::new(),
    }
}

#[test]
fn health_is_down_without_a_daemon_degraded_on_any_problem_else_healthy() {
    let ok = report(true, false, "present");
    assert_eq!(assess(&ok, 0), (Health::Healthy, vec![]));
    let (h, p) = assess(&report(true, true, "present"), 0);
    assert_eq!(h, Health::Degraded);
    assert!(p[0].contains("overdue"), "{p:?}");
    for state in ["missing", "drifted", "unknown"] {
        let (h, p) = assess(&report(true, false, state), 0);
        assert_eq!(h, Health::Degraded, "{state}");
        assert!(p[0].contains("lethe init"), "{p:?}");
    }
    assert_eq!(
        assess(&report(true, false, "not_applicable"), 0).0,
        Health::Healthy
    );
    let (h, p) = assess(&ok, 2);
    assert_eq!(h, Health::Degraded);
    assert!(p[0].contains("2 incomplete"), "{p:?}");
    let (h, p) = assess(&report(false, true, "present"), 0);
    assert_eq!(h, Health::Down);
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!(
        [Health::Healthy, Health::Degraded, Health::Down].map(Health::exit_code),
        [0, 1, 2]
    );
}

#[test]
fn a_leak_found_by_the_last_snapshot_is_degraded_naming_the_snapshot_and_tables() {
    use crate::leak_state::{Leak, LeakReport};
    let mut r = report(true, false, "present");
    let at = Utc::now();
    r.leak_check = Some(LeakReport::new("S1".into(), at, true, vec![]));
    assert_eq!(assess(&r, 0), (Health::Healthy, vec![]));
    r.leak_check = Some(LeakReport::new(
        "S2".into(),
        at,
        true,
        vec![Leak {
            table: "public.users".into(),
            column: "id".into(),
            rows: 3,
        }],
    ));
    let (h, p) = assess(&r, 0);
    assert_eq!(h, Health::Degraded);
    assert!(
        p[0].contains("S2") && p[0].contains("3 row(s)") && p[0].contains("public.users (3)"),
        "{p:?}"
    );
    r.daemon_running = false;
    assert_eq!(assess(&r, 0).0, Health::Down);
}

#[test]
fn a_failed_last_drill_is_degraded_naming_its_step_and_a_passed_one_is_not() {
    let mut r = report(true, false, "present");
    let seen = |outcome: &str, step: Option<&str>| DrillSeen {
        at: Some(Utc::now()),
        outcome: outcome.into(),
        snapshot: Some("S1".into()),
        seconds: Some(12.5),
        step: step.map(str::to_string),
        error: None,
    };
    r.last_drill = Some(seen("completed", None));
    assert_eq!(assess(&r, 0), (Health::Healthy, vec![]));
    r.last_drill = Some(seen("failed", Some("check_rows")));
    let (h, p) = assess(&r, 0);
    assert_eq!(h, Health::Degraded);
    assert!(
        p[0].contains("drill") && p[0].contains("check_rows"),
        "{p:?}"
    );
}
