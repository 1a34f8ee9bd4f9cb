use super::*;
use crate::storage::fs::FsStorage;
use std::time::Duration;

fn repo() -> (tempfile::TempDir, Arc<dyn Storage>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = FsStorage::open(dir.path().to_path_buf()).expect("fs storage");
    (dir, Arc::new(s))
}

fn entry(kind: Kind, action: &str, n: u64) -> Entry {
    Entry::new(kind, action).count("rows", n).list(ListState {
        count: 3,
        digest: "ab".repeat(32),
    })
}

async fn add(s: &Arc<dyn Storage>, n: u64) -> Appended {
    append_with(
        Arc::clone(s),
        entry(Kind::Restore, "completed", n),
        Duration::ZERO,
    )
    .await
    .expect("append")
}

async fn judged(s: &Arc<dyn Storage>) -> Result<Verified, Broken> {
    verify(&read_chain(s.as_ref()).await.expect("read"))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn an_empty_log_verifies_and_records_chain_from_one() {
    rt().block_on(async {
        let (_d, s) = repo();
        let v = judged(&s).await.expect("empty verifies");
        assert_eq!(v.records, 0);
        let a = add(&s, 1).await;
        let b = add(&s, 2).await;
        let c = add(&s, 3).await;
        assert_eq!((a.seq, b.seq, c.seq), (1, 2, 3));
        let chain = read_chain(s.as_ref()).await.expect("read");
        let recs: Vec<&Record> = chain
            .records
            .iter()
            .map(|r| r.record.as_ref().expect("parses"))
            .collect();
        assert_eq!(recs[0].prev, None);
        assert_eq!(recs[1].prev.as_deref(), Some(a.hash.as_str()));
        assert_eq!(recs[2].prev.as_deref(), Some(b.hash.as_str()));
        assert_eq!(recs[2].entry.counts["rows"], 3);
        assert_eq!(recs[2].lethe_version, env!("CARGO_PKG_VERSION"));
        let v = judged(&s).await.expect("verifies");
        assert_eq!(v.records, 3);
        assert_eq!(v.last_hash.as_deref(), Some(c.hash.as_str()));
    });
}

#[test]
fn an_edited_record_is_named() {
    rt().block_on(async {
        let (_d, s) = repo();
        add(&s, 1).await;
        let b = add(&s, 2).await;
        add(&s, 3).await;
        let text =
            String::from_utf8(s.get_bytes(&b.key).await.expect("get").to_vec()).expect("utf8");
        let edited = text.replace("\"rows\": 2", "\"rows\": 200");
        assert_ne!(text, edited);
        s.put_bytes(&b.key, edited.into()).await.expect("put");
        let e = judged(&s).await.expect_err("an edit is caught");
        assert_eq!(e.key, b.key, "{e}");
        assert!(e.what.contains("edited"), "{e}");
    });
}

#[test]
fn a_record_rewritten_under_a_new_name_breaks_the_next_link() {
    rt().block_on(async {
        let (_d, s) = repo();
        add(&s, 1).await;
        let b = add(&s, 2).await;
        let c = add(&s, 3).await;
        // A forger re-hashes the edited record and renames it: the next
        // record still names the old hash.
        let mut r: Record =
            serde_json::from_slice(&s.get_bytes(&b.key).await.expect("get")).expect("record");
        r.entry.counts.insert("rows".into(), 200);
        let body = serde_json::to_vec_pretty(&r).expect("json");
        s.delete(&b.key).await.expect("delete");
        s.put_bytes(&record_key(2, &hash(&body)), body.into())
            .await
            .expect("put");
        let e = judged(&s).await.expect_err("caught");
        assert_eq!(e.key, c.key, "{e}");
        assert!(e.what.contains("names"), "{e}");
    });
}

#[test]
fn a_removed_record_is_named_as_missing() {
    rt().block_on(async {
        let (_d, s) = repo();
        let a = add(&s, 1).await;
        let b = add(&s, 2).await;
        let c = add(&s, 3).await;
        s.delete(&b.key).await.expect("delete");
        let e = judged(&s).await.expect_err("caught");
        assert_eq!(e.key, c.key, "{e}");
        assert!(e.what.contains("record 2 is missing"), "{e}");
        assert!(e.what.contains(&a.key), "{e}");
    });
}

#[test]
fn the_newest_record_removed_is_caught_by_the_head_and_the_next_append_keeps_the_hole() {
    rt().block_on(async {
        let (_d, s) = repo();
        add(&s, 1).await;
        let b = add(&s, 2).await;
        s.delete(&b.key).await.expect("delete");
        let e = judged(&s).await.expect_err("caught");
        assert_eq!(e.key, HEAD_KEY, "{e}");
        assert!(e.what.contains("removed"), "{e}");
        // A later writer chains onto the head, not onto record 1: the hole stays.
        let c = add(&s, 3).await;
        assert_eq!(c.seq, 3);
        let e = judged(&s).await.expect_err("still caught");
        assert_eq!(e.key, c.key, "{e}");
        assert!(e.what.contains("record 2 is missing"), "{e}");
    });
}

#[test]
fn a_fork_is_named_with_both_records() {
    rt().block_on(async {
        let (_d, s) = repo();
        let a = add(&s, 1).await;
        // A stalled writer that lost its lease writes number 2 as well.
        let r = Record {
            format: FORMAT,
            seq: 2,
            prev: Some(a.hash.clone()),
            at: Utc::now(),
            host: "other".into(),
            lethe_version: "0".into(),
            entry: entry(Kind::Prune, "completed", 9),
        };
        let body = serde_json::to_vec_pretty(&r).expect("json");
        let other = record_key(2, &hash(&body));
        add(&s, 2).await;
        s.put_bytes(&other, body.into()).await.expect("put");
        let e = judged(&s).await.expect_err("a fork is never silent");
        assert!(e.what.contains("forks"), "{e}");
        assert!(e.what.contains(&other), "{e}");
    });
}

#[test]
fn a_stray_object_is_named() {
    rt().block_on(async {
        let (_d, s) = repo();
        add(&s, 1).await;
        s.put_bytes("evidence/notes.txt", "x".into())
            .await
            .expect("put");
        let e = judged(&s).await.expect_err("caught");
        assert_eq!(e.key, "evidence/notes.txt", "{e}");
    });
}

#[test]
fn many_writers_at_once_leave_one_chain() {
    rt().block_on(async {
        let (_d, s) = repo();
        let mut tasks = Vec::new();
        for n in 0..6 {
            let s = Arc::clone(&s);
            tasks.push(tokio::spawn(async move {
                append_with(s, entry(Kind::Erasure, "add", n), Duration::from_millis(20))
                    .await
                    .expect("append")
            }));
        }
        let mut seqs = Vec::new();
        for t in tasks {
            seqs.push(t.await.expect("join").seq);
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=6).collect::<Vec<_>>());
        assert_eq!(judged(&s).await.expect("verifies").records, 6);
    });
}

#[test]
fn expiry_removes_the_oldest_and_what_is_kept_still_verifies() {
    rt().block_on(async {
        let (_d, s) = repo();
        for n in 0..4 {
            add(&s, n).await;
        }
        // Nothing is old yet.
        assert_eq!(expire(s.as_ref(), 1, Utc::now()).await.expect("expire"), 0);
        // Ten days on, with a 5-day rule: all four go, the horizon stays.
        let later = Utc::now() + chrono::Duration::days(10);
        assert_eq!(expire(s.as_ref(), 5, later).await.expect("expire"), 4);
        let v = judged(&s).await.expect("verifies");
        assert_eq!((v.records, v.horizon), (0, Some(4)));
        let e = add(&s, 5).await;
        assert_eq!(e.seq, 5);
        let v = judged(&s).await.expect("verifies after the horizon");
        assert_eq!((v.records, v.first_seq), (1, Some(5)));
    });
}

#[test]
fn record_keys_parse_only_in_their_own_form() {
    let h = "0".repeat(64);
    assert_eq!(parse_record_key(&record_key(7, &h)), Some((7, h.as_str())));
    assert_eq!(parse_record_key("evidence/head.json"), None);
    assert_eq!(parse_record_key("evidence/7-00.json"), None);
    assert_eq!(
        parse_record_key(&format!("evidence/000000000007-{}.json", "G".repeat(64))),
        None
    );
}

async fn lock_held(s: &Arc<dyn Storage>) -> bool {
    s.get_bytes(LOCK_KEY).await.is_ok()
}

async fn until(s: &Arc<dyn Storage>, held: bool) {
    for _ in 0..300 {
        if lock_held(s).await == held {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "the evidence lock never became {}",
        if held { "held" } else { "free" }
    );
}

#[test]
fn an_early_turn_is_taken_when_ready_and_its_record_goes_first() {
    rt().block_on(async {
        let (_d, s) = repo();
        let ready = Arc::new(tokio::sync::Notify::new());
        let r = Arc::clone(&ready);
        let turn = EarlyTurn::start_with(
            Arc::clone(&s),
            async move { r.notified().await },
            Duration::from_secs(30),
            Duration::ZERO,
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !lock_held(&s).await,
            "the turn was taken before it was ready"
        );
        ready.notify_one();
        until(&s, true).await;
        // Another writer that comes now waits behind the early turn.
        let other = tokio::spawn({
            let s = Arc::clone(&s);
            async move {
                append_with(s, entry(Kind::Prune, "completed", 2), Duration::ZERO)
                    .await
                    .expect("the other writer appends")
            }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !other.is_finished(),
            "the other writer did not wait its turn"
        );
        let ours = append_in_turn(
            Arc::clone(&s),
            entry(Kind::Restore, "completed", 1),
            Duration::ZERO,
            Some(turn),
        )
        .await
        .expect("append in the early turn");
        assert_eq!(ours.seq, 1);
        assert_eq!(other.await.expect("joins").seq, 2);
        assert!(!lock_held(&s).await, "the lock was left behind");
        assert_eq!(judged(&s).await.expect("verifies").records, 2);
    });
}

#[test]
fn an_early_turn_not_claimed_within_its_hold_is_given_back() {
    rt().block_on(async {
        let (_d, s) = repo();
        let turn = EarlyTurn::start_with(
            Arc::clone(&s),
            async {},
            Duration::from_millis(200),
            Duration::ZERO,
        );
        until(&s, true).await;
        until(&s, false).await;
        // Others can write meanwhile, and the late record takes a turn of
        // its own.
        assert_eq!(add(&s, 1).await.seq, 1);
        let late = append_in_turn(
            Arc::clone(&s),
            entry(Kind::Restore, "failed", 2),
            Duration::ZERO,
            Some(turn),
        )
        .await
        .expect("append after the hold");
        assert_eq!(late.seq, 2);
        assert!(!lock_held(&s).await);
    });
}

#[test]
fn an_early_turn_claimed_before_it_was_ready_takes_a_turn_of_its_own() {
    rt().block_on(async {
        let (_d, s) = repo();
        let turn = EarlyTurn::start_with(
            Arc::clone(&s),
            std::future::pending::<()>(),
            Duration::from_secs(30),
            Duration::ZERO,
        );
        let a = append_in_turn(
            Arc::clone(&s),
            entry(Kind::Restore, "failed", 1),
            Duration::ZERO,
            Some(turn),
        )
        .await
        .expect("append");
        assert_eq!(a.seq, 1);
        assert!(!lock_held(&s).await);
        // An early turn dropped unclaimed after it took the lease gives it
        // back at once.
        let turn = EarlyTurn::start_with(
            Arc::clone(&s),
            async {},
            Duration::from_secs(30),
            Duration::ZERO,
        );
        until(&s, true).await;
        drop(turn);
        until(&s, false).await;
    });
}
