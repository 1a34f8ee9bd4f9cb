use super::*;

#[test]
fn table_names_become_safe_unambiguous_keys() {
    assert_eq!(key_safe("orders_2024"), "orders_2024");
    assert_eq!(key_safe("My.Table=1"), "My=2ETable=3D1");
    assert_eq!(key_safe("zoë t"), "zo=C3=AB=20t");
    let id: SnapshotId = "20261122T130000Z-3f9a".parse().unwrap();
    let k = data_key(&id, 7, "app data", "ä.b", 12, true);
    assert_eq!(
        k,
        "snapshots/20261122T130000Z-3f9a/data/0007.app=20data.=C3=A4=2Eb.012.copy.zst.age"
    );
    crate::storage::validate_key(&k).unwrap();
    assert_eq!(
        schema_key(&id, "pre", false),
        "snapshots/20261122T130000Z-3f9a/schema/pre.sql.zst"
    );
}

#[test]
fn snapshot_keys_split_into_id_and_tail_and_others_are_ignored() {
    let (id, tail) =
        split_snapshot_key("snapshots/20261122T130000Z-3f9a/data/0001.a.b.000.copy").unwrap();
    assert_eq!(id.to_string(), "20261122T130000Z-3f9a");
    assert_eq!(tail, "data/0001.a.b.000.copy");
    assert_eq!(
        split_snapshot_key("snapshots/20261122T130000Z-3f9a/manifest.json").map(|(_, t)| t),
        Some("manifest.json")
    );
    for bad in [
        "snapshots/../etc/passwd",
        "snapshots/not-an-id/manifest.json",
        "snapshots/20261122T130000Z-3f9a",
        "erasures/20261122T130000Z-3f9a/x",
        "",
    ] {
        assert!(split_snapshot_key(bad).is_none(), "{bad}");
    }
}
