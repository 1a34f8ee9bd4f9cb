//! The erasure list end to end: durability across kill -9 of the process
//! serving the API, hosts sharing one repository (directory and Garage),
//! a fresh host rebuilding from the journal, the CLI through the API.

use crate::common::{self, Repo, write_repo_config};
use lethe::config::{ApiConfig, Config, SubjectType};
use lethe::erasure::ErasureStore;
use lethe::erasure::client::ApiClient;
use lethe::erasure::journal;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs lethe and asserts the exit code, showing its output otherwise.
pub(crate) fn lethe_ok(cfg: &Path, args: &[&str], code: i32) -> Output {
    let o = common::lethe(cfg, args);
    assert_eq!(
        o.status.code(),
        Some(code),
        "lethe {args:?}: stdout {} stderr {}",
        stdout(&o),
        stderr(&o)
    );
    o
}

/// `the list holds N entries (digest D)` → (N, D), from any erase command's last line.
pub(crate) fn list_state(out: &str) -> (u64, String) {
    let tail = out.rsplit("the list holds ").next().unwrap_or_default();
    let (n, rest) = tail.split_once(" entries (digest ").expect("state line");
    (
        n.trim().parse().expect("count"),
        rest.trim().trim_end_matches(')').to_string(),
    )
}

pub(crate) fn api_of(dir: &Path) -> ApiConfig {
    ApiConfig {
        listen: format!("unix:{}", dir.join("api.sock").display()),
        token_file: None,
    }
}

/// `lethe erase serve` (the API and journal worker, as the daemon runs them).
pub(crate) struct Server {
    child: Child,
}

impl Server {
    pub(crate) async fn start(cfg: &Path, dir: &Path) -> Server {
        let log = std::fs::File::create(dir.join("serve.log")).unwrap();
        let child = Command::new(common::lethe_bin())
            .arg("--config")
            .arg(cfg)
            .args(["erase", "serve"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start lethe erase serve");
        let client = ApiClient::from_config(&api_of(dir)).unwrap();
        for _ in 0..300 {
            if let Ok(Some(_)) = client.probe().await {
                return Server { child };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "lethe erase serve did not answer: {}",
            std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default()
        );
    }

    fn kill_9(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }

    pub(crate) fn stop(mut self) {
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap();
    }
}

pub(crate) fn host(repo: &Repo, extra: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_repo_config(dir.path(), repo, extra);
    (dir, cfg)
}

pub(crate) fn load(cfg: &Path) -> Config {
    Config::load(cfg).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_adds_survive_kill_9_of_the_server() {
    let repo = tempfile::tempdir().unwrap();
    let (dir, cfg) = host(&Repo::File(repo.path()), "");
    let server = Server::start(&cfg, dir.path()).await;
    let client = ApiClient::from_config(&api_of(dir.path())).unwrap();
    let acked = Arc::new(Mutex::new(Vec::<i64>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..8i64 {
        let (client, acked, stop) = (client.clone(), Arc::clone(&acked), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            let mut i = 0i64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let id = w * 1_000_000 + i;
                match client.add(&[id.to_string()], Some("kill-test")).await {
                    Ok(out) => {
                        assert!(out.count >= 1);
                        acked.lock().unwrap().push(id);
                    }
                    Err(_) => break, // the server is gone
                }
                i += 1;
            }
        }));
    }
    // Kill while requests are still in flight, once 10,000 are acknowledged.
    while acked.lock().unwrap().len() < 10_000 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill_9();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 10_000);

    let c = load(&cfg);
    let store =
        ErasureStore::open(&c.erasure.path, SubjectType::Bigint).expect("reopen after kill -9");
    for id in &acked {
        assert!(
            store.get(&id.to_string()).unwrap().is_some(),
            "acknowledged id {id} lost"
        );
    }
    let state = store
        .verify_state()
        .expect("count and digest match the entries");
    assert!(state.count >= acked.len() as u64);
    // What was acknowledged but not yet journaled is still pending, and
    // the next sync uploads it.
    drop(store);
    let out = lethe_ok(&cfg, &["erase", "sync"], 0);
    assert_eq!(list_state(&stdout(&out)).0, state.count);
    let (_d2, cfg2) = host(&Repo::File(repo.path()), "");
    let out = lethe_ok(&cfg2, &["erase", "sync"], 0);
    assert_eq!(list_state(&stdout(&out)), (state.count, state.digest));
}

/// Adds on two hosts sharing `repo`; after `erase sync` on both, the lists are equal.
fn two_hosts_converge(repo: &Repo, run: impl Fn(&Path, &[&str], i32) -> Output) {
    let (_a, cfg_a) = host(repo, "");
    let (_b, cfg_b) = host(repo, "");
    run(
        &cfg_a,
        &["erase", "add", "1", "2", "3", "--reference", "T-1"],
        0,
    );
    run(&cfg_b, &["erase", "add", "3", "4"], 0);
    let ids: String = (100..5_100).map(|i| format!("{i}\n")).collect();
    let file = _b.path().join("ids.txt");
    std::fs::write(&file, format!("# bulk\n\n{ids}")).unwrap();
    run(&cfg_b, &["erase", "import", file.to_str().unwrap()], 0);
    run(&cfg_a, &["erase", "sync"], 0);
    let b = list_state(&stdout(&run(&cfg_b, &["erase", "sync"], 0)));
    let a = list_state(&stdout(&run(&cfg_a, &["erase", "sync"], 0)));
    assert_eq!(a, b);
    assert_eq!(a.0, 5_004);
    let listed = stdout(&run(&cfg_b, &["erase", "check", "1"], 0));
    assert!(listed.contains("reference T-1"), "{listed}");
    run(&cfg_a, &["erase", "check", "4999"], 0);
    run(&cfg_a, &["erase", "check", "6000"], 1);
}

#[test]
fn two_hosts_sharing_a_directory_repository_converge() {
    let repo = tempfile::tempdir().unwrap();
    two_hosts_converge(&Repo::File(repo.path()), lethe_ok);
}

#[test]
fn two_hosts_sharing_a_garage_bucket_converge() {
    let Some(g) = common::garage() else { return };
    let bucket = g.new_bucket();
    let repo = Repo::S3 {
        garage: &g,
        bucket: &bucket,
        prefix: "prod",
    };
    two_hosts_converge(&repo, |cfg, args, code| {
        let o = g.lethe(cfg, args);
        assert_eq!(
            o.status.code(),
            Some(code),
            "lethe {args:?}: {} {}",
            stdout(&o),
            stderr(&o)
        );
        o
    });
    let keys = g.aws(&["s3", "ls", &format!("s3://{}/prod/erasures/", bucket.name)]);
    assert!(
        keys.contains(".json"),
        "journal objects in the bucket: {keys}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_host_is_refused_until_sync_then_rebuilds_the_list() {
    let repo = tempfile::tempdir().unwrap();
    let (_a, cfg_a) = host(&Repo::File(repo.path()), "");
    let (_b, cfg_b) = host(&Repo::File(repo.path()), "");
    lethe_ok(
        &cfg_a,
        &["erase", "add", "10", "20", "30", "--reference", "GDPR-1"],
        0,
    );
    let a = list_state(&stdout(&lethe_ok(&cfg_a, &["erase", "sync"], 0)));

    let c = load(&cfg_b);
    let storage = lethe::storage::open(&c.storage).await.unwrap();
    // Fail closed: no local list at all.
    let err = ErasureStore::open_for_restore(&c.erasure.path, SubjectType::Bigint).unwrap_err();
    assert!(err.to_string().contains("lethe erase sync"), "{err}");
    // A local list that lacks journal entries is refused too.
    lethe_ok(&cfg_b, &["erase", "add", "99"], 0);
    {
        let store = ErasureStore::open_for_restore(&c.erasure.path, SubjectType::Bigint).unwrap();
        let err = journal::check_fresh(&store, storage.as_ref())
            .await
            .unwrap_err();
        assert!(matches!(err, journal::StaleError::Behind { .. }), "{err}");
    }
    let b = list_state(&stdout(&lethe_ok(&cfg_b, &["erase", "sync"], 0)));
    assert_eq!(b.0, 4);
    let store = ErasureStore::open_for_restore(&c.erasure.path, SubjectType::Bigint).unwrap();
    let state = journal::check_fresh(&store, storage.as_ref())
        .await
        .unwrap();
    assert_eq!((state.count, state.digest.clone()), b);
    drop(store);
    // A third, empty host rebuilds exactly b's list from storage alone.
    let (_c, cfg_c) = host(&Repo::File(repo.path()), "");
    assert_eq!(
        list_state(&stdout(&lethe_ok(&cfg_c, &["erase", "sync"], 0))),
        b
    );
    assert_ne!(a, b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cli_use_goes_through_the_running_api() {
    let repo = tempfile::tempdir().unwrap();
    let (dir, cfg) = host(&Repo::File(repo.path()), "");
    // Same answers without a server, for comparison.
    lethe_ok(&cfg, &["erase", "add", "-7", "--reference", "local"], 0);
    let local_check = stdout(&lethe_ok(&cfg, &["erase", "check", "-7"], 0));

    let server = Server::start(&cfg, dir.path()).await;
    let mut children = Vec::new();
    for w in 0..8 {
        let ids: Vec<String> = (0..50).map(|i| (w * 1000 + i).to_string()).collect();
        let mut cmd = Command::new(common::lethe_bin());
        cmd.arg("--config")
            .arg(&cfg)
            .args(["erase", "add"])
            .args(&ids)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        children.push(cmd.spawn().unwrap());
    }
    let file = dir.path().join("import.txt");
    std::fs::write(
        &file,
        (20_000..20_500)
            .map(|i| format!("{i}\r\n"))
            .collect::<String>(),
    )
    .unwrap();
    let import = Command::new(common::lethe_bin())
        .arg("--config")
        .arg(&cfg)
        .args(["erase", "import", "-"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    assert!(import.status.success(), "{}", stderr(&import));
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{} {}", stdout(&o), stderr(&o));
    }
    // Through the API: the same output as locally.
    assert_eq!(
        stdout(&lethe_ok(&cfg, &["erase", "check", "-7"], 0)),
        local_check
    );
    lethe_ok(&cfg, &["erase", "check", "7049"], 0);
    lethe_ok(&cfg, &["erase", "check", "7050"], 1);
    let bad = lethe_ok(&cfg, &["erase", "add", "12", "twelve"], 2);
    assert!(stderr(&bad).contains("\"twelve\""), "{}", stderr(&bad));
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&stdout(&lethe_ok(&cfg, &["erase", "list", "--json"], 0))).unwrap();
    assert_eq!(listed.len(), 1 + 8 * 50 + 500);
    let out = lethe_ok(&cfg, &["erase", "sync"], 0);
    assert_eq!(list_state(&stdout(&out)).0, 901);
    server.stop();
    assert!(
        !dir.path().join("api.sock").exists(),
        "socket removed on SIGTERM"
    );
    // The server is gone: the CLI opens the store itself again.
    let text = stdout(&lethe_ok(&cfg, &["erase", "list"], 0));
    assert_eq!(text.lines().count(), 901);
    assert!(
        text.lines().all(|l| l.ends_with("\tjournaled")),
        "all journaled after sync"
    );
}

#[test]
fn imports_refuse_every_invalid_line_and_write_nothing() {
    let repo = tempfile::tempdir().unwrap();
    let (dir, cfg) = host(&Repo::File(repo.path()), "");
    let file = dir.path().join("ids.txt");
    std::fs::write(&file, "1\n# comment\n\nx1\n2\n99999999999999999999\n 3 \n").unwrap();
    let o = lethe_ok(&cfg, &["erase", "import", file.to_str().unwrap()], 2);
    let err = stderr(&o);
    assert!(
        err.contains("line 4") && err.contains("line 6") && err.contains("nothing was imported"),
        "{err}"
    );
    assert!(!err.contains("line 1:") && !err.contains("line 7"), "{err}");
    lethe_ok(&cfg, &["erase", "check", "1"], 1);
    std::fs::write(&file, "1\n# comment\n\n2\n 3 \n2\n").unwrap();
    let out = stdout(&lethe_ok(
        &cfg,
        &["erase", "import", file.to_str().unwrap()],
        0,
    ));
    assert!(out.contains("added 3, already listed 1"), "{out}");
    let o = lethe_ok(&cfg, &["erase", "check", "nope"], 2);
    assert!(stderr(&o).contains("\"nope\""));
    let seen: HashSet<String> = stdout(&lethe_ok(&cfg, &["erase", "list"], 0))
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect();
    assert_eq!(
        seen,
        ["1", "2", "3"].into_iter().map(String::from).collect()
    );
}
