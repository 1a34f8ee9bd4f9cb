//! `lethe erase remove` through a running daemon: the removal goes through
//! its API and journal worker, is logged as the documented
//! `erasure.removed`, and survives a restart of the daemon.

use super::rig::*;
use crate::common::LetheCli;
use std::time::Duration;

fn ok(s: &Rig, args: &[&str], code: i32) -> String {
    let o = s.run(args);
    assert_eq!(
        o.status.code(),
        Some(code),
        "lethe {args:?}: {} {}",
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

#[test]
fn a_removal_through_the_daemon_is_logged_journaled_and_survives_a_restart() {
    let s = Rig::new("daemonremove", "CREATE TABLE users (id bigint PRIMARY KEY)");
    daemon_config(&s, "every = \"1h\"");
    let mut d = start(&s, &[]);
    d.wait_for("daemon.ready", 1, Duration::from_secs(60));
    ok(&s, &["erase", "add", "7", "8"], 0);
    let out = ok(&s, &["erase", "remove", "7", "--reason", "typo for 17"], 0);
    assert!(out.contains("removed 1"), "{out}");
    ok(&s, &["erase", "remove", "9", "--reason", "typo"], 1);
    ok(&s, &["erase", "check", "7"], 1);
    d.wait_for("erasure.removed", 1, Duration::from_secs(10));
    let e = d.first("erasure.removed");
    assert_eq!(
        (&e["count"], &e["reason"], &e["source"]),
        (&1.into(), &"typo for 17".into(), &"api".into()),
        "{e}"
    );
    ok(&s, &["erase", "sync"], 0);
    d.signal(libc::SIGTERM);
    let (code, _) = d.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(0), "log:\n{}", d.log());
    check_log_lines(&d, &[]);

    let mut d = start(&s, &[]);
    d.wait_for("daemon.ready", 1, Duration::from_secs(60));
    d.wait_for("erasure.synced", 1, Duration::from_secs(30));
    ok(&s, &["erase", "check", "7"], 1);
    ok(&s, &["erase", "check", "8"], 0);
    let state = ok(&s, &["erase", "sync"], 0);
    assert!(state.contains("the list holds 1 entries"), "{state}");
    d.signal(libc::SIGTERM);
    let (code, _) = d.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(0), "log:\n{}", d.log());
    check_log_lines(&d, &[]);
}
