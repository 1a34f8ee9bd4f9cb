//! The evidence log end to end, through the CLI: a snapshot, an erasure, a
//! restore and a prune each leave a record; the chain verifies; editing or
//! removing a record in storage makes `lethe evidence verify` fail naming
//! it; several processes appending at once on S3 (Garage) leave one chain.

use crate::common::{self, Repo, TestDb, repo_config_text, write_config};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

/// A subject id no hash or count is likely to contain by chance.
const ERASED: &str = "987654321";

fn source() -> TestDb {
    let db = TestDb::create("evid");
    db.sql(&format!(
        "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL); \
         CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE); \
         INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 50) g; \
         INSERT INTO users VALUES ({ERASED}, 'to be erased'); \
         INSERT INTO orders SELECT g, 1 + g % 50 FROM generate_series(1, 200) g; \
         INSERT INTO orders SELECT 1000 + g, {ERASED} FROM generate_series(1, 7) g;"
    ));
    db
}

fn run(cfg: &Path, args: &[&str], code: i32) -> Output {
    let o = common::lethe(cfg, args);
    assert_eq!(
        o.status.code(),
        Some(code),
        "lethe {args:?}: stdout {} stderr {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// `lethe evidence list --json`: one record a line.
fn records(cfg: &Path) -> Vec<Value> {
    let o = run(cfg, &["evidence", "list", "--json"], 0);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON record"))
        .collect()
}

/// Every record file in a directory repository.
fn record_files(repo: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo.join("evidence"))
        .expect("evidence/ exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            n.ends_with(".json") && n != "head.json" && n != "horizon.json"
        })
        .collect();
    v.sort();
    v
}

#[test]
fn restore_erase_and_prune_leave_a_chain_that_catches_edits_and_removals() {
    let db = source();
    let repo = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(
        dir.path(),
        &repo_config_text(dir.path(), &Repo::File(repo.path()), &db.url),
    );
    run(&cfg, &["snapshot"], 0);
    run(
        &cfg,
        &["erase", "add", ERASED, "--reference", "ticket 4711"],
        0,
    );
    let target = TestDb::create("evid_target");
    run(&cfg, &["restore", "latest", "--target", &target.url], 0);
    assert_eq!(
        target
            .sql(&format!("SELECT count(*) FROM users WHERE id = {ERASED}"))
            .trim(),
        "0"
    );
    run(&cfg, &["prune"], 0);

    let recs = records(&cfg);
    let kinds: Vec<(&str, &str)> = recs
        .iter()
        .map(|r| (r["kind"].as_str().unwrap(), r["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("erasure", "add"),
            ("restore", "completed"),
            ("prune", "completed")
        ],
        "{recs:#?}"
    );
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r["seq"], i as u64 + 1, "{r}");
        assert_eq!(r["lethe_version"], env!("CARGO_PKG_VERSION"), "{r}");
        assert!(r["host"].as_str().is_some_and(|h| !h.is_empty()), "{r}");
    }
    assert_eq!(recs[0]["counts"]["entries"], 1, "{}", recs[0]);
    assert_eq!(recs[0]["erasure_list"]["count"], 1, "{}", recs[0]);
    let restore = &recs[1];
    assert_eq!(restore["erasure_list"]["count"], 1, "{restore}");
    assert_eq!(
        restore["erasure_list"]["digest"], recs[0]["erasure_list"]["digest"],
        "the restore applied the list the add left"
    );
    // The user and their seven orders.
    assert_eq!(restore["counts"]["rows_dropped"], 8, "{restore}");
    assert_eq!(restore["counts"]["rows_read"], 51 + 207, "{restore}");
    assert!(
        restore["snapshot"].as_str().is_some_and(|s| s.len() > 10),
        "{restore}"
    );
    assert_eq!(restore["notes"]["mode"], "target", "{restore}");

    // Never the id, nor the ticket reference, anywhere in evidence/.
    for f in std::fs::read_dir(repo.path().join("evidence")).expect("dir") {
        let text = std::fs::read_to_string(f.expect("entry").path()).expect("read");
        assert!(!text.contains(ERASED), "an id in the evidence: {text}");
        assert!(
            !text.contains("4711"),
            "the reference in the evidence: {text}"
        );
    }

    let o = run(&cfg, &["evidence", "verify"], 0);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("3 record(s), 1 to 3"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );

    // An edit: one more dropped row, as someone covering their tracks would.
    let files = record_files(repo.path());
    assert_eq!(files.len(), 3);
    let original = std::fs::read_to_string(&files[1]).expect("read");
    let edited = original.replace("\"rows_dropped\": 8", "\"rows_dropped\": 0");
    assert_ne!(original, edited);
    std::fs::write(&files[1], &edited).expect("write");
    let o = run(&cfg, &["evidence", "verify"], 1);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let name = files[1].file_name().unwrap().to_str().unwrap();
    assert!(err.contains(name) && err.contains("edited"), "{err}");
    let o = run(&cfg, &["evidence", "verify", "--json"], 1);
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["ok"], false);
    assert!(
        v["broken"].as_str().is_some_and(|k| k.ends_with(name)),
        "{v}"
    );
    std::fs::write(&files[1], &original).expect("restore the record");
    run(&cfg, &["evidence", "verify"], 0);

    // A removal: the erasure record goes.
    std::fs::remove_file(&files[0]).expect("remove");
    let o = run(&cfg, &["evidence", "verify"], 1);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(err.contains("record 1 is missing"), "{err}");

    // `--since` filters by time; a bad duration is a usage error.
    let o = run(&cfg, &["evidence", "list", "--since", "1h"], 0);
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 2);
    let o = run(&cfg, &["evidence", "list", "--since", "soon"], 2);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--since"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Four `lethe prune` processes at once on one S3 repository: each appends
/// its record in turn (the `locks/evidence.json` lease), and the chain holds.
#[test]
fn writers_at_once_on_s3_leave_one_chain() {
    let Some(g) = common::garage() else { return };
    let bucket = g.new_bucket();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(
        dir.path(),
        &repo_config_text(
            dir.path(),
            &Repo::S3 {
                garage: &g,
                bucket: &bucket,
                prefix: "evid",
            },
            &format!("{}/postgres", common::pg_base()),
        ),
    );
    let children: Vec<_> = (0..4)
        .map(|_| {
            common::lethe_cmd(&cfg, &["prune"], &g.env())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().expect("wait");
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("evidence.appended"),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let o = g.lethe(&cfg, &["evidence", "verify", "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{v} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(v["records"], 4, "{v}");
    assert_eq!(v["last_seq"], 4, "{v}");
}
