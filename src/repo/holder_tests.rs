//! The takeover decision (pure, with a fake process table), the `/proc`
//! parsing, the real probe against a child process, and `Lease::acquire`
//! taking over a lock whose holder on this host is gone.

use super::*;
use crate::repo::lease::{Lease, LeaseError, LeaseRecord, SNAPSHOT_LOCK_KEY};
use crate::storage::fs::FsStorage;
use crate::storage::{Storage, StorageExt};
use chrono::{Duration, Utc};
use std::sync::Arc;

fn me() -> ProcessIdentity {
    ProcessIdentity {
        host: "db1".into(),
        pid: 100,
        start_ticks: 5_000,
        boot_id: "b0".into(),
        pid_ns: "pid:[4026531836]".into(),
    }
}

fn holder(pid: u32, start_ticks: u64) -> ProcessIdentity {
    ProcessIdentity {
        pid,
        start_ticks,
        ..me()
    }
}

fn table(state: ProcState) -> impl Fn(u32) -> ProcState {
    move |_| state
}

#[test]
fn a_same_host_holder_whose_process_is_gone_is_taken_over() {
    let rec = holder(4242, 7_000);
    let m = me();
    assert_eq!(
        judge(Some(&rec), Some(&m), &table(ProcState::Absent)),
        Verdict::Gone("process_gone")
    );
    assert_eq!(
        judge(Some(&rec), Some(&m), &table(ProcState::Zombie)),
        Verdict::Gone("process_exited")
    );
    // The pid now belongs to a process started at another time.
    assert_eq!(
        judge(
            Some(&rec),
            Some(&m),
            &table(ProcState::Running { start_ticks: 9_999 })
        ),
        Verdict::Gone("pid_reused")
    );
}

#[test]
fn a_live_local_holder_or_anything_uncertain_is_respected() {
    let rec = holder(4242, 7_000);
    let m = me();
    let gone = table(ProcState::Absent);
    assert_eq!(
        judge(
            Some(&rec),
            Some(&m),
            &table(ProcState::Running { start_ticks: 7_000 })
        ),
        Verdict::Respect("holder_running")
    );
    assert_eq!(
        judge(Some(&rec), Some(&m), &table(ProcState::Unknown)),
        Verdict::Respect("holder_not_inspectable")
    );
    let other_host = ProcessIdentity {
        host: "db2".into(),
        ..rec.clone()
    };
    assert_eq!(
        judge(Some(&other_host), Some(&m), &gone),
        Verdict::Respect("another_host")
    );
    let other_boot = ProcessIdentity {
        boot_id: "b1".into(),
        ..rec.clone()
    };
    assert_eq!(
        judge(Some(&other_boot), Some(&m), &gone),
        Verdict::Respect("another_boot")
    );
    let other_ns = ProcessIdentity {
        pid_ns: "pid:[4026532000]".into(),
        ..rec.clone()
    };
    assert_eq!(
        judge(Some(&other_ns), Some(&m), &gone),
        Verdict::Respect("another_pid_namespace")
    );
    // A record of an older lethe (no identity) or a partial one.
    assert_eq!(
        judge(None, Some(&m), &gone),
        Verdict::Respect("no_process_identity")
    );
    let partial = ProcessIdentity {
        start_ticks: 0,
        ..rec.clone()
    };
    assert_eq!(
        judge(Some(&partial), Some(&m), &gone),
        Verdict::Respect("no_process_identity")
    );
    // Without our own identity (no /proc) nothing is taken over early.
    assert_eq!(
        judge(Some(&rec), None, &gone),
        Verdict::Respect("own_identity_unknown")
    );
    // Our own record: not "gone", whatever the table says.
    assert_eq!(
        judge(Some(&m), Some(&m), &gone),
        Verdict::Respect("this_process")
    );
}

#[test]
fn stat_lines_are_parsed_from_the_last_parenthesis() {
    let tail = "S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 123456 20 21";
    assert_eq!(
        parse_stat(&format!("42 (lethe) {tail}")),
        Some(('S', 123_456))
    );
    // A command name with spaces and a ')' in it.
    assert_eq!(
        parse_stat(&format!("42 (a) b (c)) {tail}")),
        Some(('S', 123_456))
    );
    assert_eq!(parse_stat("42 (lethe) S 1 2"), None);
    assert_eq!(parse_stat("garbage"), None);
    assert_eq!(
        parse_stat(&format!("42 (x) {}", tail.replace("123456", "-1"))),
        None
    );
}

#[test]
fn the_real_probe_sees_a_child_live_then_gone() {
    let Some(me) = current() else {
        eprintln!("no /proc here: skipping");
        return;
    };
    assert_eq!(me.pid, std::process::id());
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pid = child.id();
    let ProcState::Running { start_ticks } = probe(pid) else {
        panic!("child {pid} not seen running: {:?}", probe(pid));
    };
    let rec = ProcessIdentity {
        pid,
        start_ticks,
        ..me.clone()
    };
    assert_eq!(
        judge(Some(&rec), Some(me), &probe),
        Verdict::Respect("holder_running")
    );
    // The same pid with another start time: a reused pid.
    let reused = ProcessIdentity {
        start_ticks: start_ticks + 1,
        ..rec.clone()
    };
    assert_eq!(
        judge(Some(&reused), Some(me), &probe),
        Verdict::Gone("pid_reused")
    );
    child.kill().unwrap();
    // Killed but not reaped: a zombie holds nothing.
    let mut zombie = false;
    for _ in 0..200 {
        if probe(pid) == ProcState::Zombie {
            zombie = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(zombie, "killed child {pid} never showed as a zombie");
    child.wait().unwrap();
    assert!(matches!(
        judge(Some(&rec), Some(me), &probe),
        Verdict::Gone("process_gone" | "pid_reused")
    ));
}

/// Writes a live lock record naming `process` as its holder.
async fn plant(s: &dyn Storage, process: Option<ProcessIdentity>) -> LeaseRecord {
    let now = Utc::now();
    let rec = LeaseRecord {
        holder: "planted:1".into(),
        token: "planted".into(),
        snapshot: None,
        acquired_at: now,
        expires_at: now + Duration::seconds(120),
        process,
    };
    s.put_bytes(SNAPSHOT_LOCK_KEY, serde_json::to_vec(&rec).unwrap().into())
        .await
        .unwrap();
    rec
}

#[tokio::test]
async fn acquire_takes_over_a_dead_local_holder_at_once_and_respects_the_rest() {
    let Some(me) = current() else {
        eprintln!("no /proc here: skipping");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let s: Arc<dyn Storage> = Arc::new(FsStorage::open(dir.path().to_path_buf()).unwrap());
    let ttl = Duration::seconds(120);
    let zero = std::time::Duration::ZERO;
    // A holder that ran here and exited.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    plant(
        s.as_ref(),
        Some(ProcessIdentity {
            pid,
            start_ticks: 1,
            ..me.clone()
        }),
    )
    .await;
    let lease = Lease::acquire(s.clone(), SNAPSHOT_LOCK_KEY, ttl, zero, Utc::now())
        .await
        .expect("a dead local holder is taken over");
    assert_eq!(lease.record().process.as_ref(), Some(me));
    // The new record names this process, so a second taker here respects it.
    match Lease::acquire(s.clone(), SNAPSHOT_LOCK_KEY, ttl, zero, Utc::now()).await {
        Err(LeaseError::Held { holder, .. }) => assert_eq!(holder, lease.record().holder),
        other => panic!("expected Held, got {other:?}"),
    }
    lease.release().await.unwrap();

    // Respected: a live local holder, another host, an old record without
    // the identity.
    let live = ProcessIdentity {
        pid: 1,
        start_ticks: match probe(1) {
            ProcState::Running { start_ticks } => start_ticks,
            _ => 1,
        },
        ..me.clone()
    };
    let elsewhere = ProcessIdentity {
        host: format!("{}-elsewhere", me.host),
        pid,
        ..me.clone()
    };
    for (what, process) in [
        ("live local holder (pid 1)", Some(live)),
        ("holder on another host", Some(elsewhere)),
        ("record without identity", None),
    ] {
        plant(s.as_ref(), process).await;
        match Lease::acquire(s.clone(), SNAPSHOT_LOCK_KEY, ttl, zero, Utc::now()).await {
            Err(LeaseError::Held { holder, .. }) => assert_eq!(holder, "planted:1", "{what}"),
            other => panic!("{what}: expected Held, got {other:?}"),
        }
    }
}

#[test]
fn old_lock_records_without_the_identity_still_parse() {
    let old = r#"{"holder":"db1:77","token":"01J","acquired_at":"2026-11-22T10:00:00Z","expires_at":"2026-11-22T10:02:00Z"}"#;
    let rec: LeaseRecord = serde_json::from_str(old).unwrap();
    assert_eq!(rec.process, None);
    // And a new record leaves out nothing an old reader needs.
    let v = serde_json::to_value(&LeaseRecord {
        process: Some(me()),
        ..rec
    })
    .unwrap();
    assert_eq!(v["holder"], "db1:77");
    assert_eq!(v["process"]["start_ticks"], 5_000);
}
