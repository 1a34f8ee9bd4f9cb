//! Unit tests of the RocksDB store: durability is covered by the integration
//! tests (a killed process), these check the bookkeeping.

use super::*;
use crate::erasure::ErasureSet;

fn temp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

#[test]
fn add_counts_new_ids_once_and_survives_reopen() {
    let dir = temp();
    let path = dir.path().join("list");
    let state = {
        let s = ErasureStore::open(&path, SubjectType::Bigint).unwrap();
        let a = s.add(&["1", "2", " 0003 ", "2"], Some("T-1")).unwrap();
        assert_eq!(
            (a.added, a.already_listed, a.count, a.pending),
            (3, 1, 3, 3)
        );
        let b = s.add(&["3", "4"], None).unwrap();
        assert_eq!(
            (b.added, b.already_listed, b.count, b.pending),
            (1, 1, 4, 4)
        );
        let e = s.get("3").unwrap().unwrap();
        assert_eq!(e.subject, "3");
        assert_eq!(e.reference.as_deref(), Some("T-1"));
        assert!(!e.journaled);
        assert!(s.get("5").unwrap().is_none());
        s.state()
    };
    let s = ErasureStore::open(&path, SubjectType::Bigint).unwrap();
    assert_eq!(s.state(), state);
    assert_eq!(s.verify_state().unwrap(), state);
    assert_eq!(s.status().unwrap().pending, 4);
}

#[test]
fn digest_does_not_depend_on_order_or_batching() {
    let dir = temp();
    let a = ErasureStore::open(&dir.path().join("a"), SubjectType::Text).unwrap();
    let b = ErasureStore::open(&dir.path().join("b"), SubjectType::Text).unwrap();
    a.add(&["x", "y", "z"], None).unwrap();
    b.add(&["z"], None).unwrap();
    b.add(&["y", "x"], Some("r")).unwrap();
    assert_eq!(a.state(), b.state());
    assert_ne!(a.state().digest, "0".repeat(64));
    let empty = ErasureStore::open(&dir.path().join("c"), SubjectType::Text).unwrap();
    assert_eq!(
        empty.state(),
        ListState {
            count: 0,
            digest: "0".repeat(64)
        }
    );
}

#[test]
fn invalid_ids_refuse_the_whole_add() {
    let dir = temp();
    let s = ErasureStore::open(dir.path(), SubjectType::Uuid).unwrap();
    let err = s
        .add(
            &["0b6e6f3c-5c1a-4d2e-9f00-aa11bb22cc33", "nope", "also-bad"],
            None,
        )
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("\"nope\"")
            && msg.contains("\"also-bad\"")
            && msg.contains("nothing was added"),
        "{msg}"
    );
    assert_eq!(s.state().count, 0);
    assert!(matches!(
        s.add(&["1"], Some("a\nb")),
        Err(StoreError::BadReference(_))
    ));
}

#[test]
fn wrong_type_unknown_version_and_foreign_data_are_refused() {
    let dir = temp();
    let path = dir.path().join("list");
    drop(ErasureStore::open(&path, SubjectType::Bigint).unwrap());
    let err = ErasureStore::open(&path, SubjectType::Uuid).unwrap_err();
    assert!(matches!(err, StoreError::TypeMismatch { .. }), "{err}");
    {
        let db = DB::open_default(&path).unwrap();
        db.put(K_VERSION, "99").unwrap();
    }
    let err = ErasureStore::open(&path, SubjectType::Bigint).unwrap_err();
    assert!(
        matches!(err, StoreError::UnknownVersion { ref found, .. } if found == "99"),
        "{err}"
    );
    assert!(err.to_string().contains(&path.display().to_string()));

    let other = dir.path().join("other");
    {
        let db = DB::open_default(&other).unwrap();
        db.put(b"something", b"else").unwrap();
    }
    let err = ErasureStore::open(&other, SubjectType::Bigint).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
}

#[test]
fn corrupt_files_are_a_clear_error() {
    let dir = temp();
    let path = dir.path().join("list");
    drop(ErasureStore::open(&path, SubjectType::Bigint).unwrap());
    std::fs::write(path.join("CURRENT"), b"garbage\n").unwrap();
    let err = ErasureStore::open(&path, SubjectType::Bigint).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
}

#[test]
fn missing_store_is_refused_for_restores_and_lock_is_reported() {
    let dir = temp();
    let path = dir.path().join("absent");
    assert!(matches!(
        ErasureStore::open_existing(&path, SubjectType::Bigint),
        Err(StoreError::Missing { .. })
    ));
    assert!(matches!(
        ErasureStore::open_for_restore(&path, SubjectType::Bigint),
        Err(StoreError::Missing { .. })
    ));
    let writer = ErasureStore::open(&path, SubjectType::Bigint).unwrap();
    writer.add(&["7"], None).unwrap();
    // Same process, second handle: RocksDB's lock refuses it like another process would be.
    let err = ErasureStore::open(&path, SubjectType::Bigint).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    let reader = ErasureStore::open_for_restore(&path, SubjectType::Bigint).unwrap();
    assert!(reader.is_read_only());
    assert_eq!(reader.state().count, 1);
    assert!(reader.get("7").unwrap().is_some());
    assert!(matches!(
        reader.add(&["8"], None),
        Err(StoreError::Locked { .. })
    ));
}

#[test]
fn pending_chunks_and_journal_merges() {
    let dir = temp();
    let s = ErasureStore::open(dir.path(), SubjectType::Bigint).unwrap();
    s.add(&["1", "2"], Some("a")).unwrap();
    s.add(&["3"], Some("b")).unwrap();
    let chunk = s.pending_chunk(10).unwrap();
    assert_eq!(chunk.len(), 3);
    assert_eq!(chunk.groups.len(), 2);
    assert_eq!(chunk.groups[0].1, vec!["1".to_string(), "2".to_string()]);
    assert_eq!(chunk.groups[1].0.reference.as_deref(), Some("b"));
    let partial = s.pending_chunk(2).unwrap();
    assert_eq!(partial.len(), 2);
    s.mark_journaled("01A.json", &chunk).unwrap();
    assert_eq!(s.status().unwrap().pending, 0);
    assert!(s.get("1").unwrap().unwrap().journaled);
    // Marking twice does not drive the pending count below zero.
    s.mark_journaled("01A.json", &chunk).unwrap();
    assert_eq!(s.status().unwrap().pending, 0);

    let rec = BatchRecord {
        added_at: Utc::now(),
        reference: None,
        origin: "elsewhere".into(),
    };
    let new = s
        .merge_journal(
            "01B.json",
            vec![
                (rec.clone(), vec!["3".into(), "4".into()]),
                (rec, vec!["4".into(), "5".into()]),
            ],
        )
        .unwrap();
    assert_eq!(new, 2);
    assert_eq!(s.state().count, 5);
    assert_eq!(s.status().unwrap().pending, 0);
    let merged = s.merged_objects().unwrap();
    assert!(merged.contains("01A.json") && merged.contains("01B.json"));
    let mut seen = Vec::new();
    s.for_each_entry(|e| {
        seen.push((e.subject, e.origin, e.journaled));
        Ok(())
    })
    .unwrap();
    assert_eq!(seen.len(), 5);
    assert!(seen.iter().all(|(_, _, j)| *j));
    assert!(seen.iter().any(|(s, o, _)| s == "5" && o == "elsewhere"));
    s.verify_state().unwrap();
}

#[test]
fn a_secondary_catches_up_and_loads_a_consistent_set() {
    let dir = temp();
    let path = dir.path().join("list");
    let writer = ErasureStore::open(&path, SubjectType::Bigint).unwrap();
    writer.add(&["1", "2"], None).unwrap();
    let reader = ErasureStore::open_for_restore(&path, SubjectType::Bigint).unwrap();
    writer.add(&["3"], None).unwrap();
    // The secondary's view moves only on catch_up, and then completely.
    let (set, state) = crate::erasure::MemSet::load(&reader).unwrap();
    assert_eq!((set.len(), state.count), (2, 2));
    reader.catch_up().unwrap();
    assert_eq!(reader.state(), writer.state());
    let (set, state) = crate::erasure::MemSet::load(&reader).unwrap();
    assert_eq!(state, writer.state());
    assert_eq!(set.len(), 3);
    // On the primary, a load while another thread keeps adding still
    // matches the state of the view it read.
    let w = std::sync::Arc::new(writer);
    let w2 = std::sync::Arc::clone(&w);
    let adder = std::thread::spawn(move || {
        for i in 100..400 {
            w2.add(&[i.to_string()], None).unwrap();
        }
    });
    for _ in 0..20 {
        let (set, state) = crate::erasure::MemSet::load(&w).unwrap();
        assert_eq!(set.len() as u64, state.count);
    }
    adder.join().unwrap();
}

#[test]
fn bulk_writes_count_exactly_like_small_ones_and_survive_reopen() {
    let dir = temp();
    let path = dir.path().join("bulk");
    let n = bulk::BULK_MIN as u64 * 2;
    // Listed before the import: 10 of its ids.
    let before: Vec<String> = (0..10u64).map(|i| (i * 3).to_string()).collect();
    // The import: n ids, a few repeated within the file.
    let mut ids: Vec<String> = (0..n).map(|i| (i * 3).to_string()).collect();
    ids.extend(["0", "3", "6"].map(String::from));
    let state = {
        let s = ErasureStore::open(&path, SubjectType::Bigint).unwrap();
        s.add(&before, None).unwrap();
        let out = s.add(&ids, Some("bulk")).unwrap();
        assert_eq!((out.added, out.already_listed), (n - 10, 13));
        assert_eq!((out.count, out.pending), (n, n));
        assert_eq!(s.verify_state().unwrap(), s.state());
        // Same ids in small writes give the same state.
        let small = ErasureStore::open(&dir.path().join("small"), SubjectType::Bigint).unwrap();
        for c in ids.chunks(1000) {
            small.add(c, None).unwrap();
        }
        assert_eq!(small.state(), s.state());
        // No staged file is left behind.
        assert!(std::fs::read_dir(&path).unwrap().flatten().all(|e| {
            !e.file_name()
                .to_string_lossy()
                .starts_with(bulk::STAGED_PREFIX)
        }));
        s.state()
    };
    // A staged file left by a crash is removed at the next open.
    std::fs::write(path.join(format!("{}1-0.sst", bulk::STAGED_PREFIX)), b"x").unwrap();
    let s = ErasureStore::open(&path, SubjectType::Bigint).unwrap();
    assert!(
        !path
            .join(format!("{}1-0.sst", bulk::STAGED_PREFIX))
            .exists()
    );
    assert_eq!(s.state(), state);
    assert_eq!(s.verify_state().unwrap(), state);
    let e = s.get("300").unwrap().unwrap();
    assert_eq!((e.reference.as_deref(), e.journaled), (Some("bulk"), false));
    // The pending ids: the first small batch, then the import as one group.
    let chunk = s.pending_chunk(usize::MAX).unwrap();
    assert_eq!(chunk.len() as u64, n);
    assert_eq!(chunk.groups.len(), 2);
    assert_eq!(chunk.groups[1].1.len() as u64, n - 10);
    s.mark_journaled("01X.json", &chunk).unwrap();
    assert_eq!(s.status().unwrap().pending, 0);

    // Merging an object of ids that are all listed adds nothing (the walk).
    let rec = BatchRecord {
        added_at: Utc::now(),
        reference: None,
        origin: "elsewhere".into(),
    };
    let again: Vec<String> = (0..n).rev().map(|i| (i * 3).to_string()).collect();
    assert_eq!(
        s.merge_journal("01Y.json", vec![(rec.clone(), again)])
            .unwrap(),
        0
    );
    assert_eq!(s.state(), state);
    // Half new, half listed, across two groups with an overlap.
    let g1: Vec<String> = (n / 2..n + n / 2).map(|i| (i * 3).to_string()).collect();
    let g2: Vec<String> = (n..n + n).map(|i| (i * 3).to_string()).collect();
    let added = s
        .merge_journal("01Z.json", vec![(rec.clone(), g1), (rec, g2)])
        .unwrap();
    assert_eq!(added, n);
    assert_eq!(s.state().count, 2 * n);
    assert_eq!(s.status().unwrap().pending, 0);
    s.verify_state().unwrap();
    assert!(s.merged_objects().unwrap().contains("01Z.json"));
    let (set, st) = crate::erasure::MemSet::load(&s).unwrap();
    assert_eq!((set.len() as u64, st), (2 * n, s.state()));
}

#[test]
fn a_version_1_store_with_pending_markers_per_id_is_migrated() {
    let dir = temp();
    let path = dir.path().join("v1");
    let state = {
        let s = ErasureStore::open(&path, SubjectType::Bigint).unwrap();
        s.add(&["1", "2"], Some("a")).unwrap();
        s.add(&["3"], None).unwrap();
        s.state()
    };
    // Rewrite it into the version 1 layout: one empty p:<seq><id> per id.
    {
        let db = DB::open_default(&path).unwrap();
        db.delete(pending_key(1)).unwrap();
        db.delete(pending_key(2)).unwrap();
        for (seq, id) in [(1u64, "1"), (1, "2"), (2, "3")] {
            let mut k = pending_key(seq);
            k.extend_from_slice(id.as_bytes());
            db.put(k, b"").unwrap();
        }
        db.put(K_VERSION, "1").unwrap();
    }
    // A reader (restore) opens it as it is.
    drop(ErasureStore::open_for_restore(&path, SubjectType::Bigint).unwrap());
    let s = ErasureStore::open(&path, SubjectType::Bigint).unwrap();
    assert_eq!(
        s.db.get(K_VERSION).unwrap().as_deref(),
        Some(b"2".as_slice())
    );
    assert_eq!(s.state(), state);
    assert_eq!(s.status().unwrap().pending, 3);
    assert!(!s.get("2").unwrap().unwrap().journaled);
    let chunk = s.pending_chunk(100).unwrap();
    assert_eq!(chunk.groups.len(), 2);
    assert_eq!(chunk.groups[0].1, vec!["1".to_string(), "2".to_string()]);
    assert_eq!(chunk.groups[0].0.reference.as_deref(), Some("a"));
    assert_eq!(chunk.groups[1].1, vec!["3".to_string()]);
    s.mark_journaled("01A.json", &chunk).unwrap();
    assert_eq!(s.status().unwrap().pending, 0);
    assert!(s.get("1").unwrap().unwrap().journaled);
    drop(s);
    // Reopening a migrated store changes nothing.
    let s = ErasureStore::open(&path, SubjectType::Bigint).unwrap();
    assert_eq!((s.state(), s.status().unwrap().pending), (state, 0));
}

#[test]
fn a_removal_updates_count_and_digest_raises_the_version_and_survives_reopen() {
    let dir = temp();
    let path = dir.path().join("list");
    let read_version = |p: &std::path::Path| {
        let db = DB::open_for_read_only(&Options::default(), p, false).unwrap();
        String::from_utf8(db.get(K_VERSION).unwrap().unwrap()).unwrap()
    };
    let only_8 = {
        let s = ErasureStore::open(&path, SubjectType::Bigint).unwrap();
        s.add(&["8"], None).unwrap();
        s.state()
    };
    assert_eq!(
        read_version(&path),
        STORE_VERSION_NEW,
        "no removal yet: version 2"
    );
    {
        let s = ErasureStore::open(&path, SubjectType::Bigint).unwrap();
        s.add(&["7", "-3"], Some("T-1")).unwrap();
        let out = s.remove(&["7", " -3 "], "typo").unwrap();
        assert_eq!((out.removed, out.count), (1 + 1, 1));
        // The XOR digest is back to the list's without 7 and -3.
        assert_eq!(s.state(), only_8);
        s.verify_state().unwrap();
        assert!(s.get("7").unwrap().is_none());
        let r = s.removals().unwrap();
        assert_eq!(r.len(), 2);
        assert!(r.iter().all(|r| r.reason == "typo"));
    }
    assert_eq!(read_version(&path), STORE_VERSION);
    let s = ErasureStore::open(&path, SubjectType::Bigint).unwrap();
    assert_eq!(s.state(), only_8);
    assert_eq!(s.pending_removals().unwrap().groups.len(), 1);
    drop(s);
    let r = ErasureStore::open_for_restore(&path, SubjectType::Bigint).unwrap();
    assert_eq!(r.state(), only_8);
}
