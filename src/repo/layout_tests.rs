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

fn stored_manifest(id: &str, finished: &str, source: &str) -> Manifest {
    use super::super::manifest::{ListState, ObjectEntry, SchemaObjects};
    let at = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
    let id: SnapshotId = id.parse().unwrap();
    let obj = |n: &str| ObjectEntry {
        key: format!("snapshots/{id}/schema/{n}.sql.zst"),
        size: 1,
        blake3: String::new(),
        raw_size: 1,
        rows: 0,
    };
    Manifest {
        format: 1,
        started_at: id.started_at(),
        finished_at: at(finished),
        expires_at: at(finished),
        server_version: "15".into(),
        database: "app".into(),
        compression: "zstd".into(),
        recipients: vec![],
        schema: SchemaObjects {
            pre: obj("pre"),
            post: obj("post"),
        },
        tables: vec![],
        foreign_keys: vec![],
        sequences: vec![],
        erasure_list: ListState::default(),
        partitioned: vec![],
        source: Some(source.into()),
        ctype: None,
        continuous: None,
        id,
    }
}

#[tokio::test]
async fn before_picks_by_finish_time_within_the_source_and_names_the_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let storage = crate::storage::fs::FsStorage::open(dir.path().to_path_buf()).unwrap();
    // A long snapshot started first but finished after the second one; a
    // snapshot of another database finished in between.
    for m in [
        stored_manifest(
            "20261206T080000Z-0001",
            "2026-12-06T09:30:00Z",
            "h:5432/app",
        ),
        stored_manifest(
            "20261206T090000Z-0002",
            "2026-12-06T09:10:00Z",
            "h:5432/app",
        ),
        stored_manifest(
            "20261206T091500Z-0003",
            "2026-12-06T09:20:00Z",
            "h:5432/other",
        ),
        stored_manifest(
            "20261206T100000Z-0004",
            "2026-12-06T10:05:00Z",
            "h:5432/app",
        ),
    ] {
        storage
            .put_bytes(&manifest_key(&m.id), m.to_json().into())
            .await
            .unwrap();
    }
    let scope = SourceScope {
        identity: "h:5432/app".into(),
        database: "app".into(),
    };
    let pick = |t: &str| Selector::Before(t.parse().unwrap());
    let at = |t: &str| {
        let s = pick(t);
        let (storage, scope) = (&storage, &scope);
        async move { resolve_selected(storage, &s, scope).await }
    };
    assert_eq!(
        at("2026-12-06T09:25:00Z").await.unwrap().id.as_str(),
        "20261206T090000Z-0002"
    );
    assert_eq!(
        at("2026-12-06T09:30:01Z").await.unwrap().id.as_str(),
        "20261206T080000Z-0001"
    );
    // Strictly before: a snapshot finished at that very time is not taken.
    assert_eq!(
        at("2026-12-06T10:05:00Z").await.unwrap().id.as_str(),
        "20261206T080000Z-0001"
    );
    let err = at("2026-12-06T09:10:00Z").await.unwrap_err().to_string();
    assert!(
        err.contains("before 2026-12-06T09:10:00Z")
            && err.contains("oldest finished at 2026-12-06T09:10:00Z"),
        "{err}"
    );
}

#[tokio::test]
async fn check_marker_refuses_a_newer_format_and_allows_none_or_this_one() {
    let dir = tempfile::tempdir().unwrap();
    let storage = crate::storage::fs::FsStorage::open(dir.path().to_path_buf()).unwrap();
    assert!(check_marker(&storage).await.unwrap().is_none());
    let mut m = new_marker(35);
    storage
        .put_bytes(
            MARKER_KEY,
            bytes::Bytes::from(serde_json::to_vec(&m).unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(
        check_marker(&storage).await.unwrap().unwrap().format,
        FORMAT_VERSION
    );
    m.format = FORMAT_VERSION + 1;
    storage
        .put_bytes(
            MARKER_KEY,
            bytes::Bytes::from(serde_json::to_vec(&m).unwrap()),
        )
        .await
        .unwrap();
    let e = check_marker(&storage).await.unwrap_err().to_string();
    assert!(
        e.contains(&format!("has format {}", FORMAT_VERSION + 1))
            && e.contains("newer than this lethe understands; upgrade lethe"),
        "{e}"
    );
}
