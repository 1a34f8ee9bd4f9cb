//! Crash tests: `kill -9` at seeded random instants.
//!
//! - `lethe snapshot` on `file://` and on Garage: after every kill, every
//!   listed snapshot verifies and the killed one is listed only if its
//!   manifest was committed; then one clean run removes every leftover
//!   (objects and unfinished uploads) and a restore of the latest snapshot
//!   equals the source. A kill that leaves the snapshot lock behind does not
//!   block the next run: it sees the holder's process is gone and takes the
//!   lock over at once (`lease.taken_over`), never `snapshot.skipped`.
//! - `lethe erase serve` (the daemon's API) while clients add erasures: every
//!   acknowledged id is listed after the restart.
//!
//! `LETHE_CRASH_TRIALS` (default 6 per backend) and `LETHE_CRASH_SEED`
//! control the run; RELIABILITY.md records a longer one.

use crate::common::LetheCli;
use crate::rig::{Rig, SCHEMA, TABLES, api_client, assert_same_tables, filler, serve, text};
use lethe::storage::faulty::SplitMix64;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn trials() -> u64 {
    crate::common::env_u64("LETHE_CRASH_TRIALS", 6)
}

fn seed() -> u64 {
    crate::common::env_u64("LETHE_CRASH_SEED", 0xc4a5)
}

fn started_id(lines: &[String]) -> Option<String> {
    lines
        .iter()
        .filter(|l| l.contains("\"snapshot.started\""))
        .find_map(|l| {
            serde_json::from_str::<serde_json::Value>(l).ok()?["id"]
                .as_str()
                .map(str::to_string)
        })
}

/// The outcome counts of one crash run, printed for RELIABILITY.md.
#[derive(Debug, Default)]
struct Tally {
    killed_before_start: u32,
    killed_mid_snapshot: u32,
    finished_before_kill: u32,
    listed_after_kill: u32,
    locks_left: u32,
    /// Runs started right after a kill that left the lock: all proceeded.
    next_run_took_over: u32,
    /// `lease.taken_over` events logged by the killed runs themselves
    /// (each took over the lock the previous kill left).
    takeovers_logged: u32,
}

fn snapshot_crash_run(rig: &Rig, label: &str) {
    // How long an undisturbed snapshot takes here, to spread the kills over it.
    let t0 = Instant::now();
    let first = rig.snapshot();
    let full = t0.elapsed();
    let mut rng = SplitMix64(seed() ^ label.len() as u64);
    let mut tally = Tally::default();
    for trial in 0..trials() {
        let delay = Duration::from_millis(rng.below(full.as_millis() as u64 * 12 / 10 + 1));
        let mut child = rig
            .cmd(&["snapshot"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let (lines, reader) = crate::common::collect_stderr(&mut child);
        std::thread::sleep(delay);
        let finished = child.try_wait().expect("try_wait").is_some();
        if !finished {
            child.kill().expect("kill -9");
        }
        let status = child.wait().expect("wait");
        reader.join().expect("stderr reader");
        let lines = lines.lock().expect("lines").clone();
        let id = started_id(&lines);
        let committed = lines.iter().any(|l| l.contains("\"snapshot.completed\""));
        match (&id, finished) {
            (_, true) => {
                assert!(
                    status.success(),
                    "trial {trial}: snapshot failed on its own:\n{}",
                    lines.join("\n")
                );
                tally.finished_before_kill += 1;
            }
            (None, false) => tally.killed_before_start += 1,
            (Some(_), false) => tally.killed_mid_snapshot += 1,
        }
        let listed = rig.listed();
        if let Some(id) = &id {
            if listed.contains(id) {
                tally.listed_after_kill += u32::from(!finished);
                // Listed means the manifest was written: it must be whole.
                let out = rig.run(&["verify", id, "--deep"]);
                assert!(
                    out.status.success(),
                    "trial {trial} ({label}, kill after {delay:?}): listed snapshot {id} does not verify:\n{}",
                    text(&out.stdout)
                );
            } else {
                assert!(
                    !committed,
                    "trial {trial}: {id} logged completed but is not listed"
                );
            }
        }
        // A killed run leaves its lease. Its holder (this host, a pid that no
        // longer exists) is certainly gone, so the next snapshot takes the
        // lock over at once instead of being refused for ~3 min. Checked
        // right away twice; after other kills the lock is left in place for
        // the next trial's run (or the final clean-up run) to take over.
        if rig.has_snapshot_lock() {
            tally.locks_left += 1;
            if tally.next_run_took_over < 2 {
                let before = rig.listed();
                let out = rig.run(&["snapshot"]);
                let err = text(&out.stderr);
                assert!(
                    out.status.success(),
                    "trial {trial}: the run after a kill -9 did not proceed: {err}"
                );
                let taken = crate::rig::takeovers(err.lines());
                assert!(
                    taken
                        .iter()
                        .any(|e| e["previous_pid"] == child.id() && e["reason"] != "expired"),
                    "trial {trial}: no immediate takeover of pid {}'s lock: {err}",
                    child.id()
                );
                let after = rig.listed();
                assert_eq!(after.len(), before.len() + 1, "trial {trial}: {err}");
                tally.next_run_took_over += 1;
            }
        }
        tally.takeovers_logged +=
            crate::rig::takeovers(lines.iter().map(String::as_str)).len() as u32;
        assert!(
            !lines.iter().any(|l| l.contains("\"lock_held\"")),
            "trial {trial}: a run was refused for a dead holder's lock:\n{}",
            lines.join("\n")
        );
        let out = rig.run(&["verify", "--all"]);
        assert!(
            out.status.success(),
            "trial {trial} ({label}): verify --all:\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
    // One clean run after the grace period removes every leftover.
    // (The last kill may have left its lock: this run must take it over.)
    let lock_left = rig.has_snapshot_lock();
    let out = rig.run_env(&["snapshot"], &[("LETHE_CLEANUP_GRACE", "0s")]);
    assert!(
        out.status.success(),
        "clean-up snapshot: {}",
        text(&out.stderr)
    );
    if lock_left {
        assert!(
            !crate::rig::takeovers(text(&out.stderr).lines()).is_empty(),
            "clean-up snapshot ran under a left lock without taking it over: {}",
            text(&out.stderr)
        );
    }
    let rt = crate::rig::rt();
    let storage = match &rig.repo {
        Some(p) => Arc::new(lethe::storage::fs::FsStorage::open(p.clone()).expect("repo"))
            as Arc<dyn lethe::storage::Storage>,
        None => {
            let g = rig.garage.as_ref().expect("garage");
            let b = rig.bucket.as_ref().expect("bucket");
            Arc::new(rt.block_on(g.storage(&b.name, "r", Default::default())))
                as Arc<dyn lethe::storage::Storage>
        }
    };
    let inv = rt
        .block_on(lethe::repo::layout::inventory(storage.as_ref()))
        .expect("inventory");
    assert!(
        inv.incomplete.is_empty(),
        "{label}: leftovers after the clean-up run: {:?}",
        inv.incomplete
    );
    let uploads = rt
        .block_on(storage.list_incomplete(""))
        .expect("list_incomplete");
    assert!(
        uploads.is_empty(),
        "{label}: unfinished uploads after the clean-up run: {uploads:?}"
    );
    let listed = rig.listed();
    assert!(listed.contains(&first));
    let (target, out) = rig.restore("latest", "crash_tgt");
    assert!(
        out.status.success(),
        "restore latest: {}",
        text(&out.stderr)
    );
    assert_same_tables(&rig.db, &target, TABLES);
    eprintln!(
        "crash ({label}): {} kills over 0..{:?} (seed {}): {tally:?}; {} snapshots listed, all verified; \
         clean-up left 0 prefixes, 0 uploads; restore of latest equals the source",
        trials(),
        full * 12 / 10,
        seed(),
        listed.len()
    );
}

#[test]
fn snapshots_killed_at_random_instants_on_a_directory_repository() {
    let rig = Rig::file("crashfs", &format!("{SCHEMA}{}", filler(120_000)), "");
    snapshot_crash_run(&rig, "file");
}

#[test]
fn snapshots_killed_at_random_instants_on_garage() {
    let Some(rig) = Rig::s3("crashs3", &format!("{SCHEMA}{}", filler(120_000)), "") else {
        return;
    };
    snapshot_crash_run(&rig, "s3");
}

#[test]
fn every_acknowledged_erasure_survives_kill_9_of_the_api() {
    let rig = Rig::file("crashapi", "SELECT 1", "");
    let rt = crate::rig::rt();
    let mut rng = SplitMix64(seed() ^ 0xa91);
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut next_id = 1_000_000u64;
    let rounds = trials();
    for round in 0..rounds {
        let mut server = serve(&rig, &rt);
        let client = api_client(&rig);
        let stop = Instant::now() + Duration::from_millis(200 + rng.below(1500));
        // 8 clients add one id per request until the server dies.
        let mut tasks = Vec::new();
        for c in 0..8u64 {
            let (client, acked) = (client.clone(), Arc::clone(&acked));
            let base = next_id + c * 100_000;
            tasks.push(rt.spawn(async move {
                for i in 0..100_000u64 {
                    let id = (base + i).to_string();
                    match client.add(std::slice::from_ref(&id), Some("crash")).await {
                        Ok(_) => acked.lock().expect("acked").push(id),
                        Err(_) => break,
                    }
                }
            }));
        }
        next_id += 1_000_000;
        std::thread::sleep(stop.saturating_duration_since(Instant::now()));
        server.kill().expect("kill -9");
        server.wait().expect("wait");
        for t in tasks {
            rt.block_on(t).expect("client task");
        }
        let n = acked.lock().expect("acked").len();
        assert!(
            n > 0 || round > 0,
            "no add was acknowledged before the kill"
        );
    }
    // After the last kill: the store, opened afresh, lists every acknowledged id.
    let out = rig.run(&["erase", "list", "--json"]);
    assert!(out.status.success(), "erase list: {}", text(&out.stderr));
    let entries: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).expect("erase list --json");
    let listed: std::collections::HashSet<String> = entries
        .iter()
        .filter_map(|e| e["subject"].as_str().map(str::to_string))
        .collect();
    let acked = acked.lock().expect("acked");
    let lost: Vec<&String> = acked.iter().filter(|id| !listed.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged ids lost, e.g. {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
    eprintln!(
        "crash (api): {rounds} kill -9 of `lethe erase serve` under 8 clients; {} acknowledged ids, 0 lost ({} listed)",
        acked.len(),
        listed.len()
    );
}
