//! A `log.level` the daemon cannot parse would silence every line, the
//! events people alert on included: refused at start (exit 2, naming the
//! key) and at reload (the old config keeps running).

use super::rig::*;
use std::time::Duration;

fn with_level(text: &str, level: &str) -> String {
    if text.contains("[log]") {
        text.replacen("[log]", &format!("[log]\nlevel = \"{level}\""), 1)
    } else {
        format!("{text}\n[log]\nlevel = \"{level}\"\n")
    }
}

#[test]
fn the_daemon_refuses_an_unparsable_log_level_at_start_and_at_reload() {
    let s = Rig::new("dmnlvl", SMALL_SQL);
    daemon_config(&s, "every = \"1h\"");
    let good = std::fs::read_to_string(&s.cfg).expect("config");

    let bad = s.dir.path().join("bad-level.toml");
    std::fs::write(&bad, with_level(&good, "warning")).expect("write");
    let out = crate::common::output_within(s.cmd_with(&bad, &["daemon"]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("log.level") && err.contains("warning"),
        "{err}"
    );

    let mut d = start(&s, &[]);
    d.wait_for("daemon.ready", 1, Duration::from_secs(60));
    std::fs::write(&s.cfg, with_level(&good, "verbose")).expect("write");
    d.signal(libc::SIGHUP);
    d.wait_for("daemon.reload_failed", 1, Duration::from_secs(30));
    let failed = d.first("daemon.reload_failed");
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains("log.level") && e.contains("verbose")),
        "{failed}"
    );
    // Still logging on the old config: SIGUSR1 is heard and answered.
    std::fs::write(&s.cfg, &good).expect("write");
    d.signal(libc::SIGUSR1);
    d.wait_for("daemon.signal", 2, Duration::from_secs(30));
    d.signal(libc::SIGTERM);
    let (code, _) = d.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(0), "log:\n{}", d.log());
}
