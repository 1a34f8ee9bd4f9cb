//! Shared helpers for integration tests: a fresh PostgreSQL database per
//! test, the `lethe` binary, temporary config files; Garage (real S3) and
//! repository configs in `garage`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

mod cli;
mod garage;
pub use cli::*;
pub use garage::*;

/// Where tests reach PostgreSQL (override with LETHE_TEST_PG, a URL without a database).
pub fn pg_base() -> String {
    std::env::var("LETHE_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// Where tests reach the cluster with `wal_level = logical` that
/// `scripts/pg-logical-test.sh` starts (override with LETHE_TEST_PG_LOGICAL,
/// a URL to its `postgres` database, as the script prints it).
pub fn pg_logical_base() -> String {
    cluster_base("LETHE_TEST_PG_LOGICAL", "127.0.0.1:5499")
}

/// The small logical cluster (`max_slot_wal_keep_size = 48MB`) that
/// `.ci/run` starts for the slot-invalidation test (LETHE_TEST_PG_TINY_KEEP).
pub fn pg_tiny_keep_base() -> String {
    cluster_base("LETHE_TEST_PG_TINY_KEEP", "127.0.0.1:5498")
}

/// The URL in `var` without its database, or `postgres@hostport`'s.
fn cluster_base(var: &str, hostport: &str) -> String {
    let url =
        std::env::var(var).unwrap_or_else(|_| format!("postgres://postgres@{hostport}/postgres"));
    match url.rsplit_once('/') {
        Some((base, _db)) if base.contains("://") && base.len() > "postgres://".len() => {
            base.to_string()
        }
        _ => url,
    }
}

/// A numeric knob for longer runs (trials, seeds, iterations): the
/// variable's value when it is set and parses, else `default`.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A database created for one test and dropped when the value is dropped.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    /// Creates `lethe_<tag>_<random>`; panics with a clear reason if the
    /// server is absent (tests need it; CI always has it).
    pub fn create(tag: &str) -> TestDb {
        let name = format!("lethe_{}_{:08x}", tag, rand::random::<u32>());
        psql("postgres", &format!("CREATE DATABASE {name}"));
        TestDb {
            url: format!("{}/{}", pg_base(), name),
            name,
        }
    }

    /// Runs SQL in this database with psql (ON_ERROR_STOP), returning stdout.
    pub fn sql(&self, sql: &str) -> String {
        psql(&self.name, sql)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args(["-X", "-q", "-d", &format!("{}/postgres", pg_base()), "-c"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .output();
    }
}

/// Runs SQL with psql against database `db`, panicking with psql's stderr on failure.
pub fn psql(db: &str, sql: &str) -> String {
    psql_at(&pg_base(), db, sql)
}

/// [`psql`] on the server at `base` (a URL without a database).
pub fn psql_at(base: &str, db: &str, sql: &str) -> String {
    let mut cmd = Command::new("psql");
    cmd.args([
        "-X",
        "-q",
        "-A",
        "-t",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        &format!("{base}/{db}"),
        "-c",
        sql,
    ]);
    let out = output_within(cmd);
    assert!(
        out.status.success(),
        "psql failed on {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The built `lethe` binary.
pub fn lethe_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lethe"))
}

/// `lethe --config <cfg> <args…>` with the test hooks cleared, returning the output.
pub fn lethe(cfg: &Path, args: &[&str]) -> std::process::Output {
    output_within(lethe_cmd(cfg, args, &[]))
}

/// How long one command a test runs may take before it counts as hung
/// (`LETHE_TEST_CMD_TIMEOUT`, seconds; default 300).
pub fn command_deadline() -> std::time::Duration {
    std::time::Duration::from_secs(env_u64("LETHE_TEST_CMD_TIMEOUT", 300))
}

/// `cmd.output()`, but a command still running after [`command_deadline`]
/// is sent SIGTERM (so it can log where it stands), then SIGKILL 10 s
/// later, and the test panics with the command and everything it printed.
/// A hang is a failure with its evidence, never a CI run that times out.
pub fn output_within(mut cmd: Command) -> Output {
    use std::io::Read;
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout piped")));
    let err = drain(Box::new(child.stderr.take().expect("stderr piped")));
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let signal = |sig| {
        // SAFETY: kill(2) on our own child's pid (not yet reaped: the
        // waiter has not sent its status); no memory is touched.
        unsafe { libc::kill(pid, sig) };
    };
    let mut hung = false;
    let status = match rx.recv_timeout(command_deadline()) {
        Ok(status) => status,
        Err(_) => {
            hung = true;
            signal(libc::SIGTERM);
            match rx.recv_timeout(std::time::Duration::from_secs(10)) {
                Ok(status) => status,
                Err(_) => {
                    signal(libc::SIGKILL);
                    rx.recv().expect("waiter")
                }
            }
        }
    }
    .expect("wait");
    let stdout = out.join().expect("stdout reader");
    let stderr = err.join().expect("stderr reader");
    assert!(
        !hung,
        "{what} was still running after {:?} (LETHE_TEST_CMD_TIMEOUT): hung. stdout:\n{}\nstderr:\n{}",
        command_deadline(),
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Writes `text` as a config file in `dir` and returns its path.
pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("lethe.toml");
    std::fs::write(&p, text).expect("write config");
    p
}

/// Collects a child's stderr (piped) line by line on a thread, into a
/// shared vector the test can read while the child runs.
pub fn collect_stderr(child: &mut Child) -> (Arc<Mutex<Vec<String>>>, JoinHandle<()>) {
    let err = child.stderr.take().expect("stderr piped");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            sink.lock().expect("lines").push(line);
        }
    });
    (lines, reader)
}

/// Sends a child's stderr (piped) line by line over a channel from a
/// thread, for tests that wait for a particular line.
pub fn stream_stderr(child: &mut Child) -> (Receiver<String>, JoinHandle<()>) {
    let err = child.stderr.take().expect("stderr piped");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (rx, reader)
}
