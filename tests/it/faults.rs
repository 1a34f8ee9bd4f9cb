//! Storage faults, injected into the real `lethe` binary with `LETHE_FAULTS`
//! (see `src/storage/faulty.rs`): errors on the Nth call of each kind during
//! a snapshot must end in a clean failure (exit 1, no manifest, nothing
//! listed, leftovers removed by the next run) or, for slow calls, a complete
//! snapshot; faults while a restore reads must fail it naming the object,
//! with no half-loaded table in the target. Wrong S3 credentials give a
//! clear error.

use crate::common::LetheCli;
use crate::common::TestDb;
use crate::rig::{Rig, SCHEMA, TABLES, assert_same_tables, filler, table_text, text};
use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// After a failed snapshot: nothing listed beyond `before`, and a clean run
/// (grace 0) leaves no incomplete prefix behind.
fn assert_clean_failure(
    rig: &Rig,
    before: &BTreeSet<String>,
    what: &str,
    out: &std::process::Output,
) {
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: exit code; stderr:\n{err}"
    );
    // A failure before the snapshot starts (reading the repository marker)
    // is an error line without a snapshot.failed event; see RELIABILITY.md.
    assert!(
        err.contains("\"snapshot.failed\"") || err.contains("lethe: error:"),
        "{what}: the failure is reported:\n{err}"
    );
    assert!(
        err.contains("injected"),
        "{what}: the error says what failed:\n{err}"
    );
    let now: BTreeSet<String> = rig.listed().into_iter().collect();
    assert_eq!(&now, before, "{what}: a failed snapshot is listed");
}

/// Snapshot-side sweep: each call kind fails at several points.
#[test]
fn storage_errors_during_a_snapshot_fail_cleanly_and_delays_do_not_matter() {
    let rig = Rig::file("faultsnap", &format!("{SCHEMA}{}", filler(20_000)), "");
    rig.snapshot();
    let mut known: BTreeSet<String> = rig.listed().into_iter().collect();
    // A snapshot here makes 10 puts (marker aside): schema pre/post, 4 tables, manifest.
    let mut plans: Vec<String> = Vec::new();
    for n in [1, 2, 3, 5, 7, 9, 10] {
        plans.push(format!("put:permanent@{n}"));
        plans.push(format!("put:transient@{n}+"));
    }
    plans.push("put:reset=100@3".into());
    plans.push("put:transient~manifest.json".into());
    plans.push("list:permanent@1".into());
    plans.push("head:permanent@1".into());
    plans.push("get:permanent@1".into());
    let mut failed = 0;
    let mut completed = 0;
    for plan in &plans {
        let out = rig.run_env(&["snapshot"], &[("LETHE_FAULTS", plan)]);
        let err = text(&out.stderr);
        assert!(
            err.contains("storage.faults_injected"),
            "{plan}: the injection is announced:\n{err}"
        );
        if out.status.success() {
            // A fault on a call the snapshot does not make, or one it may
            // tolerate: what it lists must verify.
            completed += 1;
            let id = text(&out.stdout).trim().to_string();
            known.insert(id.clone());
            let v = rig.run(&["verify", &id, "--deep"]);
            assert!(
                v.status.success(),
                "{plan}: completed snapshot {id} does not verify: {}",
                text(&v.stdout)
            );
            continue;
        }
        failed += 1;
        assert_clean_failure(&rig, &known, plan, &out);
    }
    // Slow storage: every put and get delayed.
    let out = rig.run_env(
        &["snapshot"],
        &[(
            "LETHE_FAULTS",
            "put:delay=150ms,get:delay=50ms,list:delay=100ms",
        )],
    );
    assert!(out.status.success(), "delays: {}", text(&out.stderr));
    // One clean run after the grace period removes all leftovers.
    let out = rig.run_env(&["snapshot"], &[("LETHE_CLEANUP_GRACE", "0s")]);
    assert!(out.status.success(), "clean-up run: {}", text(&out.stderr));
    let files = rig.repo_files();
    let listed = rig.listed();
    for f in &files {
        let Some(rest) = f.strip_prefix("snapshots/") else {
            continue;
        };
        let id = rest.split('/').next().unwrap_or_default();
        assert!(
            listed.iter().any(|l| l == id),
            "leftover of an unlisted snapshot: {f}"
        );
    }
    assert!(
        !files.iter().any(|f| f.starts_with(".tmp/")),
        "temp files left: {files:?}"
    );
    let v = rig.run(&["verify", "--all"]);
    assert!(v.status.success(), "{}", text(&v.stdout));
    let (target, out) = rig.restore("latest", "faultsnap_tgt");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_same_tables(&rig.db, &target, TABLES);
    eprintln!(
        "faults (snapshot): {} plans: {failed} clean failures, {completed} completed and verified; delays: completed; \
         clean-up left 0 leftovers; restore equals source",
        plans.len()
    );
}

/// Every table in `target` is either empty/absent or whole: nothing half-loaded.
fn assert_no_partial_table(source: &TestDb, target: &TestDb, what: &str) {
    let present = crate::common::psql(
        &target.name,
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
    );
    for t in present.lines().map(str::trim).filter(|t| !t.is_empty()) {
        let got = table_text(&target.name, t);
        assert!(
            got.is_empty() || got == table_text(&source.name, t),
            "{what}: table {t} is half-loaded"
        );
    }
}

/// Runs `cmd` for at most `limit`; `None` (after killing it) on a hang.
fn run_bounded(mut cmd: std::process::Command, limit: Duration) -> Option<std::process::Output> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let (mut out, mut err) = (
        child.stdout.take().expect("stdout"),
        child.stderr.take().expect("stderr"),
    );
    let o = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out, &mut v);
        v
    });
    let e = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut err, &mut v);
        v
    });
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            let (stdout, stderr) = (o.join().expect("stdout"), e.join().expect("stderr"));
            return Some(std::process::Output {
                status,
                stdout,
                stderr,
            });
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Where a restore under test writes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dest {
    Database,
    File,
}

/// Restore-side faults and damage, each of which must fail within 3 min,
/// naming the object, leaving nothing half-written. Returns the cases run.
fn restore_damage_matrix(dest: Dest) -> usize {
    let rig = Rig::file("faultrest", &format!("{SCHEMA}{}", filler(20_000)), "");
    let id = rig.snapshot();
    let out = rig.run(&["erase", "sync"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let repo = rig.repo.clone().expect("file repo");
    let manifest_path = repo.join(format!("snapshots/{id}/manifest.json"));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).expect("manifest")).expect("json");
    let orders = manifest["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["name"] == "orders")
        .and_then(|t| t["objects"][0]["key"].as_str())
        .expect("object")
        .to_string();
    let mut cases = 0;
    let mut attempt = |what: &str, env: &[(&str, &str)], extra: &[&str], must_name: &str| {
        cases += 1;
        let target = TestDb::create("faultrest_tgt");
        let file = rig.dir.path().join(format!("restore-{cases}.sql"));
        let mut args = vec!["restore", "latest"];
        let file_arg = file.display().to_string();
        match dest {
            Dest::Database => args.extend(["--target", target.url.as_str()]),
            Dest::File => args.extend(["--to-file", file_arg.as_str()]),
        }
        args.extend(extra);
        let mut cmd = rig.cmd(&args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let Some(out) = run_bounded(cmd, Duration::from_secs(180)) else {
            panic!("{what} ({dest:?}): restore hung for 3 min instead of failing");
        };
        let err = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{what} ({dest:?}): restore must fail; stderr:\n{err}"
        );
        assert!(
            err.contains(must_name),
            "{what} ({dest:?}): the error names {must_name}:\n{err}"
        );
        assert_no_partial_table(&rig.db, &target, what);
        assert!(
            !file.exists(),
            "{what}: a partial SQL file was left at {}",
            file.display()
        );
    };
    // Faults in transit (the stored objects stay intact).
    for (what, plan) in [
        ("get flip", format!("get:flip=300~{orders}")),
        ("get truncate", format!("get:truncate~{orders}")),
        ("get reset", format!("get:reset=200~{orders}")),
        ("get permanent", format!("get:permanent~{orders}")),
        ("get notfound", format!("get:notfound~{orders}")),
    ] {
        attempt(what, &[("LETHE_FAULTS", &plan)], &[], &orders);
    }

    // Damage at rest, one kind at a time, the pristine copy put back after each.
    let orig = std::fs::read(repo.join(&orders)).expect("object");
    let orig_manifest = std::fs::read(&manifest_path).expect("manifest");
    let mut flipped = orig.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    std::fs::write(repo.join(&orders), &flipped).expect("write");
    attempt("flipped byte at rest", &[], &[], &orders);
    std::fs::write(repo.join(&orders), &orig[..orig.len() - 1]).expect("write");
    attempt("truncated at rest", &[], &[], &orders);
    std::fs::remove_file(repo.join(&orders)).expect("rm");
    attempt("missing object", &[], &[], &orders);
    std::fs::write(repo.join(&orders), &orig).expect("put back");

    // A manifest naming an object that was never stored.
    let ghost = orders.replace(".000.copy", ".007.copy");
    let m = String::from_utf8(orig_manifest.clone())
        .expect("utf8")
        .replace(&orders, &ghost);
    std::fs::write(&manifest_path, m).expect("manifest");
    attempt("manifest names a missing object", &[], &[], &ghost);
    // A manifest from a newer format.
    let m = String::from_utf8(orig_manifest.clone())
        .expect("utf8")
        .replacen("\"format\": 1", "\"format\": 2", 1);
    std::fs::write(&manifest_path, m).expect("manifest");
    attempt("newer manifest format", &[], &[], "manifest.json");
    std::fs::write(&manifest_path, &orig_manifest).expect("manifest");

    // A wrong age identity.
    let wrong = rig.dir.path().join("wrong.key");
    lethe::crypto::keygen(&wrong).expect("keygen");
    let wrong_arg = wrong.display().to_string();
    attempt(
        "wrong identity",
        &[],
        &["--identity", wrong_arg.as_str()],
        "identity",
    );

    // And a clean restore still works afterwards.
    let (target, out) = rig.restore(&id, "faultrest_ok");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_same_tables(&rig.db, &target, TABLES);
    cases
}

#[test]
fn damaged_or_failing_objects_stop_a_restore_to_a_file_naming_the_object() {
    let n = restore_damage_matrix(Dest::File);
    eprintln!(
        "faults (restore --to-file): {n} cases (5 in transit, 3 at rest, ghost object, newer format, wrong identity): all failed naming the object, no partial file"
    );
}

/// Into a database: a failed table must be rolled back, none half-loaded.
/// (This hung before commit 3047fad: RELIABILITY.md, finding R1.)
#[test]
fn damaged_or_failing_objects_stop_a_restore_into_a_database_naming_the_object() {
    let n = restore_damage_matrix(Dest::Database);
    eprintln!(
        "faults (restore --target): {n} cases: all failed naming the object, 0 half-loaded tables"
    );
}

#[test]
fn wrong_s3_credentials_are_a_clear_error() {
    let Some(rig) = Rig::s3("faultcred", "SELECT 1", "") else {
        return;
    };
    for (k, v) in [
        (
            "AWS_SECRET_ACCESS_KEY",
            "0000000000000000000000000000000000000000000000000000000000000000",
        ),
        ("AWS_ACCESS_KEY_ID", "GK000000000000000000000000"),
    ] {
        let out = rig.run_env(&["snapshot"], &[(k, v)]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{k}: {err}");
        assert!(
            err.contains("credential"),
            "{k}: the error points at the credentials: {err}"
        );
        if k == "AWS_SECRET_ACCESS_KEY" {
            assert!(!err.contains(v), "the secret key is echoed: {err}");
        }
        assert!(rig.listed().is_empty());
    }
}
