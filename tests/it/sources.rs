//! Two databases snapshotted into one repository: `latest` resolves within
//! the configured source, and another source's snapshot is refused by id,
//! so one database's erasure roots and list are never applied to the other.

use crate::common::{TestDb, lethe, write_config};
use std::path::Path;

fn config(dir: &Path, src: &TestDb, repo: &Path, public: &str) -> std::path::PathBuf {
    let own = dir.join(&src.name);
    std::fs::create_dir_all(&own).unwrap();
    write_config(
        &own,
        &format!(
            "[source]\nurl = \"{url}\"\n\n[storage]\nurl = \"file://{repo}\"\n\n\
             [encryption]\nrecipients = [\"{public}\"]\nidentity_file = \"{key}\"\n\n\
             [erasure]\npath = \"{erasure}\"\nsubjects = [ {{ table = \"public.users\", column = \"id\" }} ]\n\n\
             [api]\nlisten = \"unix:{sock}\"\n",
            url = src.url,
            repo = repo.display(),
            key = dir.join("restore.key").display(),
            erasure = own.join("erasure").display(),
            sock = own.join("api.sock").display(),
        ),
    )
}

fn ok(cfg: &Path, args: &[&str]) -> String {
    let out = lethe(cfg, args);
    assert!(
        out.status.success(),
        "lethe {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn latest_resolves_within_the_configured_database_and_other_ids_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let public = lethe::crypto::keygen(&dir.path().join("restore.key")).unwrap();
    let repo = dir.path().join("repo");
    let a = TestDb::create("src_a");
    let b = TestDb::create("src_b");
    a.sql("CREATE TABLE users (id bigint PRIMARY KEY, who text); INSERT INTO users VALUES (1, 'a1'), (7, 'a7');");
    b.sql(
        "CREATE TABLE users (id bigint PRIMARY KEY, who text); INSERT INTO users VALUES (7, 'b7');",
    );
    let (cfg_a, cfg_b) = (
        config(dir.path(), &a, &repo, &public),
        config(dir.path(), &b, &repo, &public),
    );
    let id_a = ok(&cfg_a, &["snapshot"]);
    let id_b = ok(&cfg_b, &["snapshot"]);
    assert!(id_b > id_a, "b's snapshot is the newest in the repository");
    // Erased in a only.
    ok(&cfg_a, &["erase", "add", "7"]);

    let dst = TestDb::create("src_a_dst");
    ok(&cfg_a, &["restore", "latest", "--target", &dst.url]);
    assert_eq!(
        dst.sql("SELECT string_agg(who, ',' ORDER BY id) FROM users")
            .trim(),
        "a1"
    );

    let shown = ok(&cfg_b, &["show", "latest", "--json"]);
    let m: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(m["id"], id_b.as_str());
    assert!(
        m["source"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/{}", b.name)),
        "{m}"
    );

    // b's snapshot under a's config: refused before the target is touched.
    let other = TestDb::create("src_other_dst");
    let out = lethe(&cfg_a, &["restore", &id_b, "--target", &other.url]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&b.name) && err.contains("not of the configured source"),
        "{err}"
    );
    assert_eq!(
        other
            .sql("SELECT count(*) FROM pg_class WHERE relname = 'users'")
            .trim(),
        "0"
    );
}
