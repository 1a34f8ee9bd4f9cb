use super::*;

fn frame(change: Change) -> Frame {
    Frame {
        wal_start: 0,
        wal_end: 0,
        server_time: 0,
        change,
    }
}

fn begin() -> Frame {
    frame(Change::Begin {
        final_lsn: 100,
        commit_time: 0,
        xid: 7,
    })
}

fn insert() -> Frame {
    frame(Change::Insert {
        relid: 1,
        new: Vec::new(),
    })
}

fn commit() -> Frame {
    frame(Change::Commit {
        commit_lsn: 100,
        end_lsn: 101,
        commit_time: 0,
    })
}

fn heartbeat() -> Frame {
    frame(Change::Message {
        transactional: false,
        lsn: 200,
        prefix: "lethe.heartbeat".into(),
        content: bytes::Bytes::new(),
    })
}

#[test]
fn a_transaction_is_handed_over_whole_at_its_commit() {
    let mut b = Batch::default();
    assert!(b.push(begin()).is_none());
    assert!(b.push(insert()).is_none());
    assert!(b.push(insert()).is_none());
    let whole = b.push(commit()).expect("handed over at the commit");
    assert_eq!(whole.len(), 4);
    assert!(matches!(whole[0].change, Change::Begin { .. }));
    assert!(matches!(whole[3].change, Change::Commit { .. }));
    // Nothing is left behind for the next hand-off.
    assert!(b.push(begin()).is_none());
    assert_eq!(b.push(commit()).expect("next").len(), 2);
}

#[test]
fn a_frame_between_transactions_goes_at_once() {
    let mut b = Batch::default();
    assert_eq!(
        b.push(heartbeat())
            .expect("a heartbeat waits for nothing")
            .len(),
        1
    );
    assert_eq!(b.push(heartbeat()).expect("nor the next").len(), 1);
}

#[test]
fn a_long_transaction_is_handed_over_in_parts_of_batch_frames() {
    let mut b = Batch::default();
    let mut handed = vec![b.push(begin())];
    for _ in 0..(3 * BATCH) {
        handed.push(b.push(insert()));
    }
    handed.push(b.push(commit()));
    let sizes: Vec<usize> = handed.into_iter().flatten().map(|f| f.len()).collect();
    // Never more than BATCH frames held; every frame handed over once, in order.
    assert!(sizes.iter().all(|&n| n <= BATCH), "{sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 3 * BATCH + 2, "{sizes:?}");
    assert_eq!(sizes.len(), 4, "{sizes:?}");
}
