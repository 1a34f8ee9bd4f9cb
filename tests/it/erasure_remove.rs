//! Undoing a mistyped erasure: `lethe erase remove`, journaled so every host
//! applies it; unusual ids accepted with a warning; `erase list` order.

use crate::common::Repo;
use crate::erasure::{Server, host, lethe_ok, list_state, stderr, stdout};
use std::path::Path;
use std::process::Output;

#[test]
fn zero_and_negative_bigint_ids_are_accepted_with_a_warning_naming_them() {
    let repo = tempfile::tempdir().unwrap();
    let (_d, cfg) = host(&Repo::File(repo.path()), "");
    let o = lethe_ok(&cfg, &["erase", "add", "0"], 0);
    let err = stderr(&o);
    assert!(
        err.contains("warning: 0 is an unusual subject id")
            && err.contains("lethe erase remove 0 --reason"),
        "{err}"
    );
    let o = lethe_ok(&cfg, &["erase", "add", "12", "--", "-5"], 0);
    let err = stderr(&o);
    assert!(
        err.contains("warning: -5 is an unusual subject id")
            && err.contains("lethe erase remove -5 --reason"),
        "{err}"
    );
    assert!(!err.contains("12 is"), "{err}");
    // Both are listed: a legal bigint can be a real subject.
    lethe_ok(&cfg, &["erase", "check", "0"], 0);
    lethe_ok(&cfg, &["erase", "check", "-5"], 0);
    // An ordinary id gets no warning.
    let o = lethe_ok(&cfg, &["erase", "add", "42"], 0);
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    assert!(stdout(&o).contains("added 1"));
    // The undo the warning names works as written.
    lethe_ok(&cfg, &["erase", "remove", "0", "--reason", "typo"], 0);
    lethe_ok(&cfg, &["erase", "remove", "-5", "--reason", "typo"], 0);
    lethe_ok(&cfg, &["erase", "check", "0"], 1);
    lethe_ok(&cfg, &["erase", "check", "-5"], 1);
    lethe_ok(&cfg, &["erase", "check", "12"], 0);
}

/// `erase list --json` on `cfg`: (listed ids, removal records).
fn listed(cfg: &Path) -> (Vec<String>, Vec<serde_json::Value>) {
    listed_with(cfg, lethe_ok)
}

fn listed_with(
    cfg: &Path,
    run: impl Fn(&Path, &[&str], i32) -> Output,
) -> (Vec<String>, Vec<serde_json::Value>) {
    let all: Vec<serde_json::Value> =
        serde_json::from_str(&stdout(&run(cfg, &["erase", "list", "--json"], 0))).unwrap();
    let (removed, entries): (Vec<_>, Vec<_>) = all.into_iter().partition(|v| v["removed"] == true);
    let ids = entries
        .iter()
        .map(|v| v["subject"].as_str().unwrap().to_string())
        .collect();
    (ids, removed)
}

/// Host a adds and removes, host b and a fresh host c sync: the removal
/// holds everywhere and no later sync brings the id back.
fn a_removal_reaches_other_hosts(repo: &Repo, run: impl Fn(&Path, &[&str], i32) -> Output) {
    let lethe_ok = &run;
    let (_a, cfg_a) = host(repo, "");
    let (_b, cfg_b) = host(repo, "");
    lethe_ok(&cfg_a, &["erase", "add", "7", "918273645", "8"], 0);
    lethe_ok(&cfg_a, &["erase", "sync"], 0);
    lethe_ok(&cfg_b, &["erase", "sync"], 0);
    lethe_ok(&cfg_b, &["erase", "check", "7"], 0);

    let o = lethe_ok(
        &cfg_a,
        &[
            "erase",
            "remove",
            "7",
            "918273645",
            "--reason",
            "typo for 17",
        ],
        0,
    );
    assert!(stdout(&o).contains("removed 2"), "{}", stdout(&o));
    let logs = stderr(&o);
    assert!(
        logs.contains("erasure.removed")
            && logs.contains("typo for 17")
            && logs.contains("source=\"cli\""),
        "{logs}"
    );
    assert!(!logs.contains("918273645"), "raw id in the logs: {logs}");
    lethe_ok(&cfg_a, &["erase", "check", "7"], 1);
    let a = list_state(&stdout(&lethe_ok(&cfg_a, &["erase", "sync"], 0)));

    let b = list_state(&stdout(&lethe_ok(&cfg_b, &["erase", "sync"], 0)));
    assert_eq!(a, b, "count and digest agree after the removal");
    assert_eq!(b.0, 1);
    lethe_ok(&cfg_b, &["erase", "check", "7"], 1);
    lethe_ok(&cfg_b, &["erase", "check", "8"], 0);
    for _ in 0..2 {
        lethe_ok(&cfg_a, &["erase", "sync"], 0);
        let again = list_state(&stdout(&lethe_ok(&cfg_b, &["erase", "sync"], 0)));
        assert_eq!(again, b);
        lethe_ok(&cfg_b, &["erase", "check", "7"], 1);
    }
    // The history on b: no longer listed, the removal with time, reason, origin.
    let (ids, removed) = listed_with(&cfg_b, &run);
    assert_eq!(ids, ["8"]);
    assert_eq!(removed.len(), 2, "{removed:?}");
    let r7 = removed.iter().find(|r| r["subject"] == "7").unwrap();
    assert_eq!(r7["reason"], "typo for 17");
    assert!(
        r7["removed_at"].is_string() && r7["origin"].is_string(),
        "{r7}"
    );

    // A fresh host replays the journal: the same list.
    let (_c, cfg_c) = host(repo, "");
    assert_eq!(
        list_state(&stdout(&lethe_ok(&cfg_c, &["erase", "sync"], 0))),
        b
    );
    // An add after the removal erases the id again on every host.
    lethe_ok(&cfg_b, &["erase", "add", "7"], 0);
    lethe_ok(&cfg_b, &["erase", "sync"], 0);
    lethe_ok(&cfg_a, &["erase", "sync"], 0);
    lethe_ok(&cfg_a, &["erase", "check", "7"], 0);
}

#[test]
fn a_removal_survives_a_sync_from_another_host_on_a_directory_repository() {
    let repo = tempfile::tempdir().unwrap();
    a_removal_reaches_other_hosts(&Repo::File(repo.path()), lethe_ok);
}

#[test]
fn a_removal_survives_a_sync_from_another_host_on_a_garage_bucket() {
    let Some(g) = crate::common::garage() else {
        return;
    };
    let bucket = g.new_bucket();
    let repo = Repo::S3 {
        garage: &g,
        bucket: &bucket,
        prefix: "prod",
    };
    a_removal_reaches_other_hosts(&repo, |cfg, args, code| {
        let o = g.lethe(cfg, args);
        assert_eq!(
            o.status.code(),
            Some(code),
            "lethe {args:?}: {} {}",
            stdout(&o),
            stderr(&o)
        );
        o
    });
}

#[test]
fn removing_an_unknown_id_exits_1_naming_it_and_changes_nothing() {
    let repo = tempfile::tempdir().unwrap();
    let (_a, cfg) = host(&Repo::File(repo.path()), "");
    let before = list_state(&stdout(&lethe_ok(&cfg, &["erase", "add", "7", "8"], 0)));
    let o = lethe_ok(
        &cfg,
        &["erase", "remove", "7", "999", "--reason", "typo"],
        1,
    );
    let err = stderr(&o);
    assert!(
        err.contains("999") && err.contains("nothing was removed"),
        "{err}"
    );
    lethe_ok(&cfg, &["erase", "check", "7"], 0);
    let after = list_state(&stdout(&lethe_ok(&cfg, &["erase", "sync"], 0)));
    assert_eq!(after, before);
    assert!(listed(&cfg).1.is_empty(), "no removal recorded");
    // --reason is required and must say something: usage errors.
    let o = lethe_ok(&cfg, &["erase", "remove", "7"], 2);
    assert!(stderr(&o).contains("--reason"), "{}", stderr(&o));
    let o = lethe_ok(&cfg, &["erase", "remove", "7", "--reason", " "], 2);
    assert!(stderr(&o).contains("--reason"), "{}", stderr(&o));
    lethe_ok(&cfg, &["erase", "check", "7"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_through_the_running_api_survives_a_restart() {
    let repo = tempfile::tempdir().unwrap();
    let (dir, cfg) = host(&Repo::File(repo.path()), "");
    let (_b, cfg_b) = host(&Repo::File(repo.path()), "");
    lethe_ok(&cfg, &["erase", "add", "7", "8"], 0);
    lethe_ok(&cfg, &["erase", "sync"], 0);
    let server = Server::start(&cfg, dir.path()).await;
    let o = lethe_ok(&cfg, &["erase", "remove", "7", "--reason", "typo"], 0);
    assert!(stdout(&o).contains("removed 1"), "{}", stdout(&o));
    lethe_ok(&cfg, &["erase", "remove", "9", "--reason", "typo"], 1);
    lethe_ok(&cfg, &["erase", "check", "7"], 1);
    let (ids, removed) = listed(&cfg);
    assert_eq!((ids.len(), removed.len()), (1, 1));
    lethe_ok(&cfg, &["erase", "sync"], 0);
    server.stop();
    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap();
    assert!(
        log.contains("erasure.removed") && log.contains("source=\"api\""),
        "{log}"
    );
    let server = Server::start(&cfg, dir.path()).await;
    lethe_ok(&cfg, &["erase", "sync"], 0);
    lethe_ok(&cfg, &["erase", "check", "7"], 1);
    server.stop();
    lethe_ok(&cfg_b, &["erase", "sync"], 0);
    lethe_ok(&cfg_b, &["erase", "check", "7"], 1);
    lethe_ok(&cfg_b, &["erase", "check", "8"], 0);
}

#[test]
fn a_removed_id_is_restored_again_with_every_row_of_its_subject() {
    use crate::common::LetheCli;
    use crate::rig::{Rig, SCHEMA, TABLES, assert_same_tables, table_text, text};
    let rig = Rig::file("eraseundo", SCHEMA, "");
    let out = rig.run(&["erase", "add", "7", "--reference", "GDPR-7"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = rig.snapshot();
    let (erased, out) = rig.restore(&id, "eraseundo_a");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!table_text(&erased.name, "users").contains("user7@"));

    let out = rig.run(&["erase", "remove", "7", "--reason", "meant 17"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (back, out) = rig.restore(&id, "eraseundo_b");
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Subject 7's rows (users, its orders, its notes) are back: every table
    // equals the source.
    assert_same_tables(&rig.db, &back, TABLES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erase_list_sorts_bigint_ids_numerically_with_a_header_only_on_a_terminal() {
    let repo = tempfile::tempdir().unwrap();
    let (dir, cfg) = host(&Repo::File(repo.path()), "");
    lethe_ok(
        &cfg,
        &[
            "erase", "add", "10", "9", "100", "2", "0", "--", "-5", "-40",
        ],
        0,
    );
    let want = ["-40", "-5", "0", "2", "9", "10", "100"];
    let ids = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| l.split('\t').next().unwrap().to_string())
            .collect()
    };
    // Piped: no header, numeric order.
    let text = stdout(&lethe_ok(&cfg, &["erase", "list"], 0));
    assert_eq!(ids(&text), want, "{text}");
    let (json_ids, _) = listed(&cfg);
    assert_eq!(json_ids, want);
    // The same through the running API.
    let server = Server::start(&cfg, dir.path()).await;
    let text = stdout(&lethe_ok(&cfg, &["erase", "list"], 0));
    assert_eq!(ids(&text), want, "{text}");
    server.stop();
    // On a terminal (a pty from script(1)): a header line first.
    let cmd = format!(
        "{} --config {} erase list",
        crate::common::lethe_bin().display(),
        cfg.display()
    );
    let o = crate::common::output_within({
        let mut c = std::process::Command::new("script");
        c.args(["-qec", &cmd, "/dev/null"]);
        c
    });
    let tty = String::from_utf8_lossy(&o.stdout).replace('\r', "");
    let first = tty.lines().next().unwrap_or_default();
    assert!(first.starts_with("SUBJECT\tADDED"), "{tty}");
    assert_eq!(ids(&tty)[1..], want, "{tty}");
}
