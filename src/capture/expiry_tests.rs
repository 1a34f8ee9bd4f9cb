use super::*;
use crate::repo::changes::{Epoch, Lsn, SegmentStem};

fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("time")
}

fn obj(key: String, when: &str, size: u64) -> ObjectMeta {
    ObjectMeta {
        key,
        size,
        last_modified: at(when),
    }
}

/// A segment's manifest and two parts, written at `when`.
fn segment(e: &Epoch, first: u64, when: &str) -> Vec<ObjectMeta> {
    let stem = SegmentStem::new("db:5432/app", e, at(when), Lsn(first));
    vec![
        obj(stem.part_key(0, true), when, 100),
        obj(stem.part_key(1, true), when, 50),
        obj(stem.manifest_key(Lsn(first + 10)), when, 7),
    ]
}

#[test]
fn segments_past_the_retention_go_manifest_first_with_their_parts() {
    let e = Epoch::new();
    let mut listing = segment(&e, 0x100, "2026-10-01T10:00:00Z");
    listing.extend(segment(&e, 0x200, "2026-12-01T10:00:00Z"));
    listing.push(obj(
        changes::head_key("db:5432/app"),
        "2026-10-01T10:00:00Z",
        9,
    ));
    let p = plan(
        &listing,
        at("2026-12-06T00:00:00Z"),
        35,
        Duration::hours(24),
        None,
    );
    assert_eq!(p.segments.len(), 1, "{p:?}");
    let (manifest, parts) = &p.segments[0];
    assert!(
        manifest.ends_with("0000000000000100-000000000000010A.json"),
        "{manifest}"
    );
    assert_eq!(parts.len(), 2);
    assert!(
        parts.iter().all(|k| k.contains("/0000000000000100.")),
        "{parts:?}"
    );
    assert!(p.leftovers.is_empty() && p.gaps.is_empty());
    assert_eq!(p.bytes, 157);
}

#[test]
fn a_restore_lease_on_a_base_holds_every_segment_and_gap_written_since_it_began() {
    let e = Epoch::new();
    let mut listing = segment(&e, 0x100, "2026-10-01T10:00:00Z");
    listing.extend(segment(&e, 0x200, "2026-10-20T10:00:00Z"));
    let gap = |when: &str| obj(format!("changes/db/gaps/{when}.json"), when, 5);
    listing.push(gap("2026-10-01T11:00:00Z"));
    listing.push(gap("2026-10-21T11:00:00Z"));
    let now = at("2026-12-06T00:00:00Z");
    let base = crate::repo::manifest::SnapshotId::new(at("2026-10-10T00:00:00Z"));
    let held = held_from(&[
        crate::retention::Protection::Writing {
            holder: "writer".into(),
            since: at("2026-12-05T00:00:00Z"),
        },
        crate::retention::Protection::Restore {
            snapshot: base,
            holder: "restore".into(),
            expires_at: at("2026-12-06T00:05:00Z"),
        },
    ]);
    assert_eq!(held, Some(at("2026-10-10T00:00:00Z")));
    let p = plan(&listing, now, 35, Duration::hours(24), held);
    // Both segments and both gaps are past the retention; only those from
    // before the leased base go.
    assert_eq!(p.segments.len(), 1, "{p:?}");
    assert!(p.segments[0].0.contains("0000000000000100-"), "{p:?}");
    assert_eq!(
        p.gaps,
        vec!["changes/db/gaps/2026-10-01T11:00:00Z.json".to_string()]
    );
    let free = plan(&listing, now, 35, Duration::hours(24), held_from(&[]));
    assert_eq!((free.segments.len(), free.gaps.len()), (2, 2));
}

#[test]
fn parts_without_a_manifest_go_only_after_the_grace() {
    let e = Epoch::new();
    let mut old = segment(&e, 0x100, "2026-12-04T10:00:00Z");
    old.pop(); // no manifest: a segment cut by a crash
    let mut fresh = segment(&e, 0x200, "2026-12-05T23:30:00Z");
    fresh.pop(); // still being written
    let listing: Vec<_> = old.into_iter().chain(fresh).collect();
    let p = plan(
        &listing,
        at("2026-12-06T00:00:00Z"),
        35,
        Duration::hours(24),
        None,
    );
    assert_eq!(p.leftovers.len(), 2, "{p:?}");
    assert!(p.leftovers.iter().all(|k| k.contains("/0000000000000100.")));
    assert!(p.segments.is_empty());
}

#[test]
fn gap_records_past_the_retention_go_and_the_head_never_does() {
    let listing = vec![
        obj(
            changes::gap_key("db:5432/app", &changes::new_gap_id()),
            "2026-10-01T00:00:00Z",
            3,
        ),
        obj(
            changes::gap_key("db:5432/app", &changes::new_gap_id()),
            "2026-12-01T00:00:00Z",
            3,
        ),
        obj(changes::head_key("db:5432/app"), "2026-01-01T00:00:00Z", 3),
    ];
    let p = plan(
        &listing,
        at("2026-12-06T00:00:00Z"),
        35,
        Duration::hours(24),
        None,
    );
    assert_eq!(p.gaps.len(), 1, "{p:?}");
    assert!(p.segments.is_empty() && p.leftovers.is_empty());
}
