//! Journal tests against the directory backend (the S3 path is covered by
//! the integration tests with Garage).

use super::*;
use crate::erasure::config::SubjectType;
use crate::storage::fs::FsStorage;

struct Host {
    store: Arc<ErasureStore>,
    _dir: tempfile::TempDir,
}

fn host(t: SubjectType) -> Host {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ErasureStore::open(&dir.path().join("list"), t).unwrap());
    Host { store, _dir: dir }
}

fn repo() -> (tempfile::TempDir, Arc<dyn Storage>) {
    let dir = tempfile::tempdir().unwrap();
    let s = FsStorage::open(dir.path().to_path_buf()).unwrap();
    (dir, Arc::new(s))
}

#[tokio::test]
async fn two_hosts_converge_and_a_fresh_host_rebuilds() {
    let (_r, storage) = repo();
    let a = host(SubjectType::Bigint);
    let b = host(SubjectType::Bigint);
    a.store.add(&["1", "2", "3"], Some("T-1")).unwrap();
    b.store.add(&["3", "4"], None).unwrap();
    b.store.add(&["5"], None).unwrap();

    // a is behind nothing yet (b has not pushed), b is fresh too.
    check_fresh(&a.store, storage.as_ref()).await.unwrap();
    let sa = sync(&a.store, &storage).await.unwrap();
    assert_eq!((sa.pushed, sa.new_entries), (3, 0));
    // b has not merged a's object: a restore on b must refuse.
    let err = check_fresh(&b.store, storage.as_ref()).await.unwrap_err();
    assert!(
        matches!(err, StaleError::Behind { missing: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("lethe erase sync"));

    let sb = sync(&b.store, &storage).await.unwrap();
    assert_eq!((sb.new_entries, sb.pushed, sb.count), (2, 3, 5));
    let sa = sync(&a.store, &storage).await.unwrap();
    assert_eq!((sa.new_entries, sa.objects_merged, sa.count), (2, 1, 5));
    assert_eq!(a.store.state(), b.store.state());
    assert_eq!(
        check_fresh(&a.store, storage.as_ref()).await.unwrap(),
        b.store.state()
    );

    // Incremental: nothing new to read.
    let again = sync(&a.store, &storage).await.unwrap();
    assert_eq!(again.objects_merged, 0);

    let fresh = host(SubjectType::Bigint);
    let sf = sync(&fresh.store, &storage).await.unwrap();
    assert_eq!(sf.count, 5);
    assert_eq!(fresh.store.state(), a.store.state());
    let e = fresh.store.get("1").unwrap().unwrap();
    assert_eq!(e.reference.as_deref(), Some("T-1"));
    assert!(e.journaled);
    fresh.store.verify_state().unwrap();
}

#[tokio::test]
async fn pushes_split_into_bounded_objects_and_resume_after_failure() {
    let (dir, storage) = repo();
    let a = host(SubjectType::Bigint);
    // Two batches that do not fit one object together, plus a small one.
    let half = MAX_PER_OBJECT as i64 * 3 / 5;
    let ids: Vec<String> = (0..half * 2 + 10).map(|i| i.to_string()).collect();
    a.store.add(&ids[..half as usize], None).unwrap();
    a.store.add(&ids[half as usize..], None).unwrap();

    // Storage unusable: the push fails and nothing is lost from pending.
    let blocked: Arc<dyn Storage> = Arc::new(FsStorage::open(dir.path().join("blocked")).unwrap());
    std::fs::remove_dir_all(dir.path().join("blocked")).unwrap();
    std::fs::write(dir.path().join("blocked"), b"not a dir").unwrap();
    assert!(push_pending(&a.store, &blocked).await.is_err());
    assert_eq!(a.store.status().unwrap().pending, ids.len() as u64);

    assert_eq!(
        push_pending(&a.store, &storage).await.unwrap(),
        ids.len() as u64
    );
    let names = list_names(storage.as_ref()).await.unwrap();
    assert_eq!(names.len(), 2);
    assert_eq!(a.store.status().unwrap().pending, 0);
}

#[tokio::test]
async fn bad_journal_objects_are_named_and_stop_the_sync() {
    let (_r, storage) = repo();
    let a = host(SubjectType::Uuid);
    storage
        .put_bytes(
            "erasures/01HZZZZZZZZZZZZZZZZZZZZZZZ.json",
            Bytes::from_static(b"{not json"),
        )
        .await
        .unwrap();
    let err = sync(&a.store, &storage).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("erasures/01HZZZZZZZZZZZZZZZZZZZZZZZ.json"),
        "{err}"
    );
    let body = br#"{"format":1,"subject_type":"bigint","groups":[]}"#;
    storage
        .put_bytes(
            "erasures/01HZZZZZZZZZZZZZZZZZZZZZZZ.json",
            Bytes::from_static(body),
        )
        .await
        .unwrap();
    let err = sync(&a.store, &storage).await.unwrap_err();
    assert!(err.to_string().contains("Bigint"), "{err}");
    // Unrelated keys under erasures/ are ignored.
    storage
        .delete("erasures/01HZZZZZZZZZZZZZZZZZZZZZZZ.json")
        .await
        .unwrap();
    storage
        .put_bytes("erasures/README", Bytes::from_static(b"x"))
        .await
        .unwrap();
    assert_eq!(sync(&a.store, &storage).await.unwrap().objects_merged, 0);
}

#[tokio::test]
async fn worker_pushes_after_adds_and_stops_on_cancel() {
    let (_r, storage) = repo();
    let a = host(SubjectType::Text);
    let stop = CancellationToken::new();
    let opts = WorkerOptions {
        sync_every: Duration::from_secs(3600),
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        coalesce: Duration::from_millis(20),
    };
    let task = tokio::spawn(run_worker(
        Arc::clone(&a.store),
        Arc::clone(&storage),
        opts,
        stop.clone(),
    ));
    a.store.add(&["alice@example.com"], None).unwrap();
    let mut waited = 0;
    while a.store.status().unwrap().pending > 0 && waited < 500 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += 1;
    }
    assert_eq!(a.store.status().unwrap().pending, 0);
    assert_eq!(list_names(storage.as_ref()).await.unwrap().len(), 1);
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_bad_journal_object_does_not_hold_back_this_hosts_uploads() {
    let (_r, storage) = repo();
    storage
        .put_bytes(
            "erasures/01HZZZZZZZZZZZZZZZZZZZZZZZ.json",
            Bytes::from_static(b"garbage"),
        )
        .await
        .unwrap();
    let a = host(SubjectType::Bigint);
    a.store.add(&["1"], None).unwrap();
    // A manual sync fails naming the object, but has uploaded "1" first.
    let err = sync(&a.store, &storage).await.unwrap_err();
    assert!(
        err.to_string().contains("01HZZZZZZZZZZZZZZZZZZZZZZZ"),
        "{err}"
    );
    assert_eq!(a.store.status().unwrap().pending, 0);
    // The worker keeps pushing new adds while its syncs keep failing.
    let stop = CancellationToken::new();
    let opts = WorkerOptions {
        sync_every: Duration::from_secs(3600),
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        coalesce: Duration::from_millis(10),
    };
    let task = tokio::spawn(run_worker(
        Arc::clone(&a.store),
        Arc::clone(&storage),
        opts,
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    a.store.add(&["2"], None).unwrap();
    let mut waited = 0;
    while a.store.status().unwrap().pending > 0 && waited < 500 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += 1;
    }
    assert_eq!(a.store.status().unwrap().pending, 0);
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_removal_reaches_every_host_and_a_later_sync_never_brings_it_back() {
    let (_r, storage) = repo();
    let a = host(SubjectType::Bigint);
    let b = host(SubjectType::Bigint);
    a.store.add(&["7", "8"], Some("T-1")).unwrap();
    sync(&a.store, &storage).await.unwrap();
    sync(&b.store, &storage).await.unwrap();
    assert!(b.store.get("7").unwrap().is_some());

    let out = a.store.remove(&["7"], "typo for 17").unwrap();
    assert_eq!((out.removed, out.count), (1, 1));
    assert_eq!(
        a.store.status().unwrap().pending,
        1,
        "the removal is pending"
    );
    let sa = sync(&a.store, &storage).await.unwrap();
    assert_eq!((sa.pushed, sa.count), (1, 1));
    assert_eq!(a.store.status().unwrap().pending, 0);
    // b is behind until it merges the removal: restores there refuse.
    assert!(check_fresh(&b.store, storage.as_ref()).await.is_err());
    let sb = sync(&b.store, &storage).await.unwrap();
    assert_eq!((sb.removed, sb.count), (1, 1));
    assert!(b.store.get("7").unwrap().is_none());
    assert_eq!(a.store.state(), b.store.state());
    b.store.verify_state().unwrap();
    for _ in 0..2 {
        sync(&b.store, &storage).await.unwrap();
        sync(&a.store, &storage).await.unwrap();
        assert!(b.store.get("7").unwrap().is_none());
    }
    let removed = b.store.removals().unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!(
        (removed[0].subject.as_str(), removed[0].reason.as_str()),
        ("7", "typo for 17")
    );
    // A fresh host replays add then removal: the same list.
    let c = host(SubjectType::Bigint);
    sync(&c.store, &storage).await.unwrap();
    assert!(c.store.get("7").unwrap().is_none());
    assert_eq!(c.store.state(), a.store.state());

    // An add after the removal erases the id again, everywhere.
    b.store.add(&["7"], Some("really 7")).unwrap();
    sync(&b.store, &storage).await.unwrap();
    sync(&a.store, &storage).await.unwrap();
    sync(&c.store, &storage).await.unwrap();
    for h in [&a, &b, &c] {
        assert!(h.store.get("7").unwrap().is_some());
        assert_eq!(h.store.state(), b.store.state());
        h.store.verify_state().unwrap();
    }
}

#[test]
fn the_later_of_an_add_and_a_removal_wins_whatever_the_merge_order() {
    use crate::erasure::store::{BatchRecord, RemovalRecord};
    let at = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&Utc)
    };
    let add = |t: &str| BatchRecord {
        added_at: at(t),
        reference: None,
        origin: "h".into(),
    };
    let rm = |t: &str| RemovalRecord {
        removed_at: at(t),
        reason: "typo".into(),
        origin: "h".into(),
    };
    let ids = || vec!["5".to_string()];
    let early = "2026-01-01T00:00:00Z";
    let mid = "2026-01-02T00:00:00Z";
    let late = "2026-01-03T00:00:00Z";
    // Removal seen before the older add: the add stays removed.
    let x = host(SubjectType::Bigint);
    x.store
        .merge_journal_with("01R.json", vec![], vec![(rm(mid), ids())])
        .unwrap();
    x.store
        .merge_journal("01A.json", vec![(add(early), ids())])
        .unwrap();
    assert!(x.store.get("5").unwrap().is_none());
    // ... but a newer add lists it again.
    x.store
        .merge_journal("01B.json", vec![(add(late), ids())])
        .unwrap();
    assert!(x.store.get("5").unwrap().is_some());
    // The other order: the same result.
    let y = host(SubjectType::Bigint);
    y.store
        .merge_journal("01A.json", vec![(add(early), ids())])
        .unwrap();
    y.store
        .merge_journal_with("01R.json", vec![], vec![(rm(mid), ids())])
        .unwrap();
    assert!(y.store.get("5").unwrap().is_none());
    y.store
        .merge_journal("01B.json", vec![(add(late), ids())])
        .unwrap();
    assert_eq!(x.store.state(), y.store.state());
    // A tie is an add (fail closed).
    let z = host(SubjectType::Bigint);
    z.store
        .merge_journal("01A.json", vec![(add(mid), ids())])
        .unwrap();
    z.store
        .merge_journal_with("01R.json", vec![], vec![(rm(mid), ids())])
        .unwrap();
    assert!(z.store.get("5").unwrap().is_some());
}

#[test]
fn removing_an_id_not_listed_changes_nothing_and_a_reason_is_required() {
    let h = host(SubjectType::Bigint);
    h.store.add(&["1", "2"], None).unwrap();
    let before = h.store.state();
    let err = h.store.remove(&["1", "3", "4"], "typo").unwrap_err();
    assert!(
        matches!(err, StoreError::NotListed(ref v) if v == &["3", "4"]),
        "{err}"
    );
    assert!(err.to_string().contains("3, 4") && err.to_string().contains("nothing was removed"));
    let err = h.store.remove(&["1"], "  ").unwrap_err();
    assert!(matches!(err, StoreError::BadReason(_)), "{err}");
    assert_eq!(h.store.state(), before);
    assert!(h.store.get("1").unwrap().is_some());
    assert_eq!(h.store.status().unwrap().pending, 2);
}
