//! Continuous capture against the cluster with `wal_level = logical`
//! (`scripts/pg-logical-test.sh`): the daemon takes a base from the slot's
//! exported snapshot, then stores every committed transaction in segments.
//! The ground truth is the source's own ledger: every transaction the
//! writer saw committed must be in storage exactly once.

use crate::common::lethe_bin;
use crate::continuous::LogicalDb;
use lethe::repo::changes::codec::{Record, RecordReader, Value};
use lethe::repo::changes::manifest::SegmentManifest;
use lethe::repo::changes::parse_manifest_key;
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SCHEMA: &str = "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL); \
    CREATE TABLE orders (id bigserial PRIMARY KEY, user_id bigint NOT NULL REFERENCES users(id), total numeric(12,2)); \
    CREATE TABLE ledger (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp(), note text); \
    INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 50) g; \
    INSERT INTO orders (user_id, total) SELECT 1 + g % 50, g FROM generate_series(1, 200) g;";

/// A daemon with continuous capture on a fresh database.
pub(crate) struct Capture {
    pub(crate) db: LogicalDb,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) cfg: PathBuf,
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Capture {
    /// A daemon for `db` with the config `cfg` written in `dir`.
    pub(crate) fn with_config(db: LogicalDb, dir: tempfile::TempDir, cfg: PathBuf) -> Capture {
        Capture {
            db,
            dir,
            cfg,
            child: None,
            lines: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn new(tag: &str, flush_every: &str) -> Capture {
        Capture::new_on(LogicalDb::create(tag), flush_every)
    }

    /// A daemon for a fresh database `db` (on any logical cluster).
    fn new_on(db: LogicalDb, flush_every: &str) -> Capture {
        db.sql(SCHEMA);
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = crate::continuous::continuous_config(
            dir.path(),
            &db.url(),
            &format!(
                "flush_every = \"{flush_every}\"\nslot = \"{}\"\n\
                 [schedule]\nevery = \"24h\"\n\
                 [log]\nlevel = \"debug\"\n",
                db.name
            ),
        );
        Capture::with_config(db, dir, cfg)
    }

    fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    /// Waits until the head makes everything stored restorable: its
    /// `verified_at` and `schema_checked_at` (the window's end) reach the
    /// last stored commit and pass the newest base.
    pub(crate) fn wait_restorable(&self) {
        let end = Instant::now() + Duration::from_secs(30);
        let at = |v: &Json| {
            v.as_str()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                .map(|t| t.with_timezone(&chrono::Utc))
        };
        loop {
            let mut heads = Vec::new();
            walk(&self.repo().join("changes"), &mut heads);
            let ready = heads
                .iter()
                .filter(|p| p.ends_with("head.json"))
                .filter_map(|p| serde_json::from_slice::<Json>(&std::fs::read(p).ok()?).ok())
                .any(|h| {
                    let window_end = [at(&h["verified_at"]), at(&h["schema_checked_at"])]
                        .into_iter()
                        .flatten()
                        .min();
                    // The newest base's start, from its manifest.
                    let base = h["base_ids"]
                        .as_array()
                        .and_then(|a| a.last())
                        .and_then(|id| id.as_str())
                        .and_then(|id| {
                            let m = self.repo().join("snapshots").join(id).join("manifest.json");
                            serde_json::from_slice::<Json>(&std::fs::read(m).ok()?).ok()
                        })
                        .and_then(|m| at(&m["started_at"]));
                    let target = [at(&h["last_commit_at"]), base].into_iter().flatten().max();
                    window_end.is_some() && target.is_some() && window_end > target
                });
            if ready {
                return;
            }
            assert!(
                Instant::now() < end,
                "the head never made the stored stream restorable:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn start(&mut self) {
        self.start_with(&[]);
    }

    pub(crate) fn start_with(&mut self, env: &[(&str, &str)]) {
        let mut cmd = Command::new(lethe_bin());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.args(["--config", self.cfg.to_str().expect("utf-8"), "daemon"])
            .env("RUST_LOG", "lethe=debug,pg_walstream=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn lethe daemon");
        let err = child.stderr.take().expect("stderr");
        let sink = self.lines.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                sink.lock().expect("lines").push(line);
            }
        });
        self.child = Some(child);
    }

    pub(crate) fn count(&self, event: &str) -> usize {
        let needle = format!("\"event\":\"{event}\"");
        self.lines
            .lock()
            .expect("lines")
            .iter()
            .filter(|l| l.contains(&needle))
            .count()
    }

    /// Every line is documented JSON: event in the README's table, with
    /// its fields (the pause marker and the SDK's debug lines aside).
    pub(crate) fn check_log(&self) {
        let lines: Vec<String> = self
            .lines
            .lock()
            .expect("lines")
            .iter()
            .filter(|l| !l.contains("\"event\":\"sdk.log\""))
            .cloned()
            .collect();
        crate::daemon::rig::check_lines(&lines, &["lethe-test-pause: "]);
    }

    pub(crate) fn log(&self) -> String {
        self.lines.lock().expect("lines").join("\n")
    }

    pub(crate) fn wait_for(&mut self, event: &str, n: usize, timeout: Duration) {
        let end = Instant::now() + timeout;
        while self.count(event) < n {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!(
                    "the daemon exited ({status}) before {n}× {event}:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < end,
                "no {n}× {event} within {timeout:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub(crate) fn stop(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        // SAFETY: signalling our own child by pid.
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(s)) = c.try_wait() {
                return s.code();
            }
            if Instant::now() > end {
                let _ = c.kill();
                panic!("the daemon did not stop within 30 s:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// What storage holds: every listed segment's transactions.
#[derive(Debug, Default)]
struct Stored {
    /// commit LSN → how many listed segments hold it.
    commits: BTreeMap<u64, usize>,
    /// ledger id → how many stored inserts carry it.
    ledger: BTreeMap<i64, usize>,
    segments: usize,
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Calls `each` with every listed segment (manifest present) of the
/// repository and every record of its parts, in order.
fn each_record(repo: &Path, mut each: impl FnMut(&SegmentManifest, Record)) -> usize {
    let mut files = Vec::new();
    walk(&repo.join("changes"), &mut files);
    let mut segments = 0;
    for f in files {
        let key = f
            .strip_prefix(repo)
            .expect("under repo")
            .to_string_lossy()
            .into_owned();
        if parse_manifest_key(&key).is_none() {
            continue;
        }
        let m = SegmentManifest::from_json(&key, &std::fs::read(&f).expect("read manifest"))
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        segments += 1;
        // Each part starts with its own header line: read them one by one.
        for p in &m.parts {
            let raw = std::fs::read(repo.join(&p.key)).expect("part");
            let data = zstd::decode_all(&raw[..]).expect("zstd");
            let mut r = RecordReader::new(BufReader::new(&data[..])).expect("header");
            while let Some(rec) = r.next_record().unwrap_or_else(|e| panic!("{key}: {e}")) {
                each(&m, rec);
            }
        }
    }
    segments
}

/// Reads every listed segment: commits, and the inserts into `ledger_relname`.
fn stored(repo: &Path, ledger_relname: &str) -> Stored {
    let mut out = Stored::default();
    let (mut commits, mut ledger) = (BTreeMap::new(), BTreeMap::new());
    out.segments = each_record(repo, |m, rec| match rec {
        Record::Begin { commit_lsn, .. } => {
            *commits.entry(commit_lsn.0).or_default() += 1;
        }
        Record::Insert { relid, new }
            if m.relations
                .iter()
                .any(|r| r.relid == relid && r.name == ledger_relname) =>
        {
            let Value::Text(id) = &new[0] else {
                panic!("ledger id not text: {new:?}")
            };
            let id: i64 = String::from_utf8_lossy(id).parse().expect("id");
            *ledger.entry(id).or_default() += 1;
        }
        _ => {}
    });
    out.commits = commits;
    out.ledger = ledger;
    out
}

/// Waits (up to `within`) until every ledger row in `acked` is stored,
/// then asserts that none is stored twice; what is stored then.
fn stored_once(c: &Capture, acked: &[i64], within: Duration) -> Stored {
    let end = Instant::now() + within;
    loop {
        let s = stored(&c.repo(), "ledger");
        if acked.iter().all(|id| s.ledger.contains_key(id)) {
            let twice: Vec<_> = s.ledger.iter().filter(|(_, n)| **n > 1).collect();
            assert!(twice.is_empty(), "stored twice: {twice:?}");
            return s;
        }
        let missing: Vec<_> = acked
            .iter()
            .filter(|id| !s.ledger.contains_key(id))
            .collect();
        assert!(
            Instant::now() < end,
            "ledger rows {missing:?} not stored within {within:?}:\n{}",
            c.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Inserts ledger rows (one transaction each, with an order for a user)
/// until stopped; returns the ids whose COMMIT was acknowledged.
fn writer(url: String, stop: Arc<AtomicBool>, first_id: i64) -> std::thread::JoinHandle<Vec<i64>> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        rt.block_on(async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("connect writer");
            tokio::spawn(conn);
            let mut acked = Vec::new();
            let mut id = first_id;
            while !stop.load(Ordering::Relaxed) {
                let sql = format!(
                    "BEGIN; INSERT INTO ledger (id, note) VALUES ({id}, 'tab\tand\\nnewline {id}'); \
                     INSERT INTO orders (user_id, total) VALUES ({}, {id}.5); COMMIT;",
                    1 + id % 50
                );
                if client.batch_execute(&sql).await.is_ok() {
                    acked.push(id);
                }
                id += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            acked
        })
    })
}

fn ledger_in_source(db: &LogicalDb) -> BTreeSet<i64> {
    db.sql("SELECT id FROM ledger ORDER BY id")
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn event_json(c: &Capture, event: &str) -> Vec<Json> {
    let needle = format!("\"event\":\"{event}\"");
    c.lines
        .lock()
        .expect("lines")
        .iter()
        .filter(|l| l.contains(&needle))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The base is taken from the slot's snapshot, then every committed
/// transaction reaches storage within `flush_every` + 1 s, once.
#[test]
fn every_committed_transaction_is_stored_once_within_the_flush_interval() {
    let mut c = Capture::new("cap_rpo", "1s");
    c.start();
    c.wait_for("continuous.base_completed", 1, Duration::from_secs(120));
    c.wait_for("continuous.started", 1, Duration::from_secs(60));
    let base = &event_json(&c, "continuous.base_completed")[0];
    assert!(base["rows"].as_u64().is_some_and(|r| r >= 250), "{base}");

    let stop = Arc::new(AtomicBool::new(false));
    let w = writer(c.db.url(), stop.clone(), 1);
    std::thread::sleep(Duration::from_secs(6));
    stop.store(true, Ordering::Relaxed);
    let acked = w.join().expect("writer");
    assert!(acked.len() > 50, "only {} transactions", acked.len());
    // flush_every (1 s) + 1 s: everything committed is stored by now.
    std::thread::sleep(Duration::from_secs(2));
    let s = stored(&c.repo(), "ledger");
    let source = ledger_in_source(&c.db);
    for id in &acked {
        assert!(source.contains(id));
        assert_eq!(
            s.ledger.get(id).copied().unwrap_or(0),
            1,
            "ledger row {id} committed > 2 s ago is stored {} time(s); {} segments",
            s.ledger.get(id).copied().unwrap_or(0),
            s.segments
        );
    }
    assert_eq!(
        s.ledger.len(),
        source.len(),
        "stored rows that the source does not have"
    );
    assert!(s.commits.values().all(|n| *n == 1), "a commit stored twice");
    assert!(c.count("continuous.flushed") >= 1, "{}", c.log());
    // `lethe status --json` reports the stored stream and its recovery point.
    let out = crate::common::lethe(&c.cfg, &["status", "--json"]);
    let st: Json = serde_json::from_slice(&out.stdout).expect("status JSON");
    let cont = &st["continuous"];
    assert!(cont["rpo_s"].as_i64().is_some_and(|s| s <= 5), "{st}");
    assert_eq!(cont["epoch"], base["epoch"], "{st}");
    assert!(cont["last_commit_at"].is_string(), "{st}");
    assert_eq!(c.stop(), Some(0), "{}", c.log());
    assert_eq!(c.count("continuous.stopped"), 1, "{}", c.log());
    c.check_log();

    // Every byte checked: the stream verifies, deep; a segment taken out of
    // the middle is named as a hole in the chain.
    let verify = |deep: bool| {
        let mut args = vec!["verify", "--changes"];
        if deep {
            args.push("--deep");
        }
        let out = crate::common::lethe(&c.cfg, &args);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = verify(true);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("transactions read"), "{text}");
    let mut files = Vec::new();
    walk(&c.repo().join("changes"), &mut files);
    let mut manifests: Vec<PathBuf> = files
        .into_iter()
        .filter(|f| {
            parse_manifest_key(&f.strip_prefix(c.repo()).expect("repo").to_string_lossy()).is_some()
        })
        .collect();
    manifests.sort();
    assert!(manifests.len() >= 3, "{manifests:?}");
    std::fs::remove_file(&manifests[1]).expect("remove a segment");
    let (code, text) = verify(false);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("a segment between them is missing"), "{text}");
}

/// `kill -9` at seeded random instants while transactions commit: after
/// each restart the capture resumes from what is stored, and at the end
/// every committed transaction is stored exactly once.
#[test]
fn kill_9_during_capture_loses_nothing_and_stores_nothing_twice() {
    let seed = crate::common::env_u64("LETHE_CAPTURE_CRASH_SEED", 19);
    let kills = crate::common::env_u64("LETHE_CAPTURE_CRASH_KILLS", 3);
    let mut rng = seed;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut c = Capture::new("cap_kill", "500ms");
    c.start();
    c.wait_for("continuous.started", 1, Duration::from_secs(120));
    let stop = Arc::new(AtomicBool::new(false));
    let w = writer(c.db.url(), stop.clone(), 1);
    for k in 1..=kills {
        std::thread::sleep(Duration::from_millis(300 + next() % 2500));
        c.kill9();
        c.start();
        c.wait_for(
            "continuous.started",
            usize::try_from(k + 1).expect("small"),
            Duration::from_secs(120),
        );
    }
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let acked = w.join().expect("writer");
    // Every acknowledged row stored once (the last restart may still be
    // catching up on a loaded machine: waited for, not slept past).
    eprintln!("seed {seed}");
    let s = stored_once(&c, &acked, Duration::from_secs(60));
    let commits_twice: Vec<_> = s.commits.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        commits_twice.is_empty(),
        "seed {seed}: commits stored twice: {commits_twice:?}"
    );
    // One base only: every restart continued the same stream.
    assert_eq!(c.count("continuous.base_completed"), 1, "{}", c.log());
    assert_eq!(c.count("continuous.gap"), 0, "{}", c.log());
    assert_eq!(c.stop(), Some(0), "{}", c.log());
    // The segments chain without a hole or an overlap, and read back whole.
    let out = crate::common::lethe(&c.cfg, &["verify", "--changes", "--deep"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "seed {seed}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The slot dropped behind lethe's back while it was stopped: the next
/// start says so (`continuous.gap`, naming the last stored commit), stores
/// a gap record and takes a new base on a new slot.
#[test]
fn a_slot_dropped_behind_lethes_back_is_a_gap_and_a_new_base() {
    let mut c = Capture::new("cap_gap", "500ms");
    c.start();
    c.wait_for("continuous.started", 1, Duration::from_secs(120));
    c.db.sql("INSERT INTO ledger (id) VALUES (1)");
    c.wait_for("continuous.flushed", 1, Duration::from_secs(30));
    assert_eq!(c.stop(), Some(0), "{}", c.log());
    c.db.sql(&format!("SELECT pg_drop_replication_slot('{}')", c.db.name));
    c.db.sql("INSERT INTO ledger (id) VALUES (2)");
    let gap = &restarted_after_a_gap(&mut c, "slot_missing");
    assert!(
        gap["last_commit_at"]
            .as_str()
            .is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()),
        "{gap}"
    );
    let mut files = Vec::new();
    walk(&c.repo().join("changes"), &mut files);
    let gaps: Vec<_> = files
        .iter()
        .filter(|f| f.parent().is_some_and(|p| p.ends_with("gaps")))
        .collect();
    assert_eq!(gaps.len(), 1, "{files:?}");
    let epochs = event_json(&c, "continuous.base_completed");
    assert_ne!(epochs[0]["epoch"], epochs[1]["epoch"]);
    // The record names both edges: the last stored commit and the new base.
    let g: Json = serde_json::from_slice(&std::fs::read(gaps[0]).expect("gap")).expect("json");
    assert_eq!(g["epoch_before"], epochs[0]["epoch"], "{g}");
    assert_eq!(g["epoch_after"], epochs[1]["epoch"], "{g}");
    assert_eq!(g["resumed_lsn"], epochs[1]["consistent_lsn"], "{g}");
    assert_eq!(g["base_id"], epochs[1]["id"], "{g}");
    assert!(
        g["last_commit_at"].is_string() && g["resumed_at"].is_string(),
        "{g}"
    );
    // The new epoch's window opens with the first head after its base.
    c.wait_restorable();
    assert_eq!(c.stop(), Some(0), "{}", c.log());
    // `lethe list` shows both windows and the gap between them.
    let out = crate::common::lethe(&c.cfg, &["list"]);
    let list = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{list}");
    assert_eq!(list.matches("  window ").count(), 2, "{list}");
    assert_eq!(list.matches("  GAP ").count(), 1, "{list}");
    assert!(list.contains("(slot_missing)"), "{list}");
    c.check_log();
}

/// PostgreSQL itself invalidates the slot (the small cluster's
/// `max_slot_wal_keep_size = 48MB`, the daemon stopped, WAL written past
/// it, a checkpoint): the source keeps accepting writes throughout, and the
/// next start says so (`continuous.gap`, `wal_removed`, at ERROR), drops the
/// lost slot, and takes a new base on a new slot that holds the rows written
/// while the slot was lost.
#[test]
fn a_slot_the_server_invalidates_is_a_gap_and_a_new_base_while_the_source_keeps_writing() {
    let db = LogicalDb::create_at(&crate::common::pg_tiny_keep_base(), "cap_lost");
    let mut c = Capture::new_on(db, "500ms");
    c.start();
    c.wait_for("continuous.started", 1, Duration::from_secs(120));
    c.db.sql("INSERT INTO ledger (id) VALUES (1)");
    c.wait_for("continuous.flushed", 1, Duration::from_secs(30));
    assert_eq!(c.stop(), Some(0), "{}", c.log());
    // Four 16 MB segments past the slot and a checkpoint: PostgreSQL
    // invalidates it. Every write is accepted.
    for id in 10..15 {
        c.db.sql(&format!("INSERT INTO ledger (id) VALUES ({id})"));
        c.db.sql("SELECT pg_switch_wal()");
    }
    c.db.sql("CHECKPOINT");
    let status = c.db.sql(&format!(
        "SELECT wal_status FROM pg_replication_slots WHERE slot_name = '{}'",
        c.db.name
    ));
    assert_eq!(
        status.trim(),
        "lost",
        "the server did not invalidate the slot"
    );
    assert_eq!(c.db.sql("SELECT count(*) FROM ledger").trim(), "6");

    restarted_after_a_gap(&mut c, "wal_removed");
    // A new slot, alive, and the source still writes through it.
    let status = c.db.sql(&format!(
        "SELECT wal_status FROM pg_replication_slots WHERE slot_name = '{}'",
        c.db.name
    ));
    assert_ne!(status.trim(), "lost", "the lost slot was kept");
    assert!(!status.trim().is_empty(), "no slot after the restart");
    c.db.sql("INSERT INTO ledger (id) VALUES (20)");
    let flushed = c.count("continuous.flushed");
    c.wait_for("continuous.flushed", flushed + 1, Duration::from_secs(30));
    c.wait_restorable();
    assert_eq!(c.stop(), Some(0), "{}", c.log());
    // The rows written while the slot was lost are in the new base; the
    // one written after it is in a segment.
    let out = crate::common::lethe(&c.cfg, &["list"]);
    let list = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{list}");
    assert_eq!(list.matches("  GAP ").count(), 1, "{list}");
    assert!(list.contains("(wal_removed)"), "{list}");
    let s = stored(&c.repo(), "ledger");
    assert_eq!(s.ledger.get(&20), Some(&1), "{s:?}");
    // Restored to the latest point: exactly the source's ledger.
    let sql = restored_file(&c, "latest.sql", &["--at", "latest"]);
    let loaded = crate::common::TestDb::create("cap_lost_restored");
    crate::schemas::load_file(&loaded, sql.to_str().expect("utf-8"));
    let ids = |sql: String| sql.lines().map(str::to_string).collect::<Vec<_>>();
    let want = ids(c.db.sql("SELECT id FROM ledger ORDER BY id"));
    assert_eq!(want, ["1", "10", "11", "12", "13", "14", "20"]);
    assert_eq!(ids(loaded.sql("SELECT id FROM ledger ORDER BY id")), want);
    c.check_log();
}

/// A damaged segment part: `restore --at latest` refuses before anything
/// is written, naming the part, and the target stays empty.
#[test]
fn a_damaged_segment_refuses_a_point_restore_naming_it_and_writes_nothing() {
    let mut c = Capture::new("cap_damaged", "500ms");
    c.start();
    c.wait_for("continuous.started", 1, Duration::from_secs(120));
    c.db.sql(
        "INSERT INTO ledger (id, note) SELECT g, repeat('x', 200) FROM generate_series(1, 500) g",
    );
    c.wait_for("continuous.flushed", 1, Duration::from_secs(30));
    c.wait_restorable();
    assert_eq!(c.stop(), Some(0), "{}", c.log());
    let mut files = Vec::new();
    walk(&c.repo().join("changes"), &mut files);
    let part = files
        .iter()
        .find(|f| {
            let n = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
            n.ends_with(".chg.zst.age") || n.ends_with(".chg.zst")
        })
        .unwrap_or_else(|| panic!("no segment part in {files:?}"))
        .clone();
    let mut bytes = std::fs::read(&part).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(&part, bytes).expect("write");
    let target = crate::common::TestDb::create("cap_damaged_target");
    let out = crate::common::lethe(
        &c.cfg,
        &["restore", "--at", "latest", "--target", &target.url],
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    let name = part.file_name().and_then(|n| n.to_str()).expect("name");
    assert!(err.contains(name), "the error does not name {name}: {err}");
    assert!(err.contains("damaged") || err.contains("checksum"), "{err}");
    assert_eq!(
        target
            .sql("SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")
            .trim(),
        "0",
        "the target was written: {err}"
    );
}

/// An unlogged table is not in the change stream: the base records it,
/// and a point restore says it is as of the base (`restore.not_captured`,
/// `point.not_captured`), while captured tables are as of the point.
#[test]
fn a_point_restore_names_the_tables_the_stream_does_not_carry() {
    let mut c = Capture::new("cap_unlogged", "500ms");
    c.db.sql("CREATE UNLOGGED TABLE scratch (id int PRIMARY KEY); INSERT INTO scratch VALUES (1);");
    c.start();
    c.wait_for("continuous.started", 1, Duration::from_secs(120));
    c.db.sql("INSERT INTO scratch VALUES (2); INSERT INTO ledger (id) VALUES (77);");
    let flushed = c.count("continuous.flushed");
    c.wait_for("continuous.flushed", flushed + 1, Duration::from_secs(30));
    c.wait_restorable();
    assert_eq!(c.stop(), Some(0), "{}", c.log());
    let report = c.dir.path().join("report.json");
    let sql = restored_file(
        &c,
        "point.sql",
        &[
            "--at",
            "latest",
            "--report",
            report.to_str().expect("utf-8"),
        ],
    );
    let r: Json = serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("json");
    assert_eq!(
        r["point"]["not_captured"],
        serde_json::json!(["public.scratch"]),
        "{r}"
    );
    let loaded = crate::common::TestDb::create("cap_unlogged_restored");
    crate::schemas::load_file(&loaded, sql.to_str().expect("utf-8"));
    assert_eq!(
        loaded
            .sql("SELECT string_agg(id::text, ',') FROM scratch")
            .trim(),
        "1"
    );
    assert_eq!(
        loaded
            .sql("SELECT count(*) FROM ledger WHERE id = 77")
            .trim(),
        "1"
    );
    let out = crate::common::lethe(&c.cfg, &["restore", "--at", "latest", "--dry-run"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains("restore.not_captured") && err.contains("public.scratch"),
        "{err}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("as of the base, not the point: public.scratch"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// With continuous capture on, a drill restores the latest point (not just
/// the base): rows committed after the base are in the scratch database,
/// the erased user and their orders are not, and it is dropped again.
#[test]
fn a_drill_with_continuous_capture_restores_the_latest_point() {
    let mut c = Capture::new("cap_drill", "500ms");
    let scratch = format!("lethe_drill_{:08x}", rand::random::<u32>());
    let mut text = std::fs::read_to_string(&c.cfg).expect("config");
    text.push_str(&format!(
        "\n[drill]\ntarget = \"{}/{scratch}\"\nallow_same_server = true\n",
        crate::common::pg_base()
    ));
    std::fs::write(&c.cfg, text).expect("config");
    c.start();
    c.wait_for("continuous.started", 1, Duration::from_secs(120));
    c.db.sql("INSERT INTO ledger (id) SELECT g FROM generate_series(1, 25) g");
    let flushed = c.count("continuous.flushed");
    c.wait_for("continuous.flushed", flushed + 1, Duration::from_secs(30));
    c.wait_restorable();
    assert_eq!(c.stop(), Some(0), "{}", c.log());
    let out = crate::common::lethe(&c.cfg, &["erase", "add", "3"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = crate::common::lethe(&c.cfg, &["drill", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Json = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(r["point"], "latest", "{r}");
    // 50 users + 200 orders + 25 ledger rows; user 3 and its 4 orders dropped.
    assert_eq!(r["dropped"], 5, "{r}");
    assert_eq!(r["rows"], 50 + 200 + 25 - 5, "{r}");
    let left = crate::common::psql(
        "postgres",
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{scratch}'"),
    );
    assert_eq!(left.trim(), "0", "the scratch database was left behind");
}

/// Storage refuses writes mid-capture (the `changes/` directory replaced
/// by a plain file, which stops root too): the session ends, nothing is
/// confirmed past what is stored, and when storage is back the capture
/// catches up with nothing lost and nothing twice.
#[test]
fn a_storage_outage_mid_capture_is_caught_up_with_nothing_lost() {
    let mut c = Capture::new("cap_outage", "500ms");
    c.start();
    c.wait_for("continuous.started", 1, Duration::from_secs(120));
    let stop = Arc::new(AtomicBool::new(false));
    let w = writer(c.db.url(), stop.clone(), 1);
    std::thread::sleep(Duration::from_secs(2));
    let changes = c.repo().join("changes");
    let away = c.repo().join("changes.away");
    std::fs::rename(&changes, &away).expect("move changes/ away");
    std::fs::write(&changes, b"storage is down").expect("block changes/");
    c.wait_for("continuous.interrupted", 1, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    std::fs::remove_file(&changes).expect("unblock");
    std::fs::rename(&away, &changes).expect("move changes/ back");
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let acked = w.join().expect("writer");
    stored_once(&c, &acked, Duration::from_secs(90));
    assert_eq!(c.count("continuous.base_completed"), 1, "{}", c.log());
    assert_eq!(c.stop(), Some(0), "{}", c.log());
}

/// Every `base_every` a later base of the same epoch is taken from a
/// temporary slot while the stream runs on: the head lists it, its
/// manifest says where in the stream it stands, and no slot is left behind
/// but the stream's own.
#[test]
fn later_bases_come_from_temporary_slots_without_stopping_the_stream() {
    let mut c = Capture::new("cap_bases", "500ms");
    c.start_with(&[("LETHE_TEST_BASE_EVERY_SECS", "3")]);
    c.wait_for("continuous.started", 1, Duration::from_secs(120));
    let stop = Arc::new(AtomicBool::new(false));
    let w = writer(c.db.url(), stop.clone(), 1);
    c.wait_for("continuous.base_completed", 3, Duration::from_secs(120));
    stop.store(true, Ordering::Relaxed);
    let acked = w.join().expect("writer");
    let bases = event_json(&c, "continuous.base_completed");
    assert!(
        bases.iter().all(|b| b["epoch"] == bases[0]["epoch"]),
        "{bases:?}"
    );
    let lsns: Vec<&str> = bases
        .iter()
        .map(|b| b["consistent_lsn"].as_str().unwrap_or(""))
        .collect();
    let mut distinct = lsns.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), lsns.len(), "{lsns:?}");
    // Only the stream's own slot remains once the bases are done.
    let slots = c.db.sql(&format!(
        "SELECT slot_name FROM pg_replication_slots WHERE database = '{}' AND NOT temporary",
        c.db.name
    ));
    assert_eq!(slots.trim(), c.db.name, "{slots}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(c.stop(), Some(0), "{}", c.log());
    // The head lists every base; each later one is marked temporary in its manifest.
    let source = format!("127.0.0.1:5499/{}", c.db.name);
    let head_path = c.repo().join(lethe::repo::changes::head_key(&source));
    let head: Json =
        serde_json::from_slice(&std::fs::read(&head_path).expect("head")).expect("json");
    let ids: Vec<&str> = head["base_ids"]
        .as_array()
        .expect("ids")
        .iter()
        .filter_map(Json::as_str)
        .collect();
    assert!(ids.len() >= 3, "{head}");
    for (n, id) in ids.iter().enumerate() {
        let m: Json = serde_json::from_slice(
            &std::fs::read(c.repo().join(format!("snapshots/{id}/manifest.json")))
                .expect("manifest"),
        )
        .expect("json");
        assert_eq!(m["continuous"]["temporary"], n > 0, "{m}");
        assert_eq!(m["continuous"]["epoch"], head["epoch"], "{m}");
    }
    let s = stored(&c.repo(), "ledger");
    assert!(acked.iter().all(|id| s.ledger.get(id) == Some(&1)));
    // A base is an ordinary snapshot: it verifies and restores (filtered) as one.
    let out = crate::common::lethe(&c.cfg, &["verify", "latest", "--deep"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sql = restored_file(&c, "base.sql", &["latest"]);
    let dump = std::fs::read_to_string(&sql).expect("restored file");
    assert!(dump.contains("ledger"), "{}", &dump[..dump.len().min(2000)]);
}

/// Schema changes during capture: a plain column appended (which lethe's
/// event triggers carry: no base), a column with a check, a table created
/// and one dropped. Capture goes on; each of the last three gives a gap
/// record closed by a base taken at once; a new table joins the
/// publication and its rows are captured after it.
#[test]
fn schema_changes_during_capture_take_a_base_and_capture_goes_on() {
    let mut c = Capture::new("cap_ddl", "300ms");
    c.db.sql("CREATE TABLE doomed (id int PRIMARY KEY); INSERT INTO doomed VALUES (1)");
    c.start_with(&[("LETHE_TEST_POLL_MS", "300")]);
    c.wait_for("continuous.started", 1, Duration::from_secs(120));
    let stop = Arc::new(AtomicBool::new(false));
    let w = writer(c.db.url(), stop.clone(), 1);
    std::thread::sleep(Duration::from_secs(1));
    // A column appended is carried by lethe's event triggers (a point
    // restore adds it): no change, no base.
    c.db.sql("ALTER TABLE ledger ADD COLUMN memo text");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(c.count("continuous.schema_changed"), 0, "{}", c.log());
    // One with a check the stream cannot carry: a base.
    c.db.sql("ALTER TABLE ledger ADD COLUMN extra text DEFAULT 'x' CHECK (extra <> '')");
    c.wait_for("continuous.schema_changed", 1, Duration::from_secs(30));
    c.wait_for("continuous.base_completed", 2, Duration::from_secs(60));
    c.db.sql("CREATE TABLE later (id int PRIMARY KEY, note text)");
    c.wait_for("continuous.schema_changed", 2, Duration::from_secs(30));
    c.wait_for("continuous.base_completed", 3, Duration::from_secs(60));
    c.db.sql("INSERT INTO later SELECT g, 'row ' || g FROM generate_series(1, 10) g");
    c.db.sql("DROP TABLE doomed");
    c.wait_for("continuous.schema_changed", 3, Duration::from_secs(30));
    c.wait_for("continuous.base_completed", 4, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let acked = w.join().expect("writer");
    // Through three bases taken beside the stream: every row once.
    stored_once(&c, &acked, Duration::from_secs(30));
    let mut files = Vec::new();
    walk(&c.repo().join("changes"), &mut files);
    let gaps: Vec<Json> = files
        .iter()
        .filter(|f| f.parent().is_some_and(|p| p.ends_with("gaps")))
        .map(|f| serde_json::from_slice(&std::fs::read(f).expect("gap")).expect("json"))
        .collect();
    assert!(gaps.len() >= 3, "{gaps:?}");
    for g in &gaps {
        assert_eq!(g["reason"], "schema_undetected", "{g}");
        assert!(
            g["base_id"].is_string() && g["resumed_lsn"].is_string(),
            "a gap left open: {g}"
        );
        assert_eq!(g["epoch_before"], g["epoch_after"], "{g}");
    }
    // The lag poll ran and says how far behind storage is, in bytes and seconds.
    let lag = &event_json(&c, "continuous.lag")[0];
    assert!(lag["lag_bytes"].is_u64() && lag["lag_s"].is_i64(), "{lag}");
    // The new table joined the publication: its rows are in the stream.
    assert_eq!(inserted_rows(&c.repo(), "later"), 10, "{}", c.log());
    assert_eq!(c.count("continuous.interrupted"), 0, "{}", c.log());
    c.check_log();
    assert_eq!(c.stop(), Some(0), "{}", c.log());
}

/// Inserts stored for a table, across every listed segment.
/// Starts the daemon again after its slot went: a `continuous.gap` at
/// ERROR for `reason`, a second base, capture started again. Returns the gap.
fn restarted_after_a_gap(c: &mut Capture, reason: &str) -> Json {
    c.start();
    c.wait_for("continuous.gap", 1, Duration::from_secs(60));
    c.wait_for("continuous.base_completed", 2, Duration::from_secs(120));
    c.wait_for("continuous.started", 2, Duration::from_secs(60));
    let gap = event_json(c, "continuous.gap").remove(0);
    assert_eq!(gap["level"], "ERROR", "{gap}");
    assert_eq!(gap["reason"], reason, "{gap}");
    gap
}

/// `lethe restore <what> --to-file <dir>/<name>`, which must succeed.
fn restored_file(c: &Capture, name: &str, what: &[&str]) -> PathBuf {
    let sql = c.dir.path().join(name);
    let mut args = vec!["restore"];
    args.extend_from_slice(what);
    args.extend(["--to-file", sql.to_str().expect("utf-8")]);
    let out = crate::common::lethe(&c.cfg, &args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sql
}

fn inserted_rows(repo: &Path, table: &str) -> usize {
    let mut n = 0;
    each_record(repo, |m, rec| {
        if let Record::Insert { relid, .. } = rec
            && m.relations
                .iter()
                .any(|r| r.relid == relid && r.name == table)
        {
            n += 1;
        }
    });
    n
}

/// `kill -9` at each step of the store protocol (parts stored; manifest
/// stored; head stored): after a restart nothing is missing and nothing
/// is stored twice, whichever step the crash cut.
#[test]
fn kill_9_between_each_step_of_a_flush_loses_nothing_and_stores_nothing_twice() {
    for stage in [
        "capture.after_parts",
        "capture.after_manifest",
        "capture.after_head",
    ] {
        let mut c = Capture::new("cap_step", "300ms");
        c.start_with(&[("LETHE_TEST_PAUSE_AT", stage)]);
        c.wait_for("continuous.started", 1, Duration::from_secs(120));
        c.db.sql("INSERT INTO ledger (id) SELECT g FROM generate_series(1, 100) g");
        let end = Instant::now() + Duration::from_secs(30);
        while !c.log().contains(&format!("lethe-test-pause: {stage}")) {
            assert!(Instant::now() < end, "{stage} not reached:\n{}", c.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        c.kill9();
        c.db.sql("INSERT INTO ledger (id) SELECT g FROM generate_series(101, 150) g");
        c.start();
        c.wait_for("continuous.started", 2, Duration::from_secs(60));
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let s = stored(&c.repo(), "ledger");
            if (1..=150).all(|id| s.ledger.contains_key(&id)) {
                let twice: Vec<_> = s.ledger.iter().filter(|(_, n)| **n > 1).collect();
                assert!(twice.is_empty(), "{stage}: stored twice: {twice:?}");
                assert!(
                    s.commits.values().all(|n| *n == 1),
                    "{stage}: a commit stored twice"
                );
                break;
            }
            assert!(
                Instant::now() < end,
                "{stage}: rows missing after restart:\n{}",
                c.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(c.count("continuous.gap"), 0, "{stage}: {}", c.log());
        assert_eq!(c.stop(), Some(0), "{stage}: {}", c.log());
        let out = crate::common::lethe(&c.cfg, &["verify", "--changes", "--deep"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{stage}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// Retention: segments (manifest and parts) and gap records older than
/// `retention.days` go at `lethe prune`, as snapshots do; younger ones and
/// the head stay, and parts of no segment go after a day.
#[test]
fn prune_expires_old_segments_and_leaves_young_ones() {
    let mut c = Capture::new("cap_expire", "300ms");
    c.start();
    c.wait_for("continuous.started", 1, Duration::from_secs(120));
    c.db.sql("INSERT INTO ledger (id) VALUES (1)");
    c.wait_for("continuous.flushed", 1, Duration::from_secs(30));
    c.db.sql("INSERT INTO ledger (id) VALUES (2)");
    c.wait_for("continuous.flushed", 2, Duration::from_secs(30));
    assert_eq!(c.stop(), Some(0), "{}", c.log());
    let mut files = Vec::new();
    walk(&c.repo().join("changes"), &mut files);
    let mut manifests: Vec<&PathBuf> = files
        .iter()
        .filter(|f| f.to_string_lossy().ends_with(".json") && !f.ends_with("head.json"))
        .collect();
    manifests.sort();
    assert!(manifests.len() >= 2, "{files:?}");
    // The oldest segment, as if written 40 days ago; a stray part 2 days ago.
    let old = manifests[0].to_string_lossy().into_owned();
    let stem = old[..old.len() - ".json".len() - 17].to_string();
    let aged: Vec<&PathBuf> = files
        .iter()
        .filter(|f| f.to_string_lossy().starts_with(&stem))
        .collect();
    assert!(aged.len() >= 2, "manifest and part: {aged:?}");
    let stray = PathBuf::from(format!(
        "{}00000000DEADBEEF.000.chg.zst",
        &stem[..stem.len() - 16]
    ));
    std::fs::write(&stray, b"cut by a crash").expect("stray part");
    let touch = |p: &Path, when: &str| {
        let st = Command::new("touch")
            .args(["-d", when])
            .arg(p)
            .status()
            .expect("touch");
        assert!(st.success());
    };
    for f in &aged {
        touch(f, "40 days ago");
    }
    touch(&stray, "2 days ago");
    let out = crate::common::lethe(&c.cfg, &["prune"]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("change stream: deleted 1 segment(s), 1 leftover part(s)"),
        "{text}"
    );
    for f in &aged {
        assert!(!f.exists(), "{} was kept", f.display());
    }
    assert!(!stray.exists());
    for m in &manifests[1..] {
        assert!(m.exists(), "{} (young) was deleted", m.display());
    }
    let source = format!("127.0.0.1:5499/{}", c.db.name);
    assert!(
        c.repo()
            .join(lethe::repo::changes::head_key(&source))
            .exists()
    );
}

/// `continuous.enabled` turned off and the config reloaded (SIGHUP): the
/// capture stops and drops its slot and publication; lethe never leaves a
/// slot behind. The daemon keeps running.
#[test]
fn turning_capture_off_and_reloading_drops_the_slot_and_the_publication() {
    let mut c = Capture::new("cap_off", "300ms");
    c.start();
    c.wait_for("continuous.started", 1, Duration::from_secs(120));
    let count = |c: &Capture, sql: &str| c.db.sql(sql).trim().to_string();
    let slot_sql = format!(
        "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{}'",
        c.db.name
    );
    assert_eq!(count(&c, &slot_sql), "1");
    let text = std::fs::read_to_string(&c.cfg).expect("config");
    std::fs::write(&c.cfg, text.replace("enabled = true", "enabled = false")).expect("config");
    let pid = c.child.as_ref().expect("running").id();
    // SAFETY: signalling our own child by pid.
    unsafe {
        libc::kill(pid as i32, libc::SIGHUP);
    }
    c.wait_for("continuous.disabled", 1, Duration::from_secs(60));
    c.wait_for("daemon.reloaded", 1, Duration::from_secs(60));
    assert_eq!(count(&c, &slot_sql), "0", "{}", c.log());
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM pg_publication WHERE pubname = 'lethe'"
        ),
        "0"
    );
    assert_eq!(c.count("continuous.stopped"), 1, "{}", c.log());
    assert_eq!(c.stop(), Some(0), "{}", c.log());
    c.check_log();
}

/// A table without a replica identity: the daemon does not start (exit 2,
/// naming the table and both fixes), creates no slot and no publication,
/// and the application's UPDATE and DELETE on that table still work.
#[test]
fn a_table_without_a_replica_identity_stops_the_start_and_the_source_is_untouched() {
    let mut c = Capture::new("cap_noid", "1s");
    c.db.sql("CREATE TABLE audit_log (at timestamptz DEFAULT now(), msg text); INSERT INTO audit_log (msg) VALUES ('a'), ('b')");
    c.start();
    let end = Instant::now() + Duration::from_secs(60);
    let code = loop {
        if let Some(Ok(Some(st))) = c.child.as_mut().map(Child::try_wait) {
            break st.code();
        }
        assert!(Instant::now() < end, "still running:\n{}", c.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    c.child = None;
    assert_eq!(code, Some(2), "{}", c.log());
    let log = c.log();
    assert!(
        log.contains("\"public\".\"audit_log\"")
            && log.contains("REPLICA IDENTITY FULL")
            && log.contains("PRIMARY KEY"),
        "{log}"
    );
    assert_eq!(
        c.db.sql(&format!(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{}'",
            c.db.name
        ))
        .trim(),
        "0"
    );
    assert_eq!(c.db.sql("SELECT count(*) FROM pg_publication").trim(), "0");
    c.db.sql(
        "UPDATE audit_log SET msg = 'c' WHERE msg = 'a'; DELETE FROM audit_log WHERE msg = 'b'",
    );
    assert_eq!(
        c.db.sql("SELECT string_agg(msg, ',') FROM audit_log")
            .trim(),
        "c"
    );
}

/// A table truncated between the slot's consistent point and the base's
/// lock: its file no longer holds the rows the base must read, so that
/// base is refused (naming the table) and taken again from a new slot;
/// the stored base then matches the source.
#[test]
fn a_table_rewritten_before_the_base_locks_it_makes_the_base_start_again() {
    let mut c = Capture::new("cap_rewrite", "500ms");
    c.start_with(&[
        ("LETHE_TEST_PAUSE_AT", "base.before_lock"),
        ("LETHE_TEST_PAUSE_SECS", "3"),
    ]);
    let end = Instant::now() + Duration::from_secs(60);
    while !c.log().contains("lethe-test-pause: base.before_lock") {
        assert!(Instant::now() < end, "pause not reached:\n{}", c.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    c.db.sql("TRUNCATE orders");
    c.wait_for("continuous.started", 1, Duration::from_secs(120));
    let log = c.log();
    assert!(
        log.contains("table(s) public.orders were rewritten"),
        "{log}"
    );
    // DDL overtaking a base is not a failure to alert on.
    assert_eq!(c.count("continuous.base_superseded"), 1, "{log}");
    assert_eq!(c.count("snapshot.failed"), 0, "{log}");
    let bases = event_json(&c, "continuous.base_completed");
    assert_eq!(bases.len(), 1, "{log}");
    // The stored base holds what the source holds: 50 users, no orders.
    assert_eq!(bases[0]["rows"], 50, "{}", bases[0]);
    assert_eq!(c.stop(), Some(0), "{}", c.log());
}

/// A stream catching up after lethe was away vouches only for what it has
/// stored: its head is complete through the last stored commit, not up to
/// the moment it caught up, so a point after that commit is refused until
/// the rest is stored, instead of being restored short of it.
#[test]
fn a_stream_catching_up_vouches_only_for_the_commits_it_stored() {
    let mut c = Capture::new("cap_catchup", "300ms");
    c.start();
    c.wait_for("continuous.started", 1, Duration::from_secs(120));
    c.wait_restorable();
    assert_eq!(c.stop(), Some(0), "{}", c.log());
    c.db.sql("INSERT INTO ledger (id) VALUES (1)");
    std::thread::sleep(Duration::from_secs(3));
    let later = c.db.sql(
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    );
    let later = later.trim().to_string();
    c.start_with(&[("LETHE_TEST_PAUSE_AT", "capture.after_head")]);
    let end = Instant::now() + Duration::from_secs(60);
    while !c.log().contains("lethe-test-pause: capture.after_head") {
        assert!(Instant::now() < end, "pause not reached:\n{}", c.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut files = Vec::new();
    walk(&c.repo().join("changes"), &mut files);
    let head = files
        .iter()
        .find(|p| p.ends_with("head.json"))
        .expect("head.json");
    let h: Json = serde_json::from_slice(&std::fs::read(head).expect("head")).expect("json");
    let at = |k: &str| {
        chrono::DateTime::parse_from_rfc3339(h[k].as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{k} in {h}: {e}"))
    };
    assert!(
        at("verified_at") <= at("last_commit_at"),
        "the head vouches past its last stored commit: {h}"
    );
    let out = crate::common::lethe(&c.cfg, &["restore", "--at", &later, "--dry-run"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "--at {later}: {err}");
    assert!(err.contains("newer than the last flushed commit"), "{err}");
    c.kill9();
}

/// The newest base deleted by hand while lethe was stopped: nothing then
/// vouches for the stream's shape, so lethe takes a base at once, with a
/// gap up to it, instead of failing to start (its slot would keep WAL).
#[test]
fn a_newest_base_deleted_by_hand_makes_a_new_base_and_capture_goes_on() {
    let mut c = Capture::new("cap_base_gone", "300ms");
    c.start();
    c.wait_for("continuous.started", 1, Duration::from_secs(120));
    c.db.sql("INSERT INTO ledger (id) VALUES (1)");
    c.wait_restorable();
    assert_eq!(c.stop(), Some(0), "{}", c.log());
    let id = event_json(&c, "continuous.base_completed")[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    std::fs::remove_file(c.repo().join("snapshots").join(&id).join("manifest.json"))
        .expect("manifest");
    c.start();
    c.wait_for("continuous.base_completed", 2, Duration::from_secs(120));
    c.db.sql("INSERT INTO ledger (id) VALUES (2)");
    c.wait_restorable();
    assert_eq!(c.count("continuous.schema_check_failed"), 1, "{}", c.log());
    assert_eq!(c.count("continuous.gap"), 1, "{}", c.log());
    assert_eq!(c.stop(), Some(0), "{}", c.log());
    c.check_log();
    let out = crate::common::lethe(&c.cfg, &["list"]);
    let list = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(list.matches("  window ").count(), 1, "{list}");
}

/// A migration drops a table while a later base waits for its locks (its
/// snapshot still lists the table): the base is taken again from a new
/// slot, without a failure to alert on and without the capture stopping.
#[test]
fn a_table_dropped_while_a_later_base_waits_for_its_locks_makes_it_start_again() {
    let mut c = Capture::new("cap_drop_race", "300ms");
    c.db.sql("CREATE TABLE doomed (id int PRIMARY KEY); INSERT INTO doomed VALUES (1)");
    c.start();
    c.wait_for("continuous.started", 1, Duration::from_secs(120));
    assert_eq!(c.stop(), Some(0), "{}", c.log());
    // A pause happens once per process: this one's is the later base's.
    c.start_with(&[
        ("LETHE_TEST_PAUSE_AT", "base.before_lock"),
        ("LETHE_TEST_PAUSE_SECS", "2"),
        ("LETHE_TEST_POLL_MS", "300"),
    ]);
    c.wait_for("continuous.started", 2, Duration::from_secs(120));
    let paused = |c: &Capture| {
        c.log()
            .matches("lethe-test-pause: base.before_lock")
            .count()
    };
    let before = paused(&c);
    // A schema change: a later base, which stops before its locks.
    c.db.sql("CREATE TABLE fresh (id int PRIMARY KEY)");
    let end = Instant::now() + Duration::from_secs(60);
    while paused(&c) == before {
        assert!(
            Instant::now() < end,
            "the later base never paused:\n{}",
            c.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    c.db.sql("DROP TABLE doomed");
    c.wait_for("continuous.base_superseded", 1, Duration::from_secs(60));
    c.wait_for("continuous.base_completed", 2, Duration::from_secs(120));
    c.db.sql("INSERT INTO ledger (id) VALUES (7)");
    c.wait_restorable();
    let log = c.log();
    assert!(
        log.contains("was dropped after the snapshot began"),
        "{log}"
    );
    assert_eq!(c.count("snapshot.failed"), 0, "{log}");
    assert_eq!(c.count("continuous.interrupted"), 0, "{log}");
    assert_eq!(c.stop(), Some(0), "{}", c.log());
    c.check_log();
}

/// A schema read the source cannot answer in time (a catalog locked by a
/// `VACUUM FULL pg_class`, say): the read is cancelled by the server, the
/// capture goes on storing every commit, and no point past the last
/// successful read is offered for a restore.
#[test]
fn a_schema_read_that_times_out_holds_neither_the_capture_nor_the_window() {
    let mut c = Capture::new("cap_slow_digest", "300ms");
    c.start_with(&[
        ("LETHE_TEST_DIGEST_SLEEP_MS", "2000"),
        ("LETHE_TEST_DIGEST_LIMIT_MS", "500"),
    ]);
    c.wait_for("continuous.started", 1, Duration::from_secs(120));
    c.db.sql("INSERT INTO ledger (id) SELECT g FROM generate_series(1, 40) g");
    c.wait_for("continuous.schema_check_failed", 1, Duration::from_secs(30));
    let end = Instant::now() + Duration::from_secs(30);
    while stored(&c.repo(), "ledger").ledger.len() < 40 {
        assert!(Instant::now() < end, "rows not stored:\n{}", c.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = c.log();
    assert!(log.contains("statement timeout"), "{log}");
    assert_eq!(c.count("continuous.interrupted"), 0, "{log}");
    assert_eq!(c.stop(), Some(0), "{}", c.log());
    c.check_log();
    // Nothing vouches for the schema after the base: no point to restore.
    let out = crate::common::lethe(&c.cfg, &["restore", "--at", "latest", "--dry-run"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no restorable window"), "{err}");
}
