//! Scheduler tests with time under control: tokio's clock is paused and
//! auto-advances, and the daemon's clock follows it, so hours of schedule
//! pass in milliseconds. The repository is a real directory; the snapshot
//! writer is replaced by a stand-in that commits a minimal manifest.

use super::job::{BoxError, SnapshotDone, Snapshotter};
use super::*;
use crate::repo::manifest::{
    FORMAT_VERSION, ListState, Manifest, ObjectEntry, SchemaObjects, SnapshotId,
};
use crate::schedule::TokioClock;
use crate::storage::StorageExt;
use async_trait::async_trait;
use std::sync::Mutex;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
        .unwrap()
        .to_utc()
}

/// Takes `duration` of (virtual) time, fails the first `fail_first` calls,
/// and records each call's start and end.
/// Each run: when it started, when it ended, whether it succeeded.
type Runs = Arc<Mutex<Vec<(DateTime<Utc>, DateTime<Utc>, bool)>>>;

#[derive(Debug)]
struct Fake {
    clock: Arc<dyn Clock>,
    duration: std::time::Duration,
    fail_first: Mutex<u32>,
    runs: Runs,
    cancelled: Arc<Mutex<u32>>,
    /// Rows of erased subjects each successful run finds (none once empty).
    leak_rows: Mutex<std::collections::VecDeque<u64>>,
}

fn entry(key: String) -> ObjectEntry {
    ObjectEntry {
        key,
        size: 1,
        blake3: String::new(),
        raw_size: 1,
        rows: 0,
    }
}

#[async_trait]
impl Snapshotter for Fake {
    async fn take(
        &self,
        cfg: Arc<Config>,
        storage: Arc<dyn Storage>,
        _erasure: Option<Arc<ErasureStore>>,
        cancel: CancellationToken,
    ) -> Result<SnapshotDone, BoxError> {
        let start = self.clock.now();
        let id = SnapshotId::new(start);
        tokio::select! {
            () = cancel.cancelled() => {
                *self.cancelled.lock().unwrap() += 1;
                return Err("cancelled".into());
            }
            () = tokio::time::sleep(self.duration) => {}
        }
        let fail = {
            let mut f = self.fail_first.lock().unwrap();
            let fail = *f > 0;
            *f = f.saturating_sub(1);
            fail
        };
        let end = self.clock.now();
        self.runs.lock().unwrap().push((start, end, !fail));
        if fail {
            return Err("the database is down".into());
        }
        let pre = format!("snapshots/{id}/schema/pre.sql.zst.age");
        storage
            .put_bytes(&pre, bytes::Bytes::from_static(b"x"))
            .await?;
        let manifest = Manifest {
            format: FORMAT_VERSION,
            id: id.clone(),
            server_version: "17".into(),
            database: "app".into(),
            started_at: start,
            finished_at: end,
            expires_at: start + Duration::days(i64::from(cfg.retention.days)),
            compression: "zstd".into(),
            recipients: vec![],
            schema: SchemaObjects {
                pre: entry(pre.clone()),
                post: entry(pre),
            },
            tables: vec![],
            foreign_keys: vec![],
            sequences: vec![],
            erasure_list: ListState::default(),
            partitioned: vec![],
            ctype: None,
            continuous: None,
            source: None,
        };
        storage
            .put_bytes(
                &crate::repo::layout::manifest_key(&id),
                manifest.to_json().into(),
            )
            .await?;
        let rows = self.leak_rows.lock().unwrap().pop_front().unwrap_or(0);
        Ok(SnapshotDone {
            manifest,
            leaks: (rows > 0)
                .then(|| crate::snapshot::run::Leak {
                    table: "public.users".into(),
                    column: "id".into(),
                    rows,
                })
                .into_iter()
                .collect(),
            leak_checked: true,
        })
    }
}

/// An in-memory repository. Only here: with tokio's clock paused, any real
/// I/O lets time jump to the next timer while the I/O is pending, which
/// would make "what happened at 1200 s" depend on disk speed. Retention and
/// leases are tested against the directory backend in `retention::tests`,
/// and the real daemon against real storage in `tests/it/daemon.rs`.
#[derive(Debug, Default)]
struct MemStorage {
    objects: Mutex<std::collections::BTreeMap<String, bytes::Bytes>>,
}

#[async_trait]
impl Storage for MemStorage {
    async fn put(
        &self,
        key: &str,
        body: crate::storage::ByteStream,
    ) -> Result<crate::storage::ObjectMeta, crate::storage::StorageError> {
        use futures::TryStreamExt;
        let chunks: Vec<bytes::Bytes> = body.try_collect().await?;
        let data = bytes::Bytes::from(chunks.concat());
        let meta = crate::storage::ObjectMeta {
            key: key.into(),
            size: data.len() as u64,
            last_modified: Utc::now(),
        };
        self.objects.lock().unwrap().insert(key.into(), data);
        Ok(meta)
    }
    async fn get(
        &self,
        key: &str,
    ) -> Result<crate::storage::ByteStream, crate::storage::StorageError> {
        let data = self.objects.lock().unwrap().get(key).cloned();
        match data {
            Some(d) => Ok(Box::pin(futures::stream::once(async move { Ok(d) }))),
            None => Err(crate::storage::StorageError::NotFound { key: key.into() }),
        }
    }
    async fn head(
        &self,
        key: &str,
    ) -> Result<Option<crate::storage::ObjectMeta>, crate::storage::StorageError> {
        let size = self
            .objects
            .lock()
            .unwrap()
            .get(key)
            .map(|d| d.len() as u64);
        Ok(size.map(|size| crate::storage::ObjectMeta {
            key: key.into(),
            size,
            last_modified: Utc::now(),
        }))
    }
    async fn list(
        &self,
        prefix: &str,
    ) -> Result<Vec<crate::storage::ObjectMeta>, crate::storage::StorageError> {
        let objects = self.objects.lock().unwrap();
        Ok(objects
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, d)| crate::storage::ObjectMeta {
                key: k.clone(),
                size: d.len() as u64,
                last_modified: Utc::now(),
            })
            .collect())
    }
    async fn delete(&self, key: &str) -> Result<(), crate::storage::StorageError> {
        self.objects.lock().unwrap().remove(key);
        Ok(())
    }
    async fn list_incomplete(
        &self,
        _prefix: &str,
    ) -> Result<Vec<crate::storage::IncompleteUpload>, crate::storage::StorageError> {
        Ok(vec![])
    }
    async fn abort_incomplete(
        &self,
        _u: &crate::storage::IncompleteUpload,
    ) -> Result<(), crate::storage::StorageError> {
        Ok(())
    }
    fn describe(&self) -> String {
        "mem://".into()
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    config_path: PathBuf,
    storage: Arc<dyn Storage>,
    runs: Runs,
    cancelled: Arc<Mutex<u32>>,
}

fn config_text(repo: &std::path::Path, every: &str) -> String {
    format!(
        "[storage]\nurl = \"file://{}\"\n[schedule]\nevery = \"{every}\"\n[encryption]\ndisabled = true\n",
        repo.display()
    )
}

async fn daemon(every: &str, duration_s: u64, fail_first: u32) -> (Harness, Daemon) {
    daemon_finding(every, duration_s, fail_first, &[]).await
}

/// [`daemon`], whose successive snapshots find `leak_rows` rows of erased
/// subjects.
async fn daemon_finding(
    every: &str,
    duration_s: u64,
    fail_first: u32,
    leak_rows: &[u64],
) -> (Harness, Daemon) {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let config_path = dir.path().join("lethe.toml");
    std::fs::write(&config_path, config_text(&repo, every)).unwrap();
    let cfg = Config::load(&config_path).unwrap();
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(t0()));
    let runs = Arc::new(Mutex::new(Vec::new()));
    let cancelled = Arc::new(Mutex::new(0));
    let fake = Fake {
        clock: clock.clone(),
        duration: std::time::Duration::from_secs(duration_s),
        fail_first: Mutex::new(fail_first),
        runs: runs.clone(),
        cancelled: cancelled.clone(),
        leak_rows: Mutex::new(leak_rows.iter().copied().collect()),
    };
    let opts = DaemonOptions {
        lock_settle: std::time::Duration::ZERO,
        ..DaemonOptions::default()
    };
    let storage: Arc<dyn Storage> = Arc::new(MemStorage::default());
    let d = Daemon::new(
        config_path.clone(),
        cfg,
        storage.clone(),
        None,
        clock,
        Arc::new(fake),
        opts,
    )
    .unwrap();
    (
        Harness {
            _dir: dir,
            config_path,
            storage,
            runs,
            cancelled,
        },
        d,
    )
}

/// Runs the daemon for `for_s` virtual seconds, sending `controls` at the
/// given offsets, then stops it as SIGTERM would.
async fn run_for(d: Daemon, for_s: u64, controls: Vec<(u64, Control)>) {
    let root = CancellationToken::new();
    let (tx, rx) = mpsc::channel(4);
    let stopper = {
        let root = root.clone();
        async move {
            let mut at = 0;
            for (when, c) in controls {
                tokio::time::sleep(std::time::Duration::from_secs(when - at)).await;
                at = when;
                tx.send(c).await.unwrap();
            }
            tokio::time::sleep(std::time::Duration::from_secs(for_s - at)).await;
            root.cancel();
        }
    };
    let (r, ()) = tokio::join!(d.run(root.clone(), rx), stopper);
    r.unwrap();
}

fn secs(a: DateTime<Utc>) -> i64 {
    (a - t0()).num_seconds()
}

#[tokio::test(start_paused = true)]
async fn snapshots_follow_the_interval_and_never_overlap() {
    let (h, d) = daemon("1h", 600, 0).await;
    run_for(d, 5 * 3600 + 700, vec![]).await;
    let runs = h.runs.lock().unwrap().clone();
    let starts: Vec<i64> = runs.iter().map(|r| secs(r.0)).collect();
    // At start (empty repository), then every hour after each start.
    assert_eq!(starts.len(), 6, "{starts:?}");
    for (i, s) in starts.iter().enumerate() {
        let slot = i as i64 * 3600;
        assert!(
            (slot..slot + 5).contains(s),
            "run {i} started at {s}s: {starts:?}"
        );
    }
    for w in runs.windows(2) {
        assert!(w[0].1 <= w[1].0, "overlap: {runs:?}");
    }
    let ids = crate::repo::layout::list_complete(h.storage.as_ref())
        .await
        .unwrap();
    assert_eq!(ids.len(), 6);
}

#[tokio::test(start_paused = true)]
async fn a_recent_snapshot_at_start_defers_the_first_run() {
    let (h, d) = daemon("1h", 60, 0).await;
    // A snapshot taken 20 minutes "ago": the next is due 40 minutes in.
    let recent = SnapshotId::new(t0() - Duration::minutes(20));
    h.storage
        .put_bytes(
            &crate::repo::layout::manifest_key(&recent),
            bytes::Bytes::from_static(b"{}"),
        )
        .await
        .unwrap();
    run_for(d, 3600, vec![]).await;
    let starts: Vec<i64> = h.runs.lock().unwrap().iter().map(|r| secs(r.0)).collect();
    assert_eq!(starts.len(), 1, "{starts:?}");
    assert!((2400..2405).contains(&starts[0]), "{starts:?}");
}

#[tokio::test(start_paused = true)]
async fn failures_back_off_then_the_schedule_resumes() {
    let (h, d) = daemon("1h", 1, 3).await;
    run_for(d, 2 * 3600, vec![]).await;
    let runs = h.runs.lock().unwrap().clone();
    let starts: Vec<i64> = runs.iter().map(|r| secs(r.0)).collect();
    let ok: Vec<bool> = runs.iter().map(|r| r.2).collect();
    assert_eq!(ok, vec![false, false, false, true, true], "{starts:?}");
    // Each retry waits 10 s, 20 s, 40 s after the failure ended (1 s runs).
    let gaps: Vec<i64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        (11..=13).contains(&gaps[0])
            && (21..=23).contains(&gaps[1])
            && (41..=43).contains(&gaps[2]),
        "{starts:?}"
    );
    // After the success, the hourly schedule counts from its start.
    assert!((3600..3605).contains(&gaps[3]), "{starts:?}");
}

#[tokio::test(start_paused = true)]
async fn usr1_snapshots_now_but_never_alongside_a_running_one() {
    let (h, d) = daemon("1h", 600, 0).await;
    // At 300 s the start-up snapshot is still running: skipped. At 1200 s
    // nothing runs: a snapshot starts at once.
    run_for(
        d,
        1900,
        vec![(300, Control::SnapshotNow), (1200, Control::SnapshotNow)],
    )
    .await;
    let runs = h.runs.lock().unwrap().clone();
    let starts: Vec<i64> = runs.iter().map(|r| secs(r.0)).collect();
    assert_eq!(starts.len(), 2, "{starts:?}");
    assert!((1200..1205).contains(&starts[1]), "{starts:?}");
    assert!(runs[0].1 <= runs[1].0);
}

#[tokio::test(start_paused = true)]
async fn stopping_cancels_the_running_snapshot_and_leaves_no_lock() {
    let (h, d) = daemon("1h", 3600, 0).await;
    run_for(d, 30, vec![]).await;
    assert_eq!(*h.cancelled.lock().unwrap(), 1);
    assert!(h.runs.lock().unwrap().is_empty());
    assert!(
        crate::repo::layout::list_complete(h.storage.as_ref())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        h.storage
            .head(crate::repo::lease::SNAPSHOT_LOCK_KEY)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(start_paused = true)]
async fn two_daemons_on_one_repository_never_snapshot_at_once() {
    let (h, a) = daemon("1h", 300, 0).await;
    // The second daemon shares the first one's repository and record.
    let cfg = Config::load(&h.config_path).unwrap();
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(t0()));
    let fake = Fake {
        clock: clock.clone(),
        duration: std::time::Duration::from_secs(300),
        fail_first: Mutex::new(0),
        runs: h.runs.clone(),
        cancelled: h.cancelled.clone(),
        leak_rows: Mutex::default(),
    };
    let opts = DaemonOptions {
        lock_settle: std::time::Duration::ZERO,
        ..DaemonOptions::default()
    };
    let b = Daemon::new(
        h.config_path.clone(),
        cfg,
        h.storage.clone(),
        None,
        clock,
        Arc::new(fake),
        opts,
    )
    .unwrap();
    tokio::join!(run_for(a, 3 * 3600, vec![]), run_for(b, 3 * 3600, vec![]));
    let mut runs = h.runs.lock().unwrap().clone();
    runs.sort();
    assert!(runs.len() >= 4, "{runs:?}");
    for w in runs.windows(2) {
        assert!(w[0].1 <= w[1].0, "overlapping snapshots: {runs:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_broken_reload_keeps_the_running_config() {
    let (h, mut d) = daemon("1h", 1, 0).await;
    std::fs::write(&h.config_path, "[schedule]\nevery = \"soon\"\n").unwrap();
    assert!(d.try_reload().await.unwrap_err().contains("soon"));
    assert_eq!(d.schedule.describe(), "every 1h");
    std::fs::write(&h.config_path, "[schedule]\ncron = \"99 * * * *\"\n").unwrap();
    assert!(d.try_reload().await.is_err());
    assert_eq!(d.schedule.describe(), "every 1h");
    std::fs::write(
        &h.config_path,
        config_text(&h._dir.path().join("repo"), "2h"),
    )
    .unwrap();
    d.try_reload().await.unwrap();
    assert_eq!(d.schedule.describe(), "every 2h");
}

#[tokio::test(start_paused = true)]
async fn while_paused_neither_the_schedule_nor_usr1_snapshot_and_resume_runs_the_missed_one() {
    let (h, d) = daemon("1h", 60, 0).await;
    let switch = d.pause_switch();
    let flipper = async move {
        tokio::time::sleep(std::time::Duration::from_secs(100)).await;
        assert!(switch.pause(Utc::now()));
        // Past the 3600 s run and SIGUSR1 (at 200 s), still paused.
        tokio::time::sleep(std::time::Duration::from_secs(4900)).await;
        assert!(switch.resume().is_some());
    };
    let ((), ()) = tokio::join!(run_for(d, 5200, vec![(200, Control::SnapshotNow)]), flipper);
    let starts: Vec<i64> = h.runs.lock().unwrap().iter().map(|r| secs(r.0)).collect();
    // At start, then only once resumed (the missed run starts at once).
    assert_eq!(starts.len(), 2, "{starts:?}");
    assert!(starts[0] < 5, "{starts:?}");
    assert!((5000..5005).contains(&starts[1]), "{starts:?}");
}

#[tokio::test(start_paused = true)]
async fn the_last_snapshots_leak_check_is_kept_for_the_api_until_the_next_one() {
    // The first snapshot finds 3 rows of erased subjects, the next none.
    let (_h, d) = daemon_finding("1h", 60, 0, &[3, 0]).await;
    let leaks = d.leak_state();
    assert_eq!(leaks.last(), None, "nothing before the first snapshot");
    let root = CancellationToken::new();
    let (_tx, rx) = mpsc::channel(4);
    let run = tokio::spawn(d.run(root.clone(), rx));
    tokio::time::sleep(std::time::Duration::from_secs(120)).await;
    let first = leaks.last().expect("a report after the first snapshot");
    assert!(first.checked, "{first:?}");
    assert_eq!(first.rows, 3, "{first:?}");
    assert_eq!(first.tables[0].table, "public.users", "{first:?}");
    tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    let second = leaks.last().expect("a report after the second snapshot");
    assert_ne!(second.snapshot, first.snapshot);
    assert_eq!((second.rows, second.tables.len()), (0, 0), "{second:?}");
    root.cancel();
    run.await.unwrap().unwrap();
}
