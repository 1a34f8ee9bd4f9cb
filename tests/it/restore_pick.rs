//! Picking the snapshot to restore during an incident: `restore --before`
//! takes the newest complete snapshot finished before a time, `restore
//! latest` says which one it took, and `show` marks a table that shrank.

use crate::common::{Repo, TestDb, lethe, repo_config_text, write_config};
use std::process::Output;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

struct Env {
    _dir: tempfile::TempDir,
    src: TestDb,
    cfg: std::path::PathBuf,
}

impl Env {
    fn new(tag: &str) -> Env {
        let src = TestDb::create(tag);
        src.sql(
            "CREATE TABLE users (id bigint PRIMARY KEY, name text); \
             INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 10) g; \
             CREATE TABLE notes (id bigint PRIMARY KEY); INSERT INTO notes VALUES (1);",
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("repo");
        let cfg = repo_config_text(dir.path(), &Repo::File(&repo), &src.url).replace(
            "[erasure]\n",
            "[erasure]\nsubject_type = \"bigint\"\nsubjects = [ { table = \"public.users\", column = \"id\" } ]\n",
        );
        let cfg = write_config(dir.path(), &cfg);
        Env {
            _dir: dir,
            src,
            cfg,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        lethe(&self.cfg, args)
    }

    fn ok(&self, args: &[&str]) -> (String, String) {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "lethe {args:?} failed:\n{}",
            text(&out.stderr)
        );
        (text(&out.stdout), text(&out.stderr))
    }

    fn finished_at(&self, id: &str) -> chrono::DateTime<chrono::Utc> {
        let (out, _) = self.ok(&["list", "--json"]);
        let v: Vec<serde_json::Value> = serde_json::from_str(&out).expect("list json");
        let s = v.iter().find(|s| s["id"] == id).expect("listed");
        s["finished_at"].as_str().unwrap().parse().expect("time")
    }
}

#[test]
fn restore_before_a_time_between_the_second_and_third_snapshot_restores_the_second() {
    let env = Env::new("pick_before");
    env.ok(&["erase", "sync"]);
    let first = env.ok(&["snapshot"]).0.trim().to_string();
    env.src
        .sql("INSERT INTO users SELECT g, 'user ' || g FROM generate_series(11, 20) g");
    let second = env.ok(&["snapshot"]).0.trim().to_string();
    // The damage: most users deleted, a table dropped.
    env.src
        .sql("DELETE FROM users WHERE id > 3; DROP TABLE notes");
    let third = env.ok(&["snapshot"]).0.trim().to_string();
    let (f1, f2, f3) = (
        env.finished_at(&first),
        env.finished_at(&second),
        env.finished_at(&third),
    );
    assert!(f1 < f2 && f2 < f3, "{f1} {f2} {f3}");
    let between = f2 + (f3 - f2) / 2;
    let at = between.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);

    // list shows start, finish and duration; show marks the damage.
    let (list, _) = env.ok(&["list"]);
    assert!(
        list.contains("STARTED") && list.contains("DURATION"),
        "{list}"
    );
    let (show, _) = env.ok(&["show", &third]);
    assert!(
        show.contains(&format!("previous complete snapshot {second}")),
        "{show}"
    );
    let users = show
        .lines()
        .find(|l| l.starts_with("public.users"))
        .unwrap();
    assert!(users.contains("SHRANK from 20 rows"), "{show}");
    let notes = show
        .lines()
        .find(|l| l.starts_with("public.notes"))
        .unwrap();
    assert!(notes.contains("MISSING"), "{show}");

    // The dry run names the pick; the restore loads the second's rows.
    let (_, err) = env.ok(&["restore", "--before", &at, "--dry-run"]);
    assert!(
        err.contains(&format!("lethe: restoring snapshot {second}, taken")),
        "{err}"
    );
    let dst = TestDb::create("pick_before_dst");
    env.ok(&["restore", "--before", &at, "--target", &dst.url]);
    assert_eq!(dst.sql("SELECT count(*) FROM users").trim(), "20");
    assert_eq!(dst.sql("SELECT count(*) FROM notes").trim(), "1");

    // restore latest says which snapshot it took, and when.
    let (_, err) = env.ok(&["restore", "latest", "--dry-run"]);
    assert!(
        err.contains(&format!("lethe: restoring snapshot {third}, taken")) && err.contains("ago"),
        "{err}"
    );

    // Before everything: exit 1, naming the time and the oldest finish.
    let out = env.run(&["restore", "--before", "2000-01-01T00:00:00Z", "--dry-run"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("2000-01-01T00:00:00Z")
            && err.contains(&format!(
                "oldest finished at {}",
                f1.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                    .replace(".000Z", "Z")
            )),
        "{err}"
    );
}

#[test]
fn an_unparsable_or_doubled_selector_is_a_usage_error_naming_before() {
    let env = Env::new("pick_usage");
    let out = env.run(&["restore", "--before", "yesterday", "--dry-run"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--before") && err.contains("2026-12-06T09:00:00Z"),
        "{err}"
    );
    let out = env.run(&[
        "restore",
        "latest",
        "--before",
        "2026-12-06T09:00:00Z",
        "--dry-run",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = env.run(&["restore", "--dry-run"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}
