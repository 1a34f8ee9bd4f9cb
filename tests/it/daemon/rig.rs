//! The daemon tests' harness: a rig (database, repository, config), a
//! running `lethe daemon` whose stderr is collected line by line, and the
//! check that every log line is documented JSON (`README.md (section "Log events")`).

use crate::common::{LetheCli, Outside, Repo, TestDb, lethe_cmd, repo_config_text};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(super) const SMALL_SQL: &str = "CREATE TABLE users (id bigint PRIMARY KEY, name text); \
    INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 2000) g; \
    CREATE TABLE orders (id serial PRIMARY KEY, user_id bigint REFERENCES users (id) ON DELETE CASCADE, total numeric); \
    INSERT INTO orders (user_id, total) SELECT (g % 2000) + 1, g FROM generate_series(1, 5000) g;";

pub(super) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// One test's world: a database, a repository (a directory or a fresh
/// Garage bucket), an age key, the erasure list and API socket in a temp
/// dir, JSON logs; `outside` looks at the repository.
pub(super) struct Rig {
    pub(super) outside: Outside,
    pub(super) dir: tempfile::TempDir,
    pub(super) _db: TestDb,
    pub(super) cfg: std::path::PathBuf,
    pub(super) repo: std::path::PathBuf,
}

impl Rig {
    pub(super) fn new(tag: &str, sql: &str) -> Rig {
        Rig::build(tag, sql, None)
    }

    pub(super) fn on_garage(tag: &str, sql: &str) -> Option<Rig> {
        let g = crate::common::garage()?;
        Some(Rig::build(tag, sql, Some(g)))
    }

    pub(super) fn build(tag: &str, sql: &str, garage: Option<crate::common::Garage>) -> Rig {
        let db = TestDb::create(tag);
        if !sql.is_empty() {
            db.sql(sql);
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("repo");
        let outside = Outside::open(&repo, garage.as_ref());
        let text = match (&garage, &outside.bucket) {
            (Some(g), Some(bucket)) => {
                let s3 = Repo::S3 {
                    garage: g,
                    bucket,
                    prefix: "prod",
                };
                repo_config_text(dir.path(), &s3, &db.url)
            }
            _ => repo_config_text(dir.path(), &Repo::File(&repo), &db.url),
        };
        let text = text.replace("format = \"text\"", "format = \"json\"");
        let cfg = crate::common::write_config(dir.path(), &text);
        Rig {
            outside,
            dir,
            _db: db,
            cfg,
            repo,
        }
    }

    /// `lethe --config <cfg> <args>` with the rig's environment.
    pub(super) fn cmd_with(&self, cfg: &Path, args: &[&str]) -> std::process::Command {
        lethe_cmd(cfg, args, &self.outside.env)
    }
}

impl LetheCli for Rig {
    fn cmd(&self, args: &[&str]) -> std::process::Command {
        self.cmd_with(&self.cfg, args)
    }
}

/// Appends the daemon's schedule to a rig's config.
pub(super) fn daemon_config(s: &Rig, schedule: &str) {
    let mut text = std::fs::read_to_string(&s.cfg).expect("read config");
    text.push_str(&format!("\n[schedule]\n{schedule}\n"));
    std::fs::write(&s.cfg, text).expect("write config");
}

/// A running `lethe daemon` whose stderr lines are collected as they come.
pub(super) struct Running {
    pub(super) child: Child,
    pub(super) lines: Arc<Mutex<Vec<String>>>,
    pub(super) reader: Option<std::thread::JoinHandle<()>>,
}

pub(super) fn start(s: &Rig, env: &[(&str, &str)]) -> Running {
    start_with(s, &s.cfg, env)
}

/// `lethe daemon` with another config file (a second daemon on the rig's
/// repository).
pub(super) fn start_with(s: &Rig, cfg: &Path, env: &[(&str, &str)]) -> Running {
    let mut cmd = s.cmd_with(cfg, &["daemon"]);
    cmd.envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn lethe daemon");
    let (lines, reader) = crate::common::collect_stderr(&mut child);
    Running {
        child,
        lines,
        reader: Some(reader),
    }
}

impl Running {
    pub(super) fn log(&self) -> String {
        self.lines.lock().expect("lines").join("\n")
    }

    /// Every line that parses as a JSON object.
    pub(super) fn events(&self) -> Vec<Value> {
        self.lines
            .lock()
            .expect("lines")
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The first line logged with `event`; panics with the log if none.
    pub(super) fn first(&self, event: &str) -> Value {
        self.events()
            .into_iter()
            .find(|e| e["event"] == event)
            .unwrap_or_else(|| panic!("no {event} in the log:\n{}", self.log()))
    }

    pub(super) fn count(&self, event: &str) -> usize {
        self.events().iter().filter(|e| e["event"] == event).count()
    }

    /// Waits until `n` lines with `event` were logged (or a raw line equal to
    /// `event`, for the test pause marker); panics with the log on timeout.
    pub(super) fn wait_for(&self, event: &str, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let raw = self
                .lines
                .lock()
                .expect("lines")
                .iter()
                .filter(|l| l.as_str() == event)
                .count();
            if self.count(event) + raw >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no {n}× {event} within {timeout:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(super) fn signal(&self, sig: i32) {
        // libc::kill on our own child's pid.
        let rc = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(rc, 0, "kill({sig})");
    }

    /// Waits for the exit; returns its code and how long it took.
    pub(super) fn wait_exit(&mut self, timeout: Duration) -> (Option<i32>, Duration) {
        let t = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                if let Some(r) = self.reader.take() {
                    let _ = r.join();
                }
                return (status.code(), t.elapsed());
            }
            if t.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "the daemon did not exit within {timeout:?}; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `README.md (section "Log events")`: event name → fields always present.
pub(crate) fn documented_events() -> HashMap<String, Vec<String>> {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let mut out = HashMap::new();
    for line in doc.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | `event` | LEVEL | `a`, `b?` | meaning |
        if cells.len() < 5
            || !cells[1].starts_with('`')
            || !cells[2].chars().all(|c| c.is_ascii_uppercase() || c == '/')
        {
            continue;
        }
        let name = cells[1].trim_matches('`').to_string();
        let fields = cells[3]
            .split(',')
            .map(|f| f.trim().trim_matches('`'))
            .filter(|f| !f.is_empty() && !f.ends_with('?'))
            .map(str::to_string)
            .collect();
        out.insert(name, fields);
    }
    out
}

/// Every stderr line is one JSON object with `timestamp`, `level` and a
/// documented `event` carrying its documented fields. `allow_raw` lines
/// (the test-only pause marker) are skipped.
pub(super) fn check_log_lines(r: &Running, allow_raw: &[&str]) {
    let lines = r.lines.lock().expect("lines").clone();
    check_lines(&lines, allow_raw);
}

/// [`check_log_lines`] over lines collected elsewhere (the capture tests).
pub(crate) fn check_lines(lines: &[String], allow_raw: &[&str]) {
    let doc = documented_events();
    assert!(
        doc.len() > 40,
        "README Log events parsed to only {} events",
        doc.len()
    );
    assert!(!lines.is_empty());
    for line in lines {
        if allow_raw.iter().any(|a| line.starts_with(a)) {
            continue;
        }
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["timestamp"]
                .as_str()
                .is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()),
            "{line}"
        );
        assert!(v["level"].is_string(), "{line}");
        let event = v["event"]
            .as_str()
            .unwrap_or_else(|| panic!("no event field: {line}"));
        let fields = doc.get(event).unwrap_or_else(|| {
            panic!("event {event} is not in the README Log events section: {line}")
        });
        for f in fields {
            assert!(
                v.get(f).is_some(),
                "{event} lacks documented field {f}: {line}"
            );
        }
    }
}

/// The manifests' [started_at, finished_at] intervals, oldest first.
pub(super) fn intervals(
    s: &Rig,
) -> Vec<(
    String,
    chrono::DateTime<chrono::Utc>,
    chrono::DateTime<chrono::Utc>,
)> {
    let mut v: Vec<_> = s
        .listed()
        .into_iter()
        .map(|id| {
            let m = s.manifest(&id);
            (id, m.started_at, m.finished_at)
        })
        .collect();
    v.sort_by_key(|x| x.1);
    v
}
