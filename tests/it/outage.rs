//! A real S3 outage: a private Garage (its own port and state directory, so
//! other tests' server is never touched) is killed, or frozen with SIGSTOP,
//! while `lethe snapshot` uploads, then brought back. Each run must end in
//! a complete, verifying snapshot or a clean failure (exit 1, not listed),
//! and the next run must leave no leftover prefix or unfinished upload. A
//! run that fails because the store is down cannot delete its lock; the
//! next run takes it over at once (its holder's process is gone).

use crate::common::LetheCli;
use crate::common::{Garage, TestBucket};
use crate::rig::{Rig, SCHEMA, TABLES, assert_same_tables, filler, rt, text};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Below the kernel's ephemeral port range (32768-60999): at 39300 a CI run
/// once found the port already in use when this Garage started (most
/// likely an outgoing connection's ephemeral port).
const PORT: u16 = 29300;

/// A private Garage, stopped and wiped when dropped.
struct PrivateGarage {
    dir: PathBuf,
    garage: Garage,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/garage-test.sh")
}

impl PrivateGarage {
    fn start() -> Option<PrivateGarage> {
        let shared = crate::common::garage()?; // skips (or fails in CI) without Garage
        let dir = std::env::temp_dir().join(format!("lethe-garage-outage-{PORT}"));
        let _ = Command::new(script())
            .arg("stop")
            .env("LETHE_GARAGE_DIR", &dir)
            .env("LETHE_GARAGE_PORT", PORT.to_string())
            .output();
        let _ = std::fs::remove_dir_all(&dir);
        let g = Self::up(&dir, &shared.bin);
        Some(PrivateGarage { dir, garage: g })
    }

    fn up(dir: &Path, bin: &Path) -> Garage {
        let out = Command::new(script())
            .env("LETHE_GARAGE_DIR", dir)
            .env("LETHE_GARAGE_PORT", PORT.to_string())
            .env("GARAGE_BIN", bin)
            .output()
            .expect("garage-test.sh runs");
        assert!(
            out.status.success(),
            "private garage: {}",
            text(&out.stderr)
        );
        let env = text(&out.stdout);
        let var = |n: &str| {
            env.lines()
                .filter_map(|l| l.strip_prefix("export "))
                .find_map(|l| l.strip_prefix(&format!("{n}=")))
                .unwrap_or_else(|| panic!("no {n} in {env}"))
                .to_string()
        };
        Garage {
            endpoint: var("LETHE_TEST_S3_ENDPOINT"),
            region: var("LETHE_TEST_S3_REGION"),
            access_key: var("AWS_ACCESS_KEY_ID"),
            secret_key: var("AWS_SECRET_ACCESS_KEY"),
            config: var("GARAGE_CONFIG").into(),
            bin: bin.to_path_buf(),
        }
    }

    fn pid(&self) -> i32 {
        std::fs::read_to_string(self.dir.join("garage.pid"))
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid")
    }

    /// SIGKILL: connections are refused until [`Self::restart`].
    fn kill(&self) {
        // SAFETY: a plain kill(2) on the server this test started.
        unsafe { libc::kill(self.pid(), libc::SIGKILL) };
        std::thread::sleep(Duration::from_millis(200));
    }

    fn restart(&self) {
        Self::up(&self.dir, &self.garage.bin);
    }

    fn signal(&self, sig: i32) {
        // SAFETY: as above.
        unsafe { libc::kill(self.pid(), sig) };
    }
}

impl Drop for PrivateGarage {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        let _ = Command::new(script())
            .arg("stop")
            .env("LETHE_GARAGE_DIR", &self.dir)
            .env("LETHE_GARAGE_PORT", PORT.to_string())
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs a snapshot, calling `disrupt` once it has started; returns
/// `(exit ok, id, stderr)`. Fails the test if it runs over `limit`.
fn snapshot_through(
    rig: &Rig,
    limit: Duration,
    disrupt: impl FnOnce(),
) -> (bool, Option<String>, String) {
    let mut child = rig
        .cmd(&["snapshot"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let (rx, reader) = crate::common::stream_stderr(&mut child);
    let mut lines = Vec::new();
    let mut id = None;
    while id.is_none() {
        let Ok(l) = rx.recv_timeout(Duration::from_secs(60)) else {
            let status = child.wait().expect("wait");
            panic!(
                "no snapshot.started within 60 s ({status}):\n{}",
                lines.join("\n")
            );
        };
        if l.contains("\"snapshot.started\"") {
            id = serde_json::from_str::<serde_json::Value>(&l)
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_string));
        }
        lines.push(l);
    }
    std::thread::sleep(Duration::from_millis(300));
    disrupt();
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            panic!(
                "snapshot still running {limit:?} after the disruption (a hang):\n{}",
                lines.join("\n")
            );
        }
        while let Ok(l) = rx.try_recv() {
            lines.push(l);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    reader.join().expect("reader");
    lines.extend(rx.try_iter());
    (status.success(), id, lines.join("\n"))
}

fn check_outcome(rig: &Rig, what: &str, ok: bool, id: &Option<String>, log: &str) -> &'static str {
    let id = id.as_deref().expect("id");
    let listed = rig.listed();
    if ok {
        assert!(
            listed.iter().any(|l| l == id),
            "{what}: success but {id} not listed"
        );
        let v = rig.run(&["verify", id, "--deep"]);
        assert!(
            v.status.success(),
            "{what}: {id} does not verify: {}",
            text(&v.stdout)
        );
        "completed and verified"
    } else {
        assert!(
            !listed.iter().any(|l| l == id),
            "{what}: failed snapshot {id} is listed"
        );
        assert!(
            log.contains("\"snapshot.failed\""),
            "{what}: no snapshot.failed event:\n{log}"
        );
        "failed cleanly, not listed"
    }
}

/// A run after one that left its lock (a failed run cannot delete it while
/// the store is down) must have taken it over at once: the holder's process
/// on this host is gone.
fn assert_took_over(lock_left: bool, log: &str) {
    if lock_left {
        let taken = crate::rig::takeovers(log.lines());
        assert!(
            taken.iter().any(|e| e["reason"] != "expired"),
            "the lock left by the previous run was not taken over at once:\n{log}"
        );
    }
}

#[test]
fn snapshots_survive_or_fail_cleanly_through_a_real_s3_outage() {
    let Some(pg) = PrivateGarage::start() else {
        return;
    };
    let bucket: TestBucket = pg.garage.new_bucket();
    let rig = Rig::s3_on(
        "outage",
        &format!("{SCHEMA}{}", filler(150_000)),
        "",
        pg.garage.clone(),
        bucket,
    );
    let mut report = Vec::new();

    // 1. Killed for 3 s: inside the retry budget.
    let (ok, id, log) = snapshot_through(&rig, Duration::from_secs(180), || {
        pg.kill();
        std::thread::sleep(Duration::from_secs(3));
        pg.restart();
    });
    report.push(format!(
        "killed 3 s: {}",
        check_outcome(&rig, "3 s outage", ok, &id, &log)
    ));

    eprintln!("outage: {}", report.last().expect("outcome"));
    let lock_left = rig.has_snapshot_lock();
    if lock_left {
        report.push("the 3 s run left its snapshot lock behind (the next run took it over)".into());
    }

    // 2. Killed until the snapshot gives up: must fail, not hang or list.
    let t0 = Instant::now();
    let (ok, id, log) = snapshot_through(&rig, Duration::from_secs(180), || pg.kill());
    let gave_up = t0.elapsed();
    assert_took_over(lock_left, &log);
    pg.restart();
    let outcome = check_outcome(&rig, "long outage", ok, &id, &log);
    assert!(!ok, "a snapshot cannot complete with the store down");
    report.push(format!(
        "killed until the snapshot gave up ({gave_up:.0?}): {outcome}"
    ));

    eprintln!("outage: {}", report.last().expect("outcome"));
    let lock_left = rig.has_snapshot_lock();
    if lock_left {
        report.push(
            "the failed run left its snapshot lock behind (the next run took it over)".into(),
        );
    }

    // 3. Frozen (SIGSTOP) for 15 s: requests hang, then resume.
    let (ok, id, log) = snapshot_through(&rig, Duration::from_secs(240), || {
        pg.signal(libc::SIGSTOP);
        std::thread::sleep(Duration::from_secs(15));
        pg.signal(libc::SIGCONT);
    });
    assert_took_over(lock_left, &log);
    report.push(format!(
        "frozen 15 s: {}",
        check_outcome(&rig, "15 s freeze", ok, &id, &log)
    ));

    eprintln!("outage: {}", report.last().expect("outcome"));
    let lock_left = rig.has_snapshot_lock();
    if lock_left {
        report.push(
            "the frozen run left its snapshot lock behind (the next run took it over)".into(),
        );
    }

    // The next run (grace 0) leaves nothing behind, and the latest restores.
    let out = rig.run_env(&["snapshot"], &[("LETHE_CLEANUP_GRACE", "0s")]);
    assert!(out.status.success(), "clean-up run: {}", text(&out.stderr));
    assert_took_over(lock_left, &text(&out.stderr));
    let rt = rt();
    let storage: Arc<dyn lethe::storage::Storage> = Arc::new(rt.block_on(pg.garage.storage(
        &rig.bucket.as_ref().expect("bucket").name,
        "r",
        Default::default(),
    )));
    let inv = rt
        .block_on(lethe::repo::layout::inventory(storage.as_ref()))
        .expect("inventory");
    assert!(inv.incomplete.is_empty(), "leftovers: {:?}", inv.incomplete);
    let uploads = rt
        .block_on(storage.list_incomplete(""))
        .expect("list_incomplete");
    assert!(uploads.is_empty(), "unfinished uploads: {uploads:?}");
    let (target, out) = rig.restore("latest", "outage_tgt");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_same_tables(&rig.db, &target, TABLES);
    eprintln!(
        "outage: {}; clean-up left 0 prefixes and 0 uploads; restore equals source",
        report.join("; ")
    );
}
