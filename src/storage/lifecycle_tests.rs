use super::*;

fn user_rule(id: &str, prefix: &str, days: i32) -> LifecycleRule {
    LifecycleRule::builder()
        .id(id)
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix(prefix).build())
        .expiration(LifecycleExpiration::builder().days(days).build())
        .build()
        .unwrap()
}

fn ours(days: u32) -> Vec<LifecycleRule> {
    desired_rules("prod/", &crate::retention::lifecycle_policy(days), false).unwrap()
}

#[test]
fn desired_rules_cover_snapshots_changes_and_incomplete_uploads_only() {
    let r = ours(35);
    assert_eq!(r.len(), 3);
    assert_eq!(r[0].id(), Some("lethe-expire-snapshots:prod/snapshots/"));
    assert_eq!(rule_prefix(&r[0]).as_deref(), Some("prod/snapshots/"));
    assert_eq!(r[0].expiration().and_then(|e| e.days()), Some(35));
    assert_eq!(r[1].id(), Some("lethe-expire-snapshots:prod/changes/"));
    assert_eq!(rule_prefix(&r[1]).as_deref(), Some("prod/changes/"));
    assert_eq!(r[1].expiration().and_then(|e| e.days()), Some(35));
    assert_eq!(r[2].id(), Some("lethe-abort-incomplete:prod/"));
    assert_eq!(rule_prefix(&r[2]).as_deref(), Some("prod/"));
    assert!(
        r[2].expiration().is_none(),
        "the abort rule must never expire objects (erasures/ lives under it)"
    );
    assert_eq!(
        r[2].abort_incomplete_multipart_upload()
            .and_then(|a| a.days_after_initiation()),
        Some(1)
    );
}

#[test]
fn merge_into_empty_adds_both() {
    let m = merge(&[], &ours(35));
    assert_eq!(m.rules, ours(35));
    assert_eq!(m.added.len(), 3);
    assert!(m.replaced.is_empty());
}

#[test]
fn merge_keeps_user_rules_in_order() {
    let user = vec![user_rule("logs", "logs/", 7), user_rule("tmp", "tmp/", 1)];
    let m = merge(&user, &ours(35));
    assert_eq!(&m.rules[..2], &user[..]);
    assert_eq!(&m.rules[2..], &ours(35)[..]);
    assert!(m.changed());
}

#[test]
fn merge_is_idempotent() {
    let user = vec![user_rule("logs", "logs/", 7)];
    let once = merge(&user, &ours(35));
    let twice = merge(&once.rules, &ours(35));
    assert!(!twice.changed());
    assert_eq!(twice.rules, once.rules);
}

#[test]
fn merge_replaces_a_drifted_rule_in_place() {
    let user = vec![user_rule("logs", "logs/", 7)];
    let old = merge(&user, &ours(30)).rules;
    let m = merge(&old, &ours(35));
    assert_eq!(
        m.replaced,
        vec![
            expire_rule_id("prod/", &crate::retention::lifecycle_policy(35)),
            expire_rule_id_for("prod/", "changes/"),
        ]
    );
    assert!(m.added.is_empty());
    assert_eq!(m.rules.len(), 4);
    assert_eq!(m.rules[0], user[0]);
    assert_eq!(m.rules[1].expiration().and_then(|e| e.days()), Some(35));
}

#[test]
fn a_store_echoing_the_filter_in_and_form_is_not_drift() {
    let and = LifecycleRule::builder()
        .id(expire_rule_id(
            "prod/",
            &crate::retention::lifecycle_policy(35),
        ))
        .status(ExpirationStatus::Enabled)
        .filter(
            LifecycleRuleFilter::builder()
                .and(
                    aws_sdk_s3::types::LifecycleRuleAndOperator::builder()
                        .prefix("prod/snapshots/")
                        .build(),
                )
                .build(),
        )
        .expiration(LifecycleExpiration::builder().days(35).build())
        .build()
        .unwrap();
    assert!(same_effect(&and, &ours(35)[0]));
}

#[test]
fn status_reports_missing_drifted_present() {
    assert_eq!(
        status_of(&[], &ours(35)),
        LifecycleStatus::Missing(vec![
            expire_rule_id("prod/", &crate::retention::lifecycle_policy(35)),
            expire_rule_id_for("prod/", "changes/"),
            abort_rule_id("prod/")
        ])
    );
    assert_eq!(status_of(&ours(35), &ours(35)), LifecycleStatus::Present);
    assert_eq!(
        status_of(&ours(30), &ours(35)),
        LifecycleStatus::Drifted(vec![
            expire_rule_id("prod/", &crate::retention::lifecycle_policy(35)),
            expire_rule_id_for("prod/", "changes/"),
        ])
    );
}

#[test]
fn repositories_in_one_bucket_get_distinct_rules() {
    let prod = desired_rules("prod/", &crate::retention::lifecycle_policy(35), false).unwrap();
    let staging = desired_rules("staging/", &crate::retention::lifecycle_policy(7), false).unwrap();
    let m = merge(&merge(&[], &prod).rules, &staging);
    assert_eq!(m.rules.len(), 6);
    assert_eq!(m.added.len(), 3);
}

#[test]
fn versioned_buckets_also_expire_noncurrent_versions() {
    let r = desired_rules("", &crate::retention::lifecycle_policy(35), true).unwrap();
    assert_eq!(
        r[0].noncurrent_version_expiration()
            .and_then(|n| n.noncurrent_days()),
        Some(1)
    );
    assert!(!same_effect(
        &r[0],
        &desired_rules("", &crate::retention::lifecycle_policy(35), false).unwrap()[0]
    ));
}

#[test]
fn user_rules_expiring_the_erasure_journal_are_flagged() {
    let user = vec![
        user_rule("everything", "", 90),
        user_rule("logs", "logs/", 7),
    ];
    let c = conflicts(
        &user,
        "prod/",
        &crate::retention::lifecycle_policy(35),
        &ours(35),
    );
    assert_eq!(c.len(), 1, "{c:?}");
    assert!(c[0].contains("everything") && c[0].contains("erasures/"));
    assert!(
        conflicts(
            &ours(35),
            "prod/",
            &crate::retention::lifecycle_policy(35),
            &ours(35)
        )
        .is_empty()
    );
}
