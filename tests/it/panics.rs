//! Panic messages: the real binary is made to panic on purpose (the
//! test-only `LETHE_TEST_PANIC` hook, armed by `LETHE_TEST_HOOKS`) with a
//! message that dumps the config, the command line (subject ids, a target
//! URL with a password), the S3 secret key, the API token and the age
//! identity — a careless bug at its worst. The panic must come out as one
//! `process.panicked` JSON event, and nothing the process wrote to stderr
//! may hold any of those secrets or ids.

use crate::common::LetheCli;
use crate::rig::{Rig, text};
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

const IDS: [&str; 2] = ["73160591", "88422113"];
const PASSWORD: &str = "Pw-4-panic-test";
const TOKEN: &str = "panic-test-bearer-token-d41d8cd9";
const ARM: (&str, &str) = ("LETHE_TEST_HOOKS", "crash-on-purpose");

/// A rig (Garage when it runs, else a directory) whose source URL carries a
/// password and whose API has a token file.
fn rig(tag: &str) -> Rig {
    let rig = match Rig::s3(tag, "SELECT 1", "") {
        Some(r) => r,
        None => Rig::file(tag, "SELECT 1", ""),
    };
    let with_pw = rig.db.url.replacen(
        "postgres://postgres@",
        &format!("postgres://postgres:{PASSWORD}@"),
        1,
    );
    rig.edit_config(
        &format!("url = \"{}\"", rig.db.url),
        &format!("url = \"{with_pw}\""),
    );
    let token = rig.dir.path().join("api.token");
    std::fs::write(&token, format!("{TOKEN}\n")).expect("token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let sock = rig.dir.path().join("api.sock");
    rig.edit_config(
        &format!("listen = \"unix:{}\"", sock.display()),
        &format!(
            "listen = \"unix:{}\"\ntoken_file = \"{}\"",
            sock.display(),
            token.display()
        ),
    );
    rig
}

/// Every secret and id the panic message held, by name.
fn forbidden(rig: &Rig) -> Vec<(&'static str, String)> {
    let identity = std::fs::read_to_string(&rig.key).expect("identity");
    let age = identity
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .expect("age secret key line")
        .to_string();
    let mut out: Vec<(&str, String)> = IDS.iter().map(|i| ("subject id", i.to_string())).collect();
    out.push(("database password", PASSWORD.into()));
    out.push(("API token", TOKEN.into()));
    out.push(("age secret key (part)", age[15..35].to_string()));
    out.push(("age secret key", age));
    if let Some(g) = &rig.garage {
        out.push(("S3 secret key", g.secret_key.clone()));
    }
    out
}

fn assert_clean(what: &str, stderr: &str, forbidden: &[(&str, String)]) {
    for (name, needle) in forbidden {
        assert!(
            !stderr.contains(needle.as_str()),
            "{what}: the {name} reached stderr:\n{stderr}"
        );
    }
    assert!(
        !stderr.contains("panicked at"),
        "{what}: Rust's default panic text was printed:\n{stderr}"
    );
}

fn panicked_events(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "process.panicked")
        .collect()
}

#[test]
fn a_panic_in_a_command_is_one_redacted_event() {
    let rig = rig("panic_cmd");
    let forbidden = forbidden(&rig);
    let target = rig.db.url.replacen(
        "postgres://postgres@",
        &format!("postgres://postgres:{PASSWORD}@"),
        1,
    );
    let mut runs = 0;
    for args in [
        vec!["erase", "add", IDS[0], IDS[1], "--reference", "GDPR-1"],
        vec!["restore", "latest", "--target", &target],
        vec!["snapshot"],
    ] {
        let out = rig.run_env(&args, &[ARM, ("LETHE_TEST_PANIC", "config")]);
        let err = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(101),
            "{args:?} did not panic: {err}"
        );
        let events = panicked_events(&err);
        assert_eq!(
            events.len(),
            1,
            "{args:?}: one process.panicked event:\n{err}"
        );
        let e = &events[0];
        assert_eq!(e["level"], "ERROR", "{e}");
        assert!(
            e["location"]
                .as_str()
                .is_some_and(|l| l.starts_with("src/commands/mod.rs:")),
            "the location names the panicking line: {e}"
        );
        let line = err
            .lines()
            .find(|l| l.contains("\"process.panicked\""))
            .unwrap_or_default();
        assert_eq!(line.matches("\"message\"").count(), 1, "{line}");
        let message = e["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("test panic at config") && message.contains("[redacted]"),
            "{e}"
        );
        assert_clean(&format!("lethe {}", args[0]), &err, &forbidden);
        runs += 1;
    }
    // Unarmed, the hook does nothing: the same command works.
    let out = rig.run_env(&["erase", "add", IDS[0]], &[("LETHE_TEST_PANIC", "config")]);
    assert!(out.status.success(), "unarmed hook: {}", text(&out.stderr));
    assert!(panicked_events(&text(&out.stderr)).is_empty());
    eprintln!(
        "panics: {runs} commands panicked on purpose, each one process.panicked event; \
         0 of {} secrets/ids on stderr; unarmed hook inert",
        forbidden.len()
    );
}

#[test]
fn a_panic_in_the_daemons_job_is_redacted_and_the_daemon_lives_on() {
    let rig = rig("panic_daemon");
    let forbidden = forbidden(&rig);
    let mut cfg = std::fs::read_to_string(&rig.cfg).expect("config");
    cfg.push_str("\n[schedule]\nevery = \"1h\"\n");
    std::fs::write(&rig.cfg, cfg).expect("config");
    let mut child = rig
        .cmd(&["daemon"])
        .env(ARM.0, ARM.1)
        .env("LETHE_TEST_PANIC", "daemon_job")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn daemon");
    let (rx, reader) = crate::common::stream_stderr(&mut child);
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut ready = false;
    // The first job runs at start (no snapshot yet); SIGUSR1 once ready
    // asks for another.
    while !lines
        .iter()
        .any(|l: &String| l.contains("\"daemon.job_panicked\""))
    {
        assert!(
            Instant::now() < deadline,
            "no daemon.job_panicked within 120 s:\n{}",
            lines.join("\n")
        );
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(500)) {
            if !ready && l.contains("\"daemon.ready\"") {
                ready = true;
                // SAFETY: a signal to the child this test started.
                unsafe { libc::kill(child.id() as i32, libc::SIGUSR1) };
            }
            lines.push(l);
        }
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "the daemon died of its job's panic:\n{}",
            lines.join("\n")
        );
    }
    // It keeps running: SIGTERM drains it and it exits 0.
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().expect("wait");
    reader.join().expect("reader");
    lines.extend(rx.try_iter());
    let err = lines.join("\n");
    assert_eq!(status.code(), Some(0), "daemon exit after SIGTERM:\n{err}");
    let events = panicked_events(&err);
    assert!(!events.is_empty(), "no process.panicked:\n{err}");
    for e in &events {
        assert!(
            e["message"]
                .as_str()
                .is_some_and(|m| m.contains("test panic at daemon_job")),
            "{e}"
        );
    }
    assert_clean("lethe daemon", &err, &forbidden);
    eprintln!(
        "panics (daemon): {} job panics, each a process.panicked + daemon.job_panicked; daemon exited 0 \
         on SIGTERM; 0 of {} secrets/ids on stderr",
        events.len(),
        forbidden.len()
    );
}
