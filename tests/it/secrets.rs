//! Secrets and privacy: a full run (snapshot, erase, leak check, sync,
//! restore, verify, list, show) at info level with JSON logs, then every
//! byte the processes wrote to stderr is searched for the raw subject ids,
//! the database password, the age secret key and the S3 secret key. Secret
//! files readable by group or others are refused.

use crate::common::LetheCli;
use crate::common::TestDb;
use crate::rig::{Rig, SCHEMA, table_text, text};
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Distinctive ids (8 digits: a chance match inside a hex digest or a
/// timestamp is ~1e-7), present in the source when erased.
const ERASED: [&str; 3] = ["73160591", "88422113", "61299037"];
const PASSWORD: &str = "S3cretPw";
/// An id added by mistake and removed again.
const MISTYPED: &str = "55501234";

#[test]
fn no_secret_or_raw_subject_id_reaches_the_logs_of_a_full_run() {
    let mut sql = SCHEMA.to_string();
    for id in ERASED {
        sql.push_str(&format!(
            "INSERT INTO users VALUES ({id}, 'erased{id}@example.com'); \
             INSERT INTO orders VALUES ({id}, {id}, 1); INSERT INTO notes VALUES ({id}, {id}, 'x');"
        ));
    }
    let rig = match Rig::s3("secrets", &sql, "") {
        Some(r) => r,
        None => Rig::file("secrets", &sql, ""),
    };
    // The password travels in the URL; trust auth ignores it.
    let with_pw = rig.db.url.replacen(
        "postgres://postgres@",
        &format!("postgres://postgres:{PASSWORD}@"),
        1,
    );
    assert_ne!(
        with_pw, rig.db.url,
        "the test database URL has the expected form"
    );
    rig.edit_config(
        &format!("url = \"{}\"", rig.db.url),
        &format!("url = \"{with_pw}\""),
    );

    let mut logs = String::new();
    let mut n = 0;
    let mut step = |args: &[&str], want_ok: bool| {
        let out = rig.run(args);
        n += 1;
        // The header names the verb only: the arguments hold the ids and password.
        logs.push_str(&format!("\n--- step {n}: lethe {}\n", args[0]));
        logs.push_str(&text(&out.stderr));
        assert_eq!(
            out.status.success(),
            want_ok,
            "lethe {args:?}: {}",
            text(&out.stderr)
        );
        out
    };
    step(&["snapshot"], true);
    let mut add = vec!["erase", "add"];
    add.extend(ERASED);
    add.extend(["--reference", "GDPR-17"]);
    step(&add, true);
    step(&["erase", "check", ERASED[0]], true);
    // A mistyped add, undone: `erasure.removed` names neither id.
    step(&["erase", "add", MISTYPED], true);
    step(&["erase", "remove", MISTYPED, "--reason", "typo"], true);
    // The rows are still in the source: the leak check fires here.
    step(&["snapshot"], true);
    step(&["erase", "sync"], true);
    let target = TestDb::create("secrets_tgt");
    let target_pw = target.url.replacen(
        "postgres://postgres@",
        &format!("postgres://postgres:{PASSWORD}@"),
        1,
    );
    step(&["restore", "latest", "--target", &target_pw], true);
    step(&["restore", "latest", "--dry-run"], true);
    step(&["verify", "latest", "--deep"], true);
    step(&["list"], true);
    step(&["show", "latest"], true);
    // A failing restore (target not empty) logs its error too.
    step(&["restore", "latest", "--target", &target_pw], false);

    // What was restored holds none of the erased subjects.
    for id in ERASED {
        for t in ["users", "orders"] {
            assert!(
                !table_text(&target.name, t).contains(id),
                "{t} holds erased subject {id}"
            );
        }
    }
    assert!(
        logs.contains("erasure.added"),
        "the run logged its events:\n{logs}"
    );
    assert!(logs.contains("restore.completed"), "{logs}");
    // The per-table counts are JSON objects, not JSON-encoded strings.
    let completed: serde_json::Value = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "restore.completed" && v["dry_run"] == false)
        .unwrap_or_else(|| panic!("no restore.completed line:\n{logs}"));
    let dropped = &completed["rows_dropped_by_table"];
    assert!(
        dropped.is_object() && dropped["public.users"].as_u64().is_some_and(|n| n > 0),
        "{completed}"
    );
    assert!(completed["rows_nulled_by_table"].is_object(), "{completed}");
    assert!(logs.contains("erasure.removed"), "{logs}");
    assert!(
        logs.contains("erasure.leak_detected"),
        "the second snapshot saw the erased rows:\n{logs}"
    );

    let secret_key = std::fs::read_to_string(&rig.key).expect("identity");
    let secret_key = secret_key
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .expect("age secret key line");
    let mut forbidden: Vec<(&str, String)> = ERASED
        .iter()
        .map(|id| ("raw subject id", id.to_string()))
        .collect();
    forbidden.push(("raw subject id (removed)", MISTYPED.to_string()));
    forbidden.push(("database password", PASSWORD.to_string()));
    forbidden.push(("age secret key", secret_key.to_string()));
    // Any 20-character piece of the key, in case it is cut or re-encoded.
    forbidden.push(("age secret key (part)", secret_key[15..35].to_string()));
    if let Some(g) = &rig.garage {
        forbidden.push(("S3 secret key", g.secret_key.clone()));
    }
    for (what, needle) in &forbidden {
        if let Some(i) = logs.find(needle.as_str()) {
            let line = logs[..i].rsplit('\n').next().unwrap_or("").to_string()
                + logs[i..].lines().next().unwrap_or("");
            panic!("{what} appears in the logs: {line}");
        }
    }
    let lines = logs.lines().filter(|l| l.starts_with('{')).count();
    let backend = if rig.garage.is_some() {
        "Garage S3"
    } else {
        "file://"
    };
    eprintln!(
        "secrets ({backend}): {lines} JSON log lines from {n} commands searched for {} secrets: none found",
        forbidden.len()
    );
}

#[test]
fn secret_files_readable_by_others_are_refused() {
    let rig = Rig::file("secretperm", SCHEMA, "");
    rig.snapshot();
    let out = rig.run(&["erase", "sync"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    for mode in [0o644, 0o640, 0o604] {
        std::fs::set_permissions(&rig.key, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let target = TestDb::create("secretperm_tgt");
        let out = rig.run(&["restore", "latest", "--target", &target.url]);
        let err = text(&out.stderr);
        assert!(
            !out.status.success(),
            "mode {mode:o}: restore ran with a loose identity file"
        );
        assert!(
            err.contains(&rig.key.display().to_string()) && err.contains("chmod 600"),
            "mode {mode:o}: the error names the file and the fix: {err}"
        );
        assert_eq!(
            crate::rig::table_count(&target.name),
            0,
            "mode {mode:o}: nothing written to the target"
        );
        let out = rig.run(&["verify", "latest", "--deep"]);
        assert!(
            !out.status.success(),
            "mode {mode:o}: verify --deep ran with a loose identity file"
        );
    }
    std::fs::set_permissions(&rig.key, std::fs::Permissions::from_mode(0o600)).expect("chmod");

    // The API token file for a TCP listener.
    let token = rig.dir.path().join("api.token");
    std::fs::write(&token, "0123456789abcdef0123456789abcdef\n").expect("token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    rig.edit_config(
        &format!(
            "listen = \"unix:{}\"",
            rig.dir.path().join("api.sock").display()
        ),
        &format!(
            "listen = \"tcp:127.0.0.1:1\"\ntoken_file = \"{}\"",
            token.display()
        ),
    );
    let mut child = rig
        .cmd(&["erase", "serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve kept running with a loose token file");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    let err = text(&out.stderr);
    assert!(!out.status.success(), "serve ran with a loose token file");
    assert!(
        err.contains(&token.display().to_string()) && err.contains("chmod 600"),
        "{err}"
    );
}
