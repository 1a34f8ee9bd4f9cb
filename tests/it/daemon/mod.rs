//! `lethe daemon` as a real process against real PostgreSQL and real
//! storage (a directory, and Garage): snapshots on a 5 s schedule that never
//! overlap, JSON log lines carrying the fields `README.md (section "Log events")` documents,
//! SIGTERM mid-upload, SIGHUP with a broken config, SIGUSR1, two daemons on
//! one repository, systemd notifications, and `lethe prune` (`lethe status`: `health.rs`).

mod drill;
mod health;
mod log_level;
mod pause;
mod removal;
pub(crate) mod rig;

use crate::common::LetheCli;
use rig::*;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// The daemon with `every = "5s"` for `run_for`: snapshots keep coming,
/// never overlap, and every log line is documented JSON.
fn every_five_seconds(s: &Rig, run_for: Duration) -> Running {
    daemon_config(s, "every = \"5s\"");
    let mut d = start(s, &[]);
    d.wait_for("daemon.ready", 1, Duration::from_secs(60));
    std::thread::sleep(run_for);
    d.signal(libc::SIGTERM);
    let (code, took) = d.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(0), "log:\n{}", d.log());
    assert!(took < Duration::from_secs(10), "took {took:?} to stop");
    check_log_lines(&d, &[]);
    for e in ["daemon.ready", "daemon.stopping", "daemon.stopped"] {
        assert_eq!(d.count(e), 1, "{e}; log:\n{}", d.log());
    }
    // On a shared, busy machine one snapshot may fail for reasons outside
    // the daemon (a PostgreSQL connection refused, the store timing out);
    // it must then be retried, not repeated failure after failure.
    let failed: Vec<Value> = d
        .events()
        .into_iter()
        .filter(|e| e["event"] == "snapshot.failed")
        .collect();
    if !failed.is_empty() {
        eprintln!("snapshot.failed during the 5 s schedule: {failed:?}");
    }
    assert!(failed.len() <= 1, "{} failures: {failed:?}", failed.len());

    let runs = intervals(s);
    let completed = d.count("snapshot.completed");
    let gaps: Vec<i64> = runs
        .windows(2)
        .map(|w| (w[1].1 - w[0].1).num_milliseconds())
        .collect();
    eprintln!(
        "every 5s for {run_for:?}: {} snapshots, start gaps (ms) {gaps:?}, stopped in {took:?}",
        runs.len()
    );
    assert!(
        runs.len() >= 3 && runs.len() >= completed,
        "{} snapshots, {completed} completed; log:\n{}",
        runs.len(),
        d.log()
    );
    for w in runs.windows(2) {
        assert!(w[0].2 <= w[1].1, "overlapping snapshots: {w:?}");
        // The schedule counts from each attempt's start; the writer's own
        // start comes a moment after (lock, connect), so allow slack.
        assert!(
            w[1].1 - w[0].1 >= chrono::Duration::seconds(3),
            "started too close together: {w:?}"
        );
    }
    // Retention ran after every snapshot and kept them all.
    assert!(d.count("retention.completed") >= completed);
    assert_eq!(d.count("retention.deleted"), 0);
    d
}

#[test]
fn every_5s_on_a_directory_snapshots_without_overlap() {
    let s = Rig::new("dmn5s", SMALL_SQL);
    every_five_seconds(&s, Duration::from_secs(30));
}

#[test]
fn every_5s_on_garage_for_a_minute_snapshots_without_overlap() {
    let Some(s) = Rig::on_garage("dmn5sg", SMALL_SQL) else {
        return;
    };
    let out = s.run(&["init"]);
    assert!(out.status.success(), "lethe init: {}", text(&out.stderr));
    let d = every_five_seconds(&s, Duration::from_secs(60));
    // `lethe init` installed the lifecycle rule: checked at start, no drift.
    assert_eq!(d.count("retention.lifecycle_ok"), 1, "log:\n{}", d.log());
    assert_eq!(d.count("retention.lifecycle_drift"), 0);
    let v: Value =
        serde_json::from_slice(&s.run(&["status", "--json"]).stdout).expect("status json");
    assert_eq!(v["lifecycle"]["state"], "present", "{v}");
}

/// SIGTERM while a table's upload is open (seen in storage as an
/// unfinished upload): exit 0 within 10 s, no manifest, no unfinished
/// upload left, and the lock released.
fn sigterm_mid_upload(s: &Rig) -> Running {
    daemon_config(s, "every = \"1h\"");
    let mut d = start(s, &[]);
    d.wait_for("snapshot.started", 1, Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, uploads) = s.outside.leftovers("snapshots/");
        if !uploads.is_empty() {
            break;
        }
        assert_eq!(
            d.count("snapshot.completed"),
            0,
            "the snapshot finished before an upload was seen; make the table bigger"
        );
        assert!(
            Instant::now() < deadline,
            "no upload seen; log:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    d.signal(libc::SIGTERM);
    let (code, took) = d.wait_exit(Duration::from_secs(30));
    eprintln!("SIGTERM mid-upload: exit {code:?} after {took:?}");
    assert_eq!(code, Some(0), "log:\n{}", d.log());
    assert!(
        took < Duration::from_secs(10),
        "took {took:?} to stop; log:\n{}",
        d.log()
    );
    check_log_lines(&d, &[]);
    assert_eq!(d.count("snapshot.completed"), 0);
    assert_eq!(d.count("daemon.shutdown_timeout"), 0, "log:\n{}", d.log());
    // A planned stop is not an alert: `snapshot.cancelled` at INFO with
    // the stage it reached, and no ERROR line at all.
    let cancelled = d.first("snapshot.cancelled");
    assert_eq!(cancelled["level"], "INFO", "{cancelled}");
    // The open upload is the schema's or a table's.
    assert!(
        ["schema", "data"].contains(&cancelled["stage"].as_str().unwrap_or_default()),
        "{cancelled}"
    );
    assert!(cancelled["id"].is_string(), "{cancelled}");
    assert_eq!(d.count("snapshot.failed"), 0, "log:\n{}", d.log());
    let errors: Vec<Value> = d
        .events()
        .into_iter()
        .filter(|e| e["level"] == "ERROR")
        .collect();
    assert!(
        errors.is_empty(),
        "ERROR lines on a planned stop: {errors:?}"
    );
    let (objects, uploads) = s.outside.leftovers("snapshots/");
    assert!(
        objects.iter().all(|k| !k.ends_with("manifest.json")),
        "{objects:?}"
    );
    assert!(
        uploads.is_empty(),
        "unfinished uploads left: {uploads:?}; log:\n{}",
        d.log()
    );
    assert!(s.listed().is_empty());
    let (locks, _) = s.outside.leftovers("locks/");
    assert!(locks.is_empty(), "lock left behind: {locks:?}");
    d
}

/// Random hex compresses about 2x: ~30 MB raw is several multipart parts.
const NOISE_SQL: &str = "CREATE TABLE noise (id int, a text, b text); \
    INSERT INTO noise SELECT g, md5(random()::text), md5(random()::text) FROM generate_series(1, 400000) g;";

#[test]
fn sigterm_mid_upload_on_a_directory_exits_0_and_leaves_no_manifest_or_upload() {
    let s = Rig::new("dmnterm", NOISE_SQL);
    sigterm_mid_upload(&s);
}

#[test]
fn sigterm_mid_upload_on_garage_exits_0_and_leaves_no_manifest_or_upload() {
    let Some(s) = Rig::on_garage("dmntermg", NOISE_SQL) else {
        return;
    };
    let d = sigterm_mid_upload(&s);
    // No `lethe init` here: the bucket has no lifecycle rule, and says so.
    let drift = d.first("retention.lifecycle_drift");
    assert_eq!(drift["state"], "missing", "{drift}");
    assert_eq!(drift["level"], "WARN");
}

#[test]
fn sighup_with_a_broken_config_keeps_the_old_one_and_usr1_snapshots_now() {
    let s = Rig::new("dmnhup", SMALL_SQL);
    daemon_config(&s, "every = \"1h\"");
    let mut d = start(&s, &[]);
    // Empty repository: the start-up snapshot runs at once.
    d.wait_for("snapshot.completed", 1, Duration::from_secs(60));
    let good = std::fs::read_to_string(&s.cfg).expect("config");

    std::fs::write(
        &s.cfg,
        good.replace("every = \"1h\"", "every = \"whenever\""),
    )
    .expect("write");
    d.signal(libc::SIGHUP);
    d.wait_for("daemon.reload_failed", 1, Duration::from_secs(30));
    let failed = d.first("daemon.reload_failed");
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains("whenever")),
        "{failed}"
    );
    assert_eq!(failed["level"], "ERROR");

    // Still running, on the old config: SIGUSR1 takes a snapshot now.
    d.signal(libc::SIGUSR1);
    d.wait_for("snapshot.completed", 2, Duration::from_secs(60));

    // A valid change is taken.
    std::fs::write(&s.cfg, good.replace("every = \"1h\"", "every = \"2h\"")).expect("write");
    d.signal(libc::SIGHUP);
    d.wait_for("daemon.reloaded", 1, Duration::from_secs(30));
    let reloaded = d.first("daemon.reloaded");
    assert_eq!(reloaded["schedule"], "every 2h", "{reloaded}");

    d.signal(libc::SIGTERM);
    let (code, _) = d.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(0), "log:\n{}", d.log());
    check_log_lines(&d, &[]);
    assert_eq!(s.listed().len(), 2);
}

#[test]
fn two_daemons_on_one_repository_never_snapshot_at_once() {
    let a = Rig::new("dmntwoa", SMALL_SQL);
    daemon_config(&a, "every = \"3s\"");
    // The second daemon: its own erasure list and socket, the same repository.
    let b_dir = tempfile::tempdir().expect("tempdir");
    let b_cfg = b_dir.path().join("lethe.toml");
    let text = std::fs::read_to_string(&a.cfg).expect("config");
    let text = text
        .replace(
            &a.dir.path().join("erasure").display().to_string(),
            &b_dir.path().join("erasure").display().to_string(),
        )
        .replace(
            &a.dir.path().join("api.sock").display().to_string(),
            &b_dir.path().join("api.sock").display().to_string(),
        );
    std::fs::write(&b_cfg, text).expect("write");
    let mut da = start(&a, &[]);
    let mut db = start_with(&a, &b_cfg, &[]);

    std::thread::sleep(Duration::from_secs(25));
    da.signal(libc::SIGTERM);
    db.signal(libc::SIGTERM);
    assert_eq!(
        da.wait_exit(Duration::from_secs(30)).0,
        Some(0),
        "{}",
        da.log()
    );
    assert_eq!(
        db.wait_exit(Duration::from_secs(30)).0,
        Some(0),
        "{}",
        db.log()
    );
    check_log_lines(&da, &[]);
    check_log_lines(&db, &[]);

    let runs = intervals(&a);
    assert!(runs.len() >= 3, "{runs:?}");
    for w in runs.windows(2) {
        assert!(
            w[0].2 <= w[1].1,
            "overlapping snapshots from two daemons: {w:?}"
        );
    }
    let skipped = da.count("snapshot.skipped") + db.count("snapshot.skipped");
    assert!(
        skipped >= 1,
        "neither daemon ever found the lock held:\n{}\n---\n{}",
        da.log(),
        db.log()
    );
    assert_eq!(
        da.count("snapshot.completed") + db.count("snapshot.completed"),
        runs.len()
    );
}

#[test]
fn systemd_sees_ready_status_watchdog_and_stopping() {
    let s = Rig::new("dmnsd", SMALL_SQL);
    daemon_config(&s, "every = \"1h\"");
    let sock_path = s.dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let notify = sock_path.display().to_string();
    // WATCHDOG_USEC = 2 s: pings every second.
    let mut d = start(
        &s,
        &[
            ("NOTIFY_SOCKET", notify.as_str()),
            ("WATCHDOG_USEC", "2000000"),
        ],
    );
    let mut got: Vec<String> = Vec::new();
    let mut buf = [0u8; 4096];
    let mut recv_until = |got: &mut Vec<String>, done: &dyn Fn(&[String]) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(90);
        while !done(got) {
            assert!(Instant::now() < deadline, "timed out; got {got:?}");
            let n = sock
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("no notification ({e}); got {got:?}"));
            got.push(String::from_utf8_lossy(&buf[..n]).to_string());
        }
    };
    // READY, watchdog pings, and a status naming the start-up snapshot.
    recv_until(&mut got, &|g: &[String]| {
        g.iter().any(|m| m.contains("READY=1"))
            && g.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 3
            && g.iter().any(|m| m.contains("STATUS=last snapshot 2"))
    });
    let ready = got
        .iter()
        .position(|m| m.contains("READY=1"))
        .expect("READY=1");
    assert!(got[ready].contains("STATUS="), "{got:?}");
    let first_ping = got
        .iter()
        .position(|m| m.contains("WATCHDOG=1"))
        .expect("ping");
    assert!(first_ping > ready, "a watchdog ping before READY: {got:?}");
    d.signal(libc::SIGTERM);
    recv_until(&mut got, &|g: &[String]| {
        g.iter().any(|m| m.contains("STOPPING=1"))
    });
    let (code, _) = d.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(0), "log:\n{}", d.log());
}

/// Puts a snapshot prefix with a manifest-named object into a directory
/// repository, started `age` ago.
fn fake_snapshot(repo: &Path, age: chrono::Duration, n: u16) -> String {
    let at = chrono::Utc::now() - age;
    let id = format!("{}-{n:04x}", at.format("%Y%m%dT%H%M%SZ"));
    for key in [
        "manifest.json",
        "schema/pre.sql.zst.age",
        "data/1.public.users.0.copy.zst.age",
    ] {
        let p = repo.join("snapshots").join(&id).join(key);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, b"x").expect("write");
    }
    id
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).expect("prefix").display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn prune_dry_run_deletes_nothing_and_prune_deletes_only_the_expired() {
    let s = Rig::new("dmnprune", "");
    std::fs::create_dir_all(&s.repo).expect("repo");
    let young = fake_snapshot(&s.repo, chrono::Duration::days(34), 1);
    let old = fake_snapshot(&s.repo, chrono::Duration::days(36), 2);
    std::fs::create_dir_all(s.repo.join("erasures")).expect("mkdir");
    std::fs::write(
        s.repo.join("erasures/01J00000000000000000000000.json"),
        b"{}",
    )
    .expect("write");
    let before = files_under(&s.repo);

    let out = s.run(&["prune", "--dry-run"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains(&format!("delete   {old}")), "{stdout}");
    assert!(!stdout.contains(&young), "{stdout}");
    assert!(stdout.contains("dry run: nothing was deleted"), "{stdout}");
    assert_eq!(
        files_under(&s.repo),
        before,
        "--dry-run changed the repository"
    );

    let out = s.run(&["prune", "--dry-run", "--json"]);
    let plan: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(plan["plan"]["expire"][0]["id"], old.as_str());
    assert_eq!(plan["plan"]["expire"][0]["age_days"], 36);
    assert_eq!(plan["plan"]["keep"][0], young.as_str());
    assert_eq!(files_under(&s.repo), before);

    let out = s.run(&["prune"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let log = text(&out.stderr);
    assert!(
        log.contains("\"retention.deleted\"") && log.contains("\"age_days\":36"),
        "{log}"
    );
    let after = files_under(&s.repo);
    assert!(after.iter().all(|f| !f.contains(&old)), "{after:?}");
    assert!(
        after.iter().filter(|f| f.contains(&young)).count() == 3,
        "{after:?}"
    );
    assert!(after.contains(&"erasures/01J00000000000000000000000.json".to_string()));
}

#[test]
fn sigterm_stops_prune_between_deletions_and_what_is_deleted_stays_deleted() {
    let s = Rig::new("dmnprunesig", "");
    std::fs::create_dir_all(&s.repo).expect("repo");
    let old: Vec<String> = (0..8u16)
        .map(|n| fake_snapshot(&s.repo, chrono::Duration::days(40 + i64::from(n)), n + 1))
        .collect();
    // Every delete waits 300 ms: deleting all eight takes seconds, and the
    // signal lands in the middle.
    let mut child = s
        .cmd(&["prune"])
        .env("LETHE_FAULTS", "delete:delay=300ms")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn prune");
    let (lines, reader) = crate::common::collect_stderr(&mut child);
    let t0 = Instant::now();
    while !lines
        .lock()
        .expect("lines")
        .iter()
        .any(|l| l.contains("\"retention.deleted\""))
    {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "prune deleted nothing in 60 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on our own child's pid; no memory is touched.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().expect("wait");
    reader.join().expect("stderr reader");
    let log = lines.lock().expect("lines").join("\n");
    assert_eq!(
        status.code(),
        Some(1),
        "prune must stop on SIGTERM with exit 1, not die by the signal ({status:?}):\n{log}"
    );
    assert!(log.contains("retention was cancelled"), "{log}");
    let after = files_under(&s.repo);
    let complete = |id: &String| after.contains(&format!("snapshots/{id}/manifest.json"));
    let deleted = old
        .iter()
        .filter(|id| !after.iter().any(|f| f.contains(id.as_str())))
        .count();
    let kept = old.iter().filter(|id| complete(id)).count();
    assert!(
        deleted >= 1,
        "the deletion before the signal was undone: {after:?}"
    );
    assert!(kept >= 1, "prune did not stop at the signal: {after:?}");
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let Ok(out) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        crate::common::skip_or_fail("systemd-analyze is not installed (apt install systemd)");
        return;
    };
    assert!(out.status.success());
    // verify checks that ExecStart exists: point it at the built binary.
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/lethe.service"),
    )
    .expect("unit");
    assert!(unit.contains("ExecStart=/usr/local/bin/lethe "), "{unit}");
    for want in [
        "Type=notify",
        "WatchdogSec=",
        "User=lethe",
        "StateDirectory=lethe",
        "RuntimeDirectory=lethe",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=\n",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter=@system-service",
    ] {
        assert!(unit.contains(want), "the unit lacks {want:?}");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("lethe.service");
    let bin = crate::common::lethe_bin();
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/lethe", &bin.display().to_string()),
    )
    .expect("write");
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze");
    let stderr = text(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    assert!(
        !stderr.contains("lethe.service"),
        "systemd-analyze verify warned:\n{stderr}"
    );
}

/// A snapshot stuck where cancellation cannot reach (the test pause holds a
/// COPY worker thread): the drain gives up at its deadline and still exits
/// 0 within 10 s; a second SIGTERM during the drain exits 1 at once.
#[test]
fn a_stuck_snapshot_is_abandoned_at_the_deadline_and_a_second_sigterm_exits_now() {
    let s = Rig::new("dmnstuck", SMALL_SQL);
    daemon_config(&s, "every = \"1h\"");
    let pause = [("LETHE_TEST_PAUSE_AT", "data")];

    let mut d = start(&s, &pause);
    d.wait_for("lethe-test-pause: data", 1, Duration::from_secs(60));
    d.signal(libc::SIGTERM);
    let (code, took) = d.wait_exit(Duration::from_secs(30));
    eprintln!("stuck snapshot: exit {code:?} after {took:?}");
    assert_eq!(code, Some(0), "log:\n{}", d.log());
    assert!(
        took < Duration::from_secs(10),
        "took {took:?}; log:\n{}",
        d.log()
    );
    assert_eq!(d.count("daemon.shutdown_timeout"), 1, "log:\n{}", d.log());
    assert_eq!(d.count("daemon.stopped"), 1);
    check_log_lines(&d, &["lethe-test-pause: "]);
    assert!(s.listed().is_empty());

    let mut d = start(&s, &pause);
    d.wait_for("lethe-test-pause: data", 1, Duration::from_secs(60));
    d.signal(libc::SIGTERM);
    d.wait_for("daemon.stopping", 1, Duration::from_secs(10));
    d.signal(libc::SIGTERM);
    let (code, _) = d.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(1), "log:\n{}", d.log());
    assert_eq!(d.count("daemon.killed"), 1, "log:\n{}", d.log());
    assert_eq!(
        d.count("daemon.stopped"),
        0,
        "it waited for the drain; log:\n{}",
        d.log()
    );
    check_log_lines(&d, &["lethe-test-pause: "]);
    assert!(s.listed().is_empty());
}

/// `continuous.enabled = true` on a source with `wal_level = replica`
/// (the machine's main cluster): the daemon does not start (exit 2), and
/// says why and how to fix it.
#[test]
fn continuous_capture_on_a_replica_level_source_refuses_to_start() {
    let s = Rig::new("dmncont", SMALL_SQL);
    daemon_config(&s, "every = \"1h\"\n\n[continuous]\nenabled = true");
    let mut d = start(&s, &[]);
    let (code, _) = d.wait_exit(Duration::from_secs(60));
    assert_eq!(code, Some(2), "{}", d.log());
    let log = d.log();
    assert!(
        log.contains("wal_level is replica")
            && log.contains("ALTER SYSTEM SET wal_level = logical"),
        "{log}"
    );
    assert_eq!(d.count("daemon.ready"), 0, "{log}");
}

#[test]
fn a_cron_schedule_with_seconds_drives_snapshots() {
    let s = Rig::new("dmncron", SMALL_SQL);
    daemon_config(&s, "cron = \"*/4 * * * * *\"");
    let mut d = start(&s, &[]);
    d.wait_for("snapshot.completed", 3, Duration::from_secs(90));
    d.signal(libc::SIGTERM);
    assert_eq!(
        d.wait_exit(Duration::from_secs(30)).0,
        Some(0),
        "{}",
        d.log()
    );
    check_log_lines(&d, &[]);
    let ready = d.first("daemon.ready");
    assert_eq!(ready["schedule"], "cron \"*/4 * * * * *\" (UTC)", "{ready}");
    let runs = intervals(&s);
    assert!(runs.len() >= 3, "{runs:?}");
    for w in runs.windows(2) {
        assert!(w[0].2 <= w[1].1, "overlap: {w:?}");
    }
}
