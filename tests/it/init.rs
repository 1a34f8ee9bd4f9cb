//! `lethe init`: the marker, lifecycle rules merged into the bucket's own
//! (checked with the aws CLI), idempotence, and its refusals.

use crate::common::{self, Garage, Repo};
use lethe::storage::lifecycle::{self, LifecycleStatus};
use serde_json::{Value, json};
use std::process::Output;

fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn lifecycle_json(g: &Garage, bucket: &str) -> Value {
    let out = g.aws(&[
        "s3api",
        "get-bucket-lifecycle-configuration",
        "--bucket",
        bucket,
    ]);
    serde_json::from_str(&out).expect("aws prints JSON")
}

fn rule<'a>(conf: &'a Value, id: &str) -> &'a Value {
    conf["Rules"]
        .as_array()
        .and_then(|rules| rules.iter().find(|r| r["ID"] == id))
        .unwrap_or_else(|| panic!("no rule {id} in {conf:#}"))
}

const USER_RULE: &str = r#"{"Rules":[{"ID":"user-logs","Status":"Enabled","Filter":{"Prefix":"logs/"},"Expiration":{"Days":7}}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_merges_lifecycle_rules_and_is_idempotent() {
    let Some(g) = common::garage() else { return };
    let bucket = g.new_bucket();
    g.aws(&[
        "s3api",
        "put-bucket-lifecycle-configuration",
        "--bucket",
        &bucket,
        "--lifecycle-configuration",
        USER_RULE,
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = common::write_repo_config(
        dir.path(),
        &Repo::S3 {
            garage: &g,
            bucket: &bucket,
            prefix: "prod",
        },
        "",
    );

    let first = g.lethe(&cfg, &["init"]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let out = String::from_utf8_lossy(&first.stdout);
    assert!(
        out.contains("added rule lethe-expire-snapshots:prod/snapshots/"),
        "{out}"
    );
    assert!(out.contains("wrote lethe.json"), "{out}");

    let conf = lifecycle_json(&g, &bucket);
    assert_eq!(conf["Rules"].as_array().map(Vec::len), Some(4), "{conf:#}");
    let user = rule(&conf, "user-logs");
    assert_eq!(user["Filter"]["Prefix"], "logs/");
    assert_eq!(user["Expiration"]["Days"], 7);
    let expire = rule(&conf, "lethe-expire-snapshots:prod/snapshots/");
    assert_eq!(expire["Status"], "Enabled");
    assert_eq!(expire["Filter"]["Prefix"], "prod/snapshots/");
    assert_eq!(expire["Expiration"]["Days"], 35);
    // The change stream of continuous capture expires the same way.
    let changes = rule(&conf, "lethe-expire-snapshots:prod/changes/");
    assert_eq!(changes["Filter"]["Prefix"], "prod/changes/");
    assert_eq!(changes["Expiration"]["Days"], 35);
    let abort = rule(&conf, "lethe-abort-incomplete:prod/");
    assert_eq!(abort["Filter"]["Prefix"], "prod/");
    assert_eq!(
        abort["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"],
        1
    );
    assert!(
        abort.get("Expiration").is_none(),
        "erasures/ must never expire: {abort:#}"
    );

    let marker: Value = serde_json::from_str(&g.aws(&[
        "s3",
        "cp",
        &format!("s3://{}/prod/lethe.json", &*bucket),
        "-",
    ]))
    .expect("marker JSON");
    assert_eq!(marker["retention_days"], 35);

    let status = lifecycle::lifecycle_status_with(
        &g.storage_config(&bucket, "prod"),
        lethe::retention::lifecycle_policy(35),
        g.s3_options(),
    )
    .await;
    assert_eq!(status.expect("status"), LifecycleStatus::Present);

    // A second init changes nothing and says so.
    let second = g.lethe(&cfg, &["init"]);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    let out = String::from_utf8_lossy(&second.stdout);
    assert!(out.contains("nothing changed"), "{out}");
    assert!(out.contains("rules already in place"), "{out}");
    assert_eq!(lifecycle_json(&g, &bucket), conf);
    let marker_again: Value = serde_json::from_str(&g.aws(&[
        "s3",
        "cp",
        &format!("s3://{}/prod/lethe.json", &*bucket),
        "-",
    ]))
    .expect("marker");
    assert_eq!(marker_again, marker, "the marker was rewritten");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drifted_rules_are_reported_and_repaired_without_touching_others() {
    let Some(g) = common::garage() else { return };
    let bucket = g.new_bucket();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = common::write_repo_config(
        dir.path(),
        &Repo::S3 {
            garage: &g,
            bucket: &bucket,
            prefix: "",
        },
        "",
    );
    let storage_cfg = g.storage_config(&bucket, "");
    let status = lifecycle::lifecycle_status_with(
        &storage_cfg,
        lethe::retention::lifecycle_policy(35),
        g.s3_options(),
    )
    .await
    .expect("status");
    assert!(
        matches!(status, LifecycleStatus::Missing(ref ids) if ids.len() == 3),
        "{status:?}"
    );
    assert_eq!(g.lethe(&cfg, &["init"]).status.code(), Some(0));

    // Someone edits Lethe's rule (90 days) and adds their own.
    let edited = json!({"Rules": [
        {"ID": "lethe-expire-snapshots:snapshots/", "Status": "Enabled", "Filter": {"Prefix": "snapshots/"}, "Expiration": {"Days": 90}},
        {"ID": "lethe-expire-snapshots:changes/", "Status": "Enabled", "Filter": {"Prefix": "changes/"}, "Expiration": {"Days": 35}},
        {"ID": "lethe-abort-incomplete:", "Status": "Enabled", "Filter": {"Prefix": ""}, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}},
        {"ID": "theirs", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 2}},
    ]});
    g.aws(&[
        "s3api",
        "put-bucket-lifecycle-configuration",
        "--bucket",
        &bucket,
        "--lifecycle-configuration",
        &edited.to_string(),
    ]);
    let status = lifecycle::lifecycle_status_with(
        &storage_cfg,
        lethe::retention::lifecycle_policy(35),
        g.s3_options(),
    )
    .await
    .expect("status");
    assert_eq!(
        status,
        LifecycleStatus::Drifted(vec!["lethe-expire-snapshots:snapshots/".into()])
    );

    let again = g.lethe(&cfg, &["init"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout)
            .contains("updated rule lethe-expire-snapshots:snapshots/")
    );
    let conf = lifecycle_json(&g, &bucket);
    assert_eq!(
        rule(&conf, "lethe-expire-snapshots:snapshots/")["Expiration"]["Days"],
        35
    );
    assert_eq!(rule(&conf, "theirs")["Expiration"]["Days"], 2);
    assert_eq!(conf["Rules"].as_array().map(Vec::len), Some(4));
}

#[test]
fn init_refuses_a_different_retention_or_a_newer_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("repo");
    let cfg = common::write_repo_config(dir.path(), &Repo::File(&repo), "");
    let first = common::lethe(&cfg, &["init"]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    assert!(String::from_utf8_lossy(&first.stdout).contains("none for a directory repository"));
    assert!(repo.join("lethe.json").exists());

    let second = common::lethe(&cfg, &["init"]);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    assert!(String::from_utf8_lossy(&second.stdout).contains("nothing changed"));

    let cfg30 =
        common::write_repo_config(dir.path(), &Repo::File(&repo), "[retention]\ndays = 30\n");
    let refused = common::lethe(&cfg30, &["init"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("retention.days = 30") && err.contains("35 days"),
        "{err}"
    );

    let cfg35 = common::write_repo_config(dir.path(), &Repo::File(&repo), "");
    let mut marker: Value =
        serde_json::from_slice(&std::fs::read(repo.join("lethe.json")).expect("marker"))
            .expect("json");
    marker["format"] = json!(999);
    std::fs::write(repo.join("lethe.json"), marker.to_string()).expect("write marker");
    let newer = common::lethe(&cfg35, &["init"]);
    assert_eq!(newer.status.code(), Some(1), "{}", text(&newer));
    assert!(
        String::from_utf8_lossy(&newer.stderr).contains("upgrade lethe"),
        "{}",
        text(&newer)
    );
}

#[test]
fn config_check_names_the_offending_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("repo");
    let s3 = |extra: &str| {
        format!(
            "[source]\nurl = \"postgres://postgres@127.0.0.1/app\"\n[storage]\nurl = \"s3://bucket/prefix\"\n{extra}\n\
             [encryption]\nrecipients = [\"{}\"]\n",
            lethe::crypto::keygen(&dir.path().join(format!("k{:x}", rand::random::<u32>())))
                .expect("keygen")
        )
    };
    let good = common::write_repo_config(dir.path(), &Repo::File(&repo), "");
    let ok = common::lethe(&good, &["config", "check"]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));

    let base = common::repo_config_text(
        dir.path(),
        &Repo::File(&repo),
        "postgres://postgres@127.0.0.1/app",
    );
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "unknown key",
            format!("{base}\n[retention]\ndayz = 35\n"),
            "dayz",
        ),
        (
            "non-EU region",
            s3("region = \"us-east-1\""),
            "storage.region",
        ),
        (
            "retention.days = 0",
            format!("{base}\n[retention]\ndays = 0\n"),
            "retention.days",
        ),
        (
            "remote http endpoint",
            s3("endpoint = \"http://s3.example.com\""),
            "storage.endpoint",
        ),
        (
            "missing recipients",
            base.replace("recipients = [", "recipients = [] #"),
            "encryption.recipients",
        ),
    ];
    for (what, toml, key) in cases {
        let path = common::write_config(dir.path(), &toml);
        let out = common::lethe(&path, &["config", "check"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {}", text(&out));
        assert!(
            err.contains(key),
            "{what}: the message does not name {key}: {err}"
        );
    }
}
