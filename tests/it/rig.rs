//! A test rig for the reliability suite (crash, faults, secrets, API abuse):
//! one source database, a `file://` or Garage repository, an age identity, an
//! erasure list and JSON logs, and the real `lethe` binary driven through it.
#![allow(dead_code)]

use crate::common::{
    Garage, LetheCli, Repo, TestBucket, TestDb, lethe_cmd, psql, repo_config_text,
};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Users (the subject root), orders (CASCADE), notes (SET NULL), and a
/// table big enough that a snapshot takes a moment.
pub const SCHEMA: &str = "
CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);
CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE, total numeric);
CREATE TABLE notes (id bigint PRIMARY KEY, user_id bigint REFERENCES users (id) ON DELETE SET NULL, body text);
CREATE TABLE filler (id bigint PRIMARY KEY, body text);
INSERT INTO users SELECT g, 'user' || g || '@example.com' FROM generate_series(1, 2000) g;
INSERT INTO orders SELECT g, (g % 2000) + 1, g * 1.25 FROM generate_series(1, 6000) g;
INSERT INTO notes SELECT g, CASE WHEN g % 5 = 0 THEN NULL ELSE (g % 2000) + 1 END, E'note\\t' || g FROM generate_series(1, 3000) g;
";

/// `filler` rows: `n` rows of ~70 bytes.
pub fn filler(n: u64) -> String {
    format!(
        "INSERT INTO filler SELECT g, md5(g::text) || md5((g * 7)::text) FROM generate_series(1, {n}) g;"
    )
}

pub const TABLES: &[&str] = &["users", "orders", "notes", "filler"];

pub struct Rig {
    pub dir: tempfile::TempDir,
    pub db: TestDb,
    pub cfg: PathBuf,
    pub key: PathBuf,
    /// The repository directory (`file://`), or `None` on S3.
    pub repo: Option<PathBuf>,
    pub garage: Option<Garage>,
    pub bucket: Option<TestBucket>,
}

impl Rig {
    /// A `file://` rig. `source_url` rewrites the source URL (e.g. with a
    /// password); `extra` is appended to the config.
    pub fn file(tag: &str, sql: &str, extra: &str) -> Rig {
        let db = TestDb::create(tag);
        db.sql(sql);
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("repo");
        let text = repo_config_text(dir.path(), &Repo::File(&repo), &db.url);
        Self::finish(dir, db, text, extra, Some(repo), None, None)
    }

    /// A Garage rig (a fresh bucket), or `None` when Garage cannot run locally.
    pub fn s3(tag: &str, sql: &str, extra: &str) -> Option<Rig> {
        let garage = crate::common::garage()?;
        let bucket = garage.new_bucket();
        Some(Self::s3_on(tag, sql, extra, garage, bucket))
    }

    /// A rig on a given Garage and bucket (e.g. a private instance).
    pub fn s3_on(tag: &str, sql: &str, extra: &str, garage: Garage, bucket: TestBucket) -> Rig {
        let db = TestDb::create(tag);
        db.sql(sql);
        let dir = tempfile::tempdir().expect("tempdir");
        let text = repo_config_text(
            dir.path(),
            &Repo::S3 {
                garage: &garage,
                bucket: &bucket.name,
                prefix: "r",
            },
            &db.url,
        );
        Self::finish(dir, db, text, extra, None, Some(garage), Some(bucket))
    }

    fn finish(
        dir: tempfile::TempDir,
        db: TestDb,
        text: String,
        extra: &str,
        repo: Option<PathBuf>,
        garage: Option<Garage>,
        bucket: Option<TestBucket>,
    ) -> Rig {
        let text = text.replace("format = \"text\"", "format = \"json\"");
        let cfg = crate::common::write_config(dir.path(), &format!("{text}\n{extra}\n"));
        let key = dir.path().join("identity.key");
        Rig {
            dir,
            db,
            cfg,
            key,
            repo,
            garage,
            bucket,
        }
    }

    /// Replaces text in the config file.
    pub fn edit_config(&self, from: &str, to: &str) {
        let t = std::fs::read_to_string(&self.cfg).expect("cfg");
        assert!(t.contains(from), "config has no {from:?}");
        std::fs::write(&self.cfg, t.replace(from, to)).expect("cfg");
    }

    /// Restores `id` into a fresh database (after `erase sync`), returning it
    /// and the restore's output.
    pub fn restore(&self, id: &str, tag: &str) -> (TestDb, Output) {
        let out = self.run(&["erase", "sync"]);
        assert!(out.status.success(), "erase sync: {}", text(&out.stderr));
        let target = TestDb::create(tag);
        let out = self.run(&["restore", id, "--target", &target.url]);
        (target, out)
    }

    /// Every file under the repository directory (`file://` rigs).
    pub fn repo_files(&self) -> Vec<String> {
        let Some(root) = &self.repo else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if let Ok(r) = p.strip_prefix(root) {
                    out.push(r.display().to_string());
                }
            }
        }
        out.sort();
        out
    }
}

impl LetheCli for Rig {
    /// `lethe --config … args`, with the Garage key when on S3.
    fn cmd(&self, args: &[&str]) -> Command {
        let env = self.garage.as_ref().map(Garage::env).unwrap_or_default();
        lethe_cmd(&self.cfg, args, &env)
    }
}

/// A table's rows as `COPY … TO STDOUT` text, ordered by its first column.
pub fn table_text(db: &str, table: &str) -> String {
    psql(
        db,
        &format!("COPY (SELECT * FROM {table} ORDER BY 1) TO STDOUT"),
    )
}

/// Asserts `target` holds exactly what `source` holds in `tables`.
pub fn assert_same_tables(source: &TestDb, target: &TestDb, tables: &[&str]) {
    for t in tables {
        let (a, b) = (table_text(&source.name, t), table_text(&target.name, t));
        assert!(
            a == b,
            "{t}: restored rows differ from the source ({} vs {} bytes)",
            a.len(),
            b.len()
        );
    }
}

/// Number of tables in the public schema of `db`.
pub fn table_count(db: &str) -> u64 {
    psql(
        db,
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
    )
    .trim()
    .parse()
    .expect("count")
}

/// The `lease.taken_over` events among JSON log lines.
pub fn takeovers<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<serde_json::Value> {
    lines
        .into_iter()
        .filter(|l| l.contains("\"lease.taken_over\""))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// A small runtime for async checks from synchronous tests.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

pub fn api_client(rig: &Rig) -> lethe::erasure::client::ApiClient {
    let cfg = lethe::config::Config::load(&rig.cfg).expect("config");
    lethe::erasure::client::ApiClient::from_config(&cfg.api).expect("client")
}

/// Starts `lethe erase serve` and waits until it answers.
pub fn serve(rig: &Rig, rt: &tokio::runtime::Runtime) -> Child {
    let mut child = rig
        .cmd(&["erase", "serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let client = api_client(rig);
    let deadline = Instant::now() + Duration::from_secs(30);
    while rt.block_on(client.probe()).ok().flatten().is_none() {
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "serve exited at start"
        );
        assert!(
            Instant::now() < deadline,
            "serve did not answer within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

impl Rig {
    /// The repository as a `Storage`, for checks from outside lethe.
    pub fn storage(
        &self,
        rt: &tokio::runtime::Runtime,
    ) -> std::sync::Arc<dyn lethe::storage::Storage> {
        match (&self.repo, &self.garage, &self.bucket) {
            (Some(p), _, _) => {
                std::sync::Arc::new(lethe::storage::fs::FsStorage::open(p.clone()).expect("repo"))
            }
            (None, Some(g), Some(b)) => {
                std::sync::Arc::new(rt.block_on(g.storage(&b.name, "r", Default::default())))
            }
            _ => unreachable!("a rig has a directory or a bucket"),
        }
    }

    /// Whether `locks/snapshot.json` exists (a killed or failed run left it).
    pub fn has_snapshot_lock(&self) -> bool {
        let rt = rt();
        let s = self.storage(&rt);
        rt.block_on(s.head(lethe::repo::lease::SNAPSHOT_LOCK_KEY))
            .expect("head lock")
            .is_some()
    }

    /// Removes the snapshot lock a killed `lethe snapshot` leaves behind (as
    /// an operator would once sure the process is gone; the lease itself is
    /// tested in tests/it/daemon). Returns whether there was one.
    pub fn clear_snapshot_lock(&self) -> bool {
        let rt = rt();
        let s = self.storage(&rt);
        let key = lethe::repo::lease::SNAPSHOT_LOCK_KEY;
        let had = rt.block_on(s.head(key)).expect("head lock").is_some();
        rt.block_on(s.delete(key)).expect("delete lock");
        had
    }
}
