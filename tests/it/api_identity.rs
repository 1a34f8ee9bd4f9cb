//! Two daemons on one host (one per database) and the erasure API socket
//! (issue 15): a daemon refuses a socket another live daemon holds, a
//! `lethe erase …` whose config names another erasure list than the daemon
//! answering at its `api.listen` is refused (nothing is added to either
//! list), and a socket left by a crashed process does not stop a daemon.

use crate::common::{LetheCli, lethe_cmd};
use crate::rig::{Rig, SCHEMA, rt, text};
use lethe::config::Config;
use lethe::erasure::client::ApiClient;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `lethe daemon` with its stderr collected; killed when dropped.
struct Daemon {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Daemon {
    fn spawn(cfg: &Path) -> Daemon {
        let mut child = lethe_cmd(cfg, &["daemon"], &[])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn lethe daemon");
        let (lines, _reader) = crate::common::collect_stderr(&mut child);
        Daemon { child, lines }
    }

    /// Starts `lethe daemon` and returns once it logged `daemon.ready`.
    fn start(cfg: &Path) -> Daemon {
        let mut d = Daemon::spawn(cfg);
        d.wait_for("daemon.ready", Duration::from_secs(90));
        d
    }

    fn log(&self) -> String {
        self.lines.lock().expect("lines").join("\n")
    }

    fn events(&self, event: &str) -> Vec<serde_json::Value> {
        self.lines
            .lock()
            .expect("lines")
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["event"] == event)
            .collect()
    }

    fn wait_for(&mut self, event: &str, timeout: Duration) {
        self.wait_count(event, 1, timeout);
    }

    /// Waits until `event` was logged `n` times (stderr lines reach the
    /// reader thread a moment after the daemon answered), then checks that
    /// it was not logged more often.
    fn wait_count(&mut self, event: &str, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.events(event).len() < n {
            assert!(
                self.child.try_wait().expect("try_wait").is_none(),
                "the daemon exited before {event}:\n{}",
                self.log()
            );
            assert!(
                Instant::now() < deadline,
                "no {event} within {timeout:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(self.events(event).len(), n, "{event}:\n{}", self.log());
    }

    /// Waits for the exit (killing it after `timeout`, which fails the test).
    fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Let the reader thread catch the last lines.
                std::thread::sleep(Duration::from_millis(200));
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "the daemon did not exit within {timeout:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(mut self) {
        let rc = unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        assert_eq!(rc, 0);
        let code = self.wait_exit(Duration::from_secs(30));
        assert_eq!(code, Some(0), "{}", self.log());
    }
}

/// A second config next to `a`'s: the same repository and database, its own
/// erasure list in `dir`, and the socket `sock` (`None`: `a`'s socket).
fn second_config(a: &Rig, dir: &Path, sock: Option<&Path>) -> PathBuf {
    let text = std::fs::read_to_string(&a.cfg).expect("config");
    let mut text = text.replace(
        &a.dir.path().join("erasure").display().to_string(),
        &dir.join("erasure").display().to_string(),
    );
    if let Some(sock) = sock {
        text = text.replace(
            &a.dir.path().join("api.sock").display().to_string(),
            &sock.display().to_string(),
        );
    }
    let cfg = dir.join("lethe.toml");
    std::fs::write(&cfg, text).expect("write config");
    cfg
}

fn lethe(cfg: &Path, args: &[&str]) -> Output {
    lethe_cmd(cfg, args, &[]).output().expect("lethe runs")
}

fn sock(a: &Rig) -> PathBuf {
    a.dir.path().join("api.sock")
}

/// `erase check 5` ran on the list itself (no daemon) or through the
/// config's own daemon: exit 1 and "not listed".
fn assert_not_listed(cfg: &Path, id: &str) {
    let out = lethe(cfg, &["erase", "check", id]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains(&format!("not listed: {id}")),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

fn assert_listed(cfg: &Path, id: &str) {
    let out = lethe(cfg, &["erase", "check", id]);
    assert!(
        out.status.success() && text(&out.stdout).contains(&format!("listed: {id}")),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// The mismatch refusal: exit 1, both lists named, the way out named.
fn assert_refused(out: &Output, ours: &Path, theirs: &Path, what: &str) {
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: expected exit 1\nstdout: {}\nstderr: {err}",
        text(&out.stdout)
    );
    for needle in [
        ours.display().to_string(),
        theirs.display().to_string(),
        "erasure.path".to_string(),
        "api.listen".to_string(),
    ] {
        assert!(err.contains(&needle), "{what}: {needle} not in: {err}");
    }
}

#[test]
fn a_second_daemon_on_a_held_socket_fails_to_start_naming_it() {
    let a = Rig::file("apiida", SCHEMA, "");
    let b_dir = tempfile::tempdir().expect("tempdir");
    let b_cfg = second_config(&a, b_dir.path(), None);
    let da = Daemon::start(&a.cfg);

    let mut db = Daemon::spawn(&b_cfg);
    let code = db.wait_exit(Duration::from_secs(60));
    assert_eq!(code, Some(1), "{}", db.log());
    let failed = db.events("daemon.failed");
    assert_eq!(failed.len(), 1, "{}", db.log());
    let error = failed[0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&sock(&a).display().to_string()) && error.contains("api.listen"),
        "daemon.failed names the socket and advises a distinct api.listen: {error}"
    );
    assert!(db.events("daemon.ready").is_empty(), "{}", db.log());
    eprintln!("second daemon: {error}");

    // The first daemon still holds its socket and serves its own list.
    let rt = rt();
    let cfg = Config::load(&a.cfg).expect("config");
    let client = ApiClient::for_config(&cfg.api, &cfg.erasure, &cfg.storage.url).expect("client");
    let st = rt
        .block_on(client.probe())
        .expect("the first daemon answers as itself")
        .expect("the first daemon still serves");
    assert_eq!(
        st.path,
        std::fs::canonicalize(a.dir.path().join("erasure")).expect("canonical")
    );
    assert!(
        std::fs::symlink_metadata(sock(&a))
            .expect("socket")
            .file_type()
            .is_socket()
    );
    da.stop();
    assert!(!sock(&a).exists(), "the socket is removed at shutdown");
}

#[test]
fn a_client_for_another_list_is_refused_and_nothing_is_added() {
    let a = Rig::file("apiidb", SCHEMA, "");
    let b_dir = tempfile::tempdir().expect("tempdir");
    let b_cfg = second_config(&a, b_dir.path(), None);
    let (a_list, b_list) = (a.dir.path().join("erasure"), b_dir.path().join("erasure"));
    let mut da = Daemon::start(&a.cfg);

    let out = lethe(&b_cfg, &["erase", "add", "5", "--reference", "T-15"]);
    assert_refused(&out, &b_list, &a_list, "erase add");
    eprintln!("erase add with B: {}", text(&out.stderr));
    let ids = b_dir.path().join("ids.txt");
    std::fs::write(&ids, "5\n7\n").expect("write ids");
    let out = lethe(&b_cfg, &["erase", "import", ids.to_str().expect("utf-8")]);
    assert_refused(&out, &b_list, &a_list, "erase import");
    for args in [
        &["erase", "check", "5"][..],
        &["erase", "list"],
        &["erase", "sync"],
    ] {
        let out = lethe(&b_cfg, args);
        assert_refused(&out, &b_list, &a_list, &args.join(" "));
    }
    assert!(
        !b_list.exists(),
        "the refused commands did not fall back to writing B's list"
    );
    // A's list, through its daemon: 5 is not there.
    assert_not_listed(&a.cfg, "5");
    assert_not_listed(&a.cfg, "7");
    let events = da.events("erasure.added");
    assert!(events.is_empty(), "A's daemon added something: {events:?}");

    // Control: A's own config still goes through its daemon.
    let out = a.run(&["erase", "add", "6"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_listed(&a.cfg, "6");
    // Exactly one add reached A's daemon: the control, none of B's.
    da.wait_count("erasure.added", 1, Duration::from_secs(10));

    // The way out the error names: B with its own api.listen (no daemon
    // there) writes its own list directly.
    let b2_dir = tempfile::tempdir().expect("tempdir");
    let b2_cfg = second_config(&a, b2_dir.path(), Some(&b2_dir.path().join("b.sock")));
    let text_b2 = std::fs::read_to_string(&b2_cfg).expect("config").replace(
        &b2_dir.path().join("erasure").display().to_string(),
        &b_list.display().to_string(),
    );
    std::fs::write(&b2_cfg, text_b2).expect("write");
    let out = lethe(&b2_cfg, &["erase", "add", "5"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_listed(&b2_cfg, "5");
    assert_not_listed(&a.cfg, "5");

    da.stop();
    // Without the daemon both configs read their lists directly.
    assert_not_listed(&a.cfg, "5");
    assert_listed(&a.cfg, "6");
    assert_listed(&b_cfg, "5");
    assert_not_listed(&b_cfg, "6");
    assert_not_listed(&b_cfg, "7");
}

#[test]
fn a_stale_socket_does_not_stop_a_daemon() {
    let a = Rig::file("apiidc", SCHEMA, "");
    // A daemon killed with SIGKILL leaves its socket behind.
    let mut d = Daemon::start(&a.cfg);
    let rc = unsafe { libc::kill(d.child.id() as i32, libc::SIGKILL) };
    assert_eq!(rc, 0);
    d.wait_exit(Duration::from_secs(30));
    drop(d);
    let is_socket = |p: &Path| {
        std::fs::symlink_metadata(p)
            .map(|m| m.file_type().is_socket())
            .unwrap_or(false)
    };
    assert!(is_socket(&sock(&a)), "the killed daemon left its socket");

    let mut d = Daemon::start(&a.cfg);
    let stale = d.events("api.stale_socket");
    assert_eq!(stale.len(), 1, "{}", d.log());
    assert_eq!(
        stale[0]["path"].as_str(),
        Some(sock(&a).display().to_string().as_str())
    );
    let out = a.run(&["erase", "add", "9"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    d.wait_count("erasure.added", 1, Duration::from_secs(10));
    d.stop();

    // A socket file whose listener was dropped (no process ever served it).
    drop(std::os::unix::net::UnixListener::bind(sock(&a)).expect("bind"));
    assert!(is_socket(&sock(&a)));
    let d = Daemon::start(&a.cfg);
    let out = a.run(&["erase", "check", "9"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    d.stop();

    // Anything else at the path is still refused, and left alone.
    std::fs::write(sock(&a), b"not a socket").expect("write");
    let mut d = Daemon::spawn(&a.cfg);
    assert_eq!(d.wait_exit(Duration::from_secs(60)), Some(1), "{}", d.log());
    let error = d.events("daemon.failed")[0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains("not a socket"), "{error}");
    assert_eq!(std::fs::read(sock(&a)).expect("read"), b"not a socket");
}
