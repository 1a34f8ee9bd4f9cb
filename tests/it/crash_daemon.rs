//! `kill -9` of `lethe daemon` itself while its API acknowledges erasures.
//!
//! Each round starts the real daemon (schedule 1 h: it also takes its first
//! snapshot at start, so early kills land mid-snapshot too), waits for its
//! API, lets 8 clients add one id per request, and `kill -9`s the daemon at
//! a seeded random instant. After the last round every acknowledged id must
//! be listed (`lethe erase list --json`, and `lethe erase check` on a
//! sample), nothing may be listed that no client sent, and a restarted
//! daemon must report the same count through its API.
//!
//! `LETHE_DAEMON_CRASH_TRIALS` (default 5) and `LETHE_CRASH_SEED` control
//! the run.

use crate::common::LetheCli;
use crate::rig::{Rig, api_client, rt, text};
use lethe::storage::faulty::SplitMix64;
use std::collections::HashSet;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn rounds() -> u64 {
    crate::common::env_u64("LETHE_DAEMON_CRASH_TRIALS", 5)
}

fn seed() -> u64 {
    crate::common::env_u64("LETHE_CRASH_SEED", 0xc4a5)
}

/// `lethe daemon` with its stderr collected; returns once the API answers.
fn start_daemon(
    rig: &Rig,
    rt: &tokio::runtime::Runtime,
) -> (Child, Arc<Mutex<Vec<String>>>, std::thread::JoinHandle<()>) {
    let mut child = rig
        .cmd(&["daemon"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn lethe daemon");
    let (lines, reader) = crate::common::collect_stderr(&mut child);
    let client = api_client(rig);
    let deadline = Instant::now() + Duration::from_secs(60);
    while rt.block_on(client.probe()).ok().flatten().is_none() {
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "the daemon exited at start:\n{}",
            lines.lock().expect("lines").join("\n")
        );
        assert!(
            Instant::now() < deadline,
            "the daemon's API did not answer within 60 s:\n{}",
            lines.lock().expect("lines").join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, lines, reader)
}

#[test]
fn every_erasure_the_daemon_acknowledged_survives_kill_9() {
    let rig = Rig::file(
        "crashdaemon",
        &format!("{}{}", crate::rig::SCHEMA, crate::rig::filler(60_000)),
        "[schedule]\nevery = \"1h\"\n",
    );
    let rt = rt();
    let mut rng = SplitMix64(seed() ^ 0xdae);
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut sent = HashSet::new();
    let mut next_id = 3_000_000u64;
    let mut takeovers = 0;
    let mut per_round = Vec::new();
    for round in 0..rounds() {
        let (mut daemon, lines, reader) = start_daemon(&rig, &rt);
        let client = api_client(&rig);
        let kill_after = Duration::from_millis(300 + rng.below(1700));
        let before = acked.lock().expect("acked").len();
        let mut tasks = Vec::new();
        for c in 0..8u64 {
            let (client, acked) = (client.clone(), Arc::clone(&acked));
            let base = next_id + c * 100_000;
            tasks.push(rt.spawn(async move {
                let mut tried = Vec::new();
                for i in 0..100_000u64 {
                    let id = (base + i).to_string();
                    tried.push(id.clone());
                    match client.add(std::slice::from_ref(&id), Some("crash")).await {
                        Ok(_) => acked.lock().expect("acked").push(id),
                        Err(_) => break,
                    }
                }
                tried
            }));
        }
        next_id += 1_000_000;
        std::thread::sleep(kill_after);
        daemon.kill().expect("kill -9");
        daemon.wait().expect("wait");
        for t in tasks {
            sent.extend(rt.block_on(t).expect("client task"));
        }
        reader.join().expect("stderr reader");
        let log = lines.lock().expect("lines").clone();
        takeovers += crate::rig::takeovers(log.iter().map(String::as_str)).len();
        let n = acked.lock().expect("acked").len() - before;
        assert!(
            n > 0 || round > 0,
            "no add was acknowledged before the kill:\n{}",
            log.join("\n")
        );
        per_round.push(format!("{n} acks in {kill_after:?}"));
    }

    // The daemon is dead: the CLI opens the list itself.
    let out = rig.run(&["erase", "list", "--json"]);
    assert!(out.status.success(), "erase list: {}", text(&out.stderr));
    let entries: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).expect("erase list --json");
    let listed: HashSet<String> = entries
        .iter()
        .filter_map(|e| e["subject"].as_str().map(str::to_string))
        .collect();
    assert_eq!(listed.len(), entries.len(), "an id is listed twice");
    let acked = acked.lock().expect("acked").clone();
    let lost: Vec<&String> = acked.iter().filter(|id| !listed.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged ids lost, e.g. {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
    let invented: Vec<&String> = listed.iter().filter(|id| !sent.contains(*id)).collect();
    assert!(invented.is_empty(), "listed but never sent: {invented:?}");
    // `erase check` on a seeded sample of the acknowledged ids.
    let mut checked = 0;
    for _ in 0..10.min(acked.len()) {
        let id = &acked[rng.below(acked.len() as u64) as usize];
        let out = rig.run(&["erase", "check", id]);
        assert!(
            out.status.success() && text(&out.stdout).starts_with("listed:"),
            "erase check {id}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        checked += 1;
    }
    // A restarted daemon serves the same list.
    let (mut daemon, _lines, reader) = start_daemon(&rig, &rt);
    let count = rt
        .block_on(api_client(&rig).status())
        .expect("status")
        .count;
    // SAFETY: a signal to the daemon this test started.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let status = daemon.wait().expect("wait");
    reader.join().expect("stderr reader");
    assert_eq!(
        count,
        listed.len() as u64,
        "the restarted daemon's count differs from the list"
    );
    assert_eq!(status.code(), Some(0), "daemon after SIGTERM");
    eprintln!(
        "crash (daemon): {} kill -9 of `lethe daemon` under 8 API clients ({}); {} acknowledged, \
         {} listed (acked + in flight at the kill), 0 lost, 0 invented; {checked} ids checked with \
         `erase check`; restarted daemon counts {count}; {takeovers} snapshot locks taken over at start",
        rounds(),
        per_round.join(", "),
        acked.len(),
        listed.len()
    );
}
