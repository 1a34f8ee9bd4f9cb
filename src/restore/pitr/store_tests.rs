use super::*;

fn db() -> (tempfile::TempDir, DeltaDb) {
    let tmp = tempfile::tempdir().unwrap();
    let db = DeltaDb::create(Some(tmp.path())).unwrap();
    (tmp, db)
}

#[test]
fn the_last_of_several_puts_of_one_key_wins_inside_a_batch_and_across_batches() {
    let (_t, db) = db();
    let k = db.key(1, b'r', b"42");
    let other = db.key(1, b'r', b"43");
    // One batch: sorted before it is written, the later put must stay later.
    for v in ["a", "b", "c"] {
        db.put(&k, v.as_bytes()).unwrap();
        db.put(&other, b"x").unwrap();
    }
    assert_eq!(db.get(&k).unwrap().as_deref(), Some(&b"c"[..]));
    // Across the batch threshold: enough other rows to write several
    // batches between two puts of `k`.
    db.put(&k, b"d").unwrap();
    let filler = vec![b'z'; 4096];
    for i in 0..(3 * BATCH_BYTES / filler.len()) {
        db.put(&db.key(2, b'r', i.to_string().as_bytes()), &filler)
            .unwrap();
    }
    db.put(&k, b"e").unwrap();
    assert_eq!(db.get(&k).unwrap().as_deref(), Some(&b"e"[..]));
    assert_eq!(
        db.get(&db.key(2, b'r', b"0")).unwrap().as_deref(),
        Some(&filler[..])
    );
    db.flush().unwrap();
    assert_eq!(db.get(&k).unwrap().as_deref(), Some(&b"e"[..]));
}

#[test]
fn reads_see_puts_not_yet_written() {
    let (_t, db) = db();
    let k = db.key(7, b'c', b"row");
    assert!(!db.contains(&k).unwrap());
    db.put(&k, b"1").unwrap();
    assert!(db.contains(&k).unwrap(), "contains must see a pending put");
    db.put(&db.key(7, b'c', b"row2"), b"2").unwrap();
    let scanned = db.scan(7, b'c', None, 10).unwrap();
    assert_eq!(scanned.len(), 2, "a scan must see pending puts");
}

#[test]
fn delete_all_removes_puts_still_pending_and_keeps_other_tables() {
    let (_t, db) = db();
    let gone = db.key(3, b'r', b"1");
    let kept = db.key(4, b'r', b"1");
    db.put(&gone, b"v").unwrap();
    db.put(&kept, b"w").unwrap();
    db.delete_all(3, b'r').unwrap();
    assert_eq!(db.get(&gone).unwrap(), None);
    assert_eq!(db.get(&kept).unwrap().as_deref(), Some(&b"w"[..]));
    // A put after the delete is there.
    db.put(&gone, b"again").unwrap();
    assert_eq!(db.get(&gone).unwrap().as_deref(), Some(&b"again"[..]));
}

#[test]
fn a_damaged_value_is_refused_not_returned() {
    let (_t, db) = db();
    let mut sealed = db.seal(b"personal data").unwrap();
    assert_eq!(db.open(&sealed).unwrap(), b"personal data");
    let last = sealed.len() - 1;
    sealed[last] ^= 1;
    assert!(db.open(&sealed).is_err());
    assert!(db.open(&sealed[..5]).is_err());
    // Two seals of one value differ (a fresh nonce each).
    assert_ne!(db.seal(b"x").unwrap(), db.seal(b"x").unwrap());
}
