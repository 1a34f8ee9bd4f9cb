use super::*;
use std::time::Duration;

fn valid_base() -> String {
    r#"
[encryption]
recipients = ["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"]
"#
    .to_string()
}

fn issues_for(extra: &str) -> Vec<ConfigIssue> {
    let text = format!("{}\n{extra}", valid_base());
    Config::parse(&text).expect("parses").validate()
}

#[test]
fn defaults_with_a_recipient_are_valid() {
    assert_eq!(issues_for(""), vec![]);
}

#[test]
fn unknown_key_is_a_parse_error_naming_it() {
    let err = Config::parse("[retention]\nday = 35\n").unwrap_err();
    assert!(err.contains("day"), "{err}");
}

#[test]
fn non_eu_region_is_refused() {
    let i = issues_for("[storage]\nurl = \"s3://b/p\"\nregion = \"us-east-1\"\n");
    assert_eq!(i.len(), 1);
    assert_eq!(i[0].key, "storage.region");
    assert!(i[0].message.contains("allowed_regions"));
}

#[test]
fn extra_region_is_accepted() {
    let i = issues_for(
        "[storage]\nurl = \"s3://b/p\"\nregion = \"garage\"\nallowed_regions = [\"garage\"]\n",
    );
    assert_eq!(i, vec![]);
}

#[test]
fn remote_http_endpoint_is_refused_but_loopback_is_fine() {
    let i = issues_for("[storage]\nurl = \"s3://b/p\"\nendpoint = \"http://s3.example.com\"\n");
    assert_eq!(i[0].key, "storage.endpoint");
    let i = issues_for("[storage]\nurl = \"s3://b/p\"\nendpoint = \"http://127.0.0.1:3900\"\n");
    assert_eq!(i, vec![]);
}

#[test]
fn zero_retention_is_refused() {
    let i = issues_for("[retention]\ndays = 0\n");
    assert_eq!(i[0].key, "retention.days");
}

#[test]
fn missing_recipients_need_explicit_disable() {
    let i = Config::parse("").unwrap().validate();
    assert!(i.iter().any(|i| i.key == "encryption.recipients"), "{i:?}");
    let i = Config::parse("[encryption]\ndisabled = true\n")
        .unwrap()
        .validate();
    assert_eq!(i, vec![]);
}

#[test]
fn durations_parse_and_bad_ones_are_named() {
    let c = Config::parse("[schedule]\nevery = \"15m\"\n").unwrap();
    assert_eq!(c.schedule.every, Some(Duration::from_secs(900)));
    let e = Config::parse("[schedule]\nevery = \"soon\"\n").unwrap_err();
    assert!(e.contains("every") && e.contains("soon"), "{e}");
}

#[test]
fn shipped_example_config_parses_and_validates() {
    let text = include_str!("../../deploy/lethe.example.toml");
    let cfg = Config::parse(text).expect("example parses");
    assert_eq!(cfg.validate(), vec![]);
    assert_eq!(cfg.retention.days, 35);
}

#[test]
fn table_names_are_read_as_psql_spells_them() {
    let ok = |s: &str| parse_table(s).unwrap();
    assert_eq!(ok("public.users"), ("public".into(), "users".into()));
    assert_eq!(ok("\"app.v2\".users"), ("app.v2".into(), "users".into()));
    assert_eq!(
        ok("\"Sales\".\"Order \"\"X\"\"\""),
        ("Sales".into(), "Order \"X\"".into())
    );
    for bad in [
        "users",
        "a.b.c",
        ".users",
        "public.",
        "\"app.v2.users",
        "\"a\"x.users",
        "pub\"lic.users",
    ] {
        let e = parse_table(bad).unwrap_err();
        assert!(e.contains("schema") || e.contains("quote"), "{bad}: {e}");
    }
}

#[test]
fn every_unknown_key_is_named_each_with_a_suggestion_for_a_near_miss() {
    let text = format!(
        "{}\n[schedule]\nevrey = \"1h\"\n[retention]\nday = 35\n[source]\nurl = \"postgres://x\"\nbogus_thing = 1\n\
         [erasure]\nsubjects = [{{ table = \"public.users\", colum = \"id\" }}]\n[lgo]\nlevel = \"info\"\n",
        valid_base()
    );
    let issues = keys::unknown_keys(&text);
    let by_key: std::collections::HashMap<&str, &str> = issues
        .iter()
        .map(|i| (i.key.as_str(), i.message.as_str()))
        .collect();
    assert_eq!(issues.len(), 5, "{issues:?}");
    assert!(
        by_key["schedule.evrey"].contains("did you mean `every`?"),
        "{issues:?}"
    );
    assert!(
        by_key["retention.day"].contains("did you mean `days`?"),
        "{issues:?}"
    );
    assert!(
        by_key["source.bogus_thing"].contains("valid keys are url"),
        "{issues:?}"
    );
    assert!(
        by_key["erasure.subjects[0].colum"].contains("did you mean `column`?"),
        "{issues:?}"
    );
    assert!(
        by_key["lgo"].contains("unknown section: did you mean `log`?"),
        "{issues:?}"
    );
    // Config::load reports them all, not serde's first.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("lethe.toml");
    std::fs::write(&path, &text).expect("write");
    let err = Config::load(&path).expect_err("unknown keys").to_string();
    assert!(
        err.contains("5 problem(s)") && err.contains("schedule.evrey"),
        "{err}"
    );
}

#[test]
fn a_known_config_has_no_unknown_keys() {
    assert_eq!(keys::unknown_keys(&valid_base()), vec![]);
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/lethe.example.toml"),
    )
    .expect("example");
    assert_eq!(keys::unknown_keys(&example), vec![]);
}

#[test]
fn edit_distance_counts_a_swap_as_one() {
    assert_eq!(keys::distance("evrey", "every"), 1);
    assert_eq!(keys::distance("day", "days"), 1);
    assert_eq!(keys::distance("cron", "every"), 5);
}

#[test]
fn a_mistyped_log_level_is_a_config_issue_naming_the_valid_levels() {
    for bad in ["warning", "verbose", "lethe=loud"] {
        let i = issues_for(&format!("[log]\nlevel = \"{bad}\"\n"));
        assert_eq!(i.len(), 1, "{bad}: {i:?}");
        assert_eq!(i[0].key, "log.level");
        assert!(i[0].value.contains(bad), "{i:?}");
        assert!(
            i[0].message.contains("error, warn, info, debug, trace"),
            "{i:?}"
        );
    }
    assert_eq!(issues_for("[log]\nlevel = \"lethe=debug\"\n"), vec![]);
}

#[test]
fn continuous_section_parses_sizes_and_durations_and_names_each_bad_key() {
    let cfg = Config::parse(&format!(
        "{}\n[continuous]\nenabled = true\nflush_every = \"2s\"\nbase_every = \"12h\"\nslot = \"s1\"\npublication = \"p1\"\nmax_lag = \"512MiB\"\n",
        valid_base()
    ))
    .expect("parses");
    assert_eq!(cfg.continuous.flush_every, Duration::from_secs(2));
    assert_eq!(cfg.continuous.max_lag, 512 << 20);
    assert_eq!(cfg.validate(), vec![]);

    let i = issues_for(
        "[retention]\ndays = 1\n[continuous]\nenabled = true\nbase_every = \"2d\"\nslot = \"Lethe\"\npublication = \"a-b\"\nmax_lag = \"1KiB\"\nflush_every = \"0s\"\n",
    );
    let keys: Vec<&str> = i.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "continuous.flush_every",
            "continuous.base_every",
            "continuous.slot",
            "continuous.publication",
            "continuous.max_lag"
        ],
        "{i:?}"
    );
    let err = Config::parse(&format!(
        "{}\n[continuous]\nmax_lag = \"8GB\"\n",
        valid_base()
    ))
    .unwrap_err();
    assert!(err.contains("8GB") && err.contains("GiB"), "{err}");
}

#[test]
fn unknown_keys_in_continuous_are_named_with_a_suggestion() {
    let i = keys::unknown_keys("[continuous]\nflush_evry = \"5s\"\n");
    assert_eq!(i.len(), 1, "{i:?}");
    assert_eq!(i[0].key, "continuous.flush_evry");
    assert!(i[0].message.contains("`flush_every`"), "{i:?}");
}
