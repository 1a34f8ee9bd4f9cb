//! Each error is shown once on stderr: a failure logged as an event
//! (`restore.failed`, `snapshot.failed`) is not printed again as a
//! `lethe: error:` line, and the event's message does not repeat its
//! `error` field; an error no event showed (a config error, logging off)
//! is one `lethe: error:` line. Exit codes are unchanged.

use crate::common::{LetheCli, lethe_cmd, output_within, write_config};
use crate::rig::{Rig, text};

const GONE: &str = "20200101T000000Z-abcd";

/// How often `needle` occurs in `err`, and the `lethe: error:` lines.
fn seen(err: &str, needle: &str) -> (usize, usize) {
    (
        err.matches(needle).count(),
        err.lines()
            .filter(|l| l.starts_with("lethe: error:"))
            .count(),
    )
}

/// The JSON log lines with `event`.
fn events(err: &str, event: &str) -> Vec<serde_json::Value> {
    err.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == event)
        .collect()
}

#[test]
fn a_failed_restore_shows_its_error_once_in_the_restore_failed_event() {
    let rig = Rig::file(
        "once_restore",
        "CREATE TABLE users (id bigint PRIMARY KEY)",
        "",
    );
    rig.snapshot();
    for format in ["json", "text"] {
        if format == "text" {
            rig.edit_config("format = \"json\"", "format = \"text\"");
        }
        // An unknown snapshot, and a restore refused for want of the
        // erasure list (never synced on this rig).
        for (args, needle) in [
            (
                vec!["restore", GONE, "--dry-run"],
                format!("snapshot {GONE} not found"),
            ),
            (
                vec!["restore", "latest", "--dry-run"],
                "no erasure list at".to_string(),
            ),
        ] {
            let out = rig.run(&args);
            let err = text(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{format} {args:?}: {err}");
            assert_eq!(
                seen(&err, &needle),
                (1, 0),
                "{format} {args:?}: the error once, in the event, no `lethe: error:` line:\n{err}"
            );
            if format == "json" {
                let failed = events(&err, "restore.failed");
                assert_eq!(failed.len(), 1, "{err}");
                assert_eq!(failed[0]["level"], "ERROR", "{err}");
                assert!(
                    failed[0]["error"]
                        .as_str()
                        .is_some_and(|e| e.contains(needle.as_str())),
                    "the event's error field carries it: {err}"
                );
            } else {
                assert!(
                    err.lines().any(|l| l.contains("ERROR restore failed")
                        && l.contains("event=\"restore.failed\"")
                        && l.contains(needle.as_str())),
                    "{err}"
                );
            }
        }
    }
    // Logging off: no event shows it, so it is one `lethe: error:` line.
    rig.edit_config("format = \"text\"", "format = \"text\"\nlevel = \"off\"");
    let out = rig.run(&["restore", GONE, "--dry-run"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        seen(&err, &format!("snapshot {GONE} not found")),
        (1, 1),
        "{err}"
    );
}

#[test]
fn a_failed_snapshot_shows_its_error_once_in_the_snapshot_failed_event() {
    let rig = Rig::file(
        "once_snap",
        "CREATE TABLE users (id bigint PRIMARY KEY)",
        "",
    );
    let missing = format!("{}_missing", rig.db.name);
    rig.edit_config(&rig.db.url, &rig.db.url.replace(&rig.db.name, &missing));
    let out = rig.run(&["snapshot"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let failed = events(&err, "snapshot.failed");
    assert_eq!(failed.len(), 1, "{err}");
    assert!(
        failed[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains(missing.as_str())),
        "{err}"
    );
    assert_eq!(seen(&err, "does not exist"), (1, 0), "{err}");
}

#[test]
fn a_config_error_is_one_lethe_error_line_with_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(
        dir.path(),
        "[encryption]\nrecipients = [\"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\"]\n\
         [schedule]\nevrey = \"1h\"\n",
    );
    for args in [
        &["snapshot"][..],
        &["restore", "latest", "--dry-run"],
        &["daemon"],
    ] {
        let out = output_within(lethe_cmd(&cfg, args, &[]));
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(seen(&err, "schedule.evrey"), (1, 1), "{args:?}: {err}");
    }
}

#[test]
fn a_loose_credentials_file_is_named_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let creds = dir.path().join("aws.env");
    std::fs::write(&creds, "AWS_ACCESS_KEY_ID=x\nAWS_SECRET_ACCESS_KEY=y\n").expect("creds");
    let cfg = write_config(
        dir.path(),
        &format!(
            "[storage]\nurl = \"s3://bucket/p\"\nendpoint = \"http://127.0.0.1:9\"\npath_style = true\n\
             credentials_file = \"{}\"\n\
             [encryption]\nrecipients = [\"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\"]\n\
             [erasure]\npath = \"{}\"\n[log]\nformat = \"json\"\n",
            creds.display(),
            dir.path().join("erasure").display()
        ),
    );
    std::fs::set_permissions(&creds, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
    // `list` logs nothing: one `lethe: error:` line. `snapshot` logs
    // `snapshot.failed` (alerts see it), and prints nothing more.
    for (args, lines) in [(&["list"][..], 1), (&["snapshot"][..], 0)] {
        let out = output_within(lethe_cmd(&cfg, args, &[]));
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(
            seen(&err, "readable by group or others"),
            (1, lines),
            "{args:?}: {err}"
        );
    }
}
