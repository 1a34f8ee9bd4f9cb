//! `lethe erase import` is all or nothing, also when killed: a bulk import is
//! one ingested SST file, so after kill -9 at any instant the list holds
//! either every id of the file (counted, digest exact) or none of them.

use crate::common::{self, Repo, write_repo_config};
use lethe::config::{Config, SubjectType};
use lethe::erasure::{ErasureSet, ErasureStore, MemSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const IDS: u64 = 300_000;

fn listed_of(store: &ErasureStore, ids: &[String]) -> usize {
    ids.iter()
        .filter(|i| store.get(i).expect("get").is_some())
        .count()
}

#[test]
fn an_import_killed_at_any_instant_lists_all_of_the_file_or_nothing() {
    let repo = tempfile::tempdir().unwrap();
    let ids: Vec<String> = (0..IDS)
        .map(|i| (7_000_000_000 + i * 11).to_string())
        .collect();
    // Probes across the file: enough to catch a partial import.
    let probes: Vec<String> = ids.iter().step_by(997).cloned().collect();
    let mut outcomes = (0, 0);
    // The first import runs to completion and gives its duration; the
    // others are killed at fractions of it, most of them late, where the
    // write and the journal upload happen.
    let fractions = [
        None,
        Some(0.3),
        Some(0.6),
        Some(0.75),
        Some(0.85),
        Some(0.9),
        Some(0.95),
        Some(1.0),
        Some(1.1),
    ];
    let mut full = Duration::ZERO;
    for (round, fraction) in fractions.into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = write_repo_config(dir.path(), &Repo::File(repo.path()), "");
        // Some of the file listed before: already-listed ids count once.
        let out = common::lethe(&cfg, &["erase", "add", &ids[5], &ids[6]]);
        assert!(out.status.success(), "{out:?}");
        let file = dir.path().join("ids.txt");
        std::fs::write(&file, ids.join("\n")).unwrap();
        let t = Instant::now();
        let mut child = Command::new(common::lethe_bin())
            .arg("--config")
            .arg(&cfg)
            .args(["erase", "import", file.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start lethe erase import");
        let delay = fraction.map(|f| full.mul_f64(f));
        if let Some(d) = delay {
            while t.elapsed() < d {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            let _ = child.kill(); // SIGKILL (a no-op once it has exited)
            child.wait().unwrap();
        } else {
            assert!(child.wait().unwrap().success(), "the first import failed");
            full = t.elapsed();
        }

        let c = Config::load(&cfg).unwrap();
        let store = ErasureStore::open(&c.erasure.path, SubjectType::Bigint).expect("reopen");
        let state = store
            .verify_state()
            .expect("count and digest match the entries");
        let (set, loaded) = MemSet::load(&store).unwrap();
        assert_eq!(
            (set.len() as u64, loaded.clone()),
            (state.count, state.clone())
        );
        let listed = listed_of(&store, &probes);
        match state.count {
            2 => {
                assert_eq!(listed, 0, "round {round}: ids listed but not counted");
                outcomes.0 += 1;
            }
            n if n == IDS => {
                assert_eq!(listed, probes.len(), "round {round}");
                outcomes.1 += 1;
            }
            n => panic!("round {round} (killed after {delay:?}): {n} entries, a partial import"),
        }
        // The pending ids are exactly those not yet in the journal.
        let st = store.status().unwrap();
        assert!(st.pending <= st.count, "{st:?}");
    }
    eprintln!(
        "imports killed before the write: {}, complete: {}",
        outcomes.0, outcomes.1
    );

    // The first import completed and uploaded its journal object: a fresh
    // host rebuilds the full list from the shared repository.
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_repo_config(dir.path(), &Repo::File(repo.path()), "");
    let out = common::lethe(&cfg, &["erase", "sync"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("the list holds {IDS} entries")),
        "{text}"
    );
}
