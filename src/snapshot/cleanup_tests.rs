use super::*;
use crate::storage::StorageExt;
use crate::storage::fs::FsStorage;

#[tokio::test]
async fn removes_quiet_incomplete_prefixes_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let s = FsStorage::open(dir.path().to_path_buf()).unwrap();
    let old: SnapshotId = "20200101T000000Z-0001".parse().unwrap();
    let done: SnapshotId = "20200101T000000Z-0002".parse().unwrap();
    let mine: SnapshotId = "20200101T000000Z-0003".parse().unwrap();
    for id in [&old, &done, &mine] {
        s.put_bytes(
            &format!("snapshots/{id}/data/0001.a.b.000.copy.zst.age"),
            "x".into(),
        )
        .await
        .unwrap();
    }
    s.put_bytes(&manifest_key(&done), "{}".into())
        .await
        .unwrap();

    // Everything was written just now: a one-hour grace keeps it all.
    let r = cleanup_incomplete(&s, Some(&mine), Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(r.removed, Vec::<SnapshotId>::new());
    assert_eq!(r.recent, vec![old.clone()]);

    let r = cleanup_incomplete(&s, Some(&mine), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(r.removed, vec![old.clone()]);
    assert_eq!(r.objects_deleted, 1);
    assert!(
        s.list(&format!("snapshots/{old}/"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.list(&format!("snapshots/{done}/")).await.unwrap().len(),
        2
    );
    assert_eq!(
        s.list(&format!("snapshots/{mine}/")).await.unwrap().len(),
        1
    );
}
