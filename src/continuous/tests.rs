use super::config::valid_name;
use super::*;
use std::time::Duration;

#[test]
fn defaults_are_valid_and_match_the_issue() {
    let c = ContinuousConfig::default();
    assert!(!c.enabled);
    assert_eq!(c.flush_every, Duration::from_secs(5));
    assert_eq!(c.base_every, Duration::from_secs(86_400));
    assert_eq!(
        (c.slot.as_str(), c.publication.as_str()),
        ("lethe", "lethe")
    );
    assert_eq!(c.max_lag, 8 << 30);
    assert_eq!(c.check(35), vec![]);
}

#[test]
fn names_must_be_postgresql_identifiers() {
    for ok in ["lethe", "_x", "lethe_2", &"a".repeat(63)] {
        assert!(valid_name(ok), "{ok}");
    }
    for bad in [
        "",
        "Lethe",
        "2lethe",
        "le-the",
        "le the",
        "lethé",
        &"a".repeat(64),
    ] {
        assert!(!valid_name(bad), "{bad}");
    }
}

#[test]
fn each_bad_key_is_named() {
    let c = ContinuousConfig {
        enabled: true,
        flush_every: Duration::from_millis(10),
        base_every: Duration::from_secs(2 * 86_400),
        slot: "Bad".into(),
        publication: "x-y".into(),
        max_lag: 1000,
    };
    let keys: Vec<&str> = c.check(2).iter().map(|i| i.key).collect();
    assert_eq!(
        keys,
        [
            "continuous.flush_every",
            "continuous.base_every",
            "continuous.slot",
            "continuous.publication",
            "continuous.max_lag"
        ]
    );
    let issues = c.check(2);
    assert!(issues[1].message.contains("retention.days"), "{issues:?}");
}

#[test]
fn base_every_against_retention_only_when_enabled() {
    let mut c = ContinuousConfig {
        base_every: Duration::from_secs(86_400),
        ..ContinuousConfig::default()
    };
    assert_eq!(c.check(1), vec![]);
    c.enabled = true;
    assert_eq!(c.check(1).len(), 1);
    assert_eq!(c.check(2), vec![]);
}
