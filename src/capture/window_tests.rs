use super::*;
use crate::repo::changes::manifest::{GAP_FORMAT, GapReason, HEAD_FORMAT};
use crate::repo::changes::{Lsn, new_gap_id};

fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("time")
}

fn head(epoch: &Epoch, verified: &str) -> Head {
    Head {
        format: HEAD_FORMAT,
        source: "db:5432/app".into(),
        epoch: epoch.clone(),
        base_lsn: Lsn(1),
        end_lsn: Lsn(2),
        last_commit_lsn: None,
        last_commit_at: None,
        verified_at: at(verified),
        schema_checked_at: None,
        schema_digest: None,
        base_ids: Vec::new(),
    }
}

fn gap(before: &Epoch, after: &Epoch, last: &str, resumed: &str, reason: GapReason) -> GapRecord {
    GapRecord {
        format: GAP_FORMAT,
        id: new_gap_id(),
        source: "db:5432/app".into(),
        epoch_before: Some(before.clone()),
        last_commit_lsn: None,
        last_commit_at: Some(at(last)),
        epoch_after: Some(after.clone()),
        resumed_lsn: Some(Lsn(9)),
        resumed_at: Some(at(resumed)),
        base_id: None,
        reason,
        detected_at: at(resumed),
    }
}

fn base(epoch: &Epoch, when: &str) -> Base {
    Base {
        epoch: epoch.clone(),
        at: at(when),
    }
}

#[test]
fn one_epoch_runs_from_its_oldest_base_to_the_head() {
    let e = Epoch::new();
    let bases = [
        base(&e, "2026-12-01T00:00:00Z"),
        base(&e, "2026-12-02T00:00:00Z"),
    ];
    let w = windows(&bases, Some(&head(&e, "2026-12-03T12:00:00Z")), &[]);
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(
        (w[0].from, w[0].to, w[0].bases),
        (at("2026-12-01T00:00:00Z"), at("2026-12-03T12:00:00Z"), 2)
    );
}

#[test]
fn a_lost_slot_ends_one_epoch_at_its_last_stored_commit_and_the_next_starts_at_its_base() {
    let (a, b) = (Epoch::new(), Epoch::new());
    let bases = [
        base(&a, "2026-12-01T00:00:00Z"),
        base(&b, "2026-12-02T06:00:00Z"),
    ];
    let gaps = [gap(
        &a,
        &b,
        "2026-12-02T01:00:00Z",
        "2026-12-02T06:00:00Z",
        GapReason::SlotMissing,
    )];
    let w = windows(&bases, Some(&head(&b, "2026-12-03T00:00:00Z")), &gaps);
    assert_eq!(w.len(), 2, "{w:?}");
    assert_eq!(
        (w[0].from, w[0].to),
        (at("2026-12-01T00:00:00Z"), at("2026-12-02T01:00:00Z"))
    );
    assert_eq!(
        (w[1].from, w[1].to),
        (at("2026-12-02T06:00:00Z"), at("2026-12-03T00:00:00Z"))
    );
}

#[test]
fn a_schema_gap_splits_its_epoch() {
    let e = Epoch::new();
    let bases = [
        base(&e, "2026-12-01T00:00:00Z"),
        base(&e, "2026-12-01T12:00:05Z"),
    ];
    let gaps = [gap(
        &e,
        &e,
        "2026-12-01T12:00:00Z",
        "2026-12-01T12:00:05Z",
        GapReason::SchemaUndetected,
    )];
    let w = windows(&bases, Some(&head(&e, "2026-12-02T00:00:00Z")), &gaps);
    assert_eq!(w.len(), 2, "{w:?}");
    assert_eq!(w[0].to, at("2026-12-01T12:00:00Z"));
    assert_eq!(w[1].from, at("2026-12-01T12:00:05Z"));
    assert_eq!(w[1].to, at("2026-12-02T00:00:00Z"));
}

#[test]
fn an_epoch_without_a_kept_base_or_an_end_has_no_window() {
    let (a, b) = (Epoch::new(), Epoch::new());
    // a's base expired; b has a base but neither head nor closing gap.
    let bases = [base(&b, "2026-12-01T00:00:00Z")];
    let w = windows(&bases, Some(&head(&a, "2026-12-03T00:00:00Z")), &[]);
    assert!(w.is_empty(), "{w:?}");
}

#[test]
fn the_running_epoch_ends_where_the_schema_was_last_seen_unchanged() {
    let e = Epoch::new();
    let bases = [base(&e, "2026-12-01T00:00:00Z")];
    let mut h = head(&e, "2026-12-02T00:00:10Z");
    h.schema_checked_at = Some(at("2026-12-02T00:00:04Z"));
    let w = windows(&bases, Some(&h), &[]);
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].to, at("2026-12-02T00:00:04Z"));
    // Checked after the head was written: the head bounds it.
    h.schema_checked_at = Some(at("2026-12-02T00:00:30Z"));
    assert_eq!(
        windows(&bases, Some(&h), &[])[0].to,
        at("2026-12-02T00:00:10Z")
    );
}

#[test]
fn a_schema_gap_still_open_ends_the_running_epoch_at_its_start() {
    let e = Epoch::new();
    let bases = [base(&e, "2026-12-01T00:00:00Z")];
    let mut open = gap(
        &e,
        &e,
        "2026-12-01T12:00:00Z",
        "2026-12-01T12:00:05Z",
        GapReason::SchemaUndetected,
    );
    open.epoch_after = None;
    open.resumed_at = None;
    open.resumed_lsn = None;
    // The head goes on (the stream is stored) while the base is taken.
    let w = windows(&bases, Some(&head(&e, "2026-12-01T18:00:00Z")), &[open]);
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].to, at("2026-12-01T12:00:00Z"));
}
