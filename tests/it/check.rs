//! `lethe check`: every connection the config names, one line per piece,
//! going on past failures; exit 0 when all pass, 1 naming each that fails.

use crate::common::LetheCli;
use crate::rig::{Rig, text};
use serde_json::Value;

const SCHEMA: &str = "CREATE TABLE users (id bigint PRIMARY KEY, name text);";

/// `lethe check --json`: the exit code and each piece by name.
fn check_json(rig: &Rig, env: &[(&str, &str)]) -> (Option<i32>, Vec<Value>, String) {
    let out = rig.run_env(&["check", "--json"], env);
    let pieces = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    (out.status.code(), pieces, text(&out.stderr))
}

fn piece<'a>(pieces: &'a [Value], name: &str) -> &'a Value {
    pieces
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no piece {name}: {pieces:#?}"))
}

/// The pieces that failed, by name.
fn failed(pieces: &[Value]) -> Vec<String> {
    pieces
        .iter()
        .filter(|p| p["ok"] != true)
        .map(|p| p["name"].as_str().expect("name").to_string())
        .collect()
}

fn ready(rig: &Rig) {
    for args in [&["init"][..], &["erase", "sync"]] {
        let out = rig.run(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    }
}

#[test]
fn every_piece_passes_on_a_directory_repository_one_line_or_object_each() {
    let rig = Rig::file("checkok", SCHEMA, "");
    ready(&rig);
    let out = rig.run(&["check"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    for name in [
        "source",
        "pg_dump",
        "repository",
        "identity",
        "erasure_list",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(name) && l.contains(" ok ")),
            "{name}: {stdout}"
        );
    }
    assert!(stdout.contains("all 5 checks passed"), "{stdout}");
    let (code, pieces, err) = check_json(&rig, &[]);
    assert_eq!(code, Some(0), "{pieces:#?} {err}");
    assert_eq!(pieces.len(), 5, "{pieces:#?}");
    for p in &pieces {
        assert_eq!(p["ok"], true, "{p}");
        assert!(p["detail"].as_str().is_some_and(|d| !d.is_empty()), "{p}");
    }
    assert!(
        piece(&pieces, "source")["detail"]
            .as_str()
            .is_some_and(|d| d.contains("PostgreSQL")),
        "{pieces:#?}"
    );
    assert!(
        piece(&pieces, "erasure_list")["detail"]
            .as_str()
            .is_some_and(|d| d.contains("0 entries")),
        "{pieces:#?}"
    );
}

#[test]
fn a_missing_list_a_foreign_identity_and_an_unreachable_source_each_fail_by_name() {
    let rig = Rig::file("checkbad", SCHEMA, "");
    ready(&rig);

    // No erasure list at erasure.path.
    let list = rig.dir.path().join("erasure");
    let moved = rig.dir.path().join("erasure.moved");
    std::fs::rename(&list, &moved).expect("move the list away");
    let (code, pieces, err) = check_json(&rig, &[]);
    assert_eq!(code, Some(1), "{pieces:#?}");
    assert_eq!(failed(&pieces), ["erasure_list"], "{pieces:#?}");
    let d = piece(&pieces, "erasure_list")["detail"].to_string();
    assert!(
        d.contains("no erasure list") && d.contains("lethe erase sync"),
        "{d}"
    );
    assert!(
        err.contains("erasure_list"),
        "stderr names the piece: {err}"
    );
    std::fs::rename(&moved, &list).expect("put the list back");

    // An identity whose key is none of the recipients.
    let other = rig.dir.path().join("other.key");
    let public = lethe::crypto::keygen(&other).expect("keygen");
    rig.edit_config(
        &format!("identity_file = \"{}\"", rig.key.display()),
        &format!("identity_file = \"{}\"", other.display()),
    );
    let (code, pieces, _) = check_json(&rig, &[]);
    assert_eq!(code, Some(1), "{pieces:#?}");
    assert_eq!(failed(&pieces), ["identity"], "{pieces:#?}");
    let d = piece(&pieces, "identity")["detail"].to_string();
    assert!(
        d.contains("matches none of encryption.recipients") && d.contains(&public),
        "{d}"
    );
    rig.edit_config(
        &format!("identity_file = \"{}\"", other.display()),
        &format!("identity_file = \"{}\"", rig.key.display()),
    );

    // A source nobody answers on: source fails, and pg_dump cannot be
    // compared with it; the rest still run and pass.
    let url = rig.db.url.clone();
    let unreachable = url.replacen("127.0.0.1:5432", "127.0.0.1:1", 1);
    assert_ne!(
        url, unreachable,
        "the test database URL changed shape: {url}"
    );
    rig.edit_config(&url, &unreachable);
    let out = rig.run(&["check"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let source = stdout
        .lines()
        .find(|l| l.starts_with("source"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        source.contains("FAILED") && source.contains("source.url") && source.contains(":1"),
        "{source}"
    );
    for ok in ["repository", "identity", "erasure_list"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(ok) && l.contains(" ok ")),
            "{ok} still checked and passing: {stdout}"
        );
    }
    assert!(
        text(&out.stderr).contains("source"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bad_s3_credentials_and_an_unknown_bucket_fail_the_repository_piece_with_the_storage_error() {
    let Some(rig) = Rig::s3("checks3", SCHEMA, "") else {
        return;
    };
    ready(&rig);
    let (code, pieces, err) = check_json(&rig, &[]);
    assert_eq!(code, Some(0), "{pieces:#?} {err}");

    let wrong = "0000000000000000000000000000000000000000000000000000000000000000";
    let (code, pieces, _) = check_json(&rig, &[("AWS_SECRET_ACCESS_KEY", wrong)]);
    assert_eq!(code, Some(1), "{pieces:#?}");
    assert!(
        failed(&pieces).contains(&"repository".to_string()),
        "{pieces:#?}"
    );
    let d = piece(&pieces, "repository")["detail"].to_string();
    assert!(d.contains("refused") && !d.contains(wrong), "{d}");
    // The list cannot be proven current without the repository.
    assert_eq!(piece(&pieces, "erasure_list")["ok"], false, "{pieces:#?}");
    assert_eq!(piece(&pieces, "source")["ok"], true, "{pieces:#?}");

    let bucket = rig.bucket.as_ref().expect("bucket").name.clone();
    let missing = format!("{bucket}-missing");
    rig.edit_config(&format!("s3://{bucket}/"), &format!("s3://{missing}/"));
    let (code, pieces, _) = check_json(&rig, &[]);
    assert_eq!(code, Some(1), "{pieces:#?}");
    let d = piece(&pieces, "repository")["detail"].to_string();
    assert_eq!(piece(&pieces, "repository")["ok"], false, "{pieces:#?}");
    assert!(d.contains(&missing), "names the bucket: {d}");
}
