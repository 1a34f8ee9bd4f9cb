use super::*;
use crate::repo::changes::manifest::HEAD_FORMAT;
use crate::repo::changes::{Epoch, Lsn};

fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("time")
}

fn head() -> Head {
    Head {
        format: HEAD_FORMAT,
        source: "db:5432/app".into(),
        epoch: Epoch::new(),
        base_lsn: Lsn(1),
        end_lsn: Lsn(2),
        last_commit_lsn: None,
        last_commit_at: None,
        verified_at: at("2026-12-01T00:00:00Z"),
        schema_checked_at: Some(at("2026-12-01T00:00:00Z")),
        schema_digest: None,
        base_ids: Vec::new(),
    }
}

#[test]
fn an_unchanged_schema_moves_the_check_time() {
    let mut h = head();
    let mut w = SchemaWatch::new(Some("a".into()));
    assert!(
        w.read(&mut h, "a", at("2026-12-01T00:00:10Z"), None)
            .is_none()
    );
    assert_eq!(h.schema_checked_at, Some(at("2026-12-01T00:00:10Z")));
    // A read stamped earlier (clocks) never moves it back.
    assert!(
        w.read(&mut h, "a", at("2026-12-01T00:00:05Z"), None)
            .is_none()
    );
    assert_eq!(h.schema_checked_at, Some(at("2026-12-01T00:00:10Z")));
}

#[test]
fn a_changed_schema_is_one_change_from_the_last_check_and_holds_the_check_time_until_its_base() {
    let mut h = head();
    let mut w = SchemaWatch::new(Some("a".into()));
    w.read(&mut h, "a", at("2026-12-01T00:00:10Z"), None);
    let c = w
        .read(&mut h, "b", at("2026-12-01T00:00:15Z"), None)
        .expect("a change");
    assert_eq!(c.since, Some(at("2026-12-01T00:00:10Z")));
    // Later reads of the new schema: no second change, no move.
    assert!(
        w.read(&mut h, "b", at("2026-12-01T00:00:20Z"), None)
            .is_none()
    );
    assert_eq!(h.schema_checked_at, Some(at("2026-12-01T00:00:10Z")));
    // The base in the new schema: reads move it again.
    assert!(w.base_stored(&h, Some("b")).is_none());
    assert_eq!(h.schema_checked_at, Some(at("2026-12-01T00:00:10Z")));
    assert!(
        w.read(&mut h, "b", at("2026-12-01T00:01:00Z"), None)
            .is_none()
    );
    assert_eq!(h.schema_checked_at, Some(at("2026-12-01T00:01:00Z")));
}

#[test]
fn a_base_in_a_schema_no_read_saw_is_a_change() {
    let mut h = head();
    let mut w = SchemaWatch::new(Some("a".into()));
    w.read(&mut h, "a", at("2026-12-01T00:00:10Z"), None);
    let c = w.base_stored(&h, Some("b")).expect("a change");
    assert_eq!(c.since, Some(at("2026-12-01T00:00:10Z")));
    assert!(
        w.read(&mut h, "b", at("2026-12-01T00:00:20Z"), None)
            .is_none()
    );
    assert_eq!(
        h.schema_checked_at,
        Some(at("2026-12-01T00:00:10Z")),
        "held until the next base"
    );
    assert!(w.base_stored(&h, Some("b")).is_none());
    w.read(&mut h, "b", at("2026-12-01T00:00:30Z"), None);
    assert_eq!(h.schema_checked_at, Some(at("2026-12-01T00:00:30Z")));
}

#[test]
fn without_a_base_digest_the_first_read_is_the_reference() {
    let mut h = head();
    let mut w = SchemaWatch::new(None);
    assert!(!w.has_reference());
    assert!(
        w.read(&mut h, "a", at("2026-12-01T00:00:10Z"), None)
            .is_none()
    );
    assert!(w.has_reference());
    assert!(
        w.read(&mut h, "b", at("2026-12-01T00:00:20Z"), None)
            .is_some()
    );
}

#[test]
fn a_shape_change_in_the_stream_is_one_change_with_the_read_that_follows() {
    let mut h = head();
    let mut w = SchemaWatch::new(Some("a".into()));
    w.read(&mut h, "a", at("2026-12-01T00:00:10Z"), None);
    let c = w
        .seen(&h, "t changed shape".into(), None)
        .expect("a change");
    assert_eq!(c.since, Some(at("2026-12-01T00:00:10Z")));
    assert!(
        w.read(&mut h, "b", at("2026-12-01T00:00:11Z"), None)
            .is_none(),
        "reported twice"
    );
    assert!(w.seen(&h, "again".into(), None).is_none(), "reported twice");
    assert!(w.base_stored(&h, Some("b")).is_none());
    assert!(w.seen(&h, "a later change".into(), None).is_some());
}

#[test]
fn captured_ddl_after_a_check_read_past_its_commit_starts_the_change_at_the_commit() {
    let mut h = head();
    let mut w = SchemaWatch::new(Some("a".into()));
    // The digest leaves captured DDL out: a read after the commit moved
    // the check time past it.
    w.read(&mut h, "a", at("2026-12-01T00:00:20Z"), None);
    let c = w
        .seen(
            &h,
            "ALTER INDEX public.i".into(),
            Some(at("2026-12-01T00:00:15Z")),
        )
        .expect("a change");
    assert_eq!(c.since, Some(at("2026-12-01T00:00:15Z")));
    // One before the last check is bounded by the check, as before.
    let mut w = SchemaWatch::new(Some("a".into()));
    let c = w
        .seen(&h, "later".into(), Some(at("2026-12-01T00:00:30Z")))
        .expect("a change");
    assert_eq!(c.since, Some(at("2026-12-01T00:00:20Z")));
}

#[test]
fn a_change_seen_in_the_stream_while_a_base_is_taken_makes_one_more_base() {
    let mut h = head();
    let mut w = SchemaWatch::new(Some("a".into()));
    w.read(&mut h, "a", at("2026-12-01T00:00:10Z"), None);
    let first = Some(at("2026-12-01T00:00:11Z"));
    assert!(w.seen(&h, "ALTER INDEX public.i".into(), first).is_some());
    // More of the same transaction, and a shape change: no more bases.
    assert!(w.seen(&h, "ALTER VIEW public.v".into(), first).is_none());
    assert!(w.seen(&h, "t changed shape".into(), None).is_none());
    assert!(w.base_stored(&h, Some("a")).is_none());
    // Captured DDL of another transaction while a base is taken.
    assert!(w.seen(&h, "ALTER INDEX public.i".into(), first).is_some());
    let later = Some(at("2026-12-01T00:00:12Z"));
    assert!(w.seen(&h, "ALTER INDEX public.j".into(), later).is_none());
    assert!(w.seen(&h, "ALTER VIEW public.w".into(), later).is_none());
    let c = w.base_stored(&h, Some("b")).expect("one more base");
    assert!(c.what.starts_with("ALTER INDEX public.j"), "{}", c.what);
    assert_eq!(c.since, Some(at("2026-12-01T00:00:10Z")));
    // That base ends it.
    assert!(w.base_stored(&h, Some("b")).is_none());
    assert!(w.base_stored(&h, Some("b")).is_none());
}

#[test]
fn the_reference_plus_what_appended_columns_add_becomes_the_reference_without_a_change() {
    let mut h = head();
    let mut w = SchemaWatch::new(Some("100".into()));
    w.columns_added(5);
    assert!(
        w.read(&mut h, "105", at("2026-12-01T00:00:10Z"), None)
            .is_none()
    );
    assert_eq!(h.schema_checked_at, Some(at("2026-12-01T00:00:10Z")));
    assert_eq!(h.schema_digest.as_deref(), Some("105"));
    // Only once: anything else later is a change.
    assert!(
        w.read(&mut h, "105", at("2026-12-01T00:00:15Z"), None)
            .is_none()
    );
    assert!(
        w.read(&mut h, "106", at("2026-12-01T00:00:20Z"), None)
            .is_some()
    );
}

#[test]
fn appended_columns_add_up_and_wrap_around() {
    let mut h = head();
    let mut w = SchemaWatch::new(Some((u64::MAX - 1).to_string()));
    w.columns_added(1);
    w.columns_added(2);
    assert!(
        w.read(&mut h, "1", at("2026-12-01T00:00:10Z"), None)
            .is_none()
    );
    assert_eq!(h.schema_checked_at, Some(at("2026-12-01T00:00:10Z")));
}

/// A foreign key added a moment before the columns: its line is in the
/// read too, so the read is not the reference plus the columns.
#[test]
fn a_read_that_holds_more_than_appended_columns_is_a_change() {
    let mut h = head();
    let mut w = SchemaWatch::new(Some("100".into()));
    w.columns_added(5);
    let c = w
        .read(&mut h, "107", at("2026-12-01T00:00:10Z"), None)
        .expect("a change");
    assert_eq!(c.since, Some(at("2026-12-01T00:00:00Z")));
    // Waiting for its base: the columns' sum later moves nothing either.
    assert!(
        w.read(&mut h, "105", at("2026-12-01T00:00:20Z"), None)
            .is_none()
    );
    assert_eq!(h.schema_checked_at, Some(at("2026-12-01T00:00:00Z")));
    assert_eq!(h.schema_digest, None);
}

/// A base of an older lethe recorded an md5, which no sum extends.
#[test]
fn a_reference_that_is_not_a_sum_explains_no_read() {
    let mut h = head();
    let mut w = SchemaWatch::new(Some("72810b5e626aca00d7a611d9332c4143".into()));
    w.columns_added(5);
    assert!(
        w.read(&mut h, "5", at("2026-12-01T00:00:10Z"), None)
            .is_some()
    );
}

#[test]
fn appended_columns_explain_nothing_while_a_change_waits_for_its_base() {
    let mut h = head();
    let mut w = SchemaWatch::new(Some("100".into()));
    assert!(
        w.read(&mut h, "200", at("2026-12-01T00:00:10Z"), None)
            .is_some()
    );
    w.columns_added(5);
    assert!(
        w.read(&mut h, "205", at("2026-12-01T00:00:15Z"), None)
            .is_none()
    );
    // Still waiting: the check time does not move.
    assert_eq!(h.schema_checked_at, Some(at("2026-12-01T00:00:00Z")));
}

/// The read saw a column's commit whose message the writer has not read
/// yet (the stream lags): it waits until the stream reaches the read's WAL
/// position, and the message then explains it.
#[test]
fn a_read_ahead_of_the_stream_waits_for_it() {
    let mut h = head();
    let mut w = SchemaWatch::new(Some("100".into()));
    assert!(w.stream_reached(&mut h, Lsn(10)).is_none());
    assert!(
        w.read(&mut h, "105", at("2026-12-01T00:00:10Z"), Some(Lsn(20)))
            .is_none()
    );
    assert_eq!(h.schema_checked_at, Some(at("2026-12-01T00:00:00Z")));
    // Reads in between are skipped.
    assert!(
        w.read(&mut h, "999", at("2026-12-01T00:00:11Z"), Some(Lsn(30)))
            .is_none()
    );
    w.columns_added(5);
    assert!(w.stream_reached(&mut h, Lsn(19)).is_none());
    assert!(w.stream_reached(&mut h, Lsn(20)).is_none());
    assert_eq!(h.schema_checked_at, Some(at("2026-12-01T00:00:10Z")));
    assert_eq!(h.schema_digest.as_deref(), Some("105"));
}

/// A read ahead of the stream that nothing explains is a change once the
/// stream reaches it; one that matches the reference is judged at once.
#[test]
fn a_read_ahead_of_the_stream_that_nothing_explains_is_a_change_when_reached() {
    let mut h = head();
    let mut w = SchemaWatch::new(Some("100".into()));
    assert!(
        w.read(&mut h, "107", at("2026-12-01T00:00:10Z"), Some(Lsn(20)))
            .is_none()
    );
    let c = w.stream_reached(&mut h, Lsn(25)).expect("a change");
    assert_eq!(c.since, Some(at("2026-12-01T00:00:00Z")));

    let mut h = head();
    let mut w = SchemaWatch::new(Some("100".into()));
    assert!(
        w.read(&mut h, "100", at("2026-12-01T00:00:10Z"), Some(Lsn(20)))
            .is_none()
    );
    assert_eq!(h.schema_checked_at, Some(at("2026-12-01T00:00:10Z")));
}
