use super::*;

#[test]
fn snapshot_ids_round_trip_and_sort_by_time() {
    let t = chrono::DateTime::parse_from_rfc3339("2026-11-22T13:00:00Z")
        .unwrap()
        .to_utc();
    let id = SnapshotId::new(t);
    assert!(id.as_str().starts_with("20261122T130000Z-"));
    assert_eq!(id.started_at(), t);
    assert_eq!(id.as_str().parse::<SnapshotId>().unwrap(), id);
    assert!("../../etc".parse::<SnapshotId>().is_err());
    assert!("20261122T130000Z-3F9A".parse::<SnapshotId>().is_err());
    assert!(
        "20261122T130000Z-3f9a".parse::<SnapshotId>().unwrap()
            < "20261122T130001Z-0000".parse().unwrap()
    );
}

#[test]
fn newer_format_is_refused_by_name() {
    let err = Manifest::from_json("snapshots/x/manifest.json", br#"{"format": 99}"#).unwrap_err();
    assert!(matches!(err, ManifestError::TooNew { found: 99, .. }));
    assert!(err.to_string().contains("upgrade"));
}
