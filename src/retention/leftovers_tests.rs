use super::*;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn id_at(at: DateTime<Utc>, n: u16) -> SnapshotId {
    format!("{}-{n:04x}", at.format("%Y%m%dT%H%M%SZ"))
        .parse()
        .unwrap()
}

fn object(key: &str, at: DateTime<Utc>) -> ObjectMeta {
    ObjectMeta {
        key: key.into(),
        size: 1,
        last_modified: at,
    }
}

fn upload(key: &str, at: Option<DateTime<Utc>>) -> IncompleteUpload {
    IncompleteUpload {
        key: key.into(),
        upload_id: format!("u-{key}"),
        initiated: at,
    }
}

#[test]
fn a_listing_groups_by_snapshot_prefix_and_ignores_other_keys() {
    let now = t("2026-03-01T12:00:00Z");
    let a = id_at(now - Duration::days(2), 1);
    let b = id_at(now - Duration::days(1), 2);
    let g = group(
        [
            object(&format!("snapshots/{a}/data/1"), now),
            object(&format!("snapshots/{a}/manifest.json"), now),
            object(&format!("snapshots/{b}/data/1"), now),
            object("lethe.json", now),
            object("snapshots/not-an-id/x", now),
        ],
        [
            upload(&format!("snapshots/{b}/data/2"), None),
            upload("erasures/x", None),
        ],
    );
    assert_eq!(g.len(), 2);
    assert!(g[&a].complete() && g[&a].objects.len() == 2 && g[&a].uploads.is_empty());
    assert!(!g[&b].complete() && g[&b].objects.len() == 1 && g[&b].uploads.len() == 1);
}

#[test]
fn a_prefix_is_garbage_only_when_every_sign_of_life_is_older_than_the_grace() {
    let now = t("2026-03-01T12:00:00Z");
    let grace = Duration::hours(1);
    let id = id_at(now - Duration::days(2), 1);
    let old = Some(now - Duration::days(2));
    let judge = |uploads: Vec<Option<DateTime<Utc>>>| {
        verdict(
            &id,
            last_activity(&id, old, uploads, now),
            now,
            grace,
            Keep::default(),
        )
    };
    assert_eq!(judge(vec![]), Verdict::Garbage);
    assert_eq!(judge(vec![old]), Verdict::Garbage);
    // An upload started recently, or at an unknown time, is activity.
    assert_eq!(
        judge(vec![Some(now - Duration::minutes(5))]),
        Verdict::RecentlyActive
    );
    assert_eq!(judge(vec![old, None]), Verdict::RecentlyActive);
    // The caller's own id, and what a live writer may be writing, are kept.
    let at = last_activity(&id, old, [], now);
    let mine = Keep {
        id: Some(&id),
        writing_since: None,
    };
    assert_eq!(verdict(&id, at, now, grace, mine), Verdict::Protected);
    let writer = Keep {
        id: None,
        writing_since: Some(id.started_at()),
    };
    assert_eq!(verdict(&id, at, now, grace, writer), Verdict::Protected);
    let later_writer = Keep {
        id: None,
        writing_since: Some(id.started_at() + Duration::hours(1)),
    };
    assert_eq!(verdict(&id, at, now, grace, later_writer), Verdict::Garbage);
}

#[test]
fn uploads_expire_after_their_grace_and_unknown_starts_never_do() {
    let now = t("2026-03-01T12:00:00Z");
    let grace = Duration::hours(24);
    assert!(upload_expired(Some(now - Duration::hours(24)), now, grace));
    assert!(!upload_expired(Some(now - Duration::hours(23)), now, grace));
    assert!(!upload_expired(None, now, grace));
}
