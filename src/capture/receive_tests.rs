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

#[test]
fn the_ticker_sleeps_until_a_due_segment_and_idles_otherwise() {
    let now = Instant::now();
    let idle = Duration::from_secs(1);
    let ms = Duration::from_millis;
    // Nothing due: the idle interval.
    assert_eq!(next_tick(now, None, None, idle), now + idle);
    // Due within the idle interval: at that instant, not on a 100 ms grid.
    assert_eq!(
        next_tick(now, Some(now + ms(730)), None, idle),
        now + ms(730)
    );
    // Due later: woken after the idle interval to look again.
    assert_eq!(
        next_tick(now, Some(now + ms(4_000)), None, idle),
        now + idle
    );
    // Overdue (a long transaction holds the segment open): at once after
    // a quiet spell, but never sooner than TICK after the last tick.
    assert_eq!(next_tick(now, Some(now - ms(50)), None, idle), now);
    assert_eq!(
        next_tick(now, Some(now - ms(50)), Some(now - ms(10)), idle),
        now + TICK - ms(10)
    );
    assert_eq!(
        next_tick(now, Some(now - ms(50)), Some(now - ms(500)), idle),
        now
    );
}

#[test]
fn the_due_instant_is_shared_to_the_microsecond_and_cleared() {
    let due = Due::default();
    assert_eq!(due.get(), None);
    let at = Instant::now() + Duration::from_millis(4_321);
    due.set(Some(at));
    let got = due.get().expect("due");
    assert!(
        got <= at && at - got < Duration::from_micros(1),
        "{got:?} {at:?}"
    );
    // An instant before the cell was made reads as its start, not as none.
    due.set(Some(Instant::now() - Duration::from_secs(5)));
    assert!(due.get().is_some());
    due.set(None);
    assert_eq!(due.get(), None);
}
