//! A subject keyed by a natural key that can come back (an e-mail erased,
//! then registered again by a new account): with `reusable = true` an
//! erasure applies to snapshots taken before it (plus `reuse_grace`), and a
//! later snapshot's new account with that key is restored and reported by
//! the leak check; a surrogate-id root keeps dropping it forever.

use crate::common::{TestDb, lethe, write_config};
use std::path::Path;

fn config(
    dir: &Path,
    src: &TestDb,
    reusable: bool,
    grace: &str,
    public: &str,
) -> std::path::PathBuf {
    let own = dir.join(if reusable { "reusable" } else { "permanent" });
    std::fs::create_dir_all(&own).unwrap();
    write_config(
        &own,
        &format!(
            "[source]\nurl = \"{url}\"\n\n[storage]\nurl = \"file://{repo}\"\n\n\
             [encryption]\nrecipients = [\"{public}\"]\nidentity_file = \"{key}\"\n\n\
             [erasure]\npath = \"{erasure}\"\nsubject_type = \"text\"\nreuse_grace = \"{grace}\"\n\
             subjects = [ {{ table = \"public.accounts\", column = \"email\", reusable = {reusable} }} ]\n\n\
             [api]\nlisten = \"unix:{sock}\"\n",
            url = src.url,
            repo = own.join("repo").display(),
            key = dir.join("restore.key").display(),
            erasure = own.join("erasure").display(),
            sock = own.join("api.sock").display(),
        ),
    )
}

fn run(cfg: &Path, args: &[&str]) -> std::process::Output {
    let out = lethe(cfg, args);
    assert!(
        out.status.success(),
        "lethe {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn restored(cfg: &Path, id: &str) -> String {
    let dst = TestDb::create("reuse_dst");
    run(cfg, &["restore", id, "--target", &dst.url]);
    dst.sql("SELECT string_agg(id || ':' || email, ',' ORDER BY id) FROM accounts")
        .trim()
        .to_string()
}

#[test]
fn a_reusable_key_erased_before_a_snapshot_is_a_new_account_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let public = lethe::crypto::keygen(&dir.path().join("restore.key")).unwrap();
    let src = TestDb::create("reuse_src");
    src.sql(
        "CREATE TABLE accounts (id bigint PRIMARY KEY, email text UNIQUE NOT NULL); \
         INSERT INTO accounts VALUES (1, 'kept@example.com'), (2, 'gone@example.com');",
    );
    let reusable = config(dir.path(), &src, true, "0s", &public);
    let permanent = config(dir.path(), &src, false, "0s", &public);
    let snap = |cfg: &Path| {
        String::from_utf8_lossy(&run(cfg, &["snapshot"]).stdout)
            .trim()
            .to_string()
    };
    let (before_r, before_p) = (snap(&reusable), snap(&permanent));

    // The person is erased; the application deletes the account; later a
    // new person registers with the same address.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    for cfg in [&reusable, &permanent] {
        run(cfg, &["erase", "add", "gone@example.com"]);
    }
    src.sql(
        "DELETE FROM accounts WHERE id = 2; INSERT INTO accounts VALUES (3, 'gone@example.com');",
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let after_r = run(&reusable, &["snapshot"]);
    let after_p = snap(&permanent);
    let after_r_id = String::from_utf8_lossy(&after_r.stdout).trim().to_string();
    // The leak check reports the key in the later snapshot either way.
    assert!(
        String::from_utf8_lossy(&after_r.stderr).contains("erasure.leak_detected"),
        "{}",
        String::from_utf8_lossy(&after_r.stderr)
    );

    // Snapshots from before the erasure drop the erased person in both modes.
    assert_eq!(restored(&reusable, &before_r), "1:kept@example.com");
    assert_eq!(restored(&permanent, &before_p), "1:kept@example.com");
    // After it: the new account comes back only where the key is reusable.
    assert_eq!(
        restored(&reusable, &after_r_id),
        "1:kept@example.com,3:gone@example.com"
    );
    assert_eq!(restored(&permanent, &after_p), "1:kept@example.com");
}
